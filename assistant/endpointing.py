"""Pure end-of-speech detection: fed what each chunk sounded like, it says when *the user* is done.

Three things decide, none of them read audio or a clock, so the tests are small tables:

* **The room.** What the box heard before the wake word (a TV, a radio, a fan) sets a level gate: speech no
  louder than that background does not count as the user, so a TV talking on does not keep the turn open.
  The user's own level (the wake word, then the question) caps the gate, so a quiet user is never gated out.
* **How the phrase ended.** A hesitation ("嗯", "um": a nasal murmur) waits ``hold_silence_seconds``; so does,
  with ``pitch_cues`` (the patient profile), a level or rising end. Anything else ends the turn after
  ``end_silence_seconds``.
* **The household.** :class:`PauseMemory` keeps the mid-sentence pauses recent turns were heard to make
  (silences after which the user went on) and lengthens both waits to fit them.
"""

from __future__ import annotations

import bisect
import collections
import enum
import math
import statistics
from dataclasses import dataclass, field

from .config import EndpointSettings

_EPSILON = 1e-6
"""Chunk durations are sums of floats; compare with a tolerance so 10 × 0.1 s reaches 1.0 s."""

_END_PITCHES = 2
"""Voiced chunks at the very end of a phrase whose median is its last pitch."""
_CONTOUR_PITCHES = 6
"""Voiced chunks (about half a second) whose highest pitch is the phrase's recent peak."""
_SHORTEST_PAUSE_SECONDS = 0.25
"""A silence shorter than this that the user spoke after is a gap between words, not a pause to learn."""
_PAUSE_MARGIN_SECONDS = 0.4
"""Seconds a learned wait exceeds the longest pause it was learned from."""
_HESITATION_CHUNKS = 3
"""Nasal chunks in a row that make a hesitation ("嗯", "um"); a nasal coda ("-ng", "-n") is shorter."""
_RESUME_WINDOW_CHUNKS = 4
"""Chunks (about a third of a second) in which going on after a pause must gather start_seconds of speech."""
_FULL_VOICE_DB = 3.0
"""A chunk within this many decibels of the user's level is at their full voice."""
_SOFT_DB = 6.0
"""Decibels under the gate within which a speech chunk at the user's pitch still counts as their soft speech."""
_SAME_VOICE_SEMITONES = 3.0
"""A pitch within this many semitones of the user's median is heard as their voice."""
_SOFT_HOLD_SECONDS = 0.4
"""Longest run of such soft chunks that holds a pause open."""
_LEVEL_QUANTILE = 0.75
"""The user's level is this quantile of the levels of the chunks heard as theirs."""


class Decision(enum.StrEnum):
    """What the endpointer concluded after a chunk."""

    WAITING = "waiting"
    """No speech yet; keep listening."""
    STARTED = "started"
    """Speech has just begun (returned once)."""
    SPEAKING = "speaking"
    """Speech goes on (pauses shorter than the end silence included)."""
    ENDED = "ended"
    """Enough silence after speech, or the maximum was reached: the utterance is over."""
    TIMED_OUT = "timed_out"
    """Nobody spoke within the no-speech timeout."""


@dataclass(frozen=True, slots=True)
class Cues:
    """What one chunk sounded like besides its speech probability."""

    level_db: float
    """RMS level of the chunk, dBFS."""
    pitch_hz: float | None = None
    """Pitch of its voiced part in Hz; None when unvoiced or unknown."""
    nasal: bool = False
    """True when its voiced part is a nasal murmur (a hesitation)."""


@dataclass(frozen=True, slots=True)
class Room:
    """What the box heard just before the wake word."""

    background_db: float
    """Level the background reached (the 90th percentile of its chunk levels), dBFS."""
    voice_db: float | None = None
    """Level of the wake word, the user's own voice, dBFS; None when unknown (a button press)."""


class PauseMemory:
    """The household's recent mid-sentence pauses; shared by the turns of one daemon."""

    def __init__(self, size: int = 16) -> None:
        self._finished: collections.deque[float] = collections.deque(maxlen=size)
        self._unfinished: collections.deque[float] = collections.deque(maxlen=size)

    def record(self, seconds: float, *, sounded_finished: bool) -> None:
        """Remember a pause of ``seconds`` after which the user went on speaking."""
        (self._finished if sounded_finished else self._unfinished).append(seconds)

    def waits(self, settings: EndpointSettings) -> tuple[float, float]:
        """Return the (finished, unfinished) end silences in seconds, lengthened to fit the pauses heard."""
        end, hold = settings.end_silence_seconds, settings.hold_silence_seconds
        if not settings.learn_pauses:
            return end, hold
        if self._finished:
            end = min(hold, max(end, max(self._finished) + _PAUSE_MARGIN_SECONDS))
        if self._unfinished:
            hold = min(2.0 * settings.hold_silence_seconds, max(hold, max(self._unfinished) + _PAUSE_MARGIN_SECONDS))
        return end, max(end, hold)


def semitones(pitch_hz: float, reference_hz: float) -> float:
    """Interval from ``reference_hz`` up to ``pitch_hz`` in semitones."""
    return 12.0 * math.log2(pitch_hz / reference_hz)


@dataclass(slots=True)
class Endpointer:
    """State machine over consecutive chunks of one utterance."""

    settings: EndpointSettings
    room: Room | None = None
    """The background before the wake word; None hears every speech chunk as the user."""
    memory: PauseMemory | None = None
    """Pauses learned across turns; this turn's pauses are added to it."""
    waited_seconds: float = 0.0
    """Seconds heard before speech started."""
    speech_seconds: float = 0.0
    """Seconds since speech started (pauses included)."""
    sounded_finished: bool = True
    """Whether the last phrase sounded finished (it chooses the end silence now running)."""
    _run_seconds: float = 0.0
    _silence_seconds: float = 0.0
    _started: bool = False
    _done: Decision | None = None
    _levels: list[float] = field(default_factory=list)
    _pitches: list[float] = field(default_factory=list)
    _contour: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=_CONTOUR_PITCHES))
    _resume_seconds: float = 0.0
    _soft_seconds: float = 0.0
    _recent: collections.deque[tuple[float, bool, bool]] = field(
        default_factory=lambda: collections.deque(maxlen=_RESUME_WINDOW_CHUNKS)
    )
    _nasal_run: int = 0
    _own_memory: PauseMemory = field(default_factory=PauseMemory)

    def process(self, seconds: float, probability: float, cues: Cues | None = None) -> Decision:
        """Account for one chunk of ``seconds`` whose speech probability is ``probability``."""
        if self._done is not None:
            return self._done
        s = self.settings
        is_user = probability >= s.speech_threshold and (cues is None or cues.level_db >= self.gate_db)
        if not self._started:
            self.waited_seconds += seconds
            self._run_seconds = self._run_seconds + seconds if is_user else 0.0
            if is_user:
                self._hear(cues)
            if is_user and self._run_seconds >= s.start_seconds - _EPSILON:
                self._started = True
                self.speech_seconds = self._run_seconds
                return Decision.STARTED
            if self.waited_seconds >= s.no_speech_timeout_seconds - _EPSILON:
                self._done = Decision.TIMED_OUT
                return self._done
            return Decision.WAITING
        self.speech_seconds += seconds
        voice = self.voice_db
        full_voice = is_user and (cues is None or voice is None or cues.level_db >= voice - _FULL_VOICE_DB)
        self._recent.append((seconds, is_user, full_voice))
        if is_user and self._silence_seconds >= _SHORTEST_PAUSE_SECONDS - _EPSILON:
            # Going on after a real pause (not a gap between words) takes as much of the user's speech, within
            # the last moment, as starting did, and one syllable at their full voice: a lone loud chunk of a TV,
            # or a TV's loudest moments, do not hold the turn open, while a user's syllables, loud and soft by
            # turns under a TV, do.
            self._resume_seconds = sum(length for length, user, _ in self._recent if user)
            if self._resume_seconds < s.start_seconds - _EPSILON or not any(full for *_, full in self._recent):
                # Not yet going on, but not silent either: the pause neither grows nor ends on this chunk.
                return Decision.SPEAKING if self.speech_seconds < s.max_speech_seconds - _EPSILON else self._end()
        if is_user:
            if self._silence_seconds >= _SHORTEST_PAUSE_SECONDS - _EPSILON:
                self._memory.record(self._silence_seconds, sounded_finished=self.sounded_finished)
            self._silence_seconds = self._resume_seconds = self._soft_seconds = 0.0
            self._hear(cues)
        elif probability >= s.speech_threshold and self._sounds_like_the_user(cues):
            # A soft syllable just under the gate in the user's own voice: the user is still talking under the
            # TV. It holds the pause (for a moment at most), so a TV voice at that pitch cannot hold it forever.
            self._soft_seconds += seconds
        else:
            if self._silence_seconds == 0.0:
                self.sounded_finished = self._phrase_sounds_finished()
                self._recent.clear()
            self._silence_seconds += seconds
        if (
            self._silence_seconds >= self.end_silence_seconds - _EPSILON
            or self.speech_seconds >= s.max_speech_seconds - _EPSILON
        ):
            return self._end()
        return Decision.SPEAKING

    def _sounds_like_the_user(self, cues: Cues | None) -> bool:
        """Whether a speech chunk under the gate is the user's soft speech: close under it, at their pitch."""
        if cues is None or cues.pitch_hz is None or len(self._pitches) < 2 * _END_PITCHES:
            return False
        if self._soft_seconds >= _SOFT_HOLD_SECONDS - _EPSILON or cues.level_db < self.gate_db - _SOFT_DB:
            return False
        return abs(semitones(cues.pitch_hz, statistics.median(self._pitches))) <= _SAME_VOICE_SEMITONES

    def _end(self) -> Decision:
        self._done = Decision.ENDED
        return self._done

    @property
    def trailing_silence_seconds(self) -> float:
        """Seconds of silence at the end of the utterance so far."""
        return self._silence_seconds

    @property
    def end_silence_seconds(self) -> float:
        """Seconds of silence that will end the utterance, given how the last phrase sounded."""
        finished, unfinished = self._memory.waits(self.settings)
        return finished if self.sounded_finished else unfinished

    @property
    def gate_db(self) -> float:
        """Level (dBFS) a speech chunk needs to count as the user."""
        s = self.settings
        if self.room is None or not s.room_gate:
            return -math.inf
        gate = self.room.background_db + s.room_margin_db
        voice = self.voice_db
        if voice is not None:
            gate = min(gate, voice - s.voice_margin_db)
        return gate

    @property
    def voice_db(self) -> float | None:
        """The user's level so far (dBFS): their speech in this turn, else the wake word."""
        if self._levels:
            return self._levels[min(len(self._levels) - 1, int(_LEVEL_QUANTILE * len(self._levels)))]
        return self.room.voice_db if self.room is not None else None

    @property
    def _memory(self) -> PauseMemory:
        return self.memory if self.memory is not None else self._own_memory

    def _hear(self, cues: Cues | None) -> None:
        """Take in a chunk heard as the user's."""
        if cues is None:
            return
        bisect.insort(self._levels, cues.level_db)
        if cues.pitch_hz is not None:
            self._pitches.append(cues.pitch_hz)
            self._contour.append(cues.pitch_hz)
        self._nasal_run = self._nasal_run + 1 if cues.nasal else 0

    def _phrase_sounds_finished(self) -> bool:
        """A phrase that falls in pitch sounds finished; a hesitation, or a level or rising end, does not.

        Falling means the last pitch lies ``fall_semitones`` or more under both the utterance's median and
        the phrase's own last half second: statements and wh-questions end 2–4 semitones low, a comma or a
        hesitation stays level or rises.

        Unknown pitch (unvoiced speech, no prosody detector), or ``pitch_cues`` off, counts as finished: the
        shorter wait is the behaviour without any cue.
        """
        if self._nasal_run >= _HESITATION_CHUNKS:
            return False
        if not self.settings.pitch_cues:
            return True
        if len(self._contour) < _END_PITCHES or len(self._pitches) < 2 * _END_PITCHES:
            return True
        last = statistics.median(list(self._contour)[-_END_PITCHES:])
        return (
            semitones(last, statistics.median(self._pitches)) <= -self.settings.fall_semitones
            and semitones(last, max(self._contour)) <= -self.settings.fall_semitones
        )
