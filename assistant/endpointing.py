"""Pure end-of-speech detection: fed (seconds, speech probability), it says when the user is done.

It reads no audio and no clock, so its tests are small tables.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .config import EndpointSettings

_EPSILON = 1e-6
"""Chunk durations are sums of floats; compare with a tolerance so 10 × 0.1 s reaches 1.0 s."""


class Decision(enum.StrEnum):
    """What the endpointer concluded after a chunk."""

    WAITING = "waiting"
    """No speech yet; keep listening."""
    STARTED = "started"
    """Speech has just begun (returned once)."""
    SPEAKING = "speaking"
    """Speech goes on (pauses shorter than the end silence included)."""
    ENDED = "ended"
    """Enough silence after speech, or the maximum was reached: the utterance is over."""
    TIMED_OUT = "timed_out"
    """Nobody spoke within the no-speech timeout."""


@dataclass(slots=True)
class Endpointer:
    """State machine over consecutive chunks of one utterance."""

    settings: EndpointSettings
    waited_seconds: float = 0.0
    """Seconds heard before speech started."""
    speech_seconds: float = 0.0
    """Seconds since speech started (pauses included)."""
    _run_seconds: float = 0.0
    _silence_seconds: float = 0.0
    _started: bool = False
    _done: Decision | None = None

    def process(self, seconds: float, probability: float) -> Decision:
        """Account for one chunk of ``seconds`` whose speech probability is ``probability``."""
        if self._done is not None:
            return self._done
        s = self.settings
        is_speech = probability >= s.speech_threshold
        if not self._started:
            self.waited_seconds += seconds
            self._run_seconds = self._run_seconds + seconds if is_speech else 0.0
            if is_speech and self._run_seconds >= s.start_seconds - _EPSILON:
                self._started = True
                self.speech_seconds = self._run_seconds
                return Decision.STARTED
            if self.waited_seconds >= s.no_speech_timeout_seconds - _EPSILON:
                self._done = Decision.TIMED_OUT
                return self._done
            return Decision.WAITING
        self.speech_seconds += seconds
        self._silence_seconds = 0.0 if is_speech else self._silence_seconds + seconds
        if (
            self._silence_seconds >= s.end_silence_seconds - _EPSILON
            or self.speech_seconds >= s.max_speech_seconds - _EPSILON
        ):
            self._done = Decision.ENDED
            return self._done
        return Decision.SPEAKING

    @property
    def trailing_silence_seconds(self) -> float:
        """Seconds of silence at the end of the utterance so far."""
        return self._silence_seconds
