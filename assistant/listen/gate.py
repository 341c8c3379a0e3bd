"""The quiet gate: no wake-word inference while the room is quiet, without losing a word when sound starts.

openWakeWord's front end costs the same whether the room is silent or not, and a quiet room is most of a
day. :class:`QuietGate` tracks the noise floor and calls a chunk *sound* when it rises clearly above it;
:class:`GatedEngine` skips the models for chunks far from any sound, keeping the skipped audio, and when
sound starts it first feeds the models that audio, so they hear it as if they had never stopped.

With ``hold_seconds`` and the kept audio both as long as the models' context (how much audio one score
depends on), every score that any sound could change is computed, from the same audio as without the
gate: only scores of stretches that are quiet throughout are skipped.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from .wakeword import WakeEngine

SILENCE_DB = -120.0
"""Level given to digital silence (the log of zero)."""


@dataclass(frozen=True, slots=True)
class GateSettings:
    """When a chunk counts as sound."""

    margin_db: float = 6.0
    """Decibels above the noise floor at which a chunk counts as sound. Speech at 5 dB SNR, where
    openWakeWord still detects some words, lifts its chunks about 7-9 dB above the floor."""
    floor_seconds: float = 5.0
    """Seconds over which the noise floor is the quietest chunk's level (minimum statistics: speech has
    pauses between words, so a talking TV does not lift the floor to the level of its speech)."""
    hold_seconds: float = 2.0
    """Seconds the gate stays open after the last sound: the models' context, so that a word's scores are
    all computed, including the ones after it ended that reach the threshold."""


def speech_band_level_db(pcm: bytes) -> float:
    """Level (dB re full scale) of 16-bit PCM after a first-order high-pass (pre-emphasis).

    The difference filter cuts hum and rumble below speech, which would otherwise set the level of a room
    and hide a voice in it; the models listen from 60 Hz to 3.8 kHz.
    """
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if len(samples) < 2:
        return SILENCE_DB
    emphasized = samples[1:] - 0.97 * samples[:-1]
    power = float(np.mean(emphasized * emphasized)) / (32768.0 * 32768.0)
    return max(SILENCE_DB, 10 * math.log10(power)) if power > 0 else SILENCE_DB


class QuietGate:
    """Decides per chunk whether the models must run: a pure state machine fed (level, seconds)."""

    def __init__(self, settings: GateSettings | None = None) -> None:
        self.settings = settings or GateSettings()
        self._levels: collections.deque[tuple[float, float]] = collections.deque()
        """(level dB, seconds) of recent chunks, spanning ``floor_seconds``."""
        self._span = 0.0
        self._hold = 0.0
        self._started = False

    @property
    def floor_db(self) -> float:
        """The current noise floor (dB); the silence level before the first chunk."""
        return min((level for level, _ in self._levels), default=SILENCE_DB)

    def admit(self, level_db: float, seconds: float) -> bool:
        """Take the next chunk's level; return True when the models must hear it."""
        self._levels.append((level_db, seconds))
        self._span += seconds
        while self._span - self._levels[0][1] >= self.settings.floor_seconds:
            self._span -= self._levels.popleft()[1]
        if not self._started:
            # Until the floor has been measured for a whole window, everything might be speech.
            self._started = self._span >= self.settings.floor_seconds
            self._hold = self.settings.hold_seconds
            return True
        if level_db >= self.floor_db + self.settings.margin_db:
            self._hold = self.settings.hold_seconds
            return True
        if self._hold > 0.0:
            self._hold -= seconds
            return True
        return False


class GatedEngine:
    """A :class:`~assistant.listen.wakeword.WakeEngine` that runs the one it wraps only near sound.

    Skipped chunks report score 0. The last ``context_seconds`` of skipped audio are kept; when the gate
    opens they are fed first, and their own scores are dropped: they cover quiet audio only.
    """

    def __init__(self, engine: WakeEngine, context_seconds: float, gate: QuietGate | None = None) -> None:
        self.names = engine.names
        self.default_thresholds = engine.default_thresholds
        self._engine = engine
        self._gate = gate or QuietGate(GateSettings(hold_seconds=context_seconds))
        self._context_bytes = round(context_seconds * 16_000) * 2
        self._skipped: collections.deque[bytes] = collections.deque()
        self._skipped_bytes = 0
        self.skipped_seconds = 0.0
        """Audio the models did not have to hear, for benchmarks and diagnostics."""

    def scores(self, pcm: bytes) -> list[float]:
        """Return each word's highest score over the chunk; 0.0 for every word in a skipped chunk."""
        seconds = len(pcm) / 32_000
        if not self._gate.admit(speech_band_level_db(pcm), seconds):
            self._keep(pcm)
            self.skipped_seconds += seconds
            return [0.0] * len(self.names)
        if self._skipped:
            # Catching up costs what the skipped audio would have cost, once per sound.
            self._engine.scores(b"".join(self._skipped))
            self.skipped_seconds -= self._skipped_bytes / 32_000
            self._skipped.clear()
            self._skipped_bytes = 0
        return self._engine.scores(pcm)

    def _keep(self, pcm: bytes) -> None:
        self._skipped.append(pcm)
        self._skipped_bytes += len(pcm)
        while self._skipped_bytes - len(self._skipped[0]) >= self._context_bytes:
            self._skipped_bytes -= len(self._skipped.popleft())

    def reset(self) -> None:
        """Reset the wrapped engine's classifiers (the kept audio is still the room's)."""
        self._engine.reset()
