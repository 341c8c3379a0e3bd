"""Pitch and nasality per microphone chunk (numpy), behind the ProsodyDetector port.

Pitch comes from the normalised autocorrelation of 40 ms frames: the lag of its highest peak between 2.5 ms
(400 Hz) and 14 ms (70 Hz), where that peak is strong enough to call the frame voiced. A nasal murmur
("嗯", "um", "mm") keeps almost all of its energy under 500 Hz, where vowels spread theirs into the formants.
"""

from __future__ import annotations

from typing import Any

from ..audio import MIC_RATE_HZ, AudioChunk, AudioFormatError
from ..ports import Prosody

FRAME_SAMPLES = 640
"""40 ms: at least two periods of the lowest pitch looked for."""
HOP_SAMPLES = 320
"""Frames overlap by half."""
LOWEST_PITCH_HZ = 70.0
"""Lowest fundamental looked for (deep male voices)."""
HIGHEST_PITCH_HZ = 400.0
"""Highest fundamental looked for (children, high female voices)."""
VOICED_CORRELATION = 0.6
"""Normalised autocorrelation peak at or above which a frame counts as voiced."""
QUIETEST_DB = -60.0
"""Frames quieter than this (dBFS) are not analysed."""
NASAL_BAND_HZ = 500.0
"""Upper edge of the band that holds a nasal murmur's energy."""
NASAL_SHARE = 0.9
"""Share of a voiced frame's energy (up to 4 kHz) under NASAL_BAND_HZ that makes it nasal."""


def lag_correlations(frames: Any, lags: Any) -> Any:
    """The normalised autocorrelation of each mean-removed frame (the last axis) at each of ``lags`` (samples).

    Each lag is normalised by the energy of the two parts that overlap, so a decaying frame still scores high.
    """
    import numpy as np

    size = frames.shape[-1]
    spectrum = np.fft.rfft(frames, 2 * size, axis=-1)
    correlation = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, axis=-1)[..., :size]
    squares = np.cumsum(frames * frames, axis=-1)
    head = squares[..., size - 1 - lags]
    tail = squares[..., -1:] - squares[..., lags - 1]
    return correlation[..., lags] / np.sqrt(head * tail + 1e-9)


class PitchProsodyDetector:
    """Pitch (median over the chunk's voiced frames) and whether the voiced part is a nasal murmur."""

    def __init__(self) -> None:
        import numpy as np

        self._np: Any = np
        self._tail: Any = np.zeros(0, dtype=np.float64)
        self._window: Any = np.hanning(FRAME_SAMPLES)
        freqs = np.fft.rfftfreq(2 * FRAME_SAMPLES, 1.0 / MIC_RATE_HZ)
        self._low_band: Any = freqs < NASAL_BAND_HZ
        self._speech_band: Any = freqs < 4000.0
        self._lags = (int(MIC_RATE_HZ / HIGHEST_PITCH_HZ), int(MIC_RATE_HZ / LOWEST_PITCH_HZ))

    def prosody(self, chunk: AudioChunk) -> Prosody:
        """Analyse the frames the chunk completes."""
        np = self._np
        if chunk.rate_hz != MIC_RATE_HZ:
            raise AudioFormatError(f"pitch tracking needs {MIC_RATE_HZ} Hz audio, got {chunk.rate_hz} Hz")
        data = np.concatenate([self._tail, np.frombuffer(chunk.pcm, dtype="<i2").astype(np.float64)])
        pitches: list[float] = []
        nasal = 0
        start = 0
        while start + FRAME_SAMPLES <= len(data):
            frame = data[start : start + FRAME_SAMPLES]
            start += HOP_SAMPLES
            found = self._frame(frame)
            if found is not None:
                pitches.append(found[0])
                nasal += found[1]
        self._tail = data[start:]
        if not pitches:
            return Prosody(None)
        return Prosody(float(np.median(pitches)), nasal * 2 > len(pitches))

    def _frame(self, frame: Any) -> tuple[float, bool] | None:
        np = self._np
        frame = frame - frame.mean()
        energy = float(np.dot(frame, frame))
        if energy <= 0.0 or 10.0 * np.log10(energy / len(frame)) - 90.3 < QUIETEST_DB:
            return None
        low, high = self._lags
        lags = np.arange(low, high + 1)
        scores = lag_correlations(frame, lags)
        best = int(np.argmax(scores))
        if scores[best] < VOICED_CORRELATION:
            return None
        # Prefer the shortest lag nearly as good as the best, so a strong second period is not read as the pitch.
        good = np.flatnonzero(scores >= 0.9 * scores[best])
        lag = int(lags[good[0]])
        windowed = np.fft.rfft(frame * self._window, 2 * FRAME_SAMPLES)
        band = windowed.real**2 + windowed.imag**2
        share = float(band[self._low_band].sum() / (band[self._speech_band].sum() + 1e-9))
        return MIC_RATE_HZ / lag, share >= NASAL_SHARE

    def reset(self) -> None:
        """Forget the partial frame."""
        self._tail = self._np.zeros(0, dtype=self._np.float64)
