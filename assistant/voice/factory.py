"""Build the configured voice; the only place that decides between token2wav and the TTS."""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import PersonaSettings, VoiceSettings
from .errors import VoiceUnavailable
from .replay import ReplayVoice, SoxTempo
from .speech import AnswerVoice, TokenSpeaker
from .tts import TextToSpeech, build_tts

_LOGGER = logging.getLogger(__name__)

DEFAULT_PROMPTS = ("default_female.wav", "assets/default_female.wav", "../assets/default_female.wav")
"""Where the released voice prompt is looked for, relative to the token2wav folder."""


def token2wav_dir(voice: VoiceSettings, model_dir: Path | None) -> Path | None:
    """The token2wav folder: ``voice.token2wav.path``, else ``token2wav/`` in the model directory."""
    if voice.token2wav.path:
        return Path(voice.token2wav.path).expanduser()
    return None if model_dir is None else model_dir / "token2wav"


def prompt_wav(voice: VoiceSettings, folder: Path) -> Path:
    """The voice prompt: ``voice.prompt_wav``, else the released default voice next to the weights."""
    if voice.prompt_wav:
        path = Path(voice.prompt_wav).expanduser()
        if not path.is_file():
            raise VoiceUnavailable(f"voice.prompt_wav {path} does not exist")
        return path
    for name in DEFAULT_PROMPTS:
        if (folder / name).is_file():
            return (folder / name).resolve()
    raise VoiceUnavailable(f"no voice prompt: set voice.prompt_wav to a clean 3-10 s WAV (none found in {folder})")


def build_token_speaker(voice: VoiceSettings, model_dir: Path | None) -> TokenSpeaker:
    """Load token2wav; raises :class:`VoiceUnavailable` when its weights or prompt are missing."""
    folder = token2wav_dir(voice, model_dir)
    if folder is None:
        raise VoiceUnavailable("no token2wav folder: set voice.token2wav.path or use a local model directory")
    from .token2wav.engine import StreamSchedule, Token2Wav

    settings = voice.token2wav
    schedule = StreamSchedule(first_chunk_tokens=settings.first_chunk_tokens, chunk_tokens=settings.chunk_tokens)
    engine = Token2Wav.load(
        folder,
        device=settings.device,
        fp16=settings.fp16,
        cache_dir=Path(settings.cache_dir).expanduser(),
        schedule=schedule,
    )
    return TokenSpeaker(engine, prompt_wav(voice, folder), speech_pad=settings.speech_pad)


def build_voice(voice: VoiceSettings, persona: PersonaSettings, model_dir: Path | None) -> ReplayVoice:
    """The household's voice, wrapped for replay and speed.

    ``model`` mode raises :class:`VoiceUnavailable` when token2wav cannot load; ``auto`` then speaks
    through the TTS alone (with a warning); ``tts`` never loads token2wav.
    """
    tts: TextToSpeech | None
    try:
        tts = build_tts(voice.tts, persona)
    except VoiceUnavailable as err:
        if voice.mode == "tts":
            raise
        _LOGGER.warning("no TTS fallback: %s", err)
        tts = None
    tokens: TokenSpeaker | None = None
    if voice.mode != "tts":
        try:
            tokens = build_token_speaker(voice, model_dir)
        except VoiceUnavailable as err:
            if voice.mode == "model" or tts is None:
                raise
            _LOGGER.warning("speaking through the TTS only: %s", err)
    inner = AnswerVoice(voice.mode, tokens, tts)
    try:
        tempo: SoxTempo | None = SoxTempo()
    except Exception as err:  # noqa: BLE001 - any failure just means no speed control
        _LOGGER.warning("answers cannot be slowed down: %s", err)
        tempo = None
    return ReplayVoice(inner, tempo, speed=voice.speed, slower_speed=voice.slower_speed)
