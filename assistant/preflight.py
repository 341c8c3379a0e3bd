"""What ``xiangyin check`` adds to validation: load what ``run`` would load from the config, without starting.

A config can be valid YAML with valid values and still name a wake-word file that does not exist, an enrolled
word never enrolled, or a Piper voice that is not there. ``run`` stops on those with exit 2; ``check`` finds
them first. Weights of the speech model are not loaded here (gigabytes): a missing model is downloaded or
reported by ``run`` itself.
"""

from __future__ import annotations

from .config import Settings
from .errors import ConfigError


def check_resources(settings: Settings) -> list[str]:
    """One line per thing the config names that cannot be loaded, each starting with its dotted key."""
    from .listen import build_wake_engine
    from .voice import VoiceUnavailable
    from .voice.tts import build_tts

    problems: list[str] = []
    for key, words in (("wake.words", settings.wake.words), ("wake.stop_words", settings.wake.stop_words)):
        if words:
            try:
                build_wake_engine(settings.wake, words)
            except ConfigError as err:
                problems.append(f"{key}: {err}")
    if settings.voice.mode != "model":  # the TTS speaks every answer in tts mode, and until the model loads in auto
        try:
            build_tts(settings.voice.tts, settings.persona)
        except VoiceUnavailable as err:
            problems.append(f"voice.tts: {err}")
    return problems
