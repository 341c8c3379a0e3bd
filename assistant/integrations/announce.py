"""Every announcement the box makes is also spoken on Home Assistant's media players, when configured.

Reminders, timers, the announce entity and skills' announcements reach the rest of the house through
``home_assistant.tts_entity`` on ``home_assistant.media_players`` (see :mod:`.media_players`). They are
sent as soon as they are requested, while the box may still be answering a question before saying its
own. A failure there is logged and never touches the box's own announcement, which the supervisor plays
regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..bus import Bus
from ..errors import HomeAssistantError
from ..events import AnnounceRequested

_LOGGER = logging.getLogger(__name__)


class HomeAnnouncer:
    """Passes each ``AnnounceRequested`` to Home Assistant's speakers through ``speak``."""

    def __init__(self, bus: Bus, speak: Callable[[str], Awaitable[None]], players: tuple[str, ...]) -> None:
        self._bus = bus
        self._speak = speak
        self._players = players
        # Subscribed now, not in run(): a reminder due at start-up is requested before the services run.
        self._requests = bus.subscribe("home-announce", AnnounceRequested)

    async def announce(self, text: str) -> bool:
        """Speak ``text`` on the players; False (and a log line saying why) when Home Assistant failed."""
        try:
            await self._speak(text)
        except HomeAssistantError as err:
            _LOGGER.warning("could not announce on %s: %s; the box says it anyway", ", ".join(self._players), err)
            return False
        except Exception:
            # The client is another library's code: whatever it raises, the next announcement still goes out.
            _LOGGER.exception("announcing on %s failed; the box says it anyway", ", ".join(self._players))
            return False
        _LOGGER.info("announced on %s", ", ".join(self._players))
        return True

    async def run(self) -> None:
        """Announce every AnnounceRequested, in order, until cancelled."""
        try:
            async for envelope in self._requests:
                assert isinstance(envelope.event, AnnounceRequested)
                await self.announce(envelope.event.text)
        finally:
            self._bus.unsubscribe(self._requests)
