"""Reading wake-word test sets from folders: WAVs checked one by one, truth.jsonl, a problem list instead of tracebacks.

positives/<word>/*.wav      each holds the word once; <word> as the config names it (hey_jarvis)
positives/<word>/truth.jsonl  optional: {"file": "x.wav", "word_end_s": 1.83} per line, for latency
negatives/**/*.wav          no wake word anywhere
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from assistant.audio import AudioChunk, AudioFormatError
from assistant.recordings import read_recording

TRUTH = "truth.jsonl"


@dataclass(frozen=True)
class Clip:
    """One usable clip."""

    path: Path
    audio: AudioChunk
    word: str | None
    """The word said in it; None for a negative."""
    word_end_seconds: float | None = None


@dataclass(frozen=True)
class Problem:
    """A file that could not be used (or was used without its latency), and why."""

    file: str
    problem: str


def read_clip(path: Path) -> AudioChunk | str:
    """The clip's audio at 16 kHz mono, or why it cannot be used.

    Any rate, channel count or sample format is converted.
    """
    try:
        audio = read_recording(path)
    except AudioFormatError as err:
        return str(err).removeprefix(f"{path}: ")
    if not audio.pcm:
        return "holds no audio"
    return audio


def read_truth(folder: Path) -> tuple[dict[str, float] | None, list[Problem]]:
    """Word ends by file name from ``truth.jsonl``; None when the folder has none."""
    path = folder / TRUTH
    if not path.is_file():
        return None, []
    ends: dict[str, float] = {}
    problems: list[Problem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        return None, [Problem(str(path), f"cannot read it ({err}); latency left out")]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name, end = entry["file"], float(entry["word_end_s"])
            if not isinstance(name, str) or not math.isfinite(end) or end < 0:
                raise ValueError("file must be a name and word_end_s a time in seconds")
        except (ValueError, KeyError, TypeError) as err:
            problems.append(Problem(f"{path}:{number}", f'not a {{"file": ..., "word_end_s": ...}} line ({err})'))
            continue
        ends[name] = end
    return ends, problems


def load_positives(root: Path, known: dict[str, str]) -> tuple[list[Clip], list[Problem]]:
    """Clips under ``root/<word>/``; ``known`` maps each accepted folder name to the detector's word name."""
    clips: list[Clip] = []
    problems: list[Problem] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        word = known.get(folder.name)
        if word is None:
            problems.append(Problem(str(folder), f"no configured wake word is called {folder.name!r}; folder skipped"))
            continue
        ends, truth_problems = read_truth(folder)
        problems += truth_problems
        wavs = sorted(folder.glob("*.wav"))
        for name in sorted(set(ends or ()) - {path.name for path in wavs}):
            problems.append(Problem(str(folder / TRUTH), f"names {name}, which is not in this folder"))
        for path in wavs:
            audio = read_clip(path)
            if isinstance(audio, str):
                problems.append(Problem(str(path), f"{audio}; skipped"))
                continue
            end = None
            if ends is not None:
                end = ends.get(path.name)
                if end is None:
                    problems.append(Problem(str(path), f"no line in {TRUTH}; its latency is left out"))
            clips.append(Clip(path, audio, word, end))
    return clips, problems


def load_negatives(root: Path) -> tuple[list[Clip], list[Problem]]:
    """Every WAV under ``root``, at any depth."""
    clips: list[Clip] = []
    problems: list[Problem] = []
    for path in sorted(root.rglob("*.wav")):
        audio = read_clip(path)
        if isinstance(audio, str):
            problems.append(Problem(str(path), f"{audio}; skipped"))
        else:
            clips.append(Clip(path, audio, None))
    return clips, problems
