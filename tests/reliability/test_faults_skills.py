"""Skill faults: a tool that hangs, ignores cancellation, or raises, in a whole turn.

The skill is a real ``Skill`` class loaded through an entry point by ``load_skills``, so its tools run in
the real ``ToolRegistry`` under their declared timeouts; the model is scripted, the turn and supervisor
are real.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest

from assistant.errors import ToolError
from assistant.events import AskRequested, ToolCallFinished, TurnEnded
from assistant.ports import ModelDone, ModelText, ModelToolCall
from assistant.skills import ENTRY_POINT_GROUP, Skill, SkillDeps, load_skills
from assistant.tools import ToolRegistry, tool
from support.fakes import after, silence
from support.rig import Rig
from tests.skill_support import deps

TIMEOUT = 0.3
# Fake time runs ahead while a tool waits on the real loop; the limit only guards against hangs.
LIMIT_SECONDS = 100_000.0


class FlakySkill(Skill):
    """A third-party skill with every way a tool can go wrong, and one that works."""

    name = "flaky"
    instances: ClassVar[list[FlakySkill]] = []

    def __init__(self, config: Skill.Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        self.cancelled: list[str] = []
        self.release = asyncio.Event()
        FlakySkill.instances.append(self)

    async def _hang(self, name: str) -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        return {}

    @tool(timeout_seconds=TIMEOUT)
    async def hanging_lookup(self, city: str) -> dict[str, Any]:
        """Look up a city (its server never answers)."""
        return await self._hang("hanging_lookup")

    @tool(timeout_seconds=TIMEOUT, cancel_on_interrupt=False)
    async def hanging_command(self, city: str) -> dict[str, Any]:
        """Send a command that must not be cut short (its device never answers)."""
        return await self._hang("hanging_command")

    @tool(timeout_seconds=TIMEOUT)
    async def stubborn_lookup(self, city: str) -> dict[str, Any]:
        """Look up a city through a library that swallows cancellation."""
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append("stubborn_lookup")  # and carries on waiting, as buggy libraries do
        return {"late": True}

    @tool()
    async def broken_lookup(self, city: str) -> dict[str, Any]:
        """Look up a city (has a bug)."""
        raise KeyError("internal state")

    @tool()
    async def refused_lookup(self, city: str) -> dict[str, Any]:
        """Look up a city (the service says no)."""
        raise ToolError("the weather service refused: quota exceeded")

    @tool()
    async def working_lookup(self, city: str) -> dict[str, Any]:
        """Look up a city."""
        return {"city": city, "temperature_c": 21}


AVAILABLE = {"flaky": EntryPoint(name="flaky", value=f"{__name__}:FlakySkill", group=ENTRY_POINT_GROUP)}


async def loaded(rig: Rig) -> tuple[ToolRegistry, FlakySkill]:
    tools = await load_skills({"flaky": {}}, deps(clock=rig.clock, publish=rig.bus.publish)[0], available=AVAILABLE)
    assert tools.names == (
        "hanging_lookup",
        "hanging_command",
        "stubborn_lookup",
        "broken_lookup",
        "refused_lookup",
        "working_lookup",
    )
    return tools, FlakySkill.instances[-1]


def calling(*tools: str) -> list[list[Any]]:
    """The model calls each tool (one round), then answers after reading the results."""
    calls = [after(0.1, ModelToolCall(f"c{i}", name, {"city": "广州"})) for i, name in enumerate(tools)]
    return [[*calls, after(0, ModelDone("tool_calls"))], [after(0.1, ModelText("好的")), after(0, ModelDone())]]


async def ask(rig: Rig) -> list[Any]:
    return await rig.run(
        silence(1.0), script=[rig.at(0.5, AskRequested(text="广州天气", source="api"))], limit_seconds=LIMIT_SECONDS
    )


def tool_results(rig: Rig) -> list[Mapping[str, Any]]:
    return [dict(r.content) for r in rig.model.requests[1].tool_results]


def leftover_tasks(before: set[asyncio.Task[Any]]) -> list[str]:
    return sorted(t.get_name() for t in asyncio.all_tasks() - before if t is not asyncio.current_task())


@pytest.mark.parametrize("name", ["hanging_lookup", "hanging_command"])
async def test_a_hanging_tool_times_out_the_model_hears_why_and_the_hung_call_is_cancelled(name: str) -> None:
    before = asyncio.all_tasks()
    rig = Rig(rounds=calling(name))
    rig.tools, skill = await loaded(rig)
    events = await ask(rig)
    assert [e.outcome for e in events if isinstance(e, TurnEnded)] == ["completed"]
    assert tool_results(rig) == [{"ok": False, "error": f"{name} did not answer within {TIMEOUT:g} seconds"}]
    assert [e.ok for e in events if isinstance(e, ToolCallFinished)] == [False]
    assert skill.cancelled == [name]
    await asyncio.sleep(0)
    assert leftover_tasks(before) == []
    await rig.tools.aclose()  # type: ignore[attr-defined]


async def test_a_tool_that_ignores_cancellation_still_ends_at_its_timeout_and_is_tracked_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = asyncio.all_tasks()
    rig = Rig(rounds=calling("stubborn_lookup"))
    tools, skill = await loaded(rig)
    rig.tools = tools
    events = await ask(rig)
    assert [e.outcome for e in events if isinstance(e, TurnEnded)] == ["completed"]
    assert tool_results(rig) == [{"ok": False, "error": f"stubborn_lookup did not answer within {TIMEOUT:g} seconds"}]
    assert skill.cancelled == ["stubborn_lookup"]
    assert "stubborn_lookup ignored its cancellation" in caplog.text
    skill.release.set()  # the library finally returns
    await tools.aclose()  # waits for it
    assert leftover_tasks(before) == []


async def test_a_raising_tool_is_a_clear_error_result_and_the_other_calls_of_the_round_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    rig = Rig(rounds=calling("broken_lookup", "refused_lookup", "working_lookup"))
    rig.tools, _ = await loaded(rig)
    events = await ask(rig)
    assert [e.outcome for e in events if isinstance(e, TurnEnded)] == ["completed"]
    assert tool_results(rig) == [
        {"ok": False, "error": "broken_lookup failed because of an internal error"},
        {"ok": False, "error": "the weather service refused: quota exceeded"},
        {"ok": True, "city": "广州", "temperature_c": 21},
    ]
    assert [e.ok for e in events if isinstance(e, ToolCallFinished)] == [False, False, True]
    assert "tool broken_lookup failed" in caplog.text and "KeyError: 'internal state'" in caplog.text
    # Nothing else changed: the same tools are offered and the broken one is simply called again next time.
    assert rig.model.requests[1].tools == rig.model.requests[0].tools
    again = await rig.tools.call(ModelToolCall("c9", "working_lookup", {"city": "成都"}))
    assert again.content == {"ok": True, "city": "成都", "temperature_c": 21}
    await rig.tools.aclose()  # type: ignore[attr-defined]
