"""Errors of the voice."""

from __future__ import annotations

from ..errors import AssistantError, TurnError


class VoiceUnavailable(AssistantError):
    """A voice cannot be built (token2wav weights missing or broken, no TTS engine); the message says why.

    ``app.py`` catches it to fall back to the text-to-speech voice.
    """


class SpeechError(TurnError):
    """Synthesis of one answer failed; the message says why."""

    code = "speech-failed"
