"""End-of-speech benchmark on recordings: the daemon's own listening path, faster than real time.

    python -m bench.endpoint --clips DIR [--config F] [--profile normal|patient] [--json OUT.json]

DIR holds 16 kHz mono 16-bit WAV files and ``truth.jsonl``, one line per clip:
``{"file": "c.wav", "listen_start_s": 3.0, "speech_end_s": 7.42}`` (other keys are kept; ``condition``
groups the summary). The audio before ``listen_start_s`` is what the box heard before the wake word: the
room's background and the wake word itself, heard as the supervisor hears them. From ``listen_start_s`` the
clip goes through :class:`assistant.listening.UtteranceListener`, the turn's own code, in chunks of the
configured ``audio.chunk_ms``. A clip that ends before a decision goes on with its own last seconds of
background, as a room would.

Per clip: when the end was decided (or ``max_speech`` / ``no_speech``), the delay after ``speech_end_s``,
and ``cut_off`` when it was decided before the true end. ``bench.make_sets endpoint DIR`` makes a set.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.audio import MIC_RATE_HZ, AudioChunk, AudioFormatError, level_db, split
from assistant.config import EndpointSettings, Settings, load_config
from assistant.endpointing import Decision, PauseMemory
from assistant.errors import ConfigError
from assistant.listen.prosody import PitchProsodyDetector
from assistant.listen.vad import SileroSpeechDetector
from assistant.listening import UtteranceListener
from assistant.ports import ProsodyDetector, SpeechDetector
from assistant.recordings import read_recording
from assistant.room import RoomTracker

_BACKGROUND_LOOP_SECONDS = 2.0
"""A clip too short for a decision goes on with this many of its last seconds, again and again."""


class BadClip(ValueError):
    """A clip or truth line that cannot be measured; the message names the file."""


@dataclass(frozen=True, slots=True)
class Truth:
    """One line of truth.jsonl."""

    file: str
    listen_start_s: float
    speech_end_s: float
    condition: str | None = None


@dataclass(frozen=True, slots=True)
class ClipResult:
    """What the listening path decided on one clip."""

    file: str
    condition: str | None
    outcome: str
    """``ended``, ``max_speech`` or ``no_speech``."""
    decided_s: float | None
    """Time in the clip at which the end was decided."""
    speech_end_s: float
    delay_s: float | None
    """decided_s − speech_end_s."""
    cut_off: bool
    """Decided before the true end of speech."""
    sounded_finished: bool | None
    """Whether the last phrase sounded finished to the endpointer."""


# --- input ----------------------------------------------------------------------------------------


def read_truth(directory: Path) -> list[Truth]:
    """Parse truth.jsonl; a bad line is an error naming the file and line."""
    path = directory / "truth.jsonl"
    if not path.is_file():
        raise BadClip(f"{path}: missing (one JSON line per clip: file, listen_start_s, speech_end_s)")
    truths: list[Truth] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
            truth = Truth(
                file=str(item["file"]),
                listen_start_s=float(item["listen_start_s"]),
                speech_end_s=float(item["speech_end_s"]),
                condition=None if item.get("condition") is None else str(item["condition"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise BadClip(f"{where}: not a valid truth line ({type(err).__name__}: {err})") from None
        if not (0.0 <= truth.listen_start_s < truth.speech_end_s) or not math.isfinite(truth.speech_end_s):
            raise BadClip(f"{where}: need 0 <= listen_start_s < speech_end_s, got {line.strip()}")
        truths.append(truth)
    return truths


def read_clip(path: Path) -> AudioChunk:
    """The clip at 16 kHz mono, or a :class:`BadClip` naming a file that cannot be read.

    Any rate, channel count or sample format is converted.
    """
    if not path.is_file():
        raise BadClip(f"{path}: named in truth.jsonl but missing")
    try:
        return read_recording(path)
    except AudioFormatError as err:
        raise BadClip(str(err)) from None


def progress(items: list[Any], label: str) -> Iterable[Any]:
    """A progress bar on stderr for long runs."""
    if len(items) < 20 or not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=label, unit="clip", file=sys.stderr)


# --- the measurement -----------------------------------------------------------------------------


def _chunks_after(audio: AudioChunk, chunk_seconds: float, start_s: float, end_s: float) -> Iterator[AudioChunk]:
    """The audio from ``start_s`` on, then its background looped (past ``end_s``) as long as asked for."""
    bytes_per_second = MIC_RATE_HZ * 2
    offset = round(start_s * MIC_RATE_HZ) * 2
    yield from split(AudioChunk(audio.pcm[offset:]), chunk_seconds)
    loop_from = max(round(end_s * MIC_RATE_HZ) * 2, len(audio.pcm) - round(_BACKGROUND_LOOP_SECONDS * bytes_per_second))
    loop_from -= loop_from % 2
    background = AudioChunk(audio.pcm[loop_from:] or bytes(bytes_per_second))
    while True:
        yield from split(background, chunk_seconds)


def measure_clip(
    audio: AudioChunk,
    truth: Truth,
    settings: EndpointSettings,
    *,
    vad: SpeechDetector,
    prosody: ProsodyDetector | None,
    chunk_seconds: float,
    memory: PauseMemory | None = None,
) -> ClipResult:
    """Hear the room before ``listen_start_s`` as the supervisor does, then listen as the turn does."""
    room = RoomTracker()
    start_bytes = round(truth.listen_start_s * MIC_RATE_HZ) * 2
    for chunk in split(AudioChunk(audio.pcm[:start_bytes]), chunk_seconds):
        room.hear(chunk.seconds, level_db(chunk))
    listener = UtteranceListener(settings, vad, prosody=prosody, room=room.room(), memory=memory)
    elapsed = 0.0
    limit = settings.no_speech_timeout_seconds + settings.max_speech_seconds + 1.0
    decision = Decision.WAITING
    for chunk in _chunks_after(audio, chunk_seconds, truth.listen_start_s, truth.speech_end_s):
        elapsed += chunk.seconds
        decision = listener.hear(chunk)
        if decision in (Decision.ENDED, Decision.TIMED_OUT) or elapsed > limit:
            break
    endpointer = listener.endpointer
    if decision is not Decision.ENDED:
        outcome, decided = "no_speech", None
    elif endpointer.speech_seconds >= settings.max_speech_seconds - 1e-6:
        outcome, decided = "max_speech", truth.listen_start_s + elapsed
    else:
        outcome, decided = "ended", truth.listen_start_s + elapsed
    delay = None if decided is None else round(decided - truth.speech_end_s, 3)
    return ClipResult(
        file=truth.file,
        condition=truth.condition,
        outcome=outcome,
        decided_s=None if decided is None else round(decided, 3),
        speech_end_s=truth.speech_end_s,
        delay_s=delay,
        cut_off=delay is not None and delay < 0.0,
        sounded_finished=endpointer.sounded_finished if outcome == "ended" else None,
    )


def summarize(results: list[ClipResult]) -> dict[str, Any]:
    """Counts and delays over clips; the delay statistics leave out clips cut off or never ended."""
    delays = [r.delay_s for r in results if r.delay_s is not None and not r.cut_off and r.outcome == "ended"]
    return {
        "clips": len(results),
        "cut_off": sum(r.cut_off for r in results),
        "hit_max_speech": sum(r.outcome == "max_speech" for r in results),
        "no_speech": sum(r.outcome == "no_speech" for r in results),
        "delay_median_s": round(statistics.median(delays), 3) if delays else None,
        "delay_p95_s": round(_percentile(delays, 95), 3) if delays else None,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def report(results: list[ClipResult]) -> dict[str, Any]:
    """The whole summary, then one per value of ``condition``."""
    conditions = sorted({r.condition for r in results if r.condition is not None})
    return {
        "summary": summarize(results),
        "conditions": {c: summarize([r for r in results if r.condition == c]) for c in conditions},
    }


def table(summary: dict[str, Any], label: str) -> str:
    """A Markdown table of the summary and its conditions."""

    def seconds(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f} s"

    lines = [
        f"| {label} | clips | cut off | hit max_speech | no speech | delay median | delay p95 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [*summary["conditions"].items(), ("all", summary["summary"])]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['clips']} | {s['cut_off']} | {s['hit_max_speech']} | {s['no_speech']} | "
            f"{seconds(s['delay_median_s'])} | {seconds(s['delay_p95_s'])} |"
        )
    return "\n".join(lines)


def run(
    directory: Path, settings: Settings, *, share_memory: bool = False, out: Any = sys.stderr
) -> tuple[list[ClipResult], list[str], float]:
    """Measure every clip in ``directory``; return the results, the problems, and CPU seconds per audio hour."""
    truths = read_truth(directory)
    endpoint = settings.endpointing
    chunk_seconds = settings.audio.chunk_ms / 1000
    vad = SileroSpeechDetector()
    prosody = PitchProsodyDetector()
    memory = PauseMemory() if share_memory else None
    results: list[ClipResult] = []
    problems: list[str] = []
    listed = {t.file for t in truths}
    for path in sorted(directory.glob("*.wav")):
        if path.name not in listed:
            problems.append(f"{path}: no line in truth.jsonl; not measured")
            print(f"skipped: {problems[-1]}", file=out)
    cpu = audio_seconds = 0.0
    for truth in progress(truths, "clips"):
        try:
            audio = read_clip(directory / truth.file)
            if truth.speech_end_s > audio.seconds:
                raise BadClip(f"{directory / truth.file}: speech_end_s {truth.speech_end_s} is past its end")
        except BadClip as err:
            problems.append(str(err))
            print(f"skipped: {err}", file=out)
            continue
        started = time.process_time()
        result = measure_clip(
            audio,
            truth,
            endpoint,
            vad=vad,
            prosody=prosody,
            chunk_seconds=chunk_seconds,
            memory=memory if share_memory else PauseMemory(),
        )
        cpu += time.process_time() - started
        audio_seconds += (result.decided_s or audio.seconds) if result.outcome != "no_speech" else audio.seconds
        results.append(result)
    per_hour = cpu / audio_seconds * 3600 if audio_seconds else 0.0
    return results, problems, per_hour


def load_settings(config: Path | None, profile: str | None) -> Settings:
    """The daemon's settings from ``config`` (defaults without one), its endpointing profile set to ``profile``.

    The profile goes into the file's own endpointing section, so its presets apply exactly as if the file
    had named it, and any duration the file sets still wins.
    """
    if config is None:
        return Settings.model_validate({"endpointing": {"profile": profile}} if profile else {})
    if profile is None:
        return load_config(config)
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{config}: cannot read config: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("endpointing", {}), dict):
        return load_config(config)  # let the loader say what is wrong with it
    data["endpointing"] = {**data.get("endpointing", {}), "profile": profile}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / config.name
        copy.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return load_config(copy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, required=True, help="folder of WAVs with truth.jsonl")
    parser.add_argument("--config", type=Path, help="the daemon's config (default: built-in defaults)")
    parser.add_argument("--profile", choices=("normal", "patient"), help="override endpointing.profile")
    parser.add_argument("--household", action="store_true", help="one household: pauses learned carry over clips")
    parser.add_argument("--json", type=Path, help="write per-clip results and the summary here")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, args.profile)
        results, problems, cpu = run(args.clips, settings, share_memory=args.household)
    except (BadClip, ConfigError) as err:
        print(f"bench.endpoint: {err}", file=sys.stderr)
        return 2
    summary = report(results)
    e = settings.endpointing
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; Silero VAD + pitch, "
        f"{settings.audio.chunk_ms} ms chunks; profile {e.profile} (end {e.end_silence_seconds} s, "
        f"hold {e.hold_silence_seconds} s), room gate {'on' if e.room_gate else 'off'}"
    )
    print(table(summary, args.clips.name or str(args.clips)))
    print(f"listening CPU: {cpu:.0f} s per audio hour")
    for r in results:
        if r.cut_off or r.outcome != "ended":
            what = f"{r.outcome}{' (cut off)' if r.cut_off else ''}"
            print(f"{what}: {r.file} decided {r.decided_s} s, end {r.speech_end_s} s")
    if args.json:
        document = {**summary, "problems": problems, "cpu_seconds_per_audio_hour": round(cpu, 1)}
        document["clips"] = [asdict(r) for r in results]
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    return 1 if problems and not results else 0


if __name__ == "__main__":
    sys.exit(main())
