"""The timers skill: timers, alarms and reminders set, listed and cancelled by the model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import ConfigError, ToolError
from assistant.events import AnnounceRequested, Event, ReminderFired
from assistant.scheduler import ReminderScheduler
from assistant.skills import validate_config
from skills.timers import TimersSkill
from tests.skill_support import FakeHomeAssistant, RecordingPublisher, deps


@pytest.fixture
async def scheduler(tmp_path: Path) -> AsyncIterator[tuple[ReminderScheduler, list[Event]]]:
    events: list[Event] = []
    scheduler = ReminderScheduler(tmp_path / "jobs.sqlite", publish=events.append, timezone="Asia/Shanghai")
    await scheduler.start()
    yield scheduler, events
    await scheduler.stop()


def timers(scheduler: ReminderScheduler, **overrides: Any) -> TimersSkill:
    config = overrides.pop("config", {})
    skill_deps, _ = deps(scheduler=scheduler, **overrides)
    return TimersSkill(TimersSkill.Config.model_validate(config), skill_deps)


async def test_medicine_every_day_at_eight(scheduler: tuple[ReminderScheduler, list[Event]]) -> None:
    skill = timers(scheduler[0])
    result: Any = await skill.set_reminder("该吃药了", "8:00", repeat="daily")
    assert result["set"]["text"] == "该吃药了" and result["set"]["repeat"] == "daily"
    assert result["set"]["next"].endswith(" 08:00")
    listed: Any = await skill.list_reminders()
    assert listed["count"] == 1 and listed["pending"][0]["id"] == result["set"]["id"]


async def test_one_off_reminder_on_a_date_and_cancelling_it(scheduler: tuple[ReminderScheduler, list[Event]]) -> None:
    skill = timers(scheduler[0])
    day = (datetime.now() + timedelta(days=3)).date().isoformat()
    result: Any = await skill.set_reminder("交电费", "19:30", day=day)
    assert result["set"]["next"] == f"{day} 19:30" and "repeat" not in result["set"]
    cancelled: Any = await skill.cancel_reminder(result["set"]["id"])
    assert cancelled["cancelled"]["text"] == "交电费"
    assert (await skill.list_reminders())["count"] == 0
    with pytest.raises(ToolError, match="no timer or reminder with id"):
        await skill.cancel_reminder(result["set"]["id"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"time_of_day": "25:00"}, "is not HH:MM"),
        ({"time_of_day": "8 am"}, "is not HH:MM"),
        ({"time_of_day": "08:00", "day": "2020-01-01"}, "has already passed"),
        ({"time_of_day": "08:00", "day": "next tuesday"}, "is not YYYY-MM-DD"),
    ],
)
async def test_bad_times_are_explained(
    scheduler: tuple[ReminderScheduler, list[Event]], arguments: Any, message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        await timers(scheduler[0]).set_reminder("x", **arguments)


async def test_a_timer_fires_as_an_announcement_and_notifies(scheduler: tuple[ReminderScheduler, list[Event]]) -> None:
    ha, mqtt = FakeHomeAssistant(), RecordingPublisher()
    config = {"notify_services": ["notify.mobile_app_li"], "notify_topic": "home/xiangyin/reminders"}
    skill = timers(scheduler[0], home_assistant=ha, mqtt=mqtt, config=config)
    result: Any = await skill.set_timer("面条煮好了", seconds=1)
    assert result["seconds"] == 1
    async with asyncio.timeout(5):
        await mqtt.arrived.wait()
    [fired] = [e.reminder_id for e in scheduler[1] if isinstance(e, ReminderFired)]
    assert AnnounceRequested(text="面条煮好了", source="scheduler", reminder_id=fired) in scheduler[1]
    assert ha.calls == [("notify", "mobile_app_li", {"title": "timer", "message": "面条煮好了"})]
    topic, payload, _, _ = mqtt.sent[0]
    assert topic == "home/xiangyin/reminders" and '"text": "面条煮好了"' in payload


async def test_a_zero_length_timer_is_refused(scheduler: tuple[ReminderScheduler, list[Event]]) -> None:
    with pytest.raises(ToolError, match="at least one second"):
        await timers(scheduler[0]).set_timer("x")


async def test_pending_limit(scheduler: tuple[ReminderScheduler, list[Event]]) -> None:
    skill = timers(scheduler[0], config={"max_pending": 1})
    await skill.set_timer("one", minutes=5)
    with pytest.raises(ToolError, match="already 1 pending"):
        await skill.set_timer("two", minutes=5)


def test_needs_the_scheduler_and_valid_notify_services() -> None:
    with pytest.raises(ConfigError, match="needs the scheduler"):
        TimersSkill(TimersSkill.Config(), deps()[0])
    with pytest.raises(ConfigError, match=r"skills\.timers\.notify_services\.0: String should match"):
        validate_config(TimersSkill, {"notify_services": ["light.turn_on"]})
