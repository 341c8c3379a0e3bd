"""WAV files as microphone and speaker, for ``xiangyin run --input question.wav --output reply.wav``."""

from __future__ import annotations

import logging
import wave
from collections.abc import AsyncIterator
from pathlib import Path

from assistant.audio import MIC_RATE_HZ, AudioChunk, silence, split
from assistant.output import OutputMonitor
from assistant.ports import Clock
from assistant.recordings import read_recording
from assistant.tasks import MonotonicClock

from .resample import RateFollower

_LOGGER = logging.getLogger(__name__)


class FileSource:
    """An :class:`~assistant.ports.AudioSource` that reads an audio file (any rate, converted) and then ends.

    After the file it yields ``trailing_silence_seconds`` of silence, so an utterance that runs to the end
    of the file still reaches its end of speech. ``realtime`` paces chunks as a microphone would (on
    ``clock``); otherwise they come as fast as the consumer takes them.
    """

    def __init__(
        self,
        path: Path,
        *,
        chunk_ms: int = 80,
        realtime: bool = True,
        trailing_silence_seconds: float = 3.0,
        clock: Clock | None = None,
    ) -> None:
        self.audio = read_recording(path)  # raises AudioFormatError with the path on a bad file
        """The file's audio at 16 kHz."""
        self._chunk_seconds = chunk_ms / 1000
        self._realtime = realtime
        self._trailing = trailing_silence_seconds
        self._clock = clock or MonotonicClock()

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield the file in fixed chunks (the last one padded with silence), then trailing silence, then end."""
        size = round(self._chunk_seconds * MIC_RATE_HZ) * 2
        pieces = [chunk.pcm for chunk in split(self.audio, self._chunk_seconds)]
        if pieces and len(pieces[-1]) < size:
            pieces[-1] += bytes(size - len(pieces[-1]))
        pieces += [silence(self._chunk_seconds).pcm] * round(self._trailing / self._chunk_seconds)
        started = self._clock.now()
        for index, pcm in enumerate(pieces):
            if self._realtime:
                # An absolute schedule, so the small lateness of each wake-up does not add up.
                await self._clock.sleep(started + (index + 1) * self._chunk_seconds - self._clock.now())
            yield AudioChunk(pcm, MIC_RATE_HZ)


class FileSink:
    """An :class:`~assistant.ports.AudioSink` that appends everything played to one WAV file.

    Audio of other rates is resampled to ``rate_hz``. The file is valid after every chunk (the WAV header
    is patched as it grows), so a crash loses nothing already played. Playback takes no time, and the
    volume is not applied: the file keeps the reply as the voice made it, for whatever plays it later.
    """

    def __init__(self, path: Path, *, rate_hz: int = 24_000, monitor: OutputMonitor | None = None) -> None:
        self.path = path
        self.rate_hz = rate_hz
        self.monitor = monitor or OutputMonitor()
        """Never audible: a file does not echo into the microphone."""
        self._wav: wave.Wave_write | None = None
        self._generation = 0
        self.volume = 1.0
        """The level the daemon asked for (recorded, not applied)."""
        self.seconds_written = 0.0
        """Seconds of audio in the file so far."""

    def _file(self) -> wave.Wave_write:
        if self._wav is None:
            wav = wave.open(str(self.path), "wb")
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.rate_hz)
            self._wav = wav
        return self._wav

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        """Append the stream to the file; False if :meth:`stop` was called while it played."""
        generation = self._generation
        rates = RateFollower(self.rate_hz)
        wav = self._file()
        async for chunk in audio:
            if generation != self._generation:
                return False
            self._write(wav, rates.convert(chunk.pcm, chunk.rate_hz))
        self._write(wav, rates.flush())
        return generation == self._generation

    def _write(self, wav: wave.Wave_write, pcm: bytes) -> None:
        wav.writeframes(pcm)
        self.seconds_written += len(pcm) / 2 / self.rate_hz

    def stop(self) -> None:
        """Mark the current stream as cut short (what was written stays)."""
        self._generation += 1

    def set_volume(self, level: float) -> None:
        """Remember the level, 0.0 to 1.0; the file is written at full scale."""
        self.volume = min(1.0, max(0.0, level))

    def close(self) -> None:
        """Finish the file; an empty (but valid) WAV is written if nothing played."""
        wav = self._file()
        wav.close()
        _LOGGER.info("wrote %.2f s of audio to %s", self.seconds_written, self.path)
