"""Keeps the assistant from waking itself: a wake detector gated by what the speaker is playing.

The speaker notes the level of every block it hands the device in an :class:`OutputMonitor`; while that
output is audible (plus a tail for room reverb and device buffers), :class:`EchoGuard` accepts a wake
word only at a raised score. Pure and thread-safe; no audio library.
"""

from __future__ import annotations

import logging

from ..audio import AudioChunk
from ..output import OutputMonitor
from ..ports import WakeDetector, WakeHit

__all__ = ["EchoGuard", "OutputMonitor"]

_LOGGER = logging.getLogger(__name__)


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
