"""Skills are found through entry points, switched on by name, validated, and skipped when broken."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint
from typing import Annotated, Any

import pytest
from pydantic import Field

from assistant.ports import ModelToolCall
from assistant.skills import ENTRY_POINT_GROUP, Skill, SkillConfig, SkillDeps, check_skills, discover, load_skills
from assistant.tools import tool
from tests.skill_support import deps

BUILT_IN = {"clock", "weather", "search", "smart_home", "timers", "help"}


class EchoSkill(Skill):
    """A third-party skill as a plugin package would ship it."""

    name = "echo"
    closed = 0

    class Config(SkillConfig):
        prefix: Annotated[str, Field(max_length=10)] = ">"

    def __init__(self, config: Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        self.settings = config

    @tool(timeout_seconds=1)
    async def echo(self, text: str) -> dict[str, object]:
        """Repeat the text."""
        return {"said": f"{self.settings.prefix}{text}"}

    async def aclose(self) -> None:
        EchoSkill.closed += 1


class BrokenStartSkill(Skill):
    name = "broken_start"
    closed = 0

    async def start(self) -> None:
        raise OSError("device missing")

    async def aclose(self) -> None:
        BrokenStartSkill.closed += 1


class ClashSkill(Skill):
    """Declares a tool name that EchoSkill already has."""

    name = "clash"

    @tool()
    async def echo(self) -> dict[str, object]:
        """Also echo."""
        return {}


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


AVAILABLE = {
    "echo": entry("echo", "tests.test_skill_loading:EchoSkill"),
    "broken_start": entry("broken_start", "tests.test_skill_loading:BrokenStartSkill"),
    "clash": entry("clash", "tests.test_skill_loading:ClashSkill"),
    "missing": entry("missing", "tests.no_such_module:Nothing"),
    "not_a_skill": entry("not_a_skill", "tests.test_skill_loading:entry"),
}


def test_built_in_skills_are_registered_as_entry_points() -> None:
    found = discover()
    assert BUILT_IN <= set(found)
    assert all(found[name].load().name == name for name in BUILT_IN)


async def test_enabled_skills_load_and_their_tools_run() -> None:
    tools = await load_skills({"echo": {"prefix": "» "}}, deps()[0], available=AVAILABLE)
    assert tools.names == ("echo",)
    result = await tools.call(ModelToolCall("c1", "echo", {"text": "你好"}))
    assert result.content == {"ok": True, "said": "» 你好"}
    closed = EchoSkill.closed
    await tools.aclose()
    assert EchoSkill.closed == closed + 1


async def test_broken_skills_are_reported_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    enabled: dict[str, Any] = {
        "echo": {},
        "missing": {},
        "not_a_skill": {},
        "broken_start": {},
        "clash": {},
        "typo": {},
        "echo_bad": None,
    }
    available = AVAILABLE | {"echo_bad": entry("echo_bad", "tests.test_skill_loading:EchoSkill")}
    tools = await load_skills(enabled, deps()[0], available=available)
    assert tools.names == ("echo",)
    assert sorted(tools.skipped) == ["broken_start", "clash", "echo_bad", "missing", "not_a_skill", "typo"]
    log = caplog.text
    assert "skill missing is skipped: skills.missing: cannot import tests.no_such_module:Nothing" in log
    assert "skill not_a_skill is skipped: skills.not_a_skill: tests.test_skill_loading:entry is not a Skill" in log
    assert "skill broken_start is skipped: device missing" in log
    assert BrokenStartSkill.closed == 1, "a skill whose start failed still releases what it holds"
    assert "skill clash is skipped: tool names already taken: echo" in log
    assert "skill typo is skipped: skills.typo: no such skill" in log
    assert "skills.echo_bad: tests.test_skill_loading:EchoSkill calls itself 'echo'" in log


def test_check_reports_every_problem_with_dotted_keys() -> None:
    problems = check_skills({"echo": {"prefix": "x" * 20, "colour": 1}, "ecco": {}}, AVAILABLE)
    assert problems == [
        "skills.echo.prefix: String should have at most 10 characters",
        "skills.echo.colour: unknown key (expected one of: prefix)",
        "skills.ecco: no such skill (did you mean 'echo'?)",
    ]


def test_default_and_example_skill_configs_are_valid() -> None:
    assert check_skills({"clock": {}, "weather": {"units": "imperial"}, "search": {}}) == []
