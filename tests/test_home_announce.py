"""Announcements are also spoken on Home Assistant's media players, and a failure there never silences the box."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from assistant.bus import Bus
from assistant.config import HomeAssistantSettings
from assistant.errors import HomeAssistantError
from assistant.events import AnnounceRequested, PlaybackStarted, TurnEnded
from assistant.integrations.announce import HomeAnnouncer
from assistant.integrations.homeassistant import HomeAssistantClient
from assistant.tasks import MonotonicClock, cancel_and_wait
from support.fake_home_assistant import TOKEN, FakeHomeAssistant, fake_home_assistant
from support.fakes import silence
from support.rig import Rig
from support.servers import eventually

PLAYERS = ("media_player.kitchen", "media_player.bedroom")


@pytest.fixture
def ha() -> Iterator[FakeHomeAssistant]:
    with fake_home_assistant() as fake:
        yield fake


def client(ha: FakeHomeAssistant) -> HomeAssistantClient:
    settings = HomeAssistantSettings(
        enabled=True,
        url=ha.url,
        token=TOKEN,  # type: ignore[arg-type]
        timeout_seconds=2,
        retries=0,
        tts_entity="tts.piper",
        media_players=PLAYERS,
    )
    return HomeAssistantClient(settings, retry_initial_seconds=0.01)


async def test_each_announcement_is_spoken_on_the_configured_players_through_tts_speak(ha: FakeHomeAssistant) -> None:
    """A reminder and an MQTT announcement each become one tts.speak call, in order, in HA's own shape."""
    bus = Bus(MonotonicClock())
    api = client(ha)
    task = asyncio.create_task(HomeAnnouncer(bus, api.announce, PLAYERS).run())
    try:
        bus.publish(AnnounceRequested(text="该吃药了", source="scheduler", reminder_id="r1"))
        bus.publish(AnnounceRequested(text="洗衣机洗好了", source="mqtt"))
        await eventually(lambda: len(ha.calls) == 2)
    finally:
        await cancel_and_wait(task)
        await api.close()
    speak = {"entity_id": "tts.piper", "media_player_entity_id": list(PLAYERS)}
    assert ha.calls == [
        ("tts", "speak", {**speak, "message": "该吃药了"}),
        ("tts", "speak", {**speak, "message": "洗衣机洗好了"}),
    ]


async def test_a_failure_is_logged_with_the_reason_and_the_next_announcement_still_goes_out(
    ha: FakeHomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """HA refusing one call (e.g. a TTS entity that does not exist) costs that one only."""
    bus = Bus(MonotonicClock())
    api = client(ha)
    ha.fail_next = [400]
    task = asyncio.create_task(HomeAnnouncer(bus, api.announce, PLAYERS).run())
    try:
        with caplog.at_level(logging.WARNING, logger="assistant.integrations.announce"):
            bus.publish(AnnounceRequested(text="第一条", source="mqtt"))
            bus.publish(AnnounceRequested(text="第二条", source="mqtt"))
            await eventually(lambda: len(ha.calls) == 1)
    finally:
        await cancel_and_wait(task)
        await api.close()
    assert [call[2]["message"] for call in ha.calls] == ["第二条"]
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "could not announce on media_player.kitchen, media_player.bedroom" in warning
    assert "the box says it anyway" in warning and TOKEN not in caplog.text


async def test_the_box_says_its_announcement_while_home_assistant_fails_or_hangs() -> None:
    """The local announcement never waits for, or depends on, Home Assistant."""
    rig = Rig()
    asked: list[str] = []

    async def failing(text: str) -> None:
        asked.append(f"failing: {text}")
        raise HomeAssistantError("Home Assistant at http://ha:8123 is not reachable", reason="unavailable")

    async def hangs(text: str) -> None:
        asked.append(f"hangs: {text}")
        await asyncio.Event().wait()

    announcers = [HomeAnnouncer(rig.bus, failing, PLAYERS), HomeAnnouncer(rig.bus, hangs, PLAYERS)]
    events = await rig.run(
        silence(5),
        script=[*(a.run for a in announcers), rig.at(1.0, AnnounceRequested(text="该吃药了", source="scheduler"))],
    )
    assert [e.kind for e in events if isinstance(e, PlaybackStarted)] == ["announce"]
    assert [e.outcome for e in events if isinstance(e, TurnEnded)] == ["completed"]
    assert sorted(asked) == ["failing: 该吃药了", "hangs: 该吃药了"]


async def test_announcing_without_the_tts_settings_is_refused_by_the_config() -> None:
    """A TTS entity without players (or the other way round) is a config error naming both keys."""
    with pytest.raises(ValueError, match="home_assistant.tts_entity is set but home_assistant.media_players"):
        HomeAssistantSettings(tts_entity="tts.piper")
    with pytest.raises(ValueError, match="media_players"):
        HomeAssistantSettings(tts_entity="tts.piper", media_players=("kitchen",))
