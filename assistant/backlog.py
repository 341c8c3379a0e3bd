"""Chunks heard but not yet routed: the bounded queue between the microphone and the detectors.

The microphone is read as fast as it delivers, whatever the detectors cost, so a starved inference never
holds it up (its own buffer would overflow, and a stalled read looks like a lost device). When inference
falls behind by more than the bound, the oldest chunks go: a wake word is worth hearing only while the
user still waits for an answer.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from .audio import AudioChunk

_LOGGER = logging.getLogger(__name__)


class AudioBacklog:
    """A FIFO of chunks holding at most ``max_seconds`` of audio; the oldest are dropped beyond it.

    Drops are logged at most once every ``warn_every_seconds`` (by ``now``), with their count.
    """

    def __init__(self, max_seconds: float, now: Callable[[], float], *, warn_every_seconds: float = 10.0) -> None:
        self._max_seconds = max_seconds
        self._now = now
        self._warn_every_seconds = warn_every_seconds
        self._chunks: collections.deque[AudioChunk] = collections.deque()
        self._seconds = 0.0
        self._ready = asyncio.Event()
        self._closed = False
        self._unreported = 0
        self._unreported_seconds = 0.0
        self._last_warning: float | None = None
        self.dropped = 0
        """Chunks dropped since the start."""

    @property
    def seconds(self) -> float:
        """Audio waiting, in seconds."""
        return self._seconds

    def put(self, chunk: AudioChunk) -> None:
        """Queue a chunk; drop the oldest while more than the bound waits (the newest is always kept)."""
        self._chunks.append(chunk)
        self._seconds += chunk.seconds
        while self._seconds > self._max_seconds + 1e-9 and len(self._chunks) > 1:
            old = self._chunks.popleft()
            self._seconds -= old.seconds
            self.dropped += 1
            self._unreported += 1
            self._unreported_seconds += old.seconds
        if self._unreported:
            self._warn()
        self._ready.set()

    def close(self) -> None:
        """Mark the end of the audio: :meth:`get` returns None once the rest has been taken."""
        self._closed = True
        self._ready.set()

    async def get(self) -> AudioChunk | None:
        """Wait for the oldest chunk; None after :meth:`close` once all are taken."""
        while not self._chunks:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        chunk = self._chunks.popleft()
        self._seconds -= chunk.seconds
        return chunk

    def _warn(self) -> None:
        now = self._now()
        if self._last_warning is not None and now - self._last_warning < self._warn_every_seconds:
            return
        _LOGGER.warning(
            "wake-word inference fell behind the microphone (CPU starved?); dropped %d chunks (%.1f s of audio)",
            self._unreported,
            self._unreported_seconds,
        )
        self._last_warning = now
        self._unreported = 0
        self._unreported_seconds = 0.0
