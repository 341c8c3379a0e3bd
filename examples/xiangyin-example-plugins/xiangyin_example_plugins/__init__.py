"""Three tiny engines that show the shape of each plugin group; none of them is meant for a real home.

- ``clap`` (``xiangyin.wake_engines``): every configured word "fires" on a sound louder than ``level``.
- ``beep`` (``xiangyin.tts``): says each sentence as one beep per character.
- ``echo`` (``xiangyin.models``): answers every question with ``reply``.

Each entry point is a factory; its first argument is the ``options`` mapping from the config.
"""

from __future__ import annotations

import math
import struct
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from assistant.audio import AudioChunk
from assistant.config import PersonaSettings
from assistant.events import Event
from assistant.ports import ModelDone, ModelEvent, ModelRequest, ModelText, ModelTranscript


class ClapEngine:
    """A wake-word engine (``assistant.listen.wakeword.WakeEngine``) that hears claps, not words."""

    def __init__(self, words: Sequence[str], level: float) -> None:
        self.names = tuple(words)
        self.default_thresholds = tuple(0.5 for _ in words)
        self._level = level

    def scores(self, pcm: bytes) -> list[float]:
        """1.0 for every word when the chunk's peak is over the level, else 0.0."""
        samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
        peak = max((abs(s) for s in samples), default=0) / 32768
        return [1.0 if peak >= self._level else 0.0 for _ in self.names]

    def reset(self) -> None:
        """Nothing is remembered between chunks."""


def clap_engine(options: Mapping[str, Any], words: Sequence[str]) -> ClapEngine:
    """``wake.engine: clap``; option ``level``: peak (0 to 1) that counts as a clap, default 0.5."""
    return ClapEngine(words, float(options.get("level", 0.5)))


class BeepVoice:
    """A TTS voice (``assistant.voice.tts.TextToSpeech``) of beeps."""

    def __init__(self, hz: float, seconds_per_char: float) -> None:
        self._hz = hz
        self._seconds = seconds_per_char

    async def synthesize(self, text: str) -> AudioChunk:
        """One beep per character, with a short gap after each, at 16 kHz."""
        rate = 16_000
        beep = [round(8000 * math.sin(2 * math.pi * self._hz * n / rate)) for n in range(int(rate * self._seconds))]
        gap = [0] * (rate // 50)
        samples = (beep + gap) * len(text.strip())
        return AudioChunk(struct.pack(f"<{len(samples)}h", *samples), rate)


def beep_voice(options: Mapping[str, Any], persona: PersonaSettings, speed: float) -> BeepVoice:
    """``voice.tts.engine: beep``; options ``hz`` (default 660) and ``seconds_per_char`` (default 0.08)."""
    return BeepVoice(float(options.get("hz", 660)), float(options.get("seconds_per_char", 0.08)) / speed)


class EchoModel:
    """A speech model (``assistant.ports.SpeechModel``) that always gives the same answer."""

    def __init__(self, reply: str) -> None:
        self._reply = reply

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Hear nothing, say the configured reply."""
        if request.audio is not None:
            yield ModelTranscript("(heard you)")
        yield ModelText(self._reply)
        yield ModelDone()

    def forget(self, conversation_id: str) -> None:
        """There is no history to forget."""

    def retract(self, conversation_id: str) -> None:
        """There is no history to take back."""

    def set_dialect(self, dialect: str) -> None:
        """The reply is fixed."""


def echo_model(options: Mapping[str, Any], persona: PersonaSettings, publish: Callable[[Event], None]) -> EchoModel:
    """``model.backend: echo``; option ``reply``: what to answer, default 我听到了."""
    return EchoModel(str(options.get("reply", "我听到了")))
