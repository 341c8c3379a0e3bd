"""Short generated sounds for wake, done and error; no binary assets."""

from __future__ import annotations

import enum
import functools

from .audio import AudioChunk, join, silence, tone

_RATE_HZ = 24_000


class Earcon(enum.StrEnum):
    """The sounds the assistant makes without words."""

    WAKE = "wake"
    DONE = "done"
    ERROR = "error"


@functools.cache
def render(earcon: Earcon) -> AudioChunk:
    """Return the sound for an earcon at 24 kHz (well under half a second).

    Synthesis sample by sample takes milliseconds of the event loop; each sound is made once.
    """
    gap = silence(0.03, _RATE_HZ)
    match earcon:
        case Earcon.WAKE:  # rising fifth: "I'm listening"
            return join([tone(660, 0.07, rate_hz=_RATE_HZ), gap, tone(990, 0.09, rate_hz=_RATE_HZ)])
        case Earcon.DONE:  # falling fifth: "got it"
            return join([tone(990, 0.06, rate_hz=_RATE_HZ), gap, tone(660, 0.08, rate_hz=_RATE_HZ)])
        case Earcon.ERROR:  # two low notes
            low = tone(330, 0.12, rate_hz=_RATE_HZ, level=0.35)
            return join([low, gap, tone(262, 0.18, rate_hz=_RATE_HZ, level=0.35)])
