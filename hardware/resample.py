"""Streaming sample-rate conversion and gain for int16 PCM (soxr, numpy)."""

from __future__ import annotations

from typing import Any


class Resampler:
    """Converts one continuous int16 mono stream from ``in_rate_hz`` to ``out_rate_hz`` (soxr, high quality)."""

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._stream: Any = None
        if in_rate_hz != out_rate_hz:
            import soxr

            self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="int16")

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        """Convert the next piece of the stream; ``last`` flushes what the filter still holds."""
        if self._stream is None:
            return pcm
        import numpy as np

        samples = np.frombuffer(pcm, dtype="<i2")
        out: Any = self._stream.resample_chunk(samples, last=last)
        return bytes(out.astype("<i2").tobytes())


class RateFollower:
    """Converts a stream whose chunks may change rate (TTS at 22.05 kHz, token2wav at 24 kHz) to one rate."""

    def __init__(self, out_rate_hz: int) -> None:
        self.out_rate_hz = out_rate_hz
        self._resampler: Resampler | None = None

    def convert(self, pcm: bytes, rate_hz: int) -> bytes:
        """Convert the next chunk; a change of input rate first flushes the previous filter."""
        flushed = b""
        if self._resampler is None or self._resampler.in_rate_hz != rate_hz:
            flushed = self.flush()
            self._resampler = Resampler(rate_hz, self.out_rate_hz)
        return flushed + self._resampler.process(pcm)

    def flush(self) -> bytes:
        """Return what the filter still holds at the end of the stream."""
        return self._resampler.process(b"", last=True) if self._resampler is not None else b""


class Rechunker:
    """Resamples a capture stream to ``out_rate_hz`` and cuts it into chunks of exactly ``frames`` samples."""

    def __init__(self, in_rate_hz: int, out_rate_hz: int, frames: int) -> None:
        self._resampler = Resampler(in_rate_hz, out_rate_hz)
        self._size = frames * 2
        self._pending = bytearray()

    def feed(self, pcm: bytes) -> list[bytes]:
        """Take what the device delivered; return every whole chunk now available."""
        self._pending += self._resampler.process(pcm)
        chunks = []
        while len(self._pending) >= self._size:
            chunks.append(bytes(self._pending[: self._size]))
            del self._pending[: self._size]
        return chunks


def apply_gain(pcm: bytes, gain: float) -> bytes:
    """Multiply int16 samples by a linear ``gain``, clipping at full scale."""
    if gain == 1.0:
        return pcm
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * gain
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def rms(pcm: bytes) -> float:
    """Root mean square of int16 samples, 0.0 to 1.0 of full scale."""
    if not pcm:
        return 0.0
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples)) / 32768.0)
