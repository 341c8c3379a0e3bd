"""What listening costs: the real daemon's CPU while it waits for its wake word, in a quiet room and with a TV on.

    python -m bench.idle [--config config.yaml] [--seconds 60] [--settle 15] [--compare] [--json out.json]

Starts a private PulseAudio with null sinks (as ``support/pulse.py`` does), runs ``xiangyin run --config F``
(the model backend as configured: without weights the daemon still runs and listens), and plays into the
virtual microphone a quiet room (white and pink noise near -64 dBFS) throughout, then, on top, a TV
talking (two espeak-ng voices reading at once, band-limited to 200 Hz-4 kHz, continuous, near -30 dBFS).
After the microphone opens and ``--settle`` seconds pass (for the model to load, or to fail to), the
daemon's CPU time (``/proc/PID/stat`` utime + stime, its children included) is taken over ``--seconds``
of each and printed as % of one core.

``--compare`` also runs the config with the old path (``wake.openwakeword_runner: pyopen``, no quiet gate)
and with the lean runner without the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from assistant.audio import AudioChunk, write_wav
from assistant.cli import default_config_path
from bench.synth import RATE, espeak, noise
from support.pulse import PulseServer, pulse_env

ROOT = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, dict[str, Any]] = {
    "as configured": {},
    "old: pyopen, no gate": {"openwakeword_runner": "pyopen", "quiet_gate": False},
    "lean, no gate": {"openwakeword_runner": "lean", "quiet_gate": False},
}
_TV_START_SECONDS = 3.0
"""Seconds between the TV starting and its window: the gate's catch-up is not the steady state."""


# --- audio -------------------------------------------------------------------------------------


def quiet_room(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A quiet room's microphone: white plus pink noise, about -64 dBFS in all."""
    count = round(seconds * RATE)
    return noise("white", count, rng) * 14 + noise("pink", count, rng) * 14


def band_limit(samples: np.ndarray, low_hz: float = 200.0, high_hz: float = 4000.0) -> np.ndarray:
    """A TV's small speakers: nothing below ``low_hz`` or above ``high_hz``."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, len(samples))


def tv_talking(seconds: float) -> np.ndarray:
    """Two espeak-ng voices reading different text at once, continuous, band-limited, about -30 dBFS."""
    words = Path("/usr/share/common-licenses/GPL-3").read_text(encoding="utf-8").split()
    count = round(seconds * RATE)
    voices = []
    for index, (voice, wpm) in enumerate((("en-us", 175), ("en-gb+f2", 160))):
        speech = espeak(" ".join(words[index * 400 : index * 400 + round(seconds * 4)]), voice, wpm)
        voices.append(np.resize(speech, count))  # repeats itself if short: the TV never pauses
    babble = band_limit(voices[0] + 0.7 * np.roll(voices[1], RATE // 3))
    return babble * (1000.0 / np.sqrt(np.mean(babble**2)))


def save(path: Path, samples: np.ndarray) -> Path:
    """Write 16 kHz int16, clipped."""
    write_wav(path, AudioChunk(np.clip(samples, -32768, 32767).astype("<i2").tobytes(), RATE))
    return path


# --- CPU time of a process tree -----------------------------------------------------------------


def stat_fields(text: str) -> list[str]:
    """The fields of a ``/proc/PID/stat`` line after the command name (which may hold spaces)."""
    return text.rsplit(")", 1)[1].split()


def process_cpu_ticks(fields: list[str]) -> tuple[int, int]:
    """(own utime + stime, waited-for children's cutime + cstime), in clock ticks."""
    # After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its children that ended, and its live descendants."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields((entry / "stat").read_text())
        except OSError:
            continue  # it ended meanwhile
        own, children = process_cpu_ticks(fields)
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = own + children
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


# --- one run ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One variant's figures."""

    variant: str
    wake: dict[str, Any]
    quiet_core_percent: float = 0.0
    tv_core_percent: float = 0.0
    startup_seconds: float = 0.0
    """From starting the daemon to its microphone delivering."""
    log_counts: dict[str, int] = field(default_factory=dict)
    """Log lines that would spoil the figures (wakes, microphone trouble, inference behind)."""


_WATCHED = {
    "wake detected": "wake-detected",
    "microphone reopened": "stopped delivering audio",
    "inference fell behind": "fell behind",
}


def run_variant(name: str, config: dict[str, Any], seconds: float, settle: float, work: Path) -> Run:
    """Start PulseAudio and the daemon, play the room then the TV, and measure."""
    work.mkdir(parents=True)
    config_path = work / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    rng = np.random.default_rng(7)
    room = save(work / "room.wav", quiet_room(90 + settle + 2 * seconds + _TV_START_SECONDS, rng))
    tv = save(work / "tv.wav", tv_talking(seconds + _TV_START_SECONDS + 5))
    env = pulse_env(work / "pulse")
    server = PulseServer(work / "pulse", env)
    server.start()
    players: list[subprocess.Popen[bytes]] = []
    daemon: subprocess.Popen[str] | None = None
    lines: list[str] = []
    run = Run(name, config.get("wake", {}))
    try:
        players.append(server.inject(room))
        started = time.monotonic()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "run", "--config", str(config_path)],
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        opened = threading.Event()

        def read(out: Any) -> None:
            for line in out:
                lines.append(line.rstrip())
                if "microphone open" in line:
                    opened.set()

        threading.Thread(target=read, args=(daemon.stdout,), daemon=True).start()
        deadline = time.monotonic() + 90
        while not opened.wait(0.2):
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(lines[-20:])
                raise RuntimeError(f"the daemon's microphone did not open (exit status {daemon.poll()}):\n{tail}")
        run.startup_seconds = time.monotonic() - started
        time.sleep(settle)
        run.quiet_core_percent = _core_percent(daemon.pid, seconds)
        players.append(server.inject(tv))
        time.sleep(_TV_START_SECONDS)
        run.tv_core_percent = _core_percent(daemon.pid, seconds)
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
        for player in players:
            player.terminate()
            player.wait(5)
        server.stop()
    (work / "daemon.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run.log_counts = {label: sum(text in line for line in lines) for label, text in _WATCHED.items()}
    return run


def _core_percent(pid: int, seconds: float) -> float:
    before, wall = tree_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (tree_cpu_seconds(pid) - before) / (time.monotonic() - wall)


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Measure each variant and print a table; 2 when the config cannot be read."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.idle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="config file (default: as xiangyin run finds it)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window (default 60)")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after the microphone opens (20)")
    parser.add_argument("--compare", action="store_true", help="also run the old path and the lean one ungated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    path = args.config or default_config_path()
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        print(f"{path}: cannot read the config: {err}", file=sys.stderr)
        return 2
    names = list(VARIANTS) if args.compare else ["as configured"]
    runs = []
    with tempfile.TemporaryDirectory(prefix="xiangyin-idle-") as tmp:
        for index, name in enumerate(names):
            variant = {**config, "wake": {**config.get("wake", {}), **VARIANTS[name]}}
            print(f"{name}: {variant['wake']} …", file=sys.stderr, flush=True)
            runs.append(run_variant(name, variant, args.seconds, args.settle, Path(tmp) / str(index)))
    print(
        f"{path}; {args.seconds:.0f} s windows; {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}"
    )
    print(
        "| variant | quiet room (% of one core) | TV talking (% of one core) | start-up | log: "
        + ", ".join(_WATCHED)
        + " |"
    )
    print("| --- | --- | --- | --- | --- |")
    for run in runs:
        counts = ", ".join(str(run.log_counts[label]) for label in _WATCHED)
        print(
            f"| {run.variant} | {run.quiet_core_percent:.2f} | {run.tv_core_percent:.2f} | "
            f"{run.startup_seconds:.1f} s | {counts} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(run) for run in runs], indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
