"""Scoring a wake-word run: detections, false accepts, latency and CPU from what fired in each clip (no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClipRun:
    """What the detector did on one clip."""

    name: str
    """The clip's path as given, for reports."""
    word: str | None
    """The word said in it (its folder's name); None for a negative."""
    seconds: float
    """Length of the clip."""
    hits: tuple[tuple[str, float], ...]
    """(word, seconds into the clip at the end of the chunk where it fired), in order."""
    word_end_seconds: float | None = None
    """When the word ends in the clip (truth.jsonl), for latency; None when unknown."""


@dataclass
class WordScore:
    """One word's figures."""

    word: str
    detected: int = 0
    total: int = 0
    false_accepts: int = 0
    """Hits of this word on the negatives."""
    cross_fires: int = 0
    """Hits of this word on clips of another word."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from the end of the word to the detection, for clips with a known end."""
    missed: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Share of this word's clips in which it was detected."""
        return self.detected / self.total if self.total else 0.0

    @property
    def latency_median(self) -> float | None:
        """Median latency in seconds; None without any known word end."""
        return statistics.median(self.latencies) if self.latencies else None


@dataclass
class Report:
    """A whole run."""

    words: dict[str, WordScore]
    negative_seconds: float
    audio_seconds: float
    cpu_seconds: float
    false_accept_clips: list[str] = field(default_factory=list)
    """``clip: word at N s`` for each false accept."""

    @property
    def negative_hours(self) -> float:
        """Length of the negatives in hours."""
        return self.negative_seconds / 3600

    def false_accepts_per_hour(self, word: str) -> float:
        """False accepts of ``word`` per hour of negatives (0 without negatives)."""
        hours = self.negative_hours
        return self.words[word].false_accepts / hours if hours else 0.0

    @property
    def cpu_seconds_per_audio_hour(self) -> float:
        """CPU seconds the detector spent per hour of audio it heard."""
        return self.cpu_seconds / (self.audio_seconds / 3600) if self.audio_seconds else 0.0

    @property
    def core_percent(self) -> float:
        """The same as a share of one core while listening in real time."""
        return self.cpu_seconds / self.audio_seconds * 100 if self.audio_seconds else 0.0


def score(words: Sequence[str], runs: Sequence[ClipRun], cpu_seconds: float) -> Report:
    """Tally ``runs`` for the configured ``words``; a clip counts as detected if its own word fired in it."""
    report = Report({w: WordScore(w) for w in words}, 0.0, sum(r.seconds for r in runs), cpu_seconds)
    for run in runs:
        if run.word is None:
            report.negative_seconds += run.seconds
            for name, at in run.hits:
                report.words.setdefault(name, WordScore(name)).false_accepts += 1
                report.false_accept_clips.append(f"{run.name}: {name} at {at:.2f} s")
            continue
        own = report.words.setdefault(run.word, WordScore(run.word))
        own.total += 1
        fired = [at for name, at in run.hits if name == run.word]
        if fired:
            own.detected += 1
            if run.word_end_seconds is not None:
                own.latencies.append(fired[0] - run.word_end_seconds)
        else:
            own.missed.append(run.name)
        for name, _ in run.hits:
            if name != run.word:
                report.words.setdefault(name, WordScore(name)).cross_fires += 1
    return report


def table(report: Report) -> str:
    """The report as a Markdown table, one row per word."""
    lines = [
        "| word | detected | cross-fires | false accepts (per hour) | latency median | CPU s per audio hour |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for word, s in report.words.items():
        latency = f"{s.latency_median:+.2f} s (n={len(s.latencies)})" if s.latency_median is not None else "-"
        lines.append(
            f"| {word} | {s.detected}/{s.total} ({100 * s.rate:.0f}%) | {s.cross_fires} | "
            f"{s.false_accepts} ({report.false_accepts_per_hour(word):.2f}/h in {report.negative_hours:.2f} h) | "
            f"{latency} | {report.cpu_seconds_per_audio_hour:.1f} |"
        )
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    """The report as plain data for ``--json``."""
    return {
        "audio_hours": report.audio_seconds / 3600,
        "negative_hours": report.negative_hours,
        "cpu_seconds": report.cpu_seconds,
        "cpu_seconds_per_audio_hour": report.cpu_seconds_per_audio_hour,
        "core_percent": report.core_percent,
        "words": {
            word: {
                "detected": s.detected,
                "total": s.total,
                "rate": s.rate,
                "cross_fires": s.cross_fires,
                "false_accepts": s.false_accepts,
                "false_accepts_per_hour": report.false_accepts_per_hour(word),
                "latency_median_seconds": s.latency_median,
                "latencies_known": len(s.latencies),
                "missed": s.missed,
            }
            for word, s in report.words.items()
        },
        "false_accept_clips": report.false_accept_clips,
    }
