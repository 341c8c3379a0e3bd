"""Audio chunks and the little audio math the core needs (no hardware, no numpy).

Audio moves through the daemon as async iterators of :class:`AudioChunk`; it never goes on the bus.
"""

from __future__ import annotations

import array
import math
import sys
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_WIDTH_BYTES = 2
"""Every chunk is signed 16-bit little-endian PCM."""

MIC_RATE_HZ = 16_000
"""Rate of everything the microphone, wake word, VAD and model input use."""


class AudioFormatError(ValueError):
    """Audio that does not have the format the caller needs."""


class NotPlainWavError(AudioFormatError):
    """A file that :func:`read_wav` cannot take (not a RIFF PCM WAV, or not mono 16-bit): another decoder may."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A piece of mono signed 16-bit PCM audio."""

    pcm: bytes = field(repr=False)
    """Little-endian int16 samples, mono."""
    rate_hz: int = MIC_RATE_HZ
    """Samples per second."""

    def __post_init__(self) -> None:
        if len(self.pcm) % SAMPLE_WIDTH_BYTES:
            raise AudioFormatError(f"PCM length {len(self.pcm)} is not a whole number of int16 samples")
        if self.rate_hz <= 0:
            raise AudioFormatError(f"sample rate must be positive, got {self.rate_hz}")

    @property
    def samples(self) -> int:
        """Number of samples in the chunk."""
        return len(self.pcm) // SAMPLE_WIDTH_BYTES

    @property
    def seconds(self) -> float:
        """Duration of the chunk in seconds."""
        return self.samples / self.rate_hz


def silence(seconds: float, rate_hz: int = MIC_RATE_HZ) -> AudioChunk:
    """Return a chunk of digital silence of the given duration (seconds)."""
    return AudioChunk(bytes(round(seconds * rate_hz) * SAMPLE_WIDTH_BYTES), rate_hz)


def join(chunks: Iterable[AudioChunk]) -> AudioChunk:
    """Concatenate chunks that share one rate."""
    items = list(chunks)
    if not items:
        return AudioChunk(b"")
    rates = {c.rate_hz for c in items}
    if len(rates) != 1:
        raise AudioFormatError(f"cannot join chunks of different rates {sorted(rates)}")
    return AudioChunk(b"".join(c.pcm for c in items), items[0].rate_hz)


def split(audio: AudioChunk, chunk_seconds: float) -> Iterator[AudioChunk]:
    """Cut audio into chunks of ``chunk_seconds``; the last one may be shorter."""
    step = max(1, round(chunk_seconds * audio.rate_hz)) * SAMPLE_WIDTH_BYTES
    for start in range(0, len(audio.pcm), step):
        yield AudioChunk(audio.pcm[start : start + step], audio.rate_hz)


def _samples(pcm: bytes) -> array.array[int]:
    values = array.array("h")
    values.frombytes(pcm)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _pcm(values: array.array[int]) -> bytes:
    if sys.byteorder == "big":
        values = array.array("h", values)
        values.byteswap()
    return values.tobytes()


def rms(chunk: AudioChunk) -> float:
    """Root mean square of the samples, 0.0 to 1.0 of full scale."""
    values = _samples(chunk.pcm)
    if not values:
        return 0.0
    return math.sqrt(sum(v * v for v in values) / len(values)) / 32768.0


SILENT_DB = -100.0
"""Level reported for digital silence, in dBFS."""


def level_db(chunk: AudioChunk) -> float:
    """RMS level of the chunk in dB relative to full scale, never below :data:`SILENT_DB`."""
    value = rms(chunk)
    return max(SILENT_DB, 20.0 * math.log10(value)) if value > 0.0 else SILENT_DB


def tone(frequency_hz: float, seconds: float, *, rate_hz: int = 24_000, level: float = 0.3) -> AudioChunk:
    """Return a sine tone with 10 ms raised-cosine fades so it starts and stops without a click."""
    count = round(seconds * rate_hz)
    fade = min(count // 2, round(0.010 * rate_hz))
    values = array.array("h")
    for i in range(count):
        envelope = 1.0
        if i < fade:
            envelope = 0.5 - 0.5 * math.cos(math.pi * i / fade)
        elif i >= count - fade:
            envelope = 0.5 - 0.5 * math.cos(math.pi * (count - 1 - i) / fade)
        values.append(round(32767 * level * envelope * math.sin(2 * math.pi * frequency_hz * i / rate_hz)))
    return AudioChunk(_pcm(values), rate_hz)


_STREAMED_DATA_BYTES = 0x7FFF_0000
"""Data lengths this large are a streaming writer's placeholder, not a promise."""


def read_wav(path: Path) -> AudioChunk:
    """Read a mono 16-bit WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != SAMPLE_WIDTH_BYTES or wav.getnchannels() != 1:
                raise NotPlainWavError(
                    f"{path}: need mono 16-bit PCM, got {wav.getnchannels()} channel(s) of "
                    f"{8 * wav.getsampwidth()}-bit samples"
                )
            frames = wav.getnframes()
            pcm = wav.readframes(frames)
    except (wave.Error, EOFError) as err:
        detail = str(err) or "it ends before its header does"
        raise NotPlainWavError(f"{path}: not a readable WAV file ({detail})") from err
    except OSError as err:
        raise AudioFormatError(f"{path}: cannot be read: {err.strerror or err}") from err
    # A header whose length is 0 or the 4 GiB placeholder was written by a stream that could not seek back;
    # any other length longer than the data means the file was cut short.
    if len(pcm) < frames * SAMPLE_WIDTH_BYTES and 0 < frames * SAMPLE_WIDTH_BYTES < _STREAMED_DATA_BYTES:
        raise AudioFormatError(
            f"{path}: truncated: the header promises {frames} samples, the file holds {len(pcm) // 2}"
        )
    return AudioChunk(pcm, wav.getframerate())


def write_wav(path: Path, audio: AudioChunk) -> None:
    """Write mono 16-bit audio to a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH_BYTES)
        wav.setframerate(audio.rate_hz)
        wav.writeframes(audio.pcm)
