"""Enrolled wake words on the enroll set: each speaker enrols, then every clip is scored.

    python -m bench.enroll SET_DIR [--drops 0.12,0.2] [--variant mean|dtw] [--json out.json]

``SET_DIR`` is what ``python -m bench.make_sets enroll DIR`` writes: ``speakers.json`` (each speaker's enrol
takes) and ``truth.jsonl`` (kinds positive, near_miss, other_speaker, negative). Each speaker's takes go
through the real enrolment (VAD trim, checks, calibration on the shipped negatives) into a temporary store;
the clips' embeddings are computed once and scored by that speaker's matcher, a hit being a score at or
over the threshold (refractory 2 s); ``--drops`` compares calibrations
on the same scores. Figures: detected % (quiet, TV 15 dB below) for the enrolled speaker,
near-miss acceptance % (the homophone 小香小香 apart), false accepts per hour on the negatives, and the
share of non-enrolled speakers' words accepted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio import read_wav
from assistant.listen import embed_recording, speech_frames
from assistant.listen.enrolled import (
    DEFAULT_DROPS,
    DEFAULT_MATCHER,
    Calibration,
    Matcher,
    calibrate_threshold,
    make_matcher,
)
from assistant.listen.enrolment import WordStore, read_take

HOMOPHONE = "小香小香"
"""Said by espeak-ng exactly like the word: reported apart, no acoustic detector can reject it."""
_REFRACTORY_FRAMES = 25
"""2 s of 80 ms embeddings."""


def hits(series: np.ndarray, threshold: float) -> int:
    """Detections in a score series (one per embedding), with the refractory period."""
    count, blocked_until = 0, -1
    for i in np.flatnonzero(series >= threshold).tolist():
        if i >= blocked_until:
            count += 1
            blocked_until = i + _REFRACTORY_FRAMES
    return count


def series_of(matcher: Matcher, stream: np.ndarray) -> np.ndarray:
    """The matcher's score for every embedding of a stream (fresh matcher)."""
    matcher.reset()
    return np.asarray([matcher.push(row) for row in stream])


def evaluate(root: Path, *, drops: Sequence[float], variant: str) -> list[dict[str, Any]]:
    """Enrol every speaker of the set, score every clip once, and give the figures for each ``drop``."""
    speakers: dict[str, Any] = json.loads((root / "speakers.json").read_text(encoding="utf-8"))
    truth = [json.loads(line) for line in (root / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    streams = {t["file"]: embed_recording(read_wav(root / t["file"]).pcm) for t in truth}
    negatives = [t for t in truth if t["kind"] == "negative"]
    negative_hours = sum(float(t["seconds"]) for t in negatives) / 3600
    scored: list[tuple[str, Calibration, dict[str, np.ndarray]]] = []
    with tempfile.TemporaryDirectory() as folder:
        store = WordStore(Path(folder))
        for speaker, info in speakers.items():
            takes = [(Path(f).name, read_take(root / f)) for f in info["enroll"]]
            result = store.enrol(speaker, takes, embed=embed_recording, speech_frames=speech_frames, matcher=variant)
            matcher = make_matcher(variant, result.word.templates, center=result.word.center)
            calibration = result.calibration
            scored.append((speaker, calibration, {f: series_of(matcher, e) for f, e in streams.items()}))
    return [_figures(speakers, truth, scored, negatives, negative_hours, drop, variant) for drop in drops]


def _figures(
    speakers: dict[str, Any],
    truth: list[dict[str, Any]],
    scored: list[tuple[str, Calibration, dict[str, np.ndarray]]],
    negatives: list[dict[str, Any]],
    negative_hours: float,
    drop: float,
    variant: str,
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
        "percent_accepted": {key: round(100 * a / n, 1) for key, (a, n) in tallies.items()},
        "counts": {key: f"{a}/{n}" for key, (a, n) in tallies.items()},
        "false_accepts_per_hour": round(false_accepts / (negative_hours * len(speakers)), 2),
        "negative_hours": round(negative_hours * len(speakers), 3),
        "thresholds": thresholds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.enroll", description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", type=Path)
    parser.add_argument(
        "--drops", help="comma-separated: threshold this far under the takes' median score (default: the variant's)"
    )
    parser.add_argument("--variant", choices=("dtw", "mean"), default=DEFAULT_MATCHER)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    drops = [float(d) for d in args.drops.split(",")] if args.drops else [DEFAULT_DROPS[args.variant]]
    figures = evaluate(args.set_dir, drops=drops, variant=args.variant)
    text = json.dumps(figures, ensure_ascii=False, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
