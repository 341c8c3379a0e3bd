"""Template matching for an enrolled wake word: pure numpy over openWakeWord embeddings (96 values, 80 ms).

A user says the word a few times; each take becomes a *template*, the sequence of embeddings the shared
front end made while it was said. While listening, every new embedding extends a streaming subsequence DTW
(cosine distance, the path may start anywhere in the stream) against each template; the score is one minus
the mean distance along the best path that ends now. ``MeanPoolMatcher`` compares the mean of the last
embeddings (a template's length) with each template's mean. Both subtract the embeddings' everyday mean
first; 1.0 is an exact repeat, about 0.5 (DTW) or 0.8 (mean) unrelated speech. The word fires when the best
template's score reaches its threshold, which enrolment calibrates from the takes' leave-one-out scores and
from negative audio (:func:`calibrate_threshold`).

bench.enroll found mean pooling better (more words heard under a TV at the same near-miss rate), so it is
the default; it ignores order within the word, so 乡小乡小 would pass for 小乡小乡, which DTW rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import EnrollmentError as EnrollmentError  # the core's typed error, re-exported

Embeddings = npt.NDArray[np.float32]
"""A (frames, 96) array of embeddings, oldest first."""

_EPS = 1e-8


def normalized(frames: npt.ArrayLike, center: npt.ArrayLike | None = None) -> Embeddings:
    """Subtract ``center`` (the embeddings' mean over everyday audio) and scale each to unit length.

    Raw embeddings share a large common part (any two have a cosine near 0.99); without it a cosine
    tells words apart.
    """
    array = np.asarray(frames, dtype=np.float32)
    if center is not None:
        array = array - np.asarray(center, dtype=np.float32).reshape(1, -1)
    if array.ndim != 2 or len(array) == 0:
        raise EnrollmentError(f"expected a non-empty (frames, size) array, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    scaled: Embeddings = (array / np.maximum(norms, _EPS)).astype(np.float32)
    return scaled


class Matcher(Protocol):
    """Scores a stream of embeddings against an enrolled word's templates."""

    def push(self, embedding: npt.ArrayLike) -> float:
        """Add the next embedding; return the word's score (0.0 to 1.0) for a word ending here."""
        ...

    def reset(self) -> None:
        """Forget the embeddings heard."""
        ...


class DtwMatcher:
    """Streaming subsequence DTW with cosine distance, one cost column per template.

    ``band`` bounds how far the path may stretch: a step that stays on one template frame (the speaker
    slower than the take) costs ``stretch_penalty`` on top of its distance, which keeps a long vowel from
    matching a whole template. Scores are 1 - mean distance along the path, clipped to 0..1.
    """

    def __init__(
        self,
        templates: Sequence[npt.ArrayLike],
        *,
        center: npt.ArrayLike | None = None,
        stretch_penalty: float = 0.05,
    ) -> None:
        if not templates:
            raise EnrollmentError("no templates")
        self._center = None if center is None else np.asarray(center, dtype=np.float32).reshape(-1)
        self._templates = [normalized(t, self._center) for t in templates]
        self._penalty = stretch_penalty
        self._cost: list[npt.NDArray[np.float64]] = []
        self._length: list[npt.NDArray[np.float64]] = []
        self.reset()

    def reset(self) -> None:
        """Forget every partial path."""
        self._cost = [np.full(len(t), np.inf) for t in self._templates]
        self._length = [np.zeros(len(t)) for t in self._templates]

    def push(self, embedding: npt.ArrayLike) -> float:
        """Extend every path by one embedding; return the best template's score for a word ending here."""
        x = normalized(np.asarray(embedding, dtype=np.float32).reshape(1, -1), self._center)[0]
        best = 0.0
        for i, template in enumerate(self._templates):
            distance = 1.0 - (template @ x).astype(np.float64)
            cost, length = self._step(distance, self._cost[i], self._length[i])
            self._cost[i], self._length[i] = cost, length
            best = max(best, 1.0 - cost[-1] / length[-1] if np.isfinite(cost[-1]) else 0.0)
        return min(1.0, max(0.0, best))

    def _step(
        self, distance: npt.NDArray[np.float64], prev: npt.NDArray[np.float64], prev_len: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        n = len(distance)
        cost = np.empty(n)
        length = np.empty(n)
        cost[0], length[0] = distance[0], 1.0  # a path may start at any embedding
        # Moves into frame j: from (j-1, previous embedding) diagonal, (j, previous) stay, (j-1, now) skip.
        diag_cost = prev[:-1] + distance[1:]
        diag_len = prev_len[:-1] + 1.0
        stay_cost = prev[1:] + distance[1:] + self._penalty
        stay_len = prev_len[1:] + 1.0
        use_stay = stay_cost / np.maximum(stay_len, 1.0) < diag_cost / np.maximum(diag_len, 1.0)
        best_cost = np.where(use_stay, stay_cost, diag_cost)
        best_len = np.where(use_stay, stay_len, diag_len)
        for j in range(1, n):  # the skip move chains along the column, so it needs a loop
            skip_cost = cost[j - 1] + distance[j] + self._penalty
            skip_len = length[j - 1] + 1.0
            c, m = best_cost[j - 1], best_len[j - 1]
            if not np.isfinite(c) or skip_cost / skip_len < c / m:
                c, m = skip_cost, skip_len
            cost[j], length[j] = c, m
        return cost, length


class MeanPoolMatcher:
    """Cosine of the mean of the last embeddings (a template's length) with each template's mean."""

    def __init__(self, templates: Sequence[npt.ArrayLike], *, center: npt.ArrayLike | None = None) -> None:
        if not templates:
            raise EnrollmentError("no templates")
        self._center = None if center is None else np.asarray(center, dtype=np.float32).reshape(-1)
        self._means = [normalized(np.mean(normalized(t, self._center), axis=0, keepdims=True))[0] for t in templates]
        self._sizes = [len(np.asarray(t)) for t in templates]
        self._window = max(self._sizes)
        self._recent: list[npt.NDArray[np.float32]] = []

    def reset(self) -> None:
        """Forget the embeddings heard."""
        self._recent = []

    def push(self, embedding: npt.ArrayLike) -> float:
        """Add one embedding; return the best template's cosine (0.0 to 1.0) over the last window."""
        self._recent.append(normalized(np.asarray(embedding, dtype=np.float32).reshape(1, -1), self._center)[0])
        del self._recent[: -self._window]
        best = 0.0
        for mean, size in zip(self._means, self._sizes, strict=True):
            pooled = np.mean(self._recent[-size:], axis=0)  # fewer than size at the start: what there is
            best = max(best, float(pooled @ mean) / max(float(np.linalg.norm(pooled)), _EPS))
        return min(1.0, max(0.0, best))


def peak_score(matcher: Matcher, stream: npt.ArrayLike) -> float:
    """The highest score a fresh matcher gives over a stream of embeddings."""
    matcher.reset()
    return max((matcher.push(row) for row in np.asarray(stream, dtype=np.float32)), default=0.0)


@dataclass(frozen=True, slots=True)
class Calibration:
    """How an enrolled word's threshold was chosen."""

    threshold: float
    """Score (0.0 to 1.0) at or above which the word fires."""
    positive_scores: tuple[float, ...]
    """Each take's peak score against the other takes (leave-one-out)."""
    negative_peak: float
    """Highest score reached on the negative audio."""


MatcherKind = Literal["mean", "dtw"]
"""How the stream is compared with the templates."""
DEFAULT_MATCHER: MatcherKind = "mean"
"""The variant bench.enroll found best (centred mean pooling)."""
DEFAULT_DROPS: dict[str, float] = {"mean": 0.12, "dtw": 0.2}
"""Default calibration ``drop`` for each variant (their scores spread differently)."""


def make_matcher(kind: str, templates: Sequence[npt.ArrayLike], *, center: npt.ArrayLike | None = None) -> Matcher:
    """A matcher of the given kind over the templates."""
    if kind == "mean":
        return MeanPoolMatcher(templates, center=center)
    if kind == "dtw":
        return DtwMatcher(templates, center=center)
    raise EnrollmentError(f"unknown matcher {kind!r} (mean or dtw)")


def leave_one_out(
    templates: Sequence[npt.ArrayLike],
    streams: Sequence[npt.ArrayLike],
    *,
    center: npt.ArrayLike | None = None,
    kind: str = "dtw",
) -> list[float]:
    """Each take's peak score (its stream) against a matcher built on all the other takes."""
    if len(templates) < 2:
        raise EnrollmentError("leave-one-out needs at least two takes")
    return [
        peak_score(make_matcher(kind, [t for j, t in enumerate(templates) if j != i], center=center), stream)
        for i, stream in enumerate(streams)
    ]


def calibrate_threshold(
    positive_scores: Sequence[float],
    negative_peak: float,
    *,
    drop: float = DEFAULT_DROPS[DEFAULT_MATCHER],
    margin: float = 0.03,
    floor: float = 0.6,
) -> Calibration:
    """A threshold from the takes' leave-one-out scores, kept above the negative audio's peak.

    The takes, said one after the other, match each other better (0.9 and up) than the word said later in
    a noisy room, so the threshold sits ``drop`` under their median; never within ``margin`` of the
    negatives' peak (lest everyday speech fire it), never under ``floor``, and never above the worst take.
    """
    if not positive_scores:
        raise EnrollmentError("no positive scores to calibrate from")
    median = float(np.median(np.asarray(positive_scores)))
    threshold = max(median - drop, negative_peak + margin, floor)
    threshold = min(threshold, min(positive_scores))
    return Calibration(round(threshold, 4), tuple(float(s) for s in positive_scores), float(negative_peak))
