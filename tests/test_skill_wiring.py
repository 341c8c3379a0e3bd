"""The skills wired the way app.py wires them: settings → deps → scheduler → registry on the bus."""

from __future__ import annotations

from pathlib import Path

from assistant.bus import Bus
from assistant.config import Settings
from assistant.events import ToolCallRequested
from assistant.ports import ModelToolCall
from assistant.scheduler import ReminderScheduler
from assistant.skills import SkillDeps, load_skills
from assistant.tasks import MonotonicClock


async def test_settings_to_working_tools(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "persona": {"location": "成都", "timezone": "Asia/Shanghai"},
            "scheduler": {"database": str(tmp_path / "jobs.sqlite"), "misfire_grace_seconds": 600},
            "mqtt": {"command_topics": ["home/+/+/set"]},
            "skills": {"clock": {}, "timers": {}, "weather": {"units": "metric"}, "smart_home": {}},
        }
    )
    clock = MonotonicClock()
    bus = Bus(clock)
    scheduler = ReminderScheduler(
        settings.scheduler.database,
        publish=bus.publish,
        timezone=settings.persona.timezone,
        misfire_grace_seconds=settings.scheduler.misfire_grace_seconds,
    )
    await scheduler.start()
    deps = SkillDeps(
        publish=bus.publish,
        clock=clock,
        timezone=settings.persona.timezone,
        home_location=settings.persona.location,
        mqtt_command_topics=settings.mqtt.command_topics,
        scheduler=scheduler,
    )
    tools = await load_skills(settings.skills, deps)
    bus.tap(tools.observe)
    try:
        assert tools.skipped == {}
        assert {"get_date_time", "set_reminder", "get_weather", "turn_on", "confirm_action"} <= set(tools.names)
        bus.publish(ToolCallRequested(turn_id="t1", call_id="c1", tool="set_reminder", arguments={}))
        result = await tools.call(
            ModelToolCall("c1", "set_reminder", {"text": "该吃药了", "time_of_day": "08:00", "repeat": "daily"})
        )
        assert result.ok and [r.text for r in scheduler.pending()] == ["该吃药了"]
        no_ha = await tools.call(ModelToolCall("c2", "turn_on", {"target": "客厅的灯"}))
        assert no_ha.content == {"ok": False, "error": "Home Assistant is not set up for this assistant"}
    finally:
        await tools.aclose()
        await scheduler.stop()
