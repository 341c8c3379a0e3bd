"""``xiangyin wake enroll | list | remove | test``: the household's own wake words."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .audio import MIC_RATE_HZ, AudioChunk, split
from .config import Settings, WakeWordModel
from .errors import ConfigError

if TYPE_CHECKING:
    from .listen.enrolment import WordStore

EXIT_REFUSED = 1
"""Exit status when takes or a name are refused (nothing was changed)."""

_MIC_NOT_YET = (
    "recording takes from the microphone is not supported yet: record the word 3 to 5 times as 16 kHz mono WAV "
    "files (e.g. arecord -f S16_LE -r 16000 -c 1 take1.wav) and pass them: xiangyin wake enroll {name} take1.wav …"
)


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_arg: Path | None) -> None:
    """Add ``wake`` and its subcommands."""
    wake = commands.add_parser("wake", help="enrol, list, remove and test the household's own wake words")
    wake.add_argument("--config", type=Path, default=config_arg, help="config file")
    actions = wake.add_subparsers(dest="wake_command", required=True)
    enroll = actions.add_parser("enroll", help="enrol NAME from 3-5 takes (or add takes to it)")
    enroll.add_argument("name")
    enroll.add_argument("files", nargs="*", type=Path, help="16 kHz mono WAV takes, each saying the word once")
    actions.add_parser("list", help="list the enrolled words")
    remove = actions.add_parser("remove", help="delete an enrolled word and its takes")
    remove.add_argument("name")
    test = actions.add_parser("test", help="print NAME's scores against its threshold")
    test.add_argument("name")
    test.add_argument("--input", type=Path, help="score this WAV file (the microphone is not supported yet)")
    test.add_argument("--all", action="store_true", help="print every chunk's score, not only the hits")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out a ``wake`` subcommand."""
    from .listen import word_store
    from .listen.enrolled import EnrollmentError

    store = word_store(settings.wake)
    try:
        if args.wake_command == "enroll":
            return _enroll(args, store)
        if args.wake_command == "list":
            return _list(store)
        if args.wake_command == "remove":
            store.remove(args.name)
            print(f"removed {args.name!r}; take it out of wake.words in the config too")
            return 0
        return _test(args, settings)
    except EnrollmentError as err:
        print(f"refused: {err}; nothing was changed")
        return EXIT_REFUSED


def _enroll(args: argparse.Namespace, store: WordStore) -> int:
    from .listen import embed_recording, speech_frames
    from .listen.enrolment import check_name, read_take

    if not args.files:
        check_name(args.name, ())
        print(_MIC_NOT_YET.format(name=args.name))
        return EXIT_REFUSED
    takes = [(path.name, read_take(path)) for path in args.files]
    result = store.enrol(args.name, takes, embed=embed_recording, speech_frames=speech_frames)
    scores = ", ".join(f"{s:.2f}" for s in result.calibration.positive_scores)
    print(
        f"enrolled {args.name!r}: {len(result.added)} takes added, {result.total_takes} in all; threshold "
        f"{result.calibration.threshold:.2f} (takes against each other: {scores}; negative audio peaks at "
        f"{result.calibration.negative_peak:.2f})"
    )
    print(f"listen for it with, in the config:\n  wake:\n    words:\n      - enrolled: {args.name}")
    print("each member of the household should enrol the word in their own voice (same NAME adds their takes)")
    return 0


def _list(store: WordStore) -> int:
    names = store.names()
    if not names:
        print(f"no enrolled wake words in {store.root}")
    for name in names:
        info = store.info(name)
        print(f"{name}  takes: {len(info.get('takes', []))}  threshold: {info.get('threshold')}")
    return 0


def _test(args: argparse.Namespace, settings: Settings) -> int:
    from .audio import read_wav
    from .listen import build_wake_engine
    from .listen.wakeword import WakeWordDetector, rules_for

    if args.input is None:
        print("live scores from the microphone are not supported yet: record a WAV and pass --input FILE.wav")
        return EXIT_REFUSED
    configured = [w for w in (*settings.wake.words, *settings.wake.stop_words) if w.enrolled == args.name]
    word = configured[0] if configured else WakeWordModel(enrolled=args.name)
    engine = build_wake_engine(settings.wake.model_copy(update={"quiet_gate": False}), [word])
    detector = WakeWordDetector(engine, rules_for(engine, [word]))
    threshold = detector.rules[0].threshold
    try:
        audio = read_wav(args.input)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{args.input}: cannot read it ({err})") from err
    if audio.rate_hz != MIC_RATE_HZ:
        raise ConfigError(f"{args.input}: {audio.rate_hz} Hz; 16 kHz mono is needed")
    elapsed, peak, hits = 0.0, 0.0, 0
    for chunk in split(audio, settings.audio.chunk_ms / 1000):
        hit = detector.process(AudioChunk(chunk.pcm, chunk.rate_hz))
        elapsed += chunk.seconds
        score = detector.last_scores[0]
        peak = max(peak, score)
        if hit is not None:  # no reset (the daemon's would be): the peak shows how far over the threshold it went
            hits += 1
        if hit is not None or args.all:
            print(f"{elapsed:6.2f} s  score {score:.2f} / threshold {threshold:.2f}{'  HEARD' if hit else ''}")
    print(f"{args.name}: {hits} detections; peak score {peak:.2f}, threshold {threshold:.2f}")
    return 0
