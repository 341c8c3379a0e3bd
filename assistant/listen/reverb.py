"""A room's echo on a recording: a synthetic impulse response and its convolution (pure numpy).

Takes are said close to the box, in one go; the word is later called from the sofa, two or three metres
away, where the room's reverberation fills the gaps between syllables and smears a hiss into the vowel
after it. The contour check also hears each take through such a room, so that a word from across the room
still follows one of them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..audio import MIC_RATE_HZ

_DIRECT_GAP_SECONDS = 0.003
"""Time between the direct sound and the first reflection."""


def room_impulse(rt60_seconds: float, drr_db: float, seed: int = 0) -> npt.NDArray[np.float64]:
    """A room's impulse response at 16 kHz: the direct sound, then exponentially decaying noise.

    ``rt60_seconds``: time for the tail to fall by 60 dB; ``drr_db``: how much louder the direct sound is
    than the whole tail (0 dB at about the critical distance, less further away). ``seed`` picks the tail.
    """
    length = max(int(rt60_seconds * MIC_RATE_HZ), 2)
    t = np.arange(length) / MIC_RATE_HZ
    tail = np.random.default_rng(seed).normal(size=length) * np.exp(-6.9 * t / rt60_seconds)
    tail[: int(_DIRECT_GAP_SECONDS * MIC_RATE_HZ)] = 0.0
    impulse: npt.NDArray[np.float64] = tail / np.sqrt(np.sum(tail**2)) * 10 ** (-drr_db / 20)
    impulse[0] += 1.0
    return impulse


def reverberant(samples: npt.ArrayLike, impulse: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``samples`` heard through ``impulse``: as long as before, at the same RMS level."""
    x = np.asarray(samples, dtype=np.float64)
    h = np.asarray(impulse, dtype=np.float64)
    if not len(x):
        return x
    size = 1 << (len(x) + len(h) - 2).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]
    level = np.sqrt(np.mean(y**2))
    out: npt.NDArray[np.float64] = y * (np.sqrt(np.mean(x**2)) / level) if level > 0 else y
    return out
