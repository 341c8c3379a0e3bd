"""Keep the run-time preferences (:mod:`assistant.preferences`) in a JSON file across restarts.

The file is rewritten whole on every change, atomically (a temporary file renamed over it), so a power cut
leaves the old values or the new ones. A file that is missing, unreadable or corrupt is reported in one
log line and the config's values are used: it never stops the daemon from starting.
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

from .bus import Bus
from .events import MuteChanged, SettingChanged, SpeakingSpeedChanged, VolumeChanged
from .files import write_atomic
from .preferences import Preferences
from .tasks import in_daemon_thread

_LOGGER = logging.getLogger(__name__)

_FACTS = (VolumeChanged, MuteChanged, SettingChanged, SpeakingSpeedChanged)


class PreferenceStore:
    """One JSON file of preferences: :meth:`load` at start-up, :meth:`run` writes every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved = Preferences()
        self._failing = False
        self._writing = threading.Lock()
        """Held while the file is written: a write left running by a cancelled wait, and the last write at a
        stop, must not overlap."""
        self._order = itertools.count(1)
        self._written = 0
        """Order number of the newest write that reached the file; an older one finishing late is skipped."""

    def load(self) -> Preferences:
        """The preferences in the file; empty (the config decides) when there is none or it is unusable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._remember(Preferences())
        except (OSError, UnicodeDecodeError) as err:
            _LOGGER.error("cannot read the saved settings %s (%s); starting with config.yaml's values", self.path, err)
            return self._remember(Preferences())
        try:
            preferences = Preferences.from_json(text, where=str(self.path))
        except ValueError as err:
            _LOGGER.error("%s; starting with config.yaml's values, the file is rewritten at the next change", err)
            return self._remember(Preferences())
        kept = ", ".join(f"{k}={v}" for k, v in preferences.model_dump(exclude_none=True).items()) or "none"
        _LOGGER.info("settings changed before the restart, in force again: %s (from %s)", kept, self.path)
        return self._remember(preferences)

    def _remember(self, preferences: Preferences) -> Preferences:
        self._saved = preferences
        return preferences

    def save(self, preferences: Preferences) -> None:
        """Write ``preferences`` over the file; OSError when the disk or the folder refuses."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = preferences.to_json()
        write_atomic(self.path, lambda temporary: temporary.write_text(text, encoding="utf-8"))

    def _save_logged(self, preferences: Preferences, order: int) -> None:
        with self._writing:
            if order > self._written:
                self._save_in_order(preferences, order)

    def _save_in_order(self, preferences: Preferences, order: int) -> None:
        try:
            self.save(preferences)
        except OSError as err:
            # Tried again at the next change; until then the values live on in the running daemon.
            if not self._failing:
                _LOGGER.error("cannot save the changed settings to %s: %s", self.path, err)
            self._failing = True
            return
        if self._failing:
            _LOGGER.info("the changed settings are saved to %s again", self.path)
        self._failing = False
        self._saved = preferences
        self._written = order

    async def run(self, bus: Bus) -> None:
        """Write each change of a preference until cancelled; what changed just before a stop is written too."""
        facts = bus.subscribe("preferences", *_FACTS)
        current = self._saved
        try:
            async for envelope in facts:
                current = current.after(envelope.event)
                if current != self._saved:
                    # The disk may be slow (an SD card): the loop never waits on it.
                    await in_daemon_thread(self._save_logged, current, next(self._order))
        finally:
            bus.unsubscribe(facts)
            for envelope in facts.drain():
                current = current.after(envelope.event)
            if current != self._saved:
                # On the loop, once: the daemon is stopping, and this is the value the next start must see.
                self._save_logged(current, next(self._order))
