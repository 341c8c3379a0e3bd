"""Remember the last answer, replay it ("say that again"), and slow answers down on request.

:class:`ReplayVoice` wraps any ``Voice``: it records what was said (text and audio) and time-stretches
everything to the current speaking speed with sox's WSOLA ``tempo`` effect, which keeps the pitch.
:class:`ReplayTools` holds the plain async functions the lead exposes as model tools.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..audio import AudioChunk, join, split
from ..ports import ModelText, ReplyPiece, Voice, VoiceControls
from .errors import SpeechError
from .process import pipe_through

_LOGGER = logging.getLogger(__name__)


class SoxTempo:
    """Pitch-preserving time stretch through ``sox … tempo -s`` (WSOLA tuned for speech)."""

    def __init__(self, executable: str = "sox") -> None:
        path = shutil.which(executable)
        if path is None:
            raise SpeechError(f"{executable} is not installed (apt-get install sox)")
        self._executable = path

    async def stretch(self, audio: AudioChunk, speed: float) -> AudioChunk:
        """Play ``audio`` at ``speed`` (0.75 is a quarter slower); the pitch stays."""
        if abs(speed - 1.0) < 1e-3 or not audio.samples:
            return audio
        raw = ["-t", "raw", "-r", str(audio.rate_hz), "-e", "signed", "-b", "16", "-c", "1", "-L"]
        args = [self._executable, *raw, "-", *raw, "-", "tempo", "-s", f"{speed:.3f}"]
        stdout = await pipe_through(args, audio.pcm, what="sox tempo")
        return AudioChunk(stdout[: len(stdout) - len(stdout) % 2], audio.rate_hz)


@dataclass(frozen=True, slots=True)
class Answer:
    """The last thing the assistant said."""

    text: str
    """Its text, as the model wrote it (empty for pure speech)."""
    audio: AudioChunk
    """Its sound at normal speed."""


class ReplayVoice:
    """A ``Voice`` that remembers the last answer and speaks at an adjustable speed."""

    def __init__(self, inner: Voice, tempo: SoxTempo | None, *, speed: float = 1.0, slower_speed: float = 0.75) -> None:
        self._inner = inner
        self._tempo = tempo
        self.speed = speed
        """Speed factor for everything spoken now (1.0 normal)."""
        self.normal_speed = speed
        self.slower_speed = slower_speed
        self._last: Answer | None = None
        self._queued: float | None = None

    async def prepare(self) -> None:
        """Warm the inner voice up (token2wav prompt processing), when it can."""
        prepare = getattr(self._inner, "prepare", None)
        if prepare is not None:
            await prepare()

    def close(self) -> None:
        """Release the inner voice's worker thread, when it has one."""
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    @property
    def inner(self) -> Voice:
        """The voice that does the speaking."""
        return self._inner

    def set_dialect(self, dialect: str) -> None:
        """Pass a dialect change on to the inner voice."""
        self._inner.set_dialect(dialect)

    def set_speed(self, speed: float) -> None:
        """Speak at ``speed`` from now on (a factor, kept within 0.5-1.5; 1.0 normal)."""
        self.speed = min(1.5, max(0.5, speed))

    @property
    def last(self) -> Answer | None:
        """The last answer spoken, if any."""
        return self._last

    async def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        """Speak through the inner voice at the current speed, recording text and audio."""
        texts: list[str] = []
        recorded: list[AudioChunk] = []

        async def tapped() -> AsyncIterator[ReplyPiece]:
            async for piece in pieces:
                if isinstance(piece, ModelText):
                    texts.append(piece.text)
                yield piece

        replayed = self._queued is not None
        if self._queued is not None:
            speed, self._queued = self._queued, None
            async for chunk in self.replay(speed=speed):
                yield chunk
        try:
            async for chunk in self._inner.speak(tapped()):
                recorded.append(chunk)
                yield await self._at_speed(chunk, self.speed)
        finally:
            # Even a cut-short answer can be asked for again; it holds everything said so far. The model's
            # words after a replay ("here it is again") must not replace the answer that was asked for.
            if recorded and not replayed:
                rates = {c.rate_hz for c in recorded}
                audio = join(recorded) if len(rates) == 1 else _resampled_join(recorded)
                self._last = Answer("".join(texts), audio)

    async def replay(self, *, speed: float | None = None) -> AsyncIterator[AudioChunk]:
        """Yield the last answer again, at ``speed`` (default: the current speed); nothing if none."""
        answer = self._last
        if answer is None:
            return
        stretched = await self._at_speed(answer.audio, self.speed if speed is None else speed)
        for chunk in split(stretched, 0.2):
            yield chunk

    @property
    def replay_pending(self) -> bool:
        """True while a queued replay waits for the next ``speak``."""
        return self._queued is not None

    def cancel_replay(self) -> None:
        """Drop a queued replay (e.g. the turn ended without speaking)."""
        self._queued = None

    def queue_replay(self, *, slower: bool) -> bool:
        """Make the next ``speak`` start with the last answer; False when there is nothing to replay."""
        if self._last is None:
            return False
        self._queued = self.slower_speed if slower else self.speed
        return True

    async def _at_speed(self, chunk: AudioChunk, speed: float) -> AudioChunk:
        if self._tempo is None or abs(speed - 1.0) < 1e-3:
            return chunk
        try:
            return await self._tempo.stretch(chunk, speed)
        except SpeechError as err:
            _LOGGER.warning("playing at normal speed: %s", err)
            return chunk


def _resampled_join(chunks: list[AudioChunk]) -> AudioChunk:
    # Answers mixing engines (TTS at 22.05 kHz, token2wav at 24 kHz) are kept at the first rate.
    import numpy as np
    import soxr

    rate = chunks[0].rate_hz
    parts = []
    for chunk in chunks:
        samples = np.frombuffer(chunk.pcm, dtype="<i2").astype(np.float32) / 32768.0
        if chunk.rate_hz != rate:
            samples = soxr.resample(samples, chunk.rate_hz, rate)
        parts.append(samples)
    values = np.clip(np.concatenate(parts), -1.0, 1.0)
    return AudioChunk((values * 32767.0).astype("<i2").tobytes(), rate)


class ReplayTools:
    """The skill-facing functions for "say that again" and "speak slower"; results are small JSON objects."""

    def __init__(self, voice: VoiceControls) -> None:
        self._voice = voice

    async def repeat_last_answer(self, slower: bool = False) -> dict[str, Any]:
        """Say the last answer again, word for word, optionally slower, without asking the model."""
        if not self._voice.queue_replay(slower=slower):
            return {"ok": False, "error": "nothing has been said yet"}
        return {"ok": True, "note": "the last answer is being played again; do not repeat it yourself"}

    async def set_speaking_speed(self, speed: str) -> dict[str, Any]:
        """Change how fast answers are spoken: ``slower``, ``normal`` or ``faster``."""
        voice = self._voice
        match speed:
            case "slower":
                voice.set_speed(min(voice.speed, voice.normal_speed) * voice.slower_speed)
            case "normal":
                voice.set_speed(voice.normal_speed)
            case "faster":
                voice.set_speed(voice.speed / voice.slower_speed)
            case _:
                return {"ok": False, "error": f"speed must be slower, normal or faster, not {speed!r}"}
        return {"ok": True, "speed": round(voice.speed, 2)}


if TYPE_CHECKING:
    _CONTROLS: type[VoiceControls] = ReplayVoice  # mypy proves the voice fits the skill's typed dependency
