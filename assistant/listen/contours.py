"""The contour check of an enrolled wake word: pitch and spectral tilt of a candidate against the takes'.

openWakeWord's embeddings barely hear pitch, so in a tonal language a word with other tones on the same
syllables (晓翔晓翔 xiǎo xiáng against 小乡小乡 xiǎo xiāng) scores like the word itself; and averaged over
the word they blur one consonant changed (小张小张 zhāng, Cantonese zoeng1, against 乡 xiāng, hoeng1). Two
contours of each take, 10 ms a frame, keep what they lose:

- the **pitch** of its loud voiced frames, in semitones about the take's own median: the word's tune;
- the **spectral tilt** of its loud frames, voiced or not (energy over 3 kHz against under it, in steps of
  6 dB): where its hiss and bursts are, which a fricative (x, h) and an affricate (zh, z) place differently.

A candidate the embeddings accept must also hold a stretch whose contours follow one take's, at any offset
(the match is taken over shifts of the whole contour: another voice height, another microphone), a pitch
range up to 40 % wider or 30 % narrower (the word called out or muttered), any tempo within a
factor of two, and with the end of the word still to come (a prefix of the take may match: the matcher
fires before the word ends).

The check only vetoes what it hears clearly: with too few frames (a whisper, a creaky voice, a very noisy
room) a contour abstains; takes that do not agree with each other give a limit as loose as their
disagreement, or no check at all.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..audio import MIC_RATE_HZ
from .prosody import lag_correlations
from .reverb import reverberant, room_impulse

FRAME_SAMPLES = 640
"""40 ms: two periods of the lowest pitch looked for."""
HOP_SAMPLES = 160
"""10 ms between pitch frames."""
LOWEST_PITCH_HZ = 50.0
"""Lowest fundamental looked for: a low tone said by a deep voice goes well under 70 Hz."""
HIGHEST_PITCH_HZ = 400.0
"""Highest fundamental looked for."""
VOICED_CORRELATION = 0.6
"""Normalised autocorrelation peak at or above which a frame counts as voiced."""
LOUDNESS_RANGE_DB = 20.0
"""Voiced frames more than this under the loudest voiced frame are left out (a TV under the voice)."""
TILT_FRAME_SAMPLES = 400
"""25 ms: short enough for a burst, long enough for the bands."""
TILT_SPLIT_HZ = 3000.0
"""The tilt is the energy from here to TILT_TOP_HZ against the energy from TILT_BOTTOM_HZ to here."""
TILT_BOTTOM_HZ = 100.0
"""Lowest frequency the tilt counts (hum and rumble under it)."""
TILT_TOP_HZ = 7800.0
"""Highest frequency the tilt counts (under the 8 kHz Nyquist limit)."""
TILT_STEP_DB = 6.0
"""Decibels of tilt per contour unit: a fricative against a vowel differs by several steps, as tones do by
several semitones, so one distance and one set of limits serve both contours."""
TILT_RANGE_DB = 25.0
"""Frames more than this under the loudest frame are left out of the tilt (the room, not the word)."""
FLOOR_PERCENTILE = 10.0
"""The room's noise in each band of the tilt is the level this share (%) of the frames is under."""
MIN_FRAMES = 20
"""Frames (10 ms each) a contour needs before it is judged; fewer and it abstains."""
SHIFTS = tuple(float(s) for s in np.arange(-4.0, 4.01, 0.5))
"""Offsets of the candidate's contour tried (semitones, tilt steps): its level need not be the take's."""
CAP = 3.0
"""A frame's distance is at most this: one octave error or stray frame must not sink a whole word."""
STRETCH_PENALTY = 0.1
"""Added for each take frame that the candidate holds or skips (tempo changes)."""
PITCH_SCALES = tuple(round(1.12**i, 2) for i in range(-3, 4))
"""Factors the candidate's pitch contour is tried at (0.71 to 1.4, steps of 12 %): the same tones over a
range up to 40 % wider (the word called across the room) or 30 % narrower (muttered) are the same word,
though the takes, said one after the other, all had one range. A rising tone scaled stays rising, so the
tone-changed twin still fails; a wider span of scales (0.64 to 1.57) let one more 晓翔晓翔 in on two of
five enroll sets."""
MIN_PREFIX = 0.8
"""Share of a take's contour that must be matched: the word may not have ended when it is judged."""
LIMIT_FACTOR = 2.0
"""The limit is at least this times the takes' worst distance to each other ..."""
LIMIT_MARGIN = 0.15
"""... and at least that worst distance plus this (contour units)."""
MAX_TAKE_SPREAD = 0.5
"""Takes whose contours are further apart than this (per frame: about a tone changed on half the
syllables) give no check of that contour: the voice wanders too much, or the tracker cannot follow it
(creak). Takes of one steady voice are 0.04 to 0.16 apart."""
ROOM_RT60_SECONDS = 0.4
"""Reverberation time of the room each take is also heard in (see :mod:`.reverb`): a living room."""
ROOM_DRR_DB = 2.0
"""Direct-to-reverberant ratio of that room: a couple of metres from the box."""
WINDOW_MARGIN_SECONDS = 0.5
"""Audio kept beyond the longest take's length: a word said more slowly than the takes."""

Contour = npt.NDArray[np.float64]
"""One value per kept 10 ms frame, oldest first (semitones about the median, or tilt steps)."""


def pitch_track(samples: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pitch (Hz, NaN where unvoiced) and level (dBFS) of each 40 ms frame, 10 ms apart."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < FRAME_SAMPLES:
        return np.zeros(0), np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME_SAMPLES)[::HOP_SAMPLES]
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = np.sum(frames * frames, axis=1)
    level_db = 10 * np.log10(energy / FRAME_SAMPLES / 32768.0**2 + 1e-12)
    lags = np.arange(int(MIC_RATE_HZ / HIGHEST_PITCH_HZ), int(MIC_RATE_HZ / LOWEST_PITCH_HZ) + 1)
    scores = lag_correlations(frames, lags)
    best = scores.max(axis=1)
    # The first peak nearly as high as the best, so a strong second period is not read as the pitch: the
    # best-scoring lag of the first run of lags within 10 % of the best, refined between its neighbours.
    good = scores >= 0.9 * best[:, None]
    first = np.argmax(good, axis=1)
    index = np.arange(len(lags))[None, :]
    after = (~good) & (index > first[:, None])
    end = np.where(after.any(axis=1), np.argmax(after, axis=1), len(lags))
    in_run = (index >= first[:, None]) & (index < end[:, None])
    peak = np.argmax(np.where(in_run, scores, -np.inf), axis=1)
    rows = np.arange(len(scores))
    left = scores[rows, np.maximum(peak - 1, 0)]
    right = scores[rows, np.minimum(peak + 1, len(lags) - 1)]
    middle = scores[rows, peak]
    curve = left - 2 * middle + right
    offset = np.where(curve < 0, 0.5 * (left - right) / np.where(curve < 0, curve, -1.0), 0.0)
    pitch = MIC_RATE_HZ / (lags[peak] + np.clip(offset, -0.5, 0.5))
    voiced = (best >= VOICED_CORRELATION) & (level_db > -60.0)
    return np.where(voiced, pitch, np.nan), level_db


def pitch_contour(samples: npt.ArrayLike) -> Contour:
    """The semitone contour of the loud voiced frames of ``samples`` (16 kHz), about its median."""
    pitch, level_db = pitch_track(samples)
    voiced = np.isfinite(pitch)
    if not voiced.any():
        return np.zeros(0)
    keep = voiced & (level_db >= level_db[voiced].max() - LOUDNESS_RANGE_DB)
    semitones = 12.0 * np.log2(pitch[keep])
    centred: Contour = semitones - np.median(semitones)
    return centred


def tilt_contour(samples: npt.ArrayLike) -> Contour:
    """The spectral tilt of the loud frames of ``samples`` (16 kHz), in steps of TILT_STEP_DB."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < TILT_FRAME_SAMPLES:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, TILT_FRAME_SAMPLES)[::HOP_SAMPLES] * _WINDOW
    power = np.abs(np.fft.rfft(frames, _TILT_FFT, axis=1)) ** 2
    high = power[:, _HIGH_BAND].sum(axis=1)
    low = power[:, _LOW_BAND].sum(axis=1)
    # The room's steady noise (its quietest frames' level in each band) is not the word's; what is left is
    # kept over a tenth of that noise, so a band the word does not reach stays near the room's level.
    high_floor, low_floor = np.percentile(high, FLOOR_PERCENTILE), np.percentile(low, FLOOR_PERCENTILE)
    high = np.maximum(high - high_floor, 0.1 * high_floor) + 1.0
    low = np.maximum(low - low_floor, 0.1 * low_floor) + 1.0
    level_db = 10 * np.log10(high + low)
    keep = level_db >= level_db.max() - TILT_RANGE_DB
    tilt: Contour = 10 * np.log10(high[keep] / low[keep]) / TILT_STEP_DB
    return tilt


_TILT_FFT = 512
_WINDOW = np.hanning(TILT_FRAME_SAMPLES)
_FREQUENCIES = np.fft.rfftfreq(_TILT_FFT, 1.0 / MIC_RATE_HZ)
_LOW_BAND = (_FREQUENCIES >= TILT_BOTTOM_HZ) & (_FREQUENCIES < TILT_SPLIT_HZ)
_HIGH_BAND = (_FREQUENCIES >= TILT_SPLIT_HZ) & (_FREQUENCIES < TILT_TOP_HZ)


def distance(take: Contour, heard: Contour, scales: Sequence[float] = (1.0,)) -> float:
    """How far ``heard`` is from following ``take`` (mean semitones per take frame; inf if either is empty).

    A subsequence DTW: the take's contour, or at least MIN_PREFIX of it from its start, is matched against
    any stretch of ``heard`` said at up to twice or half the take's speed; the best over SHIFTS of ``heard``
    times each of ``scales`` (the same tune over a wider or narrower range).
    """
    if len(take) == 0 or len(heard) == 0:
        return float("inf")
    scaled = np.asarray(scales)[:, None] * heard[None, :]
    shifted = (scaled[:, None, :] + np.asarray(SHIFTS)[None, :, None]).reshape(-1, len(heard))  # (rows, heard)

    def step(i: int) -> npt.NDArray[np.float64]:
        capped: npt.NDArray[np.float64] = np.minimum(np.abs(shifted - take[i]), CAP)
        return capped

    def moved(cost: npt.NDArray[np.float64], frames: int) -> npt.NDArray[np.float64]:
        out = np.full_like(cost, np.inf)
        out[:, frames:] = cost[:, :-frames]
        return out

    # Each take frame is matched once. From take frame i-1 the heard contour advances one frame, or two (the
    # candidate slower); or take frames i-1 and i share one heard frame (the candidate faster), which is
    # only allowed after an advance, so a candidate is at most twice as fast as the take.
    before = np.zeros_like(shifted)  # the path may start at any heard frame
    previous_step = step(0)
    cost = previous_step.copy()
    best = float(cost.min()) if len(take) == 1 else float("inf")
    shortest = max(1, int(np.ceil(MIN_PREFIX * len(take))))
    for i in range(1, len(take)):
        current = step(i)
        cost, before = (
            current
            + np.minimum(
                np.minimum(moved(cost, 1), moved(cost, 2) + STRETCH_PENALTY),
                moved(before, 1) + previous_step + STRETCH_PENALTY,
            ),
            cost,
        )
        previous_step = current
        if i + 1 >= shortest:
            best = min(best, float(cost.min()) / (i + 1))
    return best


@dataclass(frozen=True, slots=True)
class Track:
    """One contour of each take, and how far a candidate's may be from the nearest."""

    takes: tuple[Contour, ...]
    """Each take's contour (and each heard in a room, see :func:`word_check`)."""
    limit: float
    """Mean distance per take frame (contour units) above which a candidate is not the word."""
    scales: tuple[float, ...] = (1.0,)
    """Factors the candidate's contour is tried at (see :func:`distance`)."""

    def distance(self, heard: Contour) -> float | None:
        """The candidate's distance to the nearest take; None when it has too few frames to judge.

        Takes are tried in order and the first within the limit ends the search: the rest could only be
        nearer, and the decision is the same.
        """
        if len(heard) < MIN_FRAMES:
            return None
        nearest = float("inf")
        for take in self.takes:
            nearest = min(nearest, distance(take, heard, self.scales))
            if nearest <= self.limit:
                break
        return nearest


def track(
    contours: Sequence[Contour], scales: tuple[float, ...] = (1.0,), also: Sequence[Contour] = ()
) -> Track | None:
    """The track of the takes' contours; None when fewer than two can be judged or they disagree too much.

    ``also`` are more contours of the same takes (heard in a room) that a candidate may follow; the limit
    comes from ``contours`` alone.
    """
    usable = [c for c in contours if len(c) >= MIN_FRAMES]
    if len(usable) < 2:
        return None
    worst = max(min(distance(c, o, scales) for j, o in enumerate(usable) if j != i) for i, c in enumerate(usable))
    if worst > MAX_TAKE_SPREAD:
        return None
    heard = tuple(c for c in also if len(c) >= MIN_FRAMES)
    return Track((*usable, *heard), max(LIMIT_FACTOR * worst, worst + LIMIT_MARGIN), scales)


@dataclass(frozen=True, slots=True)
class WordCheck:
    """The word's pitch and tilt tracks (either may be missing) and the audio a candidate is looked for in."""

    pitch: Track | None
    """The tune; None where the takes' pitch cannot be judged."""
    tilt: Track | None
    """The spectral tilt; None where the takes' tilt cannot be judged."""
    window_seconds: float
    """Seconds of audio a candidate is looked for in: the longest take and WINDOW_MARGIN_SECONDS."""

    def distances(self, samples: npt.ArrayLike) -> tuple[float | None, float | None]:
        """The candidate's pitch and tilt distances to the nearest takes (None: not judged)."""
        array = np.asarray(samples)
        pitch = None if self.pitch is None else self.pitch.distance(pitch_contour(array))
        tilt = None if self.tilt is None else self.tilt.distance(tilt_contour(array))
        return pitch, tilt

    def accepts(self, distances: tuple[float | None, float | None]) -> bool:
        """Whether :meth:`distances` are the word's on every contour that could be judged."""
        pitch, tilt = distances
        return (pitch is None or self.pitch is None or pitch <= self.pitch.limit) and (
            tilt is None or self.tilt is None or tilt <= self.tilt.limit
        )

    def passes(self, samples: npt.ArrayLike) -> bool:
        """Whether the candidate sounds like the word on every contour that can be judged."""
        return self.accepts(self.distances(samples))


def word_check(takes: Sequence[npt.ArrayLike]) -> WordCheck | None:
    """A check from the trimmed takes (16 kHz samples); None when neither contour can be judged.

    Each take is also heard through a room (ROOM_RT60_SECONDS, ROOM_DRR_DB): said close to the box, it
    must still be followed when the word comes from across the room, its gaps filled and its hiss smeared.
    """
    arrays = [np.asarray(t) for t in takes]
    impulse = room_impulse(ROOM_RT60_SECONDS, ROOM_DRR_DB)
    in_room = [reverberant(a, impulse) for a in arrays]
    pitch = track([pitch_contour(a) for a in arrays], PITCH_SCALES, [pitch_contour(r) for r in in_room])
    tilt = track([tilt_contour(a) for a in arrays], also=[tilt_contour(r) for r in in_room])
    if pitch is None and tilt is None:
        return None
    return WordCheck(pitch, tilt, max(len(a) for a in arrays) / MIC_RATE_HZ + WINDOW_MARGIN_SECONDS)


MAX_HELD_EMBEDDINGS = 12
"""Embeddings (80 ms each) a score over the threshold may wait for contours that pass: the matcher can
cross the threshold with half of a slowly said word still to come."""


class CheckGate:
    """Lets a matcher's score over the threshold through only when the last seconds pass the word's check.

    It keeps the latest audio beside the scores. A score that fails is held back, and the check run again on
    each later one over the threshold (the word goes on: its end may bring what passes), for at most
    MAX_HELD_EMBEDDINGS; then the crossing is rejected until the score falls under the threshold, and
    ``on_reject`` hears the last distances.
    """

    def __init__(
        self,
        check: WordCheck,
        threshold: float,
        on_reject: Callable[[tuple[float | None, float | None]], None] | None = None,
    ) -> None:
        self._check = check
        self._on_reject = on_reject
        self._threshold = threshold
        self._audio: collections.deque[npt.NDArray[np.int16]] = collections.deque()
        self._kept = 0
        self._window = int(check.window_seconds * MIC_RATE_HZ)
        self._state = "armed"
        self._held = 0
        self.last_distances: tuple[float | None, float | None] = (None, None)
        """The last candidate's pitch and tilt distances (diagnostics)."""

    def hear(self, pcm: bytes) -> None:
        """Keep the latest ``window_seconds`` of the check's audio."""
        samples = np.frombuffer(pcm, dtype="<i2")
        self._audio.append(samples)
        self._kept += len(samples)
        while self._audio and self._kept - len(self._audio[0]) >= self._window:
            self._kept -= len(self._audio.popleft())

    def judge(self, score: float) -> float:
        """The score to report for the matcher's ``score``: 0.0 while a crossing is held back or rejected."""
        if score < self._threshold:
            self._state, self._held = "armed", 0
            return score
        if self._state == "passed":
            return score
        if self._state == "rejected":
            return 0.0
        recent = np.concatenate(tuple(self._audio)) if self._audio else np.zeros(0, dtype=np.int16)
        recent = recent[-self._window :]
        self.last_distances = self._check.distances(recent)
        if self._check.accepts(self.last_distances):
            self._state = "passed"
            return score
        if self._held < MAX_HELD_EMBEDDINGS:
            self._held += 1
            return 0.0
        self._state = "rejected"
        if self._on_reject is not None:
            self._on_reject(self.last_distances)
        return 0.0

    def reset(self) -> None:
        """Forget the crossing in progress (the audio stays: it is the room's)."""
        self._state, self._held = "armed", 0
