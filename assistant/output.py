"""What the speaker is playing, as a fact the speaker writes and the listening side reads.

Both the hardware adapters (which note each block they hand the device) and the wake-word echo guard (which
raises its bar while the assistant is audible) use it, so it lives in the core, not in either of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
