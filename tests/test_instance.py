"""One daemon per data directory: a second one is refused with the first one's PID, a dead one never blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import EXIT_CONFIG
from assistant.instance import LOCK_NAME, AlreadyRunning, single_instance

ROOT = Path(__file__).resolve().parent.parent
_HOLD = (
    "import sys, pathlib; from assistant.instance import single_instance\n"
    "with single_instance(pathlib.Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.read()\n"
)


def _holder(directory: Path) -> subprocess.Popen[str]:
    """Another process that takes the lock and keeps it until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(directory)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with single_instance(tmp_path / "data") as lock:
        assert lock is not None and lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(AlreadyRunning, match=f"PID {os.getpid()}") as refused:
            with single_instance(tmp_path / "data"):
                pass
        assert refused.value.pid == os.getpid()
    with single_instance(tmp_path / "data"):  # released at the end of the block
        pass


def test_a_daemon_killed_with_sigkill_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    assert (tmp_path / LOCK_NAME).read_text() == f"{holder.pid}\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    with single_instance(tmp_path):  # the stale file names a dead process; the kernel dropped its lock
        pass


def test_an_unwritable_data_directory_is_warned_about_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    with single_instance(blocked / "data") as lock:
        assert lock is None
    assert "a second daemon on it would not be refused" in caplog.text


def test_run_on_a_data_directory_in_use_exits_2_with_one_line_naming_the_pid(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "config.yaml"
    config.write_text(f'scheduler: {{database: "{data / "jobs.sqlite"}"}}\n', encoding="utf-8")
    holder = _holder(data)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "assistant", "run", "--config", str(config), "--output", str(tmp_path / "out.wav")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.communicate("")
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        f"xiangyin: another xiangyin (PID {holder.pid}) is already running on {data}; stop it first"
    ]
    assert not (tmp_path / "out.wav").exists()
