"""Enrolled wake words on the enroll set: each speaker enrols, then every clip is scored.

    python -m bench.enroll SET_DIR [--drops 0.12,0.2] [--variant mean|dtw] [--no-contours] [--louder-tv DB]
                           [--retune 0.7,1.35] [--rooms 0.3:6,0.5:0]
                           [--adversarial 1,0.9] [--lda 0,2] [--json out.json]

``SET_DIR`` is what ``python -m bench.make_sets enroll DIR`` writes: ``speakers.json`` (each speaker's enrol
takes) and ``truth.jsonl`` (kinds positive, near_miss, other_speaker, negative). Each speaker's takes go
through the real enrolment (VAD trim, checks, calibration on the shipped negatives) into a temporary store;
the clips' embeddings are computed once and scored by that speaker's matcher, a hit being a score at or
over the threshold (refractory 2 s) that the word's contour check lets through, as the detector does
(``--no-contours``: the template match alone); ``--drops`` compares calibrations on the same scores. Figures:
detected % (quiet, TV 15 dB below) for the enrolled speaker, near-miss acceptance % (the homophone 小香小香
apart), false accepts per hour on the negatives, and the share of non-enrolled speakers' words accepted.
``--adversarial`` and ``--lda`` add the figures of two uses of near misses generated from the word
(bench/adversarial.py): a threshold raised over them, or an LDA second stage; neither shipped
(docs/audio.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio import read_wav
from assistant.listen import embed_recording, speech_frames
from assistant.listen.contours import CheckGate, WordCheck
from assistant.listen.enrolled import (
    DEFAULT_DROPS,
    DEFAULT_MATCHER,
    Calibration,
    Matcher,
    calibrate_threshold,
    make_matcher,
)
from assistant.listen.enrolment import WordStore, negative_streams, read_take
from assistant.listen.oww import MEL_STEP_SAMPLES
from assistant.listen.reverb import reverberant, room_impulse

from . import texts

HOMOPHONE = "小香小香"
"""Said by espeak-ng exactly like the word: reported apart, no acoustic detector can reject it."""
ADVERSARIAL_MARGIN = 0.01
"""How far over the adversarial negatives' peak a raised threshold sits (score units)."""
_REFRACTORY_FRAMES = 25
"""2 s of 80 ms embeddings."""
_EMBEDDING_BYTES = 2 * MEL_STEP_SAMPLES
"""The 16-bit audio of one embedding (80 ms): embedding i of a recording ends with its i-th such block."""


def hits(series: np.ndarray, threshold: float) -> int:
    """Detections in a score series (one per embedding), with the refractory period."""
    count, blocked_until = 0, -1
    for i in np.flatnonzero(series >= threshold).tolist():
        if i >= blocked_until:
            count += 1
            blocked_until = i + _REFRACTORY_FRAMES
    return count


def gated(series: np.ndarray, pcm: bytes, check: WordCheck | None, threshold: float) -> np.ndarray:
    """The scores the detector sees: ``series`` through the word's check, each 80 ms of audio heard first."""
    if check is None or not (series >= threshold).any():
        return series  # the gate only ever changes scores over the threshold
    gate = CheckGate(check, threshold)
    out = []
    for i, score in enumerate(series.tolist()):
        gate.hear(pcm[i * _EMBEDDING_BYTES : (i + 1) * _EMBEDDING_BYTES])
        out.append(gate.judge(score))
    return np.asarray(out)


def series_of(matcher: Matcher, stream: np.ndarray) -> np.ndarray:
    """The matcher's score for every embedding of a stream (fresh matcher)."""
    matcher.reset()
    return np.asarray([matcher.push(row) for row in stream])


def adversarial_streams(word: str) -> tuple[list[np.ndarray], dict[str, float]]:
    """Embeddings of the generated adversarial negatives of ``word`` and what making them cost (s)."""
    from . import adversarial

    wall, cpu = time.perf_counter(), time.process_time()
    audio = [samples for _, _, _, samples in adversarial.clips(word)]
    synth_s = time.perf_counter() - wall
    streams = [embed_recording(np.clip(a, -32768, 32767).astype("<i2").tobytes()) for a in audio]
    cost = {
        "clips": len(audio),
        "synth_wall_s": round(synth_s, 1),
        "total_wall_s": round(time.perf_counter() - wall, 1),
        "python_cpu_s": round(time.process_time() - cpu, 1),
    }
    return streams, cost


def evaluate(
    root: Path,
    *,
    drops: Sequence[float],
    variant: str,
    quantiles: Sequence[float] = (),
    slacks: Sequence[float] = (),
    contours: bool = True,
    louder_tv_db: float | None = None,
    retunes: Sequence[float] = (),
    rooms: Sequence[tuple[float, float]] = (),
) -> list[dict[str, Any]]:
    """Enrol every speaker of the set, score every clip once, and give the figures for each ``drop``.

    With ``louder_tv_db``, every quiet positive is also scored with the shipped TV audio mixed in that many
    decibels under it (condition ``tv<DB>_shipped``): a room louder than the set's. With ``retunes``, every
    quiet positive is also scored with its pitch range scaled by each factor (condition ``retuned<K>``,
    :mod:`bench.retune`): the word called with more melody, or muttered. With ``rooms`` (reverberation time
    in s, direct-to-reverberant ratio in dB), every quiet positive is also scored heard through each room
    (condition ``room<RT60>s<DRR>dB``; an impulse response other than the one the contour check hears its
    takes through): the word called from across a room.

    With ``quantiles``, also for each: the threshold raised to that quantile of the speaker's peak scores on
    generated adversarial negatives plus a margin, never above the takes' worst leave-one-out score.
    With ``slacks``, also a second stage for each: a detection counts only where the window's projection on
    an LDA direction (takes vs adversarial and shipped negatives) is at least the takes' lowest projection
    minus ``slack`` standard deviations of theirs.
    """
    speakers: dict[str, Any] = json.loads((root / "speakers.json").read_text(encoding="utf-8"))
    truth = [json.loads(line) for line in (root / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    audio = {t["file"]: read_wav(root / t["file"]).pcm for t in truth}
    quiet = [t for t in truth if t["kind"] == "positive" and t["condition"] == "quiet"]

    def add_variant(condition: str, pcms: Iterable[bytes]) -> None:
        """Each quiet positive again, as ``pcms`` gives it in order, scored under ``condition``."""
        for t, pcm in zip(quiet, pcms, strict=True):
            truth.append({**t, "file": f"{t['file']}#{condition}", "condition": condition})
            audio[truth[-1]["file"]] = pcm

    if louder_tv_db is not None:
        add_variant(f"tv{louder_tv_db:g}_shipped", _with_tv([audio[t["file"]] for t in quiet], louder_tv_db))
    if retunes:
        from .retune import retuned

        for k in retunes:
            add_variant(f"retuned{k:g}", [retuned(audio[t["file"]], k) for t in quiet])
    for n, (rt60, drr) in enumerate(rooms):
        impulse = room_impulse(rt60, drr, seed=100 + n)
        heard = (reverberant(np.frombuffer(audio[t["file"]], dtype="<i2"), impulse) for t in quiet)
        add_variant(
            f"room{rt60:g}s{drr:g}dB",
            [np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes() for samples in heard],
        )
    streams = {f: embed_recording(pcm) for f, pcm in audio.items()}
    checks: dict[str, WordCheck | None] = {}
    negatives = [t for t in truth if t["kind"] == "negative"]
    negative_hours = sum(float(t["seconds"]) for t in negatives) / 3600
    scored: list[tuple[str, Calibration, dict[str, np.ndarray]]] = []
    adversarial_peaks: dict[str, np.ndarray] = {}
    cost: dict[str, float] = {}
    adv_streams: list[np.ndarray] = []
    stages: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    if quantiles or slacks:
        adv_streams, cost = adversarial_streams(texts.ENROLL_WORD)
    shipped = negative_streams(embed_recording) if slacks else []
    with tempfile.TemporaryDirectory() as folder:
        store = WordStore(Path(folder))
        for speaker, info in speakers.items():
            takes = [(Path(f).name, read_take(root / f)) for f in info["enroll"]]
            result = store.enrol(speaker, takes, embed=embed_recording, speech_frames=speech_frames, matcher=variant)
            matcher = make_matcher(variant, result.word.templates, center=result.word.center)
            calibration = result.calibration
            checks[speaker] = result.word.check if contours else None
            scored.append((speaker, calibration, {f: series_of(matcher, e) for f, e in streams.items()}))
            adversarial_peaks[speaker] = np.asarray([series_of(matcher, e).max() for e in adv_streams])
            if slacks:
                take_streams = [embed_recording(audio.pcm) for _, audio in takes]
                take_streams += [embed_recording(pcm) for pcm in _with_tv([audio.pcm for _, audio in takes])]
                stages[speaker] = _second_stage(
                    matcher, result.word.templates, result.word.center, take_streams, adv_streams + shipped, streams
                )
    heard = (audio, checks)
    out = [
        _figures(speakers, truth, scored, negatives, negative_hours, drop, variant, None, None, heard) for drop in drops
    ]
    for q in quantiles:
        for drop in drops:
            raised = {
                speaker: (
                    float(np.quantile(adversarial_peaks[speaker], q)) + ADVERSARIAL_MARGIN,
                    min(c.positive_scores),
                )
                for speaker, c, _ in scored
            }
            figures = _figures(speakers, truth, scored, negatives, negative_hours, drop, variant, raised, None, heard)
            figures["adversarial_quantile"] = q
            figures["adversarial_cost"] = cost
            out.append(figures)
    for slack in slacks:
        for drop in drops:
            gates = {}
            for speaker, (positive, projections) in stages.items():
                limit = float(positive.min() - slack * positive.std())
                gates[speaker] = {f: projections[f] >= limit for f in projections}
            figures = _figures(speakers, truth, scored, negatives, negative_hours, drop, variant, None, gates, heard)
            figures["lda_slack"] = slack
            figures["adversarial_cost"] = cost
            out.append(figures)
    return out


def _with_tv(takes: Sequence[bytes], snr_db: float = 15.0) -> list[bytes]:
    """Each take with shipped TV audio (a different recording each) mixed in ``snr_db`` under it."""
    from assistant.listen.enrolment import negatives_dir

    from .synth import active_rms

    tv = [read_wav(path).pcm for path in sorted(negatives_dir().glob("tv_*.wav"))]
    out = []
    for i, pcm in enumerate(takes):
        speech = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        noise = np.frombuffer(tv[i % len(tv)], dtype="<i2").astype(np.float64)
        noise = np.resize(noise[len(speech) * (i // len(tv)) :], len(speech))
        gain = active_rms(speech) / max(active_rms(noise), 1.0) / 10 ** (snr_db / 20)
        out.append(np.clip(speech + gain * noise, -32768, 32767).astype("<i2").tobytes())
    return out


def _top_frames(series: np.ndarray, within: float = 0.02) -> np.ndarray:
    return np.flatnonzero(series >= series.max() - within)


def _second_stage(
    matcher: Matcher,
    templates: Sequence[np.ndarray],
    center: np.ndarray,
    take_streams: Sequence[np.ndarray],
    negative_streams_: Sequence[np.ndarray],
    clips: dict[str, np.ndarray],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An LDA direction from the takes' and the negatives' best-matching windows; every clip's projections."""
    from .adversarial import lda_direction, window_features

    length = int(np.median([len(t) for t in templates]))
    center = np.asarray(center)

    def best_windows(streams: Sequence[np.ndarray]) -> np.ndarray:
        return np.vstack([window_features(s, center, length)[_top_frames(series_of(matcher, s))] for s in streams])

    positive, negative = best_windows(take_streams), best_windows(negative_streams_)
    w = lda_direction(positive, negative)
    return positive @ w, {f: window_features(e, center, length) @ w for f, e in clips.items()}


def _figures(
    speakers: dict[str, Any],
    truth: list[dict[str, Any]],
    scored: list[tuple[str, Calibration, dict[str, np.ndarray]]],
    negatives: list[dict[str, Any]],
    negative_hours: float,
    drop: float,
    variant: str,
    raised: dict[str, tuple[float, float]] | None,
    gates: dict[str, dict[str, np.ndarray]] | None = None,
    heard: tuple[dict[str, bytes], dict[str, WordCheck | None]] | None = None,
) -> dict[str, Any]:
    tallies: dict[str, list[int]] = {}

    def tally(key: str, accepted: bool) -> None:
        tallies.setdefault(key, [0, 0])
        tallies[key][0] += int(accepted)
        tallies[key][1] += 1

    false_accepts = 0
    thresholds: dict[str, float] = {}
    for speaker, calibration, series in scored:
        threshold = calibrate_threshold(calibration.positive_scores, calibration.negative_peak, drop=drop).threshold
        if raised is not None:
            floor, ceiling = raised[speaker]
            threshold = max(threshold, min(floor, ceiling))
        if gates is not None:
            series = {f: np.where(gates[speaker][f], s, 0.0) for f, s in series.items()}
        if heard is not None:
            audio, checks = heard
            series = {f: gated(s, audio[f], checks[speaker], threshold) for f, s in series.items()}
        thresholds[speaker] = threshold
        for t in truth:
            accepted = hits(series[t["file"]], threshold) > 0
            if t["kind"] == "positive" and t["speaker"] == speaker:
                tally(f"positive/{t['condition']}", accepted)
            elif t["kind"] == "near_miss" and t["speaker"] == speaker:
                tally("homophone 小香小香" if t["text"] == HOMOPHONE else "near_miss (all others)", accepted)
                tally(f"near_miss/{t['text']}", accepted)
            elif t["kind"] == "other_speaker":
                tally(f"other_speaker/{t['condition']}", accepted)
        false_accepts += sum(hits(series[t["file"]], threshold) for t in negatives)
    return {
        "variant": variant,
        "drop": drop,
        "contours": heard is not None and any(check is not None for check in heard[1].values()),
        "percent_accepted": {key: round(100 * a / n, 1) for key, (a, n) in tallies.items()},
        "counts": {key: f"{a}/{n}" for key, (a, n) in tallies.items()},
        "false_accepts_per_hour": round(false_accepts / (negative_hours * len(speakers)), 2),
        "negative_hours": round(negative_hours * len(speakers), 3),
        "thresholds": thresholds,
    }


def _rooms(text: str) -> list[tuple[float, float]]:
    """``RT60:DRR,...`` (seconds, decibels) as numbers."""
    rooms = []
    for room in text.split(","):
        try:
            rt60, drr = (float(part) for part in room.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{room!r} is not RT60:DRR, e.g. 0.5:0") from None
        if not 0 < rt60 <= 3:
            raise argparse.ArgumentTypeError(f"{room!r}: the reverberation time must be over 0 and at most 3 s")
        rooms.append((rt60, drr))
    return rooms


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.enroll", description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", type=Path)
    parser.add_argument(
        "--drops", help="comma-separated: threshold this far under the takes' median score (default: the variant's)"
    )
    parser.add_argument("--variant", choices=("dtw", "mean"), default=DEFAULT_MATCHER)
    parser.add_argument(
        "--adversarial", help="comma-separated quantiles of the adversarial negatives' peaks to raise thresholds to"
    )
    parser.add_argument("--lda", help="comma-separated slacks (std) for the LDA second stage")
    parser.add_argument("--no-contours", action="store_true", help="the template match alone, without the check")
    parser.add_argument("--louder-tv", type=float, metavar="DB", help="also the quiet positives with a TV DB under")
    parser.add_argument(
        "--retune", metavar="K,...", help="also the quiet positives with their pitch range scaled by each K"
    )
    parser.add_argument(
        "--rooms",
        type=_rooms,
        default=(),
        metavar="RT60:DRR,...",
        help="also the quiet positives heard in each room (s, dB), e.g. 0.5:0",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    drops = [float(d) for d in args.drops.split(",")] if args.drops else [DEFAULT_DROPS[args.variant]]
    quantiles = [float(q) for q in args.adversarial.split(",")] if args.adversarial else []
    slacks = [float(q) for q in args.lda.split(",")] if args.lda else []
    figures = evaluate(
        args.set_dir,
        drops=drops,
        variant=args.variant,
        quantiles=quantiles,
        slacks=slacks,
        contours=not args.no_contours,
        louder_tv_db=args.louder_tv,
        retunes=[float(k) for k in args.retune.split(",")] if args.retune else (),
        rooms=args.rooms,
    )
    text = json.dumps(figures, ensure_ascii=False, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
