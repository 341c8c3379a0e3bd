"""Wake-word benchmark: detection, false accepts, latency and CPU of the detector the config builds.

    python -m bench.wakeword --positives DIR --negatives DIR [--config config.yaml] [--json out.json]

``DIR`` of positives holds a folder per wake word, named as the config names the word (``hey_jarvis``, or a
custom model's file name without suffix), each WAV saying the word once; an optional ``truth.jsonl`` there
gives latency (``{"file": "x.wav", "word_end_s": 1.83}`` per line). Negatives: WAVs without any wake word,
at any depth. Clips must be 16 kHz mono 16-bit; any other file is named, skipped and counted.

The detector is built from the config as the daemon builds it (engine, runner, quiet gate, thresholds,
refractory periods), fed in ``audio.chunk_ms`` chunks and reset after each hit as the supervisor does.
CPU is process time around the detector calls, all threads included.

Without ``--positives`` the older mode runs: clips made with espeak-ng on the spot, each engine compared
with three words (``--negative-minutes``, ``--engines``), or saved as folders with ``--write-sets DIR``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.audio import AudioChunk, split
from assistant.cli import default_config_path
from assistant.config import Settings, load_config
from assistant.errors import ConfigError
from assistant.ports import WakeDetector
from bench import wake_generated
from bench.wake_scoring import ClipRun, Report, as_json, score, table
from bench.wake_sets import Clip, Problem, load_negatives, load_positives

_GAP_SECONDS = 30.0
"""Audio time put between clips: they are separate recordings, so no refractory period carries over."""


class AudioClock:
    """Seconds of audio fed so far: the detector's clock, so refractory periods hold at any speed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def word_names(settings: Settings) -> dict[str, str]:
    """Folder names accepted for each configured word → the name the detector reports it by."""
    names: dict[str, str] = {}
    for word in settings.wake.words:
        reported = word.name if "/" not in word.name and "." not in word.name else Path(word.name).stem
        names[word.name] = names[reported] = reported
    return names


def run_clips(
    detector: WakeDetector,
    clips: Sequence[Clip],
    chunk_seconds: float,
    clock: AudioClock,
    advanced: Callable[[float], None],
) -> tuple[list[ClipRun], float]:
    """Feed every clip through the detector; return what fired where, and the CPU seconds it took."""
    runs: list[ClipRun] = []
    cpu = 0.0
    for clip in clips:
        hits: list[tuple[str, float]] = []
        at = 0.0
        started = time.process_time()
        for chunk in split(clip.audio, chunk_seconds):
            if chunk.seconds < chunk_seconds:
                # Padded as the daemon's file source pads it: every clip then starts on the models' 80 ms grid.
                # Fast speech scores differently a few ms off it, and a clip's result must not depend on the
                # length of the clips before it.
                chunk = AudioChunk(chunk.pcm + bytes(round(chunk_seconds * chunk.rate_hz) * 2 - len(chunk.pcm)))
            at += chunk.seconds
            clock.seconds += chunk.seconds
            hit = detector.process(chunk)
            if hit is not None:
                hits.append((hit.name, round(at, 3)))
                detector.reset()
        cpu += time.process_time() - started
        clock.seconds += _GAP_SECONDS
        runs.append(ClipRun(str(clip.path), clip.word, clip.audio.seconds, tuple(hits), clip.word_end_seconds))
        advanced(clip.audio.seconds)
    return runs, cpu


def progress_bar(total_seconds: float) -> tuple[Callable[[float], None], Callable[[], None]]:
    """(advance by seconds of audio, close): tqdm on stderr if installed, else a plain percentage."""
    try:
        from tqdm import tqdm
    except ImportError:
        done = [0.0, -1]

        def advance(seconds: float) -> None:
            done[0] += seconds
            percent = int(100 * done[0] / total_seconds) if total_seconds else 100
            if percent // 5 != done[1] and sys.stderr.isatty():
                done[1] = percent // 5
                print(f"\r{percent:3d}% of {total_seconds / 60:.1f} min of audio", end="", file=sys.stderr)

        return advance, lambda: print(file=sys.stderr) if sys.stderr.isatty() else None
    bar: Any = tqdm(total=round(total_seconds), unit="s audio", file=sys.stderr, disable=None, leave=False)
    return lambda seconds: bar.update(seconds), bar.close


def describe(settings: Settings, config: Path) -> dict[str, Any]:
    """What was measured, for the printout and the JSON."""
    wake = settings.wake
    return {
        "config": str(config),
        "engine": wake.engine,
        "openwakeword_runner": wake.openwakeword_runner,
        "quiet_gate": wake.quiet_gate,
        "words": [word.name for word in wake.words],
        "chunk_ms": settings.audio.chunk_ms,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
    }


def print_report(setup: dict[str, Any], report: Report, problems: Sequence[Problem], clips: int) -> None:
    """The readable summary on stdout."""
    gate = "on" if setup["quiet_gate"] else "off"
    runner = f", runner {setup['openwakeword_runner']}, quiet gate {gate}" if setup["engine"] == "openwakeword" else ""
    print(f"{setup['config']}: {setup['engine']}{runner}; {setup['chunk_ms']} ms chunks; {setup['machine']}")
    print(
        f"{clips} clips, {report.audio_seconds / 60:.1f} min of audio ({report.negative_seconds / 60:.1f} min of "
        f"negatives); detector CPU {report.cpu_seconds:.1f} s = {report.cpu_seconds_per_audio_hour:.1f} s per "
        f"audio hour = {report.core_percent:.2f} % of one core"
    )
    print(table(report))
    for word, s in report.words.items():
        for name in s.missed[:20]:
            print(f"missed ({word}): {name}")
        if len(s.missed) > 20:
            print(f"missed ({word}): … and {len(s.missed) - 20} more (all in the JSON)")
    for line in report.false_accept_clips:
        print(f"false accept: {line}")
    for problem in problems:
        print(f"problem: {problem.file}: {problem.problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) with the input, listed above on stderr", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wakeword", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--positives", type=Path, help="folder of word folders of WAVs")
    parser.add_argument("--negatives", type=Path, help="folder of WAVs without any wake word")
    parser.add_argument("--config", type=Path, help="config file (default: as xiangyin run finds it)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--negative-minutes", type=float, default=32.0, help="without --positives: negatives made")
    parser.add_argument("--engines", default="openwakeword,microwakeword", help="without --positives: compared")
    parser.add_argument("--write-sets", type=Path, help="without --positives: save the clips made as folders here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran, 2 when the config or the folders cannot be used."""
    args = _parser().parse_args(argv)
    if args.positives is None:
        if args.negatives is not None:
            print("--negatives needs --positives", file=sys.stderr)
            return 2
        wake_generated.run(args)
        return 0
    from assistant.listen import OutputMonitor, build_wake_detector

    config = args.config or default_config_path()
    try:
        settings = load_config(config)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    folders = [args.positives] + ([args.negatives] if args.negatives is not None else [])
    for folder in folders:
        if not folder.is_dir():
            print(f"{folder}: not a folder", file=sys.stderr)
            return 2
    positives, problems = load_positives(args.positives, word_names(settings))
    negatives: list[Clip] = []
    if args.negatives is not None:
        negatives, more = load_negatives(args.negatives)
        problems += more
    if not positives and not negatives:
        for problem in problems:
            print(f"problem: {problem.file}: {problem.problem}", file=sys.stderr)
        print("no usable clips", file=sys.stderr)
        return 2
    clock = AudioClock()
    try:
        # A silent monitor: the echo guard is built as in the daemon, and nothing plays.
        detector = build_wake_detector(settings.wake, monitor=OutputMonitor(), now=clock)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    clips = [*positives, *negatives]
    advance, close = progress_bar(sum(clip.audio.seconds for clip in clips))
    try:
        runs, cpu = run_clips(detector, clips, settings.audio.chunk_ms / 1000, clock, advance)
    finally:
        close()
    words = list(dict.fromkeys(word_names(settings).values()))
    report = score(words, runs, cpu)
    setup = describe(settings, config)
    print_report(setup, report, problems, len(clips))
    if args.json is not None:
        figures = {
            **setup,
            **as_json(report),
            "clips": {"positives": len(positives), "negatives": len(negatives)},
            "problems": [{"file": p.file, "problem": p.problem} for p in problems],
        }
        try:
            args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as err:
            print(f"{args.json}: cannot write the figures: {err.strerror or err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
