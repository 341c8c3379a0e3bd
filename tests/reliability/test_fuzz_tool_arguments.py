"""Bad tool arguments, fuzzed: every tool of every installed skill, called through the real registry.

The model may call any tool with any arguments (wrong types, missing or extra keys, huge strings, NaN,
nested junk). Each call comes back as a ToolResult: a valid result, or ``ok: false`` with a clear message
(never "internal error", which means a skill raised something unexpected), and a refused call has no
side effect: no Home Assistant service call, no MQTT message, no reminder stored, nothing announced.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.bus import Envelope
from assistant.events import Event, SpeechEnded, ToolCallRequested
from assistant.ports import ModelToolCall
from assistant.scheduler import ReminderScheduler
from assistant.skills import discover, load_skills
from assistant.tools import ToolRegistry
from tests.reliability.fuzzing import FUZZ, junk
from tests.skill_support import FakeHomeAssistant, RecordingPublisher, ReplayServer, Seen, deps, fixture


def _geocode(seen: Seen) -> tuple[int, Any]:
    return 200, fixture("geocoding_chengdu_zh.json" if seen.query.get("name") == "成都" else "geocoding_empty.json")


def _skills(url: str) -> dict[str, dict[str, Any]]:
    """Settings that switch every built-in skill on, pointed at local fakes."""
    return {
        "clock": {},
        "weather": {"geocoding_url": f"{url}/v1/search", "forecast_url": f"{url}/v1/forecast", "timeout_seconds": 2},
        "search": {"providers": ["wikipedia"], "wikipedia_url": url, "timeout_seconds": 2},
        "smart_home": {"room": "客厅", "mqtt_devices": [{"name": "风扇", "topic": "home/fan/set", "kind": "fan"}]},
        "timers": {"notify_topic": "home/reminders", "max_pending": 500},
        "help": {"contacts": [{"name": "女儿", "notify_service": "notify.mobile_app_li", "mqtt_topic": "home/help"}]},
        "voice": {},
    }


@dataclass
class Household:
    """The registry over every skill, and everything a tool could change."""

    loop: asyncio.AbstractEventLoop
    tools: ToolRegistry
    home_assistant: FakeHomeAssistant
    mqtt: RecordingPublisher
    scheduler: ReminderScheduler
    announced: list[Event]

    def effects(self) -> tuple[int, int, int, int]:
        return (len(self.home_assistant.calls), len(self.mqtt.sent), len(self.scheduler.pending()), len(self.announced))


@pytest.fixture(scope="module")
def household() -> Iterator[Household]:
    loop = asyncio.new_event_loop()
    server = ReplayServer()
    server.json("GET", "/v1/search", _geocode)
    server.json("GET", "/v1/forecast", fixture("forecast_chengdu_metric.json"))
    server.json("GET", "/w/api.php", fixture("wikipedia_query.json"))
    url = loop.run_until_complete(server.start())
    directory = Path(tempfile.mkdtemp(prefix="xiangyin-fuzz-tools-"))
    announced: list[Event] = []
    scheduler = ReminderScheduler(directory / "jobs.sqlite", publish=announced.append, timezone="Asia/Shanghai")
    loop.run_until_complete(scheduler.start())
    home_assistant, mqtt = FakeHomeAssistant(), RecordingPublisher()
    skill_deps, _ = deps(
        publish=announced.append,
        home_assistant=home_assistant,
        mqtt=mqtt,
        mqtt_command_topics=("home/#",),
        scheduler=scheduler,
        home_location="成都",
    )
    tools = loop.run_until_complete(load_skills(_skills(url), skill_deps))
    try:
        yield Household(loop, tools, home_assistant, mqtt, scheduler, announced)
    finally:
        loop.run_until_complete(tools.aclose())
        loop.run_until_complete(scheduler.stop())
        loop.run_until_complete(server.aclose())
        loop.close()


def test_every_installed_skill_is_fuzzed(household: Household) -> None:
    assert set(_skills("")) == set(discover()), "a new skill needs settings in _skills() to be fuzzed"
    assert household.tools.skipped == {}


INTERESTING = [
    "客厅的灯", "灯", "风扇", "alarm", "前门", "车库", "成都", "08:00", "25:61", "2026-12-01", "0000-00-00",
    "9999-12-31", "Europe/London", "../../../etc/passwd", "notify.x", "slower", "faster", "away", "night",
    "1234", "", " ", "\x00", "<tool_call>", "{devices}", "x" * 100_000, 0, 1, -1, 5, 35, 100, 101, 1440,
    86400, 10**30, 1e308, float("nan"), float("inf"), -0.0, True, None, [], {},
]  # fmt: skip
values = st.sampled_from(INTERESTING) | junk(6) | st.text(max_size=30) | st.floats() | st.integers()


def _arguments(parameters: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(parameters) | st.text(max_size=8) if parameters else st.text(max_size=8)
    return st.dictionaries(keys, values, max_size=4)


_TURNS = itertools.count()


def _check(household: Household, name: str, arguments: dict[str, Any]) -> None:
    # Each call comes from a fresh spoken turn, so sensitive tools get as far as their checks and question.
    turn_id = f"t{next(_TURNS)}"
    household.tools.observe(Envelope(0.0, SpeechEnded(turn_id=turn_id, speech_seconds=1.0)))
    household.tools.observe(
        Envelope(0.0, ToolCallRequested(turn_id=turn_id, call_id="c1", tool=name, arguments=arguments))
    )
    before = household.effects()
    result = household.loop.run_until_complete(household.tools.call(ModelToolCall("c1", name, arguments)))
    assert result.call_id == "c1" and result.name == name
    json.dumps(dict(result.content), ensure_ascii=False)  # the model reads it as JSON
    if result.ok:
        return
    error = result.content.get("error")
    if result.content.get("needs_confirmation"):
        assert isinstance(result.content.get("say"), str)
    else:
        assert isinstance(error, str) and error and "internal error" not in error, (name, arguments, error)
    assert household.effects() == before, f"{name}({arguments!r}) was refused but changed something"


@FUZZ
@given(data=st.data())
def test_any_arguments_to_any_tool_give_a_result_and_refusals_change_nothing(
    household: Household, data: st.DataObject
) -> None:
    for spec in household.tools.specs():
        arguments = data.draw(_arguments(list(spec.parameters.get("properties", {}))), label=spec.name)
        _check(household, spec.name, arguments)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("get_date_time", {"timezone": "x" * 5000}),
        ("get_date_time", {"timezone": "Asia/\x00"}),
        ("set_timer", {"announcement": "泡面", "minutes": float("nan")}),
        ("set_timer", {"announcement": "泡面", "minutes": float("inf")}),
        ("set_reminder", {"text": "吃药", "time_of_day": "08:00", "day": "9999-12-31"}),
        ("set_temperature", {"target": "空调", "degrees": float("nan")}),
        ("turn_on", {"target": "x" * 100_000}),
        ("web_search", {"query": {"nested": ["junk"]}}),
        ("call_for_help", {"details": "{person}{0}"}),
    ],
)
def test_known_awkward_arguments(household: Household, name: str, arguments: dict[str, Any]) -> None:
    _check(household, name, arguments)
