"""Home Assistant media players as the daemon drives them: one place for the service calls and their data.

The pauser (``media_pause.py``: the room's TV paused while the user speaks) and the announcements on Home
Assistant's speakers (``announce.py``, through :meth:`HomeAssistantClient.announce`) both go through here.
The data shapes are Home Assistant's own, checked against 2024.3.3: ``tts.speak`` targets the TTS entity
and names the players in ``media_player_entity_id``; HA then plays the speech on them as an announcement.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..ports import HomeAssistantApi

PLAYING = "playing"
"""A media player's state while it plays."""


async def is_playing(api: HomeAssistantApi, entity_id: str) -> bool:
    """True when the player plays now; HomeAssistantError when HA cannot tell."""
    return (await api.get_state(entity_id)).state == PLAYING


async def pause(api: HomeAssistantApi, entity_id: str) -> None:
    """Pause one player (``media_player.media_pause``)."""
    await api.call_service("media_player", "media_pause", {"entity_id": entity_id})


async def play(api: HomeAssistantApi, entity_id: str) -> None:
    """Play one player again (``media_player.media_play``)."""
    await api.call_service("media_player", "media_play", {"entity_id": entity_id})


async def speak(api: HomeAssistantApi, tts_entity: str, players: Sequence[str], message: str) -> None:
    """Say ``message`` with the TTS entity on every player at once (``tts.speak``)."""
    await api.call_service(
        "tts", "speak", {"entity_id": tts_entity, "media_player_entity_id": list(players), "message": message}
    )
