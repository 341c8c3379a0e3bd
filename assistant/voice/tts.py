"""Text-to-speech engines for text answers: espeak-ng (offline, ships Cantonese and Mandarin) or Piper.

An engine turns one sentence into audio. :class:`SentenceSplitter` cuts streamed text into sentences so the
first one is spoken while the model is still writing the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..audio import AudioChunk
from ..config import PersonaSettings, TtsSettings
from .errors import SpeechError, VoiceUnavailable
from .process import pipe_through

_LOGGER = logging.getLogger(__name__)


class TextToSpeech(Protocol):
    """One engine; ``synthesize`` is cancellable and returns audio at the engine's own rate."""

    async def synthesize(self, text: str) -> AudioChunk:
        """Speak one sentence."""
        ...


ESPEAK_VOICES = {
    "cantonese": "yue",
    # espeak's plain ``cmn`` reads Han characters as English-spelled pinyin; this voice reads them right.
    "mandarin": "cmn-latn-pinyin",
    # No Sichuanese voice exists offline; Mandarin is the closest that listeners understand.
    "sichuanese": "cmn-latn-pinyin",
    "english": "en-us",
}
"""espeak-ng voice per household dialect."""

ELDERLY_RATE_FACTOR = 0.8
"""Elderly listeners get answers 20 % slower."""
ELDERLY_VOLUME_FACTOR = 1.25
"""… and 25 % louder."""


@dataclass(frozen=True, slots=True)
class EspeakOptions:
    """Resolved espeak-ng parameters."""

    voice: str
    """espeak-ng voice name, e.g. ``yue``."""
    rate_wpm: int
    """Words per minute."""
    amplitude: int
    """espeak amplitude, 0 to 200 (100 is its default)."""


def espeak_options(tts: TtsSettings, persona: PersonaSettings, speed: float = 1.0) -> EspeakOptions:
    """Pick voice, rate and loudness for a household."""
    voice = tts.voice or ESPEAK_VOICES[persona.dialect]
    rate = tts.rate_wpm * speed
    volume = tts.volume
    if persona.style == "elderly":
        rate *= ELDERLY_RATE_FACTOR
        volume *= ELDERLY_VOLUME_FACTOR
    return EspeakOptions(voice, max(80, min(450, round(rate))), max(0, min(200, round(100 * volume))))


_TAG = re.compile(r"<[^<>]{1,20}>")
_MARKUP = re.compile(r"[*#`_~|>]+")


def clean_for_speech(text: str) -> str:
    """Drop language tags such as ``<中文>`` and markdown symbols that a TTS would read out."""
    return " ".join(_MARKUP.sub(" ", _TAG.sub(" ", text)).split())


class EspeakTts:
    """espeak-ng as a subprocess; 22.05 kHz output."""

    def __init__(self, options: EspeakOptions, executable: str = "espeak-ng", *, fixed_voice: bool = False) -> None:
        path = shutil.which(executable)
        if path is None:
            raise VoiceUnavailable(f"{executable} is not installed (apt-get install espeak-ng)")
        self.options = options
        self._fixed_voice = fixed_voice
        self._executable = path

    def set_dialect(self, dialect: str) -> None:
        """Speak another dialect from now on, unless the config named a voice."""
        if not self._fixed_voice and dialect in ESPEAK_VOICES:
            self.options = dataclasses.replace(self.options, voice=ESPEAK_VOICES[dialect])

    async def synthesize(self, text: str) -> AudioChunk:
        """Run espeak-ng on one sentence; killing it if the caller is cancelled."""
        text = clean_for_speech(text)
        if not text:
            return AudioChunk(b"", 22_050)
        opts = self.options
        args = [self._executable, "-v", opts.voice, "-s", str(opts.rate_wpm), "-a", str(opts.amplitude), "--stdout"]
        # The text goes through stdin so it can never be taken for an option.
        stdout = await pipe_through(args, text.encode(), what="espeak-ng")
        return _parse_wav(stdout)


def _parse_wav(data: bytes) -> AudioChunk:
    # espeak writes a streaming WAV whose header sizes are placeholders; read the frames that are there.
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise SpeechError("the TTS did not return mono 16-bit audio")
            rate = wav.getframerate()
    except (wave.Error, EOFError) as err:
        raise SpeechError(f"the TTS returned unreadable audio ({err})") from err
    body = data[44:]
    return AudioChunk(body[: len(body) - len(body) % 2], rate)


class PiperTts:
    """A Piper voice (``.onnx`` + ``.onnx.json``) the user installed; needs ``pip install piper-tts``."""

    def __init__(self, model: Path, speed: float = 1.0) -> None:
        if not model.is_file():
            raise VoiceUnavailable(f"Piper voice {model} does not exist")
        try:
            from piper import PiperVoice  # type: ignore[import-not-found, unused-ignore]
        except ImportError as err:
            raise VoiceUnavailable("Piper is not installed: pip install 'xiangyin[voice-piper]'") from err
        self._voice: Any = PiperVoice.load(str(model))
        self._speed = speed

    async def synthesize(self, text: str) -> AudioChunk:
        """Run Piper in a worker thread."""
        text = clean_for_speech(text)
        return await asyncio.to_thread(self._run, text)

    def _run(self, text: str) -> AudioChunk:
        from piper import SynthesisConfig  # type: ignore[import-not-found, unused-ignore]

        config = SynthesisConfig(length_scale=1.0 / self._speed)
        pcm = bytearray()
        rate = 22_050
        for chunk in self._voice.synthesize(text, syn_config=config):
            pcm += chunk.audio_int16_bytes
            rate = chunk.sample_rate
        return AudioChunk(bytes(pcm), rate)


def build_tts(tts: TtsSettings, persona: PersonaSettings, speed: float = 1.0) -> TextToSpeech:
    """The configured engine; raises :class:`VoiceUnavailable` when it cannot run here."""
    if tts.engine not in ("piper", "espeak-ng"):
        from ..errors import ConfigError
        from ..plugins import TTS, build

        try:
            voice: TextToSpeech = build(TTS, tts.engine, persona, speed, key="voice.tts.engine", options=tts.options)
        except ConfigError as err:
            raise VoiceUnavailable(str(err)) from err
        return voice
    if tts.engine == "piper":
        if not tts.piper_model:
            raise VoiceUnavailable("voice.tts.engine is piper but voice.tts.piper_model is not set")
        rate = speed * (ELDERLY_RATE_FACTOR if persona.style == "elderly" else 1.0)
        return PiperTts(Path(tts.piper_model).expanduser(), rate)
    return EspeakTts(espeak_options(tts, persona, speed), fixed_voice=tts.voice is not None)


_SENTENCE_END = re.compile(r"[。！？!?；;\n]|\.(?=\s|$)")
_SOFT_BREAK = re.compile(r"[，,、：:]")


class SentenceSplitter:
    """Collects streamed text and hands out whole sentences (long ones are cut at a comma)."""

    def __init__(self, soft_limit_chars: int = 60) -> None:
        self._buffer = ""
        self._soft_limit = soft_limit_chars

    def feed(self, text: str) -> list[str]:
        """Add text; return the sentences it completed."""
        self._buffer += text
        out: list[str] = []
        while True:
            match = _SENTENCE_END.search(self._buffer)
            if match is None and len(self._buffer) > self._soft_limit:
                match = _SOFT_BREAK.search(self._buffer, self._soft_limit // 2)
            if match is None:
                break
            sentence, self._buffer = self._buffer[: match.end()], self._buffer[match.end() :]
            if sentence.strip():
                out.append(sentence.strip())
        return out

    def flush(self) -> str:
        """Return and forget the unfinished rest."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest
