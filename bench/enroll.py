"""Enrolled wake words on the enroll set: each speaker enrols, then every clip is scored.

    python -m bench.enroll SET_DIR [--margin 0.03] [--variant dtw|mean] [--json out.json]

``SET_DIR`` is what ``python -m bench.make_sets enroll DIR`` writes: ``speakers.json`` (each speaker's enrol
takes) and ``truth.jsonl`` (kinds positive, near_miss, other_speaker, negative). Each speaker's takes go
through the real enrolment (VAD trim, checks, calibration on the shipped negatives) into a temporary store;
the clips' embeddings are computed once and scored by that speaker's matcher, a hit being a score at or
over the threshold (refractory 2 s). Figures: detected % (quiet, TV 15 dB below) for the enrolled speaker,
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
from assistant.listen.enrolled import DtwMatcher, Matcher, MeanPoolMatcher, calibrate_threshold, leave_one_out
from assistant.listen.enrolment import WordStore, read_take

HOMOPHONE = "小香小香"
"""Said by espeak-ng exactly like the word: reported apart, no acoustic detector can reject it."""
_REFRACTORY_FRAMES = 25
"""2 s of 80 ms embeddings."""


def hits(matcher: Matcher, stream: np.ndarray, threshold: float) -> int:
    """Detections in a stream, with the refractory period."""
    matcher.reset()
    count, blocked_until = 0, -1
    for i, row in enumerate(stream):
        if matcher.push(row) >= threshold and i >= blocked_until:
            count += 1
            blocked_until = i + _REFRACTORY_FRAMES
    return count


def evaluate(root: Path, *, margin: float, variant: str) -> dict[str, Any]:
    """Enrol every speaker of the set and score every clip; return the figures."""
    speakers: dict[str, Any] = json.loads((root / "speakers.json").read_text(encoding="utf-8"))
    truth = [json.loads(line) for line in (root / "truth.jsonl").read_text(encoding="utf-8").splitlines() if line]
    streams = {t["file"]: embed_recording(read_wav(root / t["file"]).pcm) for t in truth}
    negatives = [t for t in truth if t["kind"] == "negative"]
    negative_hours = sum(float(t["seconds"]) for t in negatives) / 3600
    tallies: dict[str, list[int]] = {}

    def tally(key: str, accepted: bool) -> None:
        tallies.setdefault(key, [0, 0])
        tallies[key][0] += int(accepted)
        tallies[key][1] += 1

    false_accepts = 0
    per_speaker: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = WordStore(Path(folder))
        for speaker, info in speakers.items():
            takes = [(Path(f).name, read_take(root / f)) for f in info["enroll"]]
            result = store.enrol(speaker, takes, embed=embed_recording, speech_frames=speech_frames)
            word = result.word
            threshold = word.threshold
            matcher: Matcher = DtwMatcher(word.templates, center=word.center)
            if variant == "mean":
                matcher = MeanPoolMatcher(word.templates, center=word.center)
            if margin != 0.03 or variant == "mean":  # recalibrate with this margin / variant
                shipped = [embed_recording(p.pcm) for p in _shipped()]
                negative_peak = max(_peak(matcher, s) for s in shipped)
                positives = leave_one_out(word.templates, [np.asarray(t) for t in word.templates], center=word.center)
                threshold = calibrate_threshold(positives, negative_peak, margin=margin).threshold
            per_speaker[speaker] = threshold
            for t in truth:
                accepted = hits(matcher, streams[t["file"]], threshold) > 0
                if t["kind"] == "positive" and t["speaker"] == speaker:
                    tally(f"positive/{t['condition']}", accepted)
                elif t["kind"] == "near_miss" and t["speaker"] == speaker:
                    tally("homophone" if t["text"] == HOMOPHONE else "near_miss", accepted)
                    tally(f"near_miss/{t['text']}", accepted)
                elif t["kind"] == "other_speaker":
                    tally("other_speaker", accepted)
            false_accepts += sum(hits(matcher, streams[t["file"]], threshold) for t in negatives)
    rates = {key: round(100 * a / n, 1) for key, (a, n) in tallies.items()}
    return {
        "variant": variant,
        "margin": margin,
        "percent_accepted": rates,
        "counts": {key: f"{a}/{n}" for key, (a, n) in tallies.items()},
        "false_accepts_per_hour": round(false_accepts / (negative_hours * len(speakers)), 2),
        "negative_hours_per_speaker": round(negative_hours, 3),
        "thresholds": per_speaker,
    }


def _shipped() -> list[Any]:
    from assistant.listen.enrolment import negatives_dir

    return [read_wav(p) for p in sorted(negatives_dir().glob("*.wav"))]


def _peak(matcher: Matcher, stream: np.ndarray) -> float:
    matcher.reset()
    return max((matcher.push(row) for row in stream), default=0.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.enroll", description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("--margin", type=float, default=0.03, help="threshold margin over the negatives' peak")
    parser.add_argument("--variant", choices=("dtw", "mean"), default="dtw")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = evaluate(args.set_dir, margin=args.margin, variant=args.variant)
    text = json.dumps(figures, ensure_ascii=False, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
