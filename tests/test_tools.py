"""The tool API: schemas from signatures, validation before running, failures as data, timeouts,
cancellation, and spoken confirmation of sensitive tools."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from assistant.bus import Envelope
from assistant.errors import ToolError
from assistant.events import (
    AskRequested,
    Event,
    RepeatRequested,
    SpeechEnded,
    ToolCallRequested,
    TurnStarted,
)
from assistant.ports import ModelToolCall, ToolRunner
from assistant.tools import ToolRegistry, ask_first, define, tool, tools_of
from support.fakes import FakeClock


class Door:
    """A tiny skill-like object with every kind of tool."""

    def __init__(self) -> None:
        self.unlocked: list[str] = []
        self.finished = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = False

    @tool(timeout_seconds=8, untrusted_output=True)
    async def get_forecast(
        self,
        location: Annotated[str, Field(description="Place name as the user said it")],
        day: Annotated[Literal["today", "tomorrow"], Field(description="Which day")] = "today",
    ) -> dict[str, object]:
        """Get the weather forecast for a place. Use it for any weather question.

        This second paragraph is for programmers, not for the model.
        """
        if location == "Atlantis":
            raise ToolError("No forecast for that place")
        return {"location": location, "day": day}

    @tool(sensitive=True, confirm="Do you want me to unlock the {door}?")
    async def unlock_door(self, door: Annotated[str, Field(description="Which door")]) -> dict[str, object]:
        """Unlock a door."""
        self.unlocked.append(door)
        return {"unlocked": door}

    @tool(timeout_seconds=0.05)
    async def slow(self) -> dict[str, object]:
        """Never answers in time."""
        await asyncio.sleep(10)
        return {}

    @tool()
    async def long_running(self) -> dict[str, object]:
        """Runs until cancelled."""
        self.started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return {}

    @tool(cancel_on_interrupt=False)
    async def send_command(self) -> dict[str, object]:
        """A side effect that must not be left half done."""
        self.started.set()
        await asyncio.sleep(0.05)
        self.finished.set()
        return {"sent": True}

    @tool()
    async def crash(self) -> dict[str, object]:
        """Has a bug."""
        raise KeyError("secret internals")

    @tool()
    async def huge(self) -> dict[str, object]:
        """Returns far too much."""
        return {"text": "x" * 10_000}

    @tool()
    async def not_json(self) -> dict[str, object]:
        """Returns something that is not JSON."""
        return {"value": object()}


def registry(clock: FakeClock | None = None) -> tuple[ToolRegistry, Door]:
    door = Door()
    tools = ToolRegistry(clock or FakeClock(), confirm_seconds=30)
    tools.add_all(tools_of(door, owner="door"))
    return tools, door


def call(name: str, call_id: str = "c1", **arguments: Any) -> ModelToolCall:
    return ModelToolCall(call_id=call_id, name=name, arguments=arguments)


def test_schema_comes_from_signature_and_first_docstring_paragraph() -> None:
    spec = define(Door().get_forecast).spec
    assert spec.name == "get_forecast"
    assert spec.description == "Get the weather forecast for a place. Use it for any weather question."
    assert spec.parameters == {
        "type": "object",
        "additionalProperties": False,
        "required": ["location"],
        "properties": {
            "location": {"type": "string", "description": "Place name as the user said it"},
            "day": {"type": "string", "enum": ["today", "tomorrow"], "default": "today", "description": "Which day"},
        },
    }


def test_a_parameter_called_title_keeps_its_schema() -> None:
    class Notes:
        @tool()
        async def add_note(self, title: str) -> dict[str, object]:
            """Add a note."""
            return {}

    assert define(Notes().add_note).spec.parameters["properties"] == {"title": {"type": "string"}}


def test_declaration_mistakes_are_refused_early() -> None:
    with pytest.raises(TypeError, match="async"):
        tool()(lambda: {})  # type: ignore[type-var]

    class Bad:
        @tool()
        async def untyped(self, x) -> dict[str, object]:  # type: ignore[no-untyped-def]
            """No hint."""
            return {}

        @tool()
        async def undocumented(self) -> dict[str, object]:
            return {}

        @tool(confirm="Open {gate}?", sensitive=True)
        async def open_door(self, door: str) -> dict[str, object]:
            """Open a door."""
            return {}

    with pytest.raises(TypeError, match="type hint"):
        define(Bad().untyped)
    with pytest.raises(ValueError, match="docstring"):
        define(Bad().undocumented)
    with pytest.raises(ValueError, match="gate"):
        define(Bad().open_door)

    class NoPrepare:
        @tool(confirm="Open {door}?", prepare="_missing")
        async def open_door(self, door: str) -> dict[str, object]:
            """Open a door."""
            return {}

    with pytest.raises(TypeError, match="prepare='_missing'"):
        define(NoPrepare().open_door)


def test_registry_is_a_tool_runner_and_refuses_duplicate_names() -> None:
    tools, door = registry()
    assert isinstance(tools, ToolRunner)
    assert "get_forecast" in tools.names and "confirm_action" in tools.names
    with pytest.raises(ValueError, match="get_forecast"):
        tools.add(define(door.get_forecast, owner="again"))


async def test_valid_call_returns_small_json_with_ok() -> None:
    tools, _ = registry()
    result = await tools.call(call("get_forecast", location="成都"))
    assert result.content == {"ok": True, "location": "成都", "day": "today"}
    assert result.call_id == "c1" and result.name == "get_forecast" and result.ok


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({}, "location: Field required"),
        ({"location": "Paris", "day": "yesterday"}, "day: Input should be 'today' or 'tomorrow'"),
        ({"location": "Paris", "when": "now"}, "when: unknown argument"),
        ({"location": 42}, "location: Input should be a valid string"),
    ],
)
async def test_bad_arguments_are_rejected_before_the_tool_runs(arguments: dict[str, Any], named: str) -> None:
    tools, _ = registry()
    result = await tools.call(call("get_forecast", **arguments))
    assert not result.ok
    assert result.content["error"].startswith("invalid arguments: ")
    assert named in result.content["error"]


async def test_malformed_and_unknown_calls_become_error_results() -> None:
    tools, _ = registry()
    broken = ModelToolCall(call_id="c9", name="get_forecast", error="arguments are not JSON: '{loc'")
    result = await tools.call(broken)
    assert result.content == {"ok": False, "error": "the tool call could not be read: arguments are not JSON: '{loc'"}
    unknown = await tools.call(call("make_coffee"))
    assert not unknown.ok and "unknown tool 'make_coffee'" in unknown.content["error"]


async def test_tool_error_message_goes_to_the_model() -> None:
    tools, _ = registry()
    result = await tools.call(call("get_forecast", location="Atlantis"))
    assert result.content == {"ok": False, "error": "No forecast for that place"}


async def test_a_bug_is_logged_and_reported_without_its_internals(caplog: pytest.LogCaptureFixture) -> None:
    tools, _ = registry()
    result = await tools.call(call("crash"))
    assert result.content == {"ok": False, "error": "crash failed because of an internal error"}
    assert "secret internals" in caplog.text


async def test_oversized_and_non_json_results_are_refused() -> None:
    tools, _ = registry()
    assert (await tools.call(call("huge"))).content == {"ok": False, "error": "huge returned too much data"}
    assert not (await tools.call(call("not_json"))).ok


async def test_timeout_is_a_readable_result() -> None:
    tools, _ = registry()
    result = await tools.call(call("slow"))
    assert result.content == {"ok": False, "error": "slow did not answer within 0.05 seconds"}


async def test_interrupting_the_turn_cancels_the_running_tool() -> None:
    tools, door = registry()
    task = asyncio.create_task(tools.call(call("long_running")))
    await door.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert door.cancelled


async def test_a_tool_that_must_finish_survives_the_interruption() -> None:
    tools, door = registry()
    task = asyncio.create_task(tools.call(call("send_command")))
    await door.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not door.finished.is_set()
    await tools.aclose()
    assert door.finished.is_set()


class Hub:
    """A device client whose must-finish command hangs, and which notices being used after it closed."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.closed = False
        self.used_after_close = False

    @tool(timeout_seconds=2.0, cancel_on_interrupt=False)
    async def send_command(self) -> dict[str, object]:
        """A command the device never acknowledges."""
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # the client tidies up the request, through its connection
            self.used_after_close = self.closed
            raise
        return {}

    async def close(self) -> None:
        self.closed = True


async def test_a_tool_stopped_at_shutdown_unwinds_before_its_skill_closes() -> None:
    hub = Hub()
    tools = ToolRegistry(FakeClock())
    tools.add_all(tools_of(hub, owner="hub"))
    tools.on_close(hub.close)
    task = asyncio.create_task(tools.call(call("send_command")))
    await hub.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [left_behind] = [t for t in asyncio.all_tasks() if t.get_name() == "tool send_command"]
    await tools.aclose()
    with contextlib.suppress(asyncio.CancelledError):
        await left_behind
    assert hub.closed and not hub.used_after_close


async def test_a_shielded_command_still_ends_within_its_own_timeout_after_the_turn_was_interrupted() -> None:
    hub = Hub()
    tools = ToolRegistry(FakeClock())
    tools.add_all(tools_of(hub, owner="hub"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(tools.call(call("send_command")))
    await hub.started.wait()
    await asyncio.sleep(1.5)  # most of its 2 s timeout has gone when the user interrupts
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [left_behind] = [t for t in asyncio.all_tasks() if t.get_name() == "tool send_command"]
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(left_behind), 5)
    # Cancelled at its 2 s deadline from the start, not 2 s after the interruption (3.5 s).
    assert loop.time() - started < 3.4


# --- confirmation ---------------------------------------------------------------------------------


def seen_in_turn(tools: ToolRegistry, turn_id: str, call_id: str, name: str) -> None:
    """What the turn publishes before each call; the registry taps the bus for it."""
    tools.observe(Envelope(0.0, ToolCallRequested(turn_id=turn_id, call_id=call_id, tool=name, arguments={})))


def heard_in_turn(tools: ToolRegistry, turn_id: str) -> None:
    """What a turn publishes once the microphone heard the user speak."""
    tools.observe(Envelope(0.0, SpeechEnded(turn_id=turn_id, speech_seconds=1.0)))


def spoken_request(tools: ToolRegistry, turn_id: str, call_id: str, name: str) -> None:
    """The user spoke in ``turn_id`` and the model calls ``name`` in it: the only way to ask for a sensitive tool."""
    heard_in_turn(tools, turn_id)
    seen_in_turn(tools, turn_id, call_id, name)


async def test_sensitive_tool_asks_first_and_runs_after_the_users_yes() -> None:
    tools, door = registry()
    spoken_request(tools, "t1", "c1", "unlock_door")
    first = await tools.call(call("unlock_door", door="front door"))
    assert door.unlocked == []
    assert first.content["needs_confirmation"] is True and first.content["ok"] is False
    assert first.content["say"] == "Do you want me to unlock the front door?"
    token = first.content["confirm_token"]

    heard_in_turn(tools, "t2")
    seen_in_turn(tools, "t2", "c2", "confirm_action")
    confirmed = await tools.call(call("confirm_action", "c2", confirm_token=token))
    assert confirmed.content == {"ok": True, "unlocked": "front door", "action": "unlock_door"}
    assert confirmed.name == "confirm_action"
    assert door.unlocked == ["front door"]

    seen_in_turn(tools, "t3", "c3", "confirm_action")
    again = await tools.call(call("confirm_action", "c3", confirm_token=token))
    assert not again.ok and door.unlocked == ["front door"]


async def test_the_model_cannot_confirm_its_own_question_in_the_same_turn() -> None:
    tools, door = registry()
    spoken_request(tools, "t1", "c1", "unlock_door")
    token = (await tools.call(call("unlock_door", door="garage"))).content["confirm_token"]
    seen_in_turn(tools, "t1", "c2", "confirm_action")
    refused = await tools.call(call("confirm_action", "c2", confirm_token=token))
    assert not refused.ok and "has not answered" in refused.content["error"]
    heard_in_turn(tools, "t2")
    seen_in_turn(tools, "t2", "c3", "confirm_action")
    assert (await tools.call(call("confirm_action", "c3", confirm_token=token))).ok
    assert door.unlocked == ["garage"]


async def test_confirmation_expires() -> None:
    clock = FakeClock()
    tools, door = registry(clock)
    spoken_request(tools, "t1", "c1", "unlock_door")
    token = (await tools.call(call("unlock_door", door="front door"))).content["confirm_token"]
    clock._now += 31
    late = await tools.call(call("confirm_action", "c2", confirm_token=token))
    assert not late.ok and "expired" in late.content["error"]
    assert door.unlocked == []


async def test_a_sensitive_tool_is_asked_for_only_in_a_spoken_turn_before_any_outside_text() -> None:
    tools, door = registry()
    seen_in_turn(tools, "typed", "c1", "unlock_door")  # no speech: an MQTT, HA or Wyoming question
    typed = await tools.call(call("unlock_door", "c1", door="front door"))
    spoken_request(tools, "read", "c2", "get_forecast")
    assert (await tools.call(call("get_forecast", "c2", location="Chengdu"))).ok
    seen_in_turn(tools, "read", "c3", "unlock_door")
    after_reading = await tools.call(call("unlock_door", "c3", door="front door"))
    for refused in (typed, after_reading):
        assert not refused.ok and "needs_confirmation" not in refused.content
        assert "can only be asked for by voice at the box" in refused.content["error"]
    spoken_request(tools, "clean", "c4", "unlock_door")
    asked = await tools.call(call("unlock_door", "c4", door="front door"))
    assert asked.content["needs_confirmation"] is True
    seen_in_turn(tools, "clean", "c5", "get_forecast")  # outside text after the question changes nothing
    assert door.unlocked == []


@pytest.mark.parametrize(
    "between",
    [
        AskRequested(text="what time is it", source="mqtt"),
        RepeatRequested(source="mqtt"),
        TurnStarted(turn_id="a1", trigger="announce"),
    ],
    ids=["typed question", "replay", "announcement"],
)
async def test_a_turn_that_does_not_listen_between_question_and_answer_lapses_the_question(between: Event) -> None:
    tools, door = registry()
    spoken_request(tools, "t1", "c1", "unlock_door")
    token = (await tools.call(call("unlock_door", "c1", door="front door"))).content["confirm_token"]
    tools.observe(Envelope(0.0, between))
    spoken_request(tools, "t2", "c2", "confirm_action")
    lapsed = await tools.call(call("confirm_action", "c2", confirm_token=token))
    assert not lapsed.ok and "conversation moved on" in lapsed.content["error"]
    assert door.unlocked == []


async def test_one_yes_redeems_one_token_and_spoils_the_others() -> None:
    tokens = iter(["one", "two"])
    tools = ToolRegistry(FakeClock(), confirm_seconds=30, new_token=tokens.__next__)
    door = Door()
    tools.add_all(tools_of(door, owner="door"))
    spoken_request(tools, "t1", "c1", "unlock_door")
    seen_in_turn(tools, "t1", "c2", "unlock_door")
    await tools.call(call("unlock_door", "c1", door="front door"))
    await tools.call(call("unlock_door", "c2", door="back door"))
    spoken_request(tools, "t2", "c3", "confirm_action")
    seen_in_turn(tools, "t2", "c4", "confirm_action")
    assert (await tools.call(call("confirm_action", "c3", confirm_token="two"))).ok
    second = await tools.call(call("confirm_action", "c4", confirm_token="one"))
    assert not second.ok and "one yes confirms one action" in second.content["error"]
    assert door.unlocked == ["back door"]


async def test_bad_arguments_of_a_sensitive_tool_are_rejected_before_asking() -> None:
    tools, _ = registry()
    spoken_request(tools, "t1", "c1", "unlock_door")
    result = await tools.call(call("unlock_door"))
    assert "needs_confirmation" not in result.content
    assert "door: Field required" in result.content["error"]


class Relays:
    """A tool whose danger depends on its target: it asks by effect, right before acting."""

    def __init__(self) -> None:
        self.switched: list[str] = []
        self.meaning = {"kettle": "relay.1", "gate": "relay.2"}

    @tool(confirm_by_effect=True)
    async def switch(self, relay: str) -> dict[str, object]:
        """Switch a relay."""
        meant = self.meaning[relay]
        if relay == "gate":
            ask_first(f"Open the {relay}?", action=f"switch {meant}", reason="it opens a gate")
        self.switched.append(meant)
        return {"switched": meant}


async def test_a_tool_confirmed_by_effect_asks_only_for_the_dangerous_target_and_under_the_same_rules() -> None:
    relays = Relays()
    tools = ToolRegistry(FakeClock(), new_token=lambda: "tok")
    tools.add_all(tools_of(relays, owner="relays"))
    assert "confirm_action" in tools.names
    seen_in_turn(tools, "typed", "c1", "switch")
    assert (await tools.call(call("switch", "c1", relay="kettle"))).ok  # no question for a kettle
    typed = await tools.call(call("switch", "c2", relay="gate"))
    assert (
        "can only be asked for by voice at the box" in typed.content["error"]
        and "it opens a gate" in typed.content["error"]
    )
    spoken_request(tools, "t1", "c3", "switch")
    asked = await tools.call(call("switch", "c3", relay="gate"))
    assert asked.content["say"] == "Open the gate?" and asked.content["why"] == "it opens a gate"
    assert relays.switched == ["relay.1"]
    spoken_request(tools, "t2", "c4", "confirm_action")
    done = await tools.call(call("confirm_action", "c4", confirm_token="tok"))
    assert done.content == {"ok": True, "switched": "relay.2", "action": "switch"}


async def test_a_yes_to_one_action_does_not_approve_another() -> None:
    relays = Relays()
    tools = ToolRegistry(FakeClock(), new_token=lambda: "tok")
    tools.add_all(tools_of(relays, owner="relays"))
    spoken_request(tools, "t1", "c1", "switch")
    await tools.call(call("switch", "c1", relay="gate"))
    relays.meaning["gate"] = "relay.3"  # the name now means another relay
    spoken_request(tools, "t2", "c2", "confirm_action")
    refused = await tools.call(call("confirm_action", "c2", confirm_token="tok"))
    assert "changed since the user said yes" in refused.content["error"]
    assert relays.switched == []


def test_subclass_tools_come_after_inherited_ones_and_overrides_decide() -> None:
    class Base:
        @tool()
        async def first(self) -> dict[str, object]:
            """First."""
            return {}

        @tool()
        async def second(self) -> dict[str, object]:
            """Second."""
            return {}

    class Child(Base):
        async def second(self) -> dict[str, object]:  # no longer a tool
            return {}

        @tool()
        async def third(self) -> dict[str, object]:
            """Third."""
            return {}

        @property
        def explodes(self) -> int:
            raise RuntimeError("properties are not touched")

    assert [d.name for d in tools_of(Child())] == ["first", "third"]
