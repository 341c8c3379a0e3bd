"""Keeps the assistant from waking itself: a wake detector gated by what the speaker is playing.

The speaker notes the level of every block it hands the device in an :class:`OutputMonitor`; while that
output is audible (plus a tail for room reverb and device buffers), :class:`EchoGuard` accepts a wake
word only at a raised score. Pure and thread-safe; no audio library.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..audio import AudioChunk
from ..ports import WakeDetector, WakeHit

_LOGGER = logging.getLogger(__name__)

AUDIBLE_RMS = 0.001
"""Output RMS (of full scale, about -60 dBFS) above which the assistant counts as making sound."""


class OutputMonitor:
    """When the speaker last sent audible sound to the device; written from its audio thread."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._last_audible: float | None = None

    def note(self, rms: float, seconds: float) -> None:
        """Record that a block of ``seconds`` with level ``rms`` (0.0 to 1.0) starts playing now."""
        if rms >= AUDIBLE_RMS:
            with self._lock:
                self._last_audible = self._now() + seconds

    def audible_within(self, tail_seconds: float) -> bool:
        """True if audible output ended less than ``tail_seconds`` ago (or still plays)."""
        with self._lock:
            last = self._last_audible
        return last is not None and self._now() - last <= tail_seconds


class EchoGuard:
    """A :class:`WakeDetector` that raises the bar while the assistant's own voice is in the room."""

    def __init__(self, inner: WakeDetector, monitor: OutputMonitor, *, threshold: float, tail_seconds: float) -> None:
        self._inner = inner
        self._monitor = monitor
        self._threshold = threshold
        self._tail_seconds = tail_seconds
        self.rejected = 0
        """Hits dropped because they were probably the assistant hearing itself."""

    def process(self, chunk: AudioChunk) -> WakeHit | None:
        """Pass hits through, except weak ones while the speaker is audible (all of them at threshold 1.0)."""
        hit = self._inner.process(chunk)
        if hit is None or (self._threshold < 1.0 and hit.score >= self._threshold):
            return hit
        if self._monitor.audible_within(self._tail_seconds):
            self.rejected += 1
            _LOGGER.info("ignored wake word %s (%.2f) heard during own playback", hit.name, hit.score)
            # The user may be saying the word over the reply: a score still rising to the echo threshold a
            # chunk later must count. At threshold 1.0 nothing counts while speaking, and the word's block is
            # kept, so the late peak of the assistant's own word just after it falls silent is ignored too.
            release = getattr(self._inner, "release", None)
            if release is not None and self._threshold < 1.0:
                release(hit.name)
            return None
        return hit

    def reset(self) -> None:
        """Reset the wrapped detector."""
        self._inner.reset()
