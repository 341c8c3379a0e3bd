"""What the room sounds like between turns: the background level and the wake word's, from chunk levels.

The supervisor hears every chunk while no turn listens; at a wake word it takes a :class:`Room` from here
for the turn's endpointer. Pure: fed levels, no audio and no clock.
"""

from __future__ import annotations

import collections

from .endpointing import Room

BACKGROUND_QUANTILE = 0.9
"""The background's level is this quantile of its chunk levels: the loud parts of a TV's speech, not its gaps."""
VOICE_QUANTILE = 0.75
"""The wake word's level is this quantile of the levels of the last seconds before it was detected."""


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0.0 to 1.0) of ``values`` by the nearest rank; ``values`` must not be empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RoomTracker:
    """Keeps the levels of the last ``history_seconds`` heard; the newest ``voice_seconds`` hold the wake word."""

    def __init__(self, history_seconds: float = 6.0, voice_seconds: float = 1.6, least_seconds: float = 1.0) -> None:
        self._history_seconds = history_seconds
        self._voice_seconds = voice_seconds
        self._least_seconds = least_seconds
        self._levels: collections.deque[tuple[float, float]] = collections.deque()
        self._seconds = 0.0

    def hear(self, seconds: float, level_db: float) -> None:
        """Add a chunk of ``seconds`` at ``level_db`` (dBFS)."""
        self._levels.append((seconds, level_db))
        self._seconds += seconds
        while self._levels and self._seconds - self._levels[0][0] >= self._history_seconds:
            self._seconds -= self._levels.popleft()[0]

    def clear(self) -> None:
        """Forget what was heard (a turn took the microphone; its audio is not the background)."""
        self._levels.clear()
        self._seconds = 0.0

    def room(self) -> Room | None:
        """The room as heard until now; None when too little background was heard to say."""
        voice: list[float] = []
        background: list[float] = []
        recent = 0.0
        for seconds, level in reversed(self._levels):
            (voice if recent < self._voice_seconds else background).append(level)
            recent += seconds
        if recent - self._voice_seconds < self._least_seconds or not background:
            return None
        return Room(
            background_db=quantile(background, BACKGROUND_QUANTILE),
            voice_db=quantile(voice, VOICE_QUANTILE) if voice else None,
        )
