"""Golden JSON Schemas of every built-in tool: a docstring or hint change shows up here in review.

Regenerate after a deliberate change with ``XIANGYIN_UPDATE_GOLDEN=1 pytest tests/test_skill_schemas.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from assistant.confirmation import Confirmations
from assistant.scheduler import ReminderScheduler
from assistant.skills import Skill, discover, validate_config
from assistant.tools import ToolDefinition, tools_of
from support.fakes import FakeClock
from tests.skill_support import DATA, deps

GOLDEN = DATA / "tool_schemas.json"
CONFIGS: dict[str, dict[str, Any]] = {"help": {"contacts": [{"name": "x", "mqtt_topic": "a/b"}]}}


def built_in_tools(tmp_path: Path) -> dict[str, dict[str, Any]]:
    scheduler = ReminderScheduler(tmp_path / "unused.sqlite", publish=lambda e: None)
    skill_deps, _ = deps(scheduler=scheduler)
    found: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(discover().items()):
        skill_class: type[Skill] = entry.load()
        if not skill_class.__module__.startswith("skills."):
            continue
        skill = skill_class(validate_config(skill_class, CONFIGS.get(name, {})), skill_deps)
        definitions: list[ToolDefinition] = tools_of(skill, owner=name)
        for d in definitions:
            found[d.name] = {
                "skill": name,
                "description": d.spec.description,
                "parameters": d.spec.parameters,
                "timeout_seconds": d.options.timeout_seconds,
                "cancel_on_interrupt": d.options.cancel_on_interrupt,
                "sensitive": d.options.sensitive,
                "untrusted_output": d.options.untrusted_output,
                "confirm_by_effect": d.options.confirm_by_effect,
            }
    confirm = Confirmations(FakeClock(), 30).spec
    found[confirm.name] = {"skill": "(registry)", "description": confirm.description, "parameters": confirm.parameters}
    return found


def test_every_built_in_tool_schema_matches_the_golden_file(tmp_path: Path) -> None:
    actual = built_in_tools(tmp_path)
    if os.environ.get("XIANGYIN_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(actual) == sorted(golden), "tools were added or removed"
    for name, spec in actual.items():
        assert spec == golden[name], f"the schema of {name} changed"


def test_every_smart_home_tool_that_changes_something_is_judged_by_its_effect(tmp_path: Path) -> None:
    """Confirmation follows what an action does (skills/_safety.py), not a list of tool names."""
    tools = built_in_tools(tmp_path)
    assert {name for name, spec in tools.items() if spec.get("sensitive")} == set()
    smart_home = {name for name, spec in tools.items() if spec.get("skill") == "smart_home"}
    judged = {name for name, spec in tools.items() if spec.get("confirm_by_effect")}
    assert judged == smart_home - {"get_state"}


def test_the_tools_whose_results_carry_outside_text_are_marked(tmp_path: Path) -> None:
    """After one of them ran, the turn can no longer ask for a sensitive tool (the text may be an injection)."""
    marked = {name for name, spec in built_in_tools(tmp_path).items() if spec.get("untrusted_output")}
    assert marked == {"web_search", "list_reminders", "get_state", "get_weather"}


@pytest.mark.parametrize("limit", [1024])
def test_all_tool_schemas_fit_a_small_prompt(tmp_path: Path, limit: int) -> None:
    """Every tool costs prompt tokens on every turn; keep each declaration compact."""
    for name, spec in built_in_tools(tmp_path).items():
        size = len(json.dumps({"name": name, "description": spec["description"], "parameters": spec["parameters"]}))
        assert size <= limit, f"{name} declaration is {size} characters"
