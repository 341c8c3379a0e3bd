"""Enrolled wake words on disk: check and trim takes, turn them into templates, calibrate, store, load.

A word lives in ``<enrolled_dir>/<NAME>/``: ``take_N.wav`` (the trimmed take), ``take_N.npy`` (its
embeddings) and ``word.json`` (threshold and how it was calibrated). The word's contour check
(:mod:`.contours`) is made from the takes' audio when the word is loaded, so words enrolled before it
existed get it too. Every file is written to a temporary
name and renamed into place, and ``word.json`` goes last, so a full disk or a crash never leaves a word
that loads half-written. Enrolling a NAME again adds takes to it and recalibrates.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import MIC_RATE_HZ, AudioChunk, AudioFormatError, read_wav, write_wav
from ..files import write_atomic
from ..recordings import read_recording
from .contours import WordCheck, word_check
from .enrolled import (
    DEFAULT_DROPS,
    DEFAULT_MATCHER,
    Calibration,
    EnrollmentError,
    calibrate_threshold,
    leave_one_out,
    make_matcher,
    peak_score,
)

_LOGGER = logging.getLogger(__name__)

MIN_TAKES = 3
"""Takes a word needs in all (with the ones enrolled before)."""
MIN_SPEECH_SECONDS = 0.3
"""Shortest speech a take may hold."""
MAX_SPEECH_SECONDS = 3.0
"""Longest speech a take may hold (a wake word is a couple of words)."""
MAX_TAKE_FILE_SECONDS = 120.0
"""Longest take file read (seconds): a longer one is refused before it is decoded, not a take anyway."""
MIN_SNR_DB = 10.0
"""Least speech-to-background level difference, in decibels."""
MAX_CLIPPED_FRACTION = 0.001
"""Largest share of samples at full scale before a take counts as clipped."""
MIN_LIKENESS = 0.8
"""Least leave-one-out score (0.0 to 1.0) a take needs against the others: under it, it is another word."""
_MARGIN_SECONDS = 0.3
"""Audio kept either side of the speech the VAD found."""
_EDGE_EMBEDDINGS = 3
"""Embeddings dropped at each end of a take: they mostly hear the margin, not the word."""
_SPEECH_PROBABILITY = 0.5
_VAD_FRAME = 512
_NAME = re.compile(r"^[^\s/\\.][^/\\]{0,63}$")


class TakeError(EnrollmentError):
    """One take that cannot be used, and why."""

    def __init__(self, take: str, reason: str) -> None:
        super().__init__(f"{take}: {reason}")
        self.take = take
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EnrolledWord:
    """A word as the matcher needs it."""

    name: str
    """The name the user gave it, reported in hits."""
    templates: tuple[npt.NDArray[np.float32], ...]
    """One (frames, 96) embedding array per take."""
    center: npt.NDArray[np.float32]
    """Mean embedding of everyday audio, subtracted before comparing."""
    threshold: float
    """Calibrated score (0.0 to 1.0) at or above which the word fires."""
    matcher: str = DEFAULT_MATCHER
    """The matcher the threshold was calibrated for (mean or dtw)."""
    check: WordCheck | None = None
    """The check of a candidate's pitch and tilt contours against the takes'; None where the takes give none."""


@dataclass(frozen=True, slots=True)
class EnrolResult:
    """What an enrolment did."""

    word: EnrolledWord
    calibration: Calibration
    added: tuple[str, ...]
    """Takes added this time (source names)."""
    total_takes: int


Embedder = Callable[[bytes], npt.NDArray[np.float32]]
"""Whole-recording PCM (16 kHz int16) → (frames, 96) embeddings from a fresh front end."""
SpeechFrames = Callable[[bytes], list[float]]
"""PCM → speech probability per 32 ms frame (512 samples)."""


def check_name(name: str, reserved: Sequence[str]) -> None:
    """Refuse names that are not one path segment or that clash with a bundled word."""
    if not _NAME.match(name):
        raise EnrollmentError(f"{name!r} is not a usable word name (no slashes, no leading dot or space)")
    if name in reserved:
        raise EnrollmentError(f"{name!r} is a bundled wake word; choose another name")


def read_take(path: Path) -> AudioChunk:
    """A take from an audio file, or a :class:`TakeError` naming it.

    Any rate, channel count or sample format is converted to 16 kHz mono: a phone's 48 kHz stereo will do.
    """
    try:
        return read_recording(path, MIC_RATE_HZ, max_seconds=MAX_TAKE_FILE_SECONDS)
    except AudioFormatError as err:
        raise TakeError(path.name, str(err).removeprefix(f"{path}: ")) from err


def trim_take(label: str, audio: AudioChunk, speech_frames: SpeechFrames) -> AudioChunk:
    """Check one take and cut it to its speech plus margins; raise :class:`TakeError` saying why not."""
    samples = np.frombuffer(audio.pcm, dtype="<i2")
    if len(samples) == 0:
        raise TakeError(label, "empty: it holds no audio")
    if np.max(np.abs(samples.astype(np.int32))) < 33:  # under -60 dBFS everywhere
        raise TakeError(label, "silent: nothing was heard")
    clipped = float(np.mean(np.abs(samples.astype(np.int32)) >= 32_700))
    if clipped > MAX_CLIPPED_FRACTION:
        raise TakeError(label, f"clipped ({clipped:.1%} of samples at full scale): speak further from the mic")
    probabilities = np.asarray(speech_frames(audio.pcm))
    speech = np.flatnonzero(probabilities >= _SPEECH_PROBABILITY)
    if len(speech) == 0:
        raise TakeError(label, "no speech heard in it")
    first, last = int(speech[0]) * _VAD_FRAME, (int(speech[-1]) + 1) * _VAD_FRAME
    seconds = (last - first) / MIC_RATE_HZ
    if seconds < MIN_SPEECH_SECONDS:
        raise TakeError(label, f"too short ({seconds:.2f} s of speech; at least {MIN_SPEECH_SECONDS} s)")
    if seconds > MAX_SPEECH_SECONDS:
        raise TakeError(
            label, f"too long ({seconds:.1f} s of speech; say only the word, at most {MAX_SPEECH_SECONDS:.0f} s)"
        )
    _check_snr(label, samples, first, last)
    margin = int(_MARGIN_SECONDS * MIC_RATE_HZ)
    cut = samples[max(0, first - margin) : min(len(samples), last + margin)]
    return AudioChunk(cut.astype("<i2").tobytes(), MIC_RATE_HZ)


def _check_snr(label: str, samples: npt.NDArray[np.int16], first: int, last: int) -> None:
    background = np.concatenate((samples[:first], samples[last:])).astype(np.float64)
    if len(background) < MIC_RATE_HZ // 10:
        return  # no room tone recorded around the word to judge by
    speech_power = float(np.mean(samples[first:last].astype(np.float64) ** 2))
    noise_power = max(float(np.mean(background**2)), 1.0)
    snr = 10 * np.log10(max(speech_power, 1.0) / noise_power)
    if snr < MIN_SNR_DB:
        raise TakeError(label, f"too noisy ({snr:.0f} dB above the background; at least {MIN_SNR_DB:.0f} dB)")


def template_of(embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The embeddings of a trimmed take that hear the word, not the margins."""
    if len(embeddings) > 2 * _EDGE_EMBEDDINGS + 2:
        return embeddings[_EDGE_EMBEDDINGS : len(embeddings) - _EDGE_EMBEDDINGS]
    return embeddings


def negatives_dir() -> Path:
    """The negative audio shipped with the package."""
    return Path(__file__).parent / "data" / "negatives"


def negative_streams(embed: Embedder) -> list[npt.NDArray[np.float32]]:
    """Embeddings of every shipped negative recording."""
    return [embed(read_wav(path).pcm) for path in sorted(negatives_dir().glob("*.wav"))]


def _write_take(path: Path, audio: AudioChunk) -> None:
    write_wav(path, audio)


def _save_array(path: Path, array: npt.NDArray[np.float32]) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("wb") as file:
            np.save(file, array)

    write_atomic(path, write)


class WordStore:
    """The enrolled words under one folder."""

    def __init__(self, root: Path, *, reserved: Sequence[str] = ()) -> None:
        self.root = root.expanduser()
        self._reserved = tuple(reserved)

    def check_name(self, name: str) -> None:
        """Refuse a name that cannot be a word here (before recording takes for it)."""
        check_name(name, self._reserved)

    def names(self) -> list[str]:
        """Words enrolled, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/word.json"))

    def info(self, name: str) -> dict[str, Any]:
        """The word's ``word.json``."""
        path = self.root / name / "word.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise EnrollmentError(f"no enrolled wake word {name!r} in {self.root}") from err
        except (OSError, ValueError) as err:
            raise EnrollmentError(f"enrolled wake word {name!r}: cannot read {path} ({err})") from err
        return data

    def load(self, name: str) -> EnrolledWord:
        """The word's templates and threshold."""
        data = self.info(name)
        folder = self.root / name
        try:
            templates = tuple(template_of(np.load(folder / f"{take}.npy").astype(np.float32)) for take in data["takes"])
            center = np.asarray(data["center"], dtype=np.float32)
            threshold = float(data["threshold"])
            matcher = str(data.get("matcher", "dtw"))
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise EnrollmentError(
                f"enrolled wake word {name!r} in {folder} is damaged ({err}); enrol it again"
            ) from err
        return EnrolledWord(name, templates, center, threshold, matcher, _check_of(folder, data["takes"]))

    def remove(self, name: str) -> None:
        """Delete a word and its takes."""
        if name not in self.names():
            raise EnrollmentError(f"no enrolled wake word {name!r} in {self.root}")
        shutil.rmtree(self.root / name)

    def enrol(
        self,
        name: str,
        takes: Sequence[tuple[str, AudioChunk]],
        *,
        embed: Embedder,
        speech_frames: SpeechFrames,
        matcher: str = DEFAULT_MATCHER,
        drop: float | None = None,
    ) -> EnrolResult:
        """Check, trim and add ``takes`` (label, audio) to ``name``; recalibrate; store it all atomically.

        ``matcher`` and ``drop`` (see :func:`.enrolled.calibrate_threshold`) are for bench.enroll.
        """
        check_name(name, self._reserved)
        folder = self.root / name
        previous: list[str] = self.info(name)["takes"] if name in self.names() else []
        trimmed = [(label, trim_take(label, audio, speech_frames)) for label, audio in takes]
        if len(previous) + len(trimmed) < MIN_TAKES:
            raise EnrollmentError(
                f"{name!r} needs at least {MIN_TAKES} takes, got {len(previous) + len(trimmed)}: say it 3 to 5 times"
            )
        old_streams = [np.load(folder / f"{take}.npy").astype(np.float32) for take in previous]
        new_streams = [embed(audio.pcm) for _, audio in trimmed]
        streams = old_streams + new_streams
        templates = [template_of(s) for s in streams]
        negatives = negative_streams(embed)
        center = np.mean(np.concatenate(negatives), axis=0).astype(np.float32)
        # Likeness is judged by DTW, which also sees order; the threshold by the matcher that will listen.
        likeness = leave_one_out(templates, streams, center=center, kind="dtw")
        for (label, _), score in zip(trimmed, likeness[len(previous) :], strict=True):
            if score < MIN_LIKENESS:
                raise TakeError(label, f"too unlike the other takes (score {score:.2f}, at least {MIN_LIKENESS})")
        scores = likeness if matcher == "dtw" else leave_one_out(templates, streams, center=center, kind=matcher)
        listener = make_matcher(matcher, templates, center=center)
        negative_peak = max(peak_score(listener, stream) for stream in negatives)
        calibration = calibrate_threshold(scores, negative_peak, drop=DEFAULT_DROPS[matcher] if drop is None else drop)
        created = not folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        ids = _next_ids(previous, len(trimmed))
        written: list[Path] = []
        record = {
            "name": name,
            "takes": previous + ids,
            "threshold": calibration.threshold,
            "matcher": matcher,
            "leave_one_out": [round(s, 4) for s in calibration.positive_scores],
            "negative_peak": round(calibration.negative_peak, 4),
            "center": [round(float(v), 6) for v in center],
        }
        text = json.dumps(record, ensure_ascii=False, indent=1)
        try:
            for take, (_, audio), stream in zip(ids, trimmed, new_streams, strict=True):
                written.append(folder / f"{take}.wav")
                write_atomic(written[-1], functools.partial(_write_take, audio=audio))
                written.append(folder / f"{take}.npy")
                _save_array(written[-1], stream)
            write_atomic(folder / "word.json", lambda path: path.write_text(text, encoding="utf-8"))
        except BaseException:
            # word.json was not replaced, so the word is as it was: drop the takes it does not list.
            for path in written:
                path.unlink(missing_ok=True)
            if created:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        check = _check_of(folder, previous + ids)
        word = EnrolledWord(name, tuple(templates), center, calibration.threshold, matcher, check)
        return EnrolResult(word, calibration, tuple(label for label, _ in trimmed), len(streams))


def _check_of(folder: Path, takes: Sequence[str]) -> WordCheck | None:
    """The contour check from the stored takes; None, with a warning, when one cannot be read."""
    try:
        audio = [np.frombuffer(read_take(folder / f"{take}.wav").pcm, dtype="<i2") for take in takes]
    except TakeError as err:
        _LOGGER.warning("enrolled wake word in %s: no contour check, a take cannot be read (%s)", folder, err)
        return None
    return word_check(audio)


def _next_ids(previous: Sequence[str], count: int) -> list[str]:
    used = {int(t.removeprefix("take_")) for t in previous if t.removeprefix("take_").isdigit()}
    start = max(used, default=0) + 1
    return [f"take_{start + i}" for i in range(count)]
