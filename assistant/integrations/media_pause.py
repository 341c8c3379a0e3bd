"""Pause the room's Home Assistant media players while the user speaks, and play them again after the answer.

The local ducker lowers other programs on this box's sound server; a TV or a smart speaker in the room is
reached through Home Assistant instead. Only players that were playing are paused, and only those are resumed,
so a TV the user paused themselves stays paused.
"""

from __future__ import annotations

import logging

from ..bus import Bus
from ..errors import HomeAssistantError
from ..events import ListeningStarted, ShutdownRequested, TurnEnded
from ..ports import HomeAssistantApi
from ..tasks import finish_despite_cancel
from . import media_players

_LOGGER = logging.getLogger(__name__)

_RESUME_AT_EXIT_SECONDS = 2.0
"""Longest wait at shutdown for the players to be resumed."""


class MediaPauser:
    """From ListeningStarted until TurnEnded, the listed players that were playing are paused."""

    def __init__(self, api: HomeAssistantApi, players: tuple[str, ...]) -> None:
        self._api = api
        self._players = players
        self._paused: list[str] = []

    async def pause(self) -> None:
        """Pause each listed player that is playing now (idempotent while paused)."""
        for entity_id in self._players:
            if entity_id in self._paused:
                continue
            try:
                if not await media_players.is_playing(self._api, entity_id):
                    continue
                await media_players.pause(self._api, entity_id)
            except HomeAssistantError as err:
                _LOGGER.warning("could not pause %s: %s", entity_id, err)
                continue
            self._paused.append(entity_id)

    async def resume(self) -> None:
        """Play again what :meth:`pause` paused; a player is forgotten only once it was told to play."""
        for entity_id in list(self._paused):
            try:
                await media_players.play(self._api, entity_id)
            except HomeAssistantError as err:
                _LOGGER.warning("could not resume %s: %s", entity_id, err)
            self._paused.remove(entity_id)

    async def run(self, bus: Bus) -> None:
        """Pause on ListeningStarted, resume on TurnEnded; resume on shutdown too."""
        events = bus.subscribe("media-pause", ListeningStarted, TurnEnded, ShutdownRequested)
        try:
            async for envelope in events:
                match envelope.event:
                    case ListeningStarted():
                        await self.pause()
                    case TurnEnded():
                        await self.resume()
                    case ShutdownRequested():
                        return
        finally:
            bus.unsubscribe(events)
            await finish_despite_cancel(self.resume(), _RESUME_AT_EXIT_SECONDS)
