"""The same words with their tune over a wider or narrower pitch range (TD-PSOLA, numpy only).

People say their wake word with more melody when they call across the room and with less when they
mutter; the enrolment takes were said one after the other, alike. ``retuned(pcm, k)`` keeps the timing and
the voice and moves every voiced frame's pitch to ``median * (f0 / median) ** k``: ``k`` 1.25 spreads the
tones a quarter wider (in semitones), 0.8 flattens them. Unvoiced audio is kept as it is.

Pitch-synchronous overlap-add: analysis marks one period apart through voiced stretches (the pitch from
the contour check's own tracker), two-period Hann grains, synthesis marks one new period apart, each taking
the grain of the nearest analysis mark. Good enough for a detector's benchmark, not for listening.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from assistant.audio import MIC_RATE_HZ
from assistant.listen.contours import FRAME_SAMPLES, HOP_SAMPLES, pitch_track

_UNVOICED_PERIOD = 80
"""Mark spacing (samples, 5 ms) where there is no pitch: grains are copied one for one."""
_LOWEST_GRAIN_HZ = 50
"""The longest grain is two periods of this pitch (the tracker's lowest)."""


def retuned(pcm: bytes, k: float) -> bytes:
    """``pcm`` (16 kHz int16) with its pitch range scaled by ``k`` about its median pitch."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    pitch, _ = pitch_track(x)
    voiced = np.isfinite(pitch)
    if not voiced.any():
        return pcm
    median = float(np.median(pitch[voiced]))
    target = np.where(voiced, median * (np.where(voiced, pitch, median) / median) ** k, np.nan)

    def at(curve: npt.NDArray[np.float64], t: float) -> float:
        """The curve's value for the frame whose centre is nearest sample ``t`` (the earlier on a tie)."""
        nearest = math.ceil((t - FRAME_SAMPLES // 2) / HOP_SAMPLES - 0.5)
        return float(curve[min(max(nearest, 0), len(curve) - 1)])

    analysis = _marks(len(x), lambda t: at(pitch, t))
    synthesis = _marks(len(x), lambda t: at(target, t))
    out = np.zeros(len(x) + 2 * MIC_RATE_HZ // _LOWEST_GRAIN_HZ)
    weight = np.zeros_like(out)
    for t in synthesis:
        source = analysis[int(np.argmin(np.abs(analysis - t)))]
        f0 = at(pitch, source)
        half = int(MIC_RATE_HZ / f0) if np.isfinite(f0) else _UNVOICED_PERIOD
        lo, hi = source - half, source + half
        if lo < 0 or hi > len(x) or t - half < 0:
            continue
        window = np.hanning(hi - lo)
        out[t - half : t + half] += x[lo:hi] * window
        weight[t - half : t + half] += window
    out = out[: len(x)] / np.maximum(weight[: len(x)], 1e-3)
    out = np.where(weight[: len(x)] > 1e-3, out, x)
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()


def _marks(samples: int, f0_at: Callable[[float], float]) -> npt.NDArray[np.int64]:
    """Marks one period apart where voiced (period from ``f0_at(t)``), _UNVOICED_PERIOD apart elsewhere."""
    marks, t = [], float(_UNVOICED_PERIOD)
    while t < samples:
        marks.append(int(t))
        f0 = f0_at(t)
        t += MIC_RATE_HZ / f0 if np.isfinite(f0) and f0 > 0 else _UNVOICED_PERIOD
    return np.asarray(marks, dtype=np.int64)
