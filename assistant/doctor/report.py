"""The doctor's report: rows of checks, rendered as a table or JSON (pure; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]
"""``fail`` makes the command exit non-zero; ``warn`` works but needs a look; ``skip`` could not be checked."""

REPORT_VERSION = 1
"""Bumped when the JSON shape changes."""


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the report."""

    name: str
    """What was checked, e.g. ``gpu`` or ``self-test: tool call``."""
    status: Status
    """The verdict."""
    detail: str
    """One line for a person: what was found, or what to do."""
    figures: Mapping[str, float | int | str | None] = field(default_factory=dict)
    """Measured values with their unit in the key (``free_gib``, ``first_sound_seconds``)."""


@dataclass(frozen=True, slots=True)
class Report:
    """Every check of one run."""

    checks: Sequence[Check]
    """Rows in the order they ran."""
    release: bool
    """True when the weights are the released ones; otherwise the figures mean nothing."""

    @property
    def failed(self) -> bool:
        """True when any check failed."""
        return any(c.status == "fail" for c in self.checks)

    @property
    def note(self) -> str:
        """What the figures are worth."""
        if self.release:
            return "figures are for the released weights on this machine"
        return "these are not the released weights (a test checkpoint?): the figures and verdicts mean nothing"


def exit_code(report: Report) -> int:
    """0 when nothing failed, 1 otherwise."""
    return 1 if report.failed else 0


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "version": REPORT_VERSION,
        "ok": not report.failed,
        "release": report.release,
        "note": report.note,
        "checks": [
            {"name": c.name, "status": c.status, "detail": c.detail, "figures": dict(c.figures)} for c in report.checks
        ],
    }


def render_table(report: Report) -> str:
    """The report as a fixed-width table, with the note and the verdict under it."""
    width = max([len("check"), *(len(c.name) for c in report.checks)])
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{c.name:<{width}}  {c.status:<6}  {c.detail}" for c in report.checks]
    verdict = "FAILED" if report.failed else "OK"
    lines += ["", f"note: {report.note}", f"verdict: {verdict}"]
    return "\n".join(lines)
