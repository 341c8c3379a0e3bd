"""A private PulseAudio daemon with two null sinks: ``mic`` (what the microphone hears) and ``speaker``.

PyAudio reaches it through ALSA's ``pulse`` plugin (libasound2-plugins) because PULSE_SERVER points at its
socket. ``norewinds=1`` matters: without it the monitor sources deliver corrupted copies of what was played.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=speaker rate=16000 channels=1 norewinds=1
load-module module-null-sink sink_name=mic rate=16000 channels=1 norewinds=1
set-default-sink speaker
set-default-source mic.monitor
"""


@dataclass
class PulseServer:
    """A running test daemon; ``env`` reaches it from subprocesses."""

    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon and wait until it answers (about 30 ms)."""
        (self.root / "va.pa").write_text(_CONFIG)
        self.process = subprocess.Popen(
            [
                "pulseaudio",
                "-n",
                "-F",
                str(self.root / "va.pa"),
                "--daemonize=no",
                "--exit-idle-time=20",  # an orphan (test process killed) goes away by itself
                "--use-pid-file=no",
                f"--log-target=file:{self.root / 'pulse.log'}",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.pactl("info").returncode == 0:
                return
            time.sleep(0.05)
        log = (
            (self.root / "pulse.log").read_text(errors="replace")[-2000:] if (self.root / "pulse.log").exists() else ""
        )
        self.stop()
        raise RuntimeError(f"PulseAudio did not start; its log ends with:\n{log}")

    def stop(self) -> None:
        """Ask the daemon to exit, and kill it if it does not within 5 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        self.pactl("exit")
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run pactl against this daemon."""
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def inject(self, wav: Path, device: str = "mic") -> subprocess.Popen[bytes]:
        """Play a WAV into the virtual microphone, or another sink (returns at once)."""
        return subprocess.Popen(["paplay", "-d", device, str(wav)], env=self.env)

    def record(self, wav: Path) -> subprocess.Popen[bytes]:
        """Record the virtual speaker to a 16 kHz WAV until the process is terminated; returns once it records."""
        recorder = subprocess.Popen(
            ["parecord", "-d", "speaker.monitor", "--rate=16000", "--channels=1", "--file-format=wav", str(wav)],
            env=self.env,
        )
        # parecord takes a moment to connect, longer on a busy machine: sound played before then is not heard.
        deadline = time.monotonic() + 10
        while not self._has_stream("source-outputs", "parecord"):
            if recorder.poll() is not None or time.monotonic() > deadline:
                recorder.kill()
                raise RuntimeError("parecord did not start recording within 10 s")
            time.sleep(0.02)
        return recorder

    def _has_stream(self, kind: str, application: str) -> bool:
        listing = self.pactl("--format=json", "list", kind)
        if listing.returncode != 0:
            return False
        return any(item["properties"].get("application.name") == application for item in json.loads(listing.stdout))


def pulse_env(root: Path) -> dict[str, str]:
    """Environment that keeps PulseAudio's socket, cookie and state inside ``root``."""
    (root / "run").mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "XDG_RUNTIME_DIR": str(root / "run"),
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": str(root / "home" / ".config"),
        "PULSE_SERVER": f"unix:{root / 'run' / 'pulse' / 'native'}",
    }


@pytest.fixture(name="pulse")
def pulse_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PulseServer]:
    """A fresh PulseAudio daemon that this process's PyAudio uses; skipped only with XIANGYIN_SKIP_PULSE=1."""
    skip = os.environ.get("XIANGYIN_SKIP_PULSE") == "1"
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay", "parecord") if shutil.which(tool) is None]
    if missing:
        message = f"PulseAudio tools missing: {', '.join(missing)} (apt-get install pulseaudio pulseaudio-utils)"
        pytest.skip(message) if skip else pytest.fail(message)
    root = tmp_path / "pulse"
    env = pulse_env(root)
    for key in ("XDG_RUNTIME_DIR", "HOME", "XDG_CONFIG_HOME", "PULSE_SERVER"):
        monkeypatch.setenv(key, env[key])
    server = PulseServer(root, env)
    try:
        server.start()
    except (RuntimeError, OSError) as err:
        message = f"cannot start a PulseAudio user daemon: {err} (set XIANGYIN_SKIP_PULSE=1 to skip)"
        pytest.skip(message) if skip else pytest.fail(message)
    try:
        yield server
    finally:
        server.stop()
