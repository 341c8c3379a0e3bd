"""Speech output: the model's speech tokens through token2wav, or its text through a dialect TTS.

Heavy libraries (torch, onnxruntime) load only when token2wav is built.
"""

from __future__ import annotations

from .errors import SpeechError, VoiceUnavailable
from .factory import build_token_speaker, build_voice
from .replay import Answer, ReplayTools, ReplayVoice, SoxTempo
from .speech import AnswerVoice, TokenSpeaker
from .tts import EspeakTts, PiperTts, SentenceSplitter, TextToSpeech, build_tts, espeak_options

__all__ = [
    "Answer",
    "AnswerVoice",
    "EspeakTts",
    "PiperTts",
    "ReplayTools",
    "ReplayVoice",
    "SentenceSplitter",
    "SoxTempo",
    "SpeechError",
    "TextToSpeech",
    "TokenSpeaker",
    "VoiceUnavailable",
    "build_token_speaker",
    "build_tts",
    "build_voice",
    "espeak_options",
]
