"""Call for help reaches the family; the clock tells the local time and date."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from assistant.errors import ConfigError, HomeAssistantError, ToolError
from assistant.skills import validate_config
from skills.clock import ClockSkill
from skills.help import HelpSkill
from tests.skill_support import FakeHomeAssistant, RecordingPublisher, deps

NOON_UTC = datetime(2026, 11, 25, 4, 5, tzinfo=UTC)  # 12:05 in Shanghai, a Wednesday

CONTACTS = [
    {"name": "女儿", "notify_service": "notify.mobile_app_daughter"},
    {"name": "Li Wei", "mqtt_topic": "family/li_wei/alert"},
]


def helper(ha: FakeHomeAssistant | None = None, mqtt: RecordingPublisher | None = None) -> HelpSkill:
    config = HelpSkill.Config.model_validate({"contacts": CONTACTS, "person": "王奶奶"})
    skill_deps, _ = deps(home_assistant=ha, mqtt=mqtt, wall_clock=lambda: NOON_UTC)
    return HelpSkill(config, skill_deps)


async def test_call_for_help_alerts_every_contact() -> None:
    ha, mqtt = FakeHomeAssistant(), RecordingPublisher()
    result = await helper(ha, mqtt).call_for_help("我摔倒了")
    message = "王奶奶在12:05通过语音助手呼叫求助。我摔倒了"
    assert result == {"alerted": ["女儿", "Li Wei"], "not_reached": []}
    assert ha.calls == [("notify", "mobile_app_daughter", {"title": "紧急求助", "message": message})]
    assert mqtt.sent[0][0] == "family/li_wei/alert" and message in mqtt.sent[0][1]


async def test_help_reports_who_could_not_be_reached() -> None:
    ha = FakeHomeAssistant(fail=HomeAssistantError("down"))
    result = await helper(ha, RecordingPublisher()).call_for_help()
    assert result == {"alerted": ["Li Wei"], "not_reached": ["女儿"]}


async def test_when_nobody_is_reached_the_user_is_told_to_phone() -> None:
    with pytest.raises(ToolError, match="phone for help"):
        await helper(FakeHomeAssistant(fail=HomeAssistantError("down")), None).call_for_help()


def test_a_contact_needs_a_way_to_reach_them() -> None:
    with pytest.raises(ConfigError, match=r"skills\.help\.contacts\.0: Value error, give notify_service"):
        validate_config(HelpSkill, {"contacts": [{"name": "nobody"}]})
    with pytest.raises(ConfigError, match=r"skills\.help\.contacts: Field required"):
        validate_config(HelpSkill, {})


async def test_clock_tells_local_time_and_other_zones() -> None:
    clock = ClockSkill(ClockSkill.Config(), deps(wall_clock=lambda: NOON_UTC)[0])
    here: Any = await clock.get_date_time()
    assert here == {
        "time": "12:05",
        "date": "2026-11-25",
        "weekday": "Wednesday",
        "weekday_zh": "星期三",
        "timezone": "Asia/Shanghai",
    }
    london: Any = await clock.get_date_time("Europe/London")
    assert (london["time"], london["timezone"]) == ("04:05", "Europe/London")
    with pytest.raises(ToolError, match="unknown time zone"):
        await clock.get_date_time("Mars/Olympus")
