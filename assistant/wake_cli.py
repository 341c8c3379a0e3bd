"""``xiangyin wake enroll | list | remove | test``: the household's own wake words."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from .audio import AudioChunk, AudioFormatError, split
from .config import Settings, WakeWordModel
from .errors import ConfigError

if TYPE_CHECKING:
    from hardware.speaker import PyAudioSpeaker

    from .listen.enrolment import WordStore
    from .listen.wakeword import WakeWordDetector

EXIT_REFUSED = 1
"""Exit status when takes or a name are refused (nothing was changed)."""

MIC_TAKES = 4
"""Takes recorded from the microphone when no files are given."""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser], config_arg: Path | None) -> None:
    """Add ``wake`` and its subcommands."""
    wake = commands.add_parser("wake", help="enrol, list, remove and test the household's own wake words")
    wake.add_argument("--config", type=Path, default=config_arg, help="config file")
    actions = wake.add_subparsers(dest="wake_command", required=True)
    enroll = actions.add_parser("enroll", help="enrol NAME from 3-5 takes (or add takes to it)")
    enroll.add_argument("name")
    enroll.add_argument(
        "files", nargs="*", type=Path, help="audio files (WAV, FLAC; any rate), each saying the word; none: record 4"
    )
    actions.add_parser("list", help="list the enrolled words")
    remove = actions.add_parser("remove", help="delete an enrolled word and its takes")
    remove.add_argument("name")
    test = actions.add_parser("test", help="print NAME's scores against its threshold")
    test.add_argument("name")
    test.add_argument("--input", type=Path, help="score this audio file (any rate) instead of the microphone")
    test.add_argument("--seconds", type=float, default=20.0, help="how long to listen to the microphone")
    test.add_argument("--all", action="store_true", help="print every chunk's score, not only the hits")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out a ``wake`` subcommand."""
    from .listen import word_store
    from .listen.enrolled import EnrollmentError

    store = word_store(settings.wake)
    try:
        if args.wake_command == "enroll":
            return _enroll(args, store, settings)
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


async def _record(settings: Settings) -> list[tuple[str, AudioChunk]]:
    """Record :data:`MIC_TAKES` takes: the instruction spoken once, then a beep before each take."""
    from hardware.microphone import PyAudioMicrophone
    from hardware.speaker import PyAudioSpeaker

    from .earcons import Earcon, render
    from .enrolling import instruction
    from .listen.takes import TakeCutter
    from .listen.vad import SileroSpeechDetector

    audio = settings.audio
    speaker = PyAudioSpeaker(device=audio.output_device, volume=audio.volume, output_rate_hz=audio.output_rate_hz)
    dialect = settings.persona.dialect
    await _speak(speaker, settings, instruction(dialect))
    takes: list[tuple[str, AudioChunk]] = []
    for number in range(1, MIC_TAKES + 1):
        print(f"take {number}/{MIC_TAKES}: after the beep, say the word once")
        await _play(speaker, render(Earcon.WAKE))
        microphone = PyAudioMicrophone(device=audio.input_device, chunk_ms=audio.chunk_ms)
        cutter, vad = TakeCutter(), SileroSpeechDetector()
        stream = microphone.chunks()
        try:
            # A microphone that never delivers (no device) must not hang the command.
            async with asyncio.timeout(cutter.start_timeout_seconds + cutter.max_seconds + 3.0):
                async for chunk in stream:
                    take = cutter.push(chunk, vad.probability(chunk))
                    if take is not None:
                        takes.append((f"take {number}", take))
                        break
        except TimeoutError:
            print(f"take {number}: nothing heard; skipped")
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
    return takes


async def _speak(speaker: PyAudioSpeaker, settings: Settings, text: str) -> None:
    """Say ``text`` with the configured TTS; print it instead when no TTS can run."""
    from .voice.errors import VoiceUnavailable
    from .voice.tts import build_tts

    print(text)
    try:
        speech = await build_tts(settings.voice.tts, settings.persona).synthesize(text)
    except (VoiceUnavailable, OSError) as err:
        print(f"(not spoken: {err})")
        return
    await _play(speaker, speech)


async def _play(speaker: PyAudioSpeaker, audio: AudioChunk) -> None:
    """Play one sound; without a working speaker, say so and go on (the printed prompts still guide)."""
    from .errors import PlaybackError

    try:
        await speaker.play(_once(audio))
    except PlaybackError as err:
        print(f"(speaker: {err})")


async def _once(chunk: AudioChunk) -> AsyncIterator[AudioChunk]:
    yield chunk


def _enroll(args: argparse.Namespace, store: WordStore, settings: Settings) -> int:
    from .listen import embed_recording, speech_frames
    from .listen.enrolment import read_take

    if args.files:
        takes = [(path.name, read_take(path)) for path in args.files]
    else:
        store.check_name(args.name)
        takes = asyncio.run(_record(settings))
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
    from .listen import build_wake_engine
    from .listen.wakeword import WakeWordDetector, rules_for
    from .recordings import read_recording

    configured = [w for w in (*settings.wake.words, *settings.wake.stop_words) if w.enrolled == args.name]
    word = configured[0] if configured else WakeWordModel(enrolled=args.name)
    engine = build_wake_engine(settings.wake.model_copy(update={"quiet_gate": False}), [word])
    detector = WakeWordDetector(engine, rules_for(engine, [word]))
    if args.input is None:
        chunks = asyncio.run(_listen(settings, args.seconds))
    else:
        try:
            audio = read_recording(args.input)
        except AudioFormatError as err:
            raise ConfigError(str(err)) from err
        chunks = list(split(audio, settings.audio.chunk_ms / 1000))
    # A crossing that the word's contour check rejects is said as it happens (its score reads 0 then).
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("         %(message)s"))
    said = logging.getLogger("assistant.listen.wakeword")
    said.addHandler(handler)
    level = said.level
    said.setLevel(logging.INFO)
    try:
        _print_scores(args, detector, chunks)
    finally:
        said.removeHandler(handler)
        said.setLevel(level)
    return 0


def _print_scores(args: argparse.Namespace, detector: WakeWordDetector, chunks: list[AudioChunk]) -> None:
    threshold = detector.rules[0].threshold
    elapsed, peak, hits = 0.0, 0.0, 0
    for chunk in chunks:
        hit = detector.process(AudioChunk(chunk.pcm, chunk.rate_hz))
        elapsed += chunk.seconds
        score = detector.last_scores[0]
        peak = max(peak, score)
        if hit is not None:  # no reset (the daemon's would be): the peak shows how far over the threshold it went
            hits += 1
        if hit is not None or args.all:
            print(f"{elapsed:6.2f} s  score {score:.2f} / threshold {threshold:.2f}{'  HEARD' if hit else ''}")
    print(f"{args.name}: {hits} detections; peak score {peak:.2f}, threshold {threshold:.2f}")


async def _listen(settings: Settings, seconds: float) -> list[AudioChunk]:
    """``seconds`` of the configured microphone (scored afterwards: the scores are the same)."""
    from hardware.microphone import PyAudioMicrophone

    print(f"listening for {seconds:.0f} s: say the word a few times")
    microphone = PyAudioMicrophone(device=settings.audio.input_device, chunk_ms=settings.audio.chunk_ms)
    heard: list[AudioChunk] = []
    stream = microphone.chunks()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in stream:
                heard.append(chunk)
    except TimeoutError:
        pass
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    if not heard:
        print("nothing was heard from the microphone")
    return heard
