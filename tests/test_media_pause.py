"""The room's Home Assistant media players pause while the user speaks and play again after the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from assistant.bus import Bus
from assistant.config import HomeAssistantSettings
from assistant.errors import HomeAssistantError
from assistant.events import ListeningStarted, ShutdownRequested, TurnEnded
from assistant.integrations.homeassistant import build_home_assistant
from assistant.integrations.media_pause import MediaPauser
from assistant.ports import EntityState
from support.fake_home_assistant import TOKEN, fake_home_assistant
from support.fakes import FakeClock


class Players:
    """A HomeAssistantApi of media players that records the calls and may fail on one player."""

    def __init__(self, states: dict[str, str], failing: str | None = None) -> None:
        self.states = states
        self.failing = failing
        self.calls: list[tuple[str, str]] = []

    async def get_states(self) -> list[EntityState]:
        return [EntityState(e, s, {}) for e, s in self.states.items()]

    async def get_state(self, entity_id: str) -> EntityState:
        if entity_id == self.failing:
            raise HomeAssistantError(f"{entity_id}: Home Assistant is unreachable")
        return EntityState(entity_id, self.states[entity_id], {})

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        self.calls.append((service, str(data["entity_id"])))
        self.states[str(data["entity_id"])] = "paused" if service == "media_pause" else "playing"


async def test_only_players_that_were_playing_are_paused_and_played_again() -> None:
    api = Players({"media_player.tv": "playing", "media_player.radio": "paused"})
    pauser = MediaPauser(api, ("media_player.tv", "media_player.radio"))
    await pauser.pause()
    assert api.calls == [("media_pause", "media_player.tv")]
    await pauser.pause()
    assert len(api.calls) == 1, "pausing twice in a turn changes nothing"
    await pauser.resume()
    assert api.calls[-1] == ("media_play", "media_player.tv")
    assert api.states == {"media_player.tv": "playing", "media_player.radio": "paused"}


async def test_a_player_home_assistant_cannot_reach_does_not_stop_the_others() -> None:
    api = Players({"media_player.tv": "playing", "media_player.kitchen": "playing"}, failing="media_player.tv")
    pauser = MediaPauser(api, ("media_player.tv", "media_player.kitchen"))
    await pauser.pause()
    assert api.calls == [("media_pause", "media_player.kitchen")]


async def settled(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_the_turn_pauses_and_its_end_resumes_and_shutdown_resumes_too() -> None:
    bus = Bus(FakeClock())
    api = Players({"media_player.tv": "playing"})
    runner = asyncio.create_task(MediaPauser(api, ("media_player.tv",)).run(bus))
    await asyncio.sleep(0)
    bus.publish(ListeningStarted(turn_id="t1"))
    await settled(lambda: api.states["media_player.tv"] == "paused")
    bus.publish(TurnEnded(turn_id="t1", outcome="completed"))
    await settled(lambda: api.states["media_player.tv"] == "playing")
    bus.publish(ListeningStarted(turn_id="t2"))
    await settled(lambda: api.states["media_player.tv"] == "paused")
    bus.publish(ShutdownRequested(reason="test"))
    await runner
    assert api.states["media_player.tv"] == "playing", "a stopped daemon leaves the TV playing again"
    assert len(api.calls) == 4


async def test_through_the_rest_api_of_a_home_assistant() -> None:
    with fake_home_assistant() as fake:
        fake.states["media_player.tv"] = {"entity_id": "media_player.tv", "state": "playing"}
        client = build_home_assistant(HomeAssistantSettings(enabled=True, url=fake.url, token=TOKEN), publish=None)
        try:
            pauser = MediaPauser(client, ("media_player.tv",))
            await pauser.pause()
            await pauser.resume()
        finally:
            await client.close()
    assert [(d, s, b) for d, s, b in fake.calls] == [
        ("media_player", "media_pause", {"entity_id": "media_player.tv"}),
        ("media_player", "media_play", {"entity_id": "media_player.tv"}),
    ]
