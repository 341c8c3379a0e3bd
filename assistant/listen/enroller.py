"""The daemon's :class:`~assistant.ports.WakeWordEnroller`: the word store, Silero VAD and the wake models.

Enrolment asked for from Home Assistant goes through here, the same checks and store as
``xiangyin wake enroll``; :meth:`StoreEnroller.detector` builds the wake detector the daemon swaps in
afterwards, so a new word is heard without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ..audio import AudioChunk
from ..config import WakeSettings
from ..errors import EnrollmentError
from ..ports import WakeDetector
from . import build_wake_detector, embed_recording, listened_words, speech_frames, word_store
from .echo import OutputMonitor
from .enrolment import trim_take

_LOGGER = logging.getLogger(__name__)


class StoreEnroller:
    """Enrols, lists and removes the words under ``wake.enrolled_dir``; builds the detector that hears them."""

    def __init__(
        self,
        settings: WakeSettings,
        *,
        monitor: OutputMonitor | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = word_store(settings)
        self._monitor = monitor
        self._now = now

    def check_name(self, name: str) -> None:
        """Refuse an empty or unusable name, a bundled word's name, and enrolling for microWakeWord."""
        if not name.strip():
            raise EnrollmentError("no name given: type the wake word's name first")
        if self._settings.engine != "openwakeword":
            raise EnrollmentError("enrolled wake words need wake.engine: openwakeword")
        self._store.check_name(name)

    def check_take(self, label: str, audio: AudioChunk) -> None:
        """The per-take checks of an enrolment (VAD, clipping, length, noise), one take at a time."""
        trim_take(label, audio, speech_frames)

    def enrol(self, name: str, takes: Sequence[tuple[str, AudioChunk]]) -> str:
        """Store the takes under ``name``; a failed write (a full disk) changes nothing and says so."""
        self.check_name(name)
        try:
            result = self._store.enrol(name, takes, embed=embed_recording, speech_frames=speech_frames)
        except OSError as err:
            raise EnrollmentError(f"cannot store {name!r} in {self._store.root} ({err.strerror or err})") from err
        return (
            f"enrolled {name}: {len(result.added)} takes added, {result.total_takes} in all, "
            f"threshold {result.calibration.threshold:.2f}"
        )

    def remove(self, name: str) -> None:
        """Delete a word, unless the config names it (the next start would then fail)."""
        if not name.strip():
            raise EnrollmentError("no name given: type the wake word's name first")
        if any(word.enrolled == name for word in (*self._settings.words, *self._settings.stop_words)):
            raise EnrollmentError(f"{name!r} is named in wake.words or wake.stop_words; take it out of the config")
        try:
            self._store.remove(name)
        except OSError as err:
            raise EnrollmentError(f"cannot delete {name!r} from {self._store.root} ({err.strerror or err})") from err

    def words(self) -> tuple[str, ...]:
        """The enrolled words, sorted."""
        return tuple(self._store.names())

    def detector(self) -> tuple[WakeDetector, tuple[str, ...]]:
        """The configured words and, with ``wake.listen_enrolled``, every other enrolled word."""
        words = listened_words(self._settings, self._usable(self.words()))
        detector = build_wake_detector(self._settings, monitor=self._monitor, now=self._now, words=words)
        return detector, tuple(word.name for word in words if word.enrolled is not None)

    def _usable(self, names: Sequence[str]) -> list[str]:
        """``names`` without the damaged words the config does not name: those must not stop the daemon."""
        named = {word.enrolled for word in (*self._settings.words, *self._settings.stop_words)}
        usable = []
        for name in names:
            if name not in named:
                try:
                    self._store.load(name)
                except EnrollmentError as err:
                    _LOGGER.warning("not listening for the enrolled wake word %s: %s", name, err)
                    continue
            usable.append(name)
        return usable
