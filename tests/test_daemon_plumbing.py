"""systemd notify protocol, the unit file, and logs that never show secrets."""

from __future__ import annotations

import io
import logging
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.config import LoggingSettings
from assistant.logs import configure_logging
from assistant.sdnotify import Notifier

ROOT = Path(__file__).resolve().parent.parent


def test_notifier_sends_datagrams_to_the_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "10000000"})
        assert notifier.notify("READY=1")
        assert server.recv(64) == b"READY=1"
    assert notifier.watchdog_interval_seconds == 5.0


def test_notifier_is_silent_outside_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.notify("READY=1")
    assert notifier.watchdog_interval_seconds is None
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval_seconds is None


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "xiangyin.service").read_text()
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    # verify checks that the executable exists; point it at this interpreter instead of /opt.
    unit = unit.replace(start, f"ExecStart={sys.executable} -m assistant run --config /etc/xiangyin/config.yaml")
    copy = tmp_path / "xiangyin.service"
    copy.write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "xiangyin.service" not in done.stderr, done.stderr
    for needed in ("Type=notify", "WatchdogSec=", "Restart=always", "EnvironmentFile=", "SupplementaryGroups=audio"):
        assert needed in unit


def test_logs_mask_secrets_even_inside_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging(LoggingSettings(format="json"), secrets=["s3cr3t-token"])
    log = logging.getLogger("test.secrets")
    log.warning("calling http://ha/api?token=%s", "s3cr3t-token")
    try:
        raise RuntimeError("401 for s3cr3t-token")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert "s3cr3t-token" not in text
    assert text.count("***") >= 2
    logging.getLogger().handlers.clear()


def test_daemon_reports_ready_pings_the_watchdog_and_stops_on_sigterm_within_2_s(tmp_path: Path) -> None:
    import os
    import signal
    import time

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000", "PYTHONPATH": str(ROOT)}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon_with_fakes"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            messages = [server.recv(64)]
            while messages.count(b"WATCHDOG=1") < 2:
                messages.append(server.recv(64))
            assert messages[0] == b"READY=1" or b"READY=1" in messages
            # Let the scripted conversation run, then ask it to stop.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                messages.append(server.recv(64))
                if messages.count(b"WATCHDOG=1") >= 20:
                    break
            daemon.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            out, _ = daemon.communicate(timeout=10)
            stopped_after = time.monotonic() - sent
        finally:
            daemon.kill()
    assert daemon.returncode == 0
    assert stopped_after < 2.0, f"took {stopped_after:.2f} s to stop"
    assert "turn-ended" in out and "outcome='completed'" in out
    assert "shutdown-requested reason='SIGTERM'" in out
    assert out.rstrip().endswith("clean exit")
