"""The reminder store under storage faults: a full disk, and a daemon killed in the middle of a write.

Both run the real scheduler and timers skill in a child process (tests/reminder_process.py), so the
disk can be filled and the process killed without touching the test runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.app import build_tools
from assistant.bus import Bus
from assistant.config import Settings
from assistant.events import ConnectionChanged, Event
from assistant.tasks import MonotonicClock
from assistant.voice.replay import ReplayVoice
from support.fakes import FakeVoice

ROOT = Path(__file__).resolve().parents[2]
PROCESS = [sys.executable, "-m", "tests.reminder_process"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Served:
    """The timers skill in a child process, one JSON command and answer at a time."""

    def __init__(self, database: Path, disk: str) -> None:
        self.process = subprocess.Popen(
            [*PROCESS, "serve", str(database), "-", "--disk", disk],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        self.errors: list[str] = []
        self._fired: list[str] = []
        threading.Thread(target=self._read_errors, daemon=True).start()
        assert json.loads(self._line()) == {"ready": True}

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("FIRED "):
                self._fired.append(json.loads(line.removeprefix("FIRED "))["text"])
            else:
                self.errors.append(line)

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the daemon stand-in exited with {self.process.wait(timeout=10)}"
        return line

    def send(self, **command: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        return json.loads(self._line())["answer"]

    def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        answer = self.send(do="tool", name=name, arguments=arguments)
        assert isinstance(answer, dict)
        return answer

    def pending(self) -> list[str]:
        return [r["text"] for r in self.send(do="pending")]

    def fired(self) -> list[str]:
        return list(self._fired)

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=20)


@pytest.fixture(params=["rlimit", "tmpfs"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory for the store and how to fill its disk.

    ``rlimit`` (anywhere): a file-size limit of 0 makes every write fail with EFBIG. ``tmpfs``: a real 1 MiB
    tmpfs filled to ENOSPC by a filler file; needs mount rights, so it is skipped without them.
    """
    if request.param == "rlimit":
        yield tmp_path, "rlimit"
        return
    mount = tmp_path / "small-disk"
    mount.mkdir()
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if tried.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (no mount rights?): {tried.stderr.decode().strip()}")
    try:
        yield mount, "filler"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def wait_until(check: Any, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_gives_a_clear_error_keeps_the_reminders_and_recovers(disk: tuple[Path, str]) -> None:
    """Disk full: saving fails with 'could not save', nothing stored is lost, a due timer fires once."""
    directory, how = disk
    database = directory / "jobs.sqlite"
    served = Served(database, how)
    try:
        assert "error" not in served.tool("set_reminder", text="交电费", time_of_day="19:30", day="2099-01-01")
        assert "error" not in served.tool("set_timer", announcement="面条煮好了", seconds=2)
        assert served.send(do="fill") == "full"

        refused = served.tool("set_reminder", text="该吃药了", time_of_day="08:00", repeat="daily")
        assert refused["ok"] is False and "could not save" in refused["error"], refused
        # The timer falls due while nothing can be written: it fires, and only once.
        wait_until(lambda: "面条煮好了" in served.fired(), what="the timer to fire on a full disk")
        assert sorted(served.pending()) == ["交电费"]
        cancel = served.tool("cancel_reminder", reminder_id=served.send(do="pending")[0]["id"])
        assert cancel["ok"] is False and "could not save" in cancel["error"], cancel

        assert served.send(do="free") == "free"
        assert "error" not in served.tool("set_reminder", text="该吃药了", time_of_day="08:00", repeat="daily")
        time.sleep(1.0)  # room for a wrong second firing of the timer
        assert sorted(served.pending()) == ["交电费", "该吃药了"]
        assert served.fired() == ["面条煮好了"]
    finally:
        exit_code = served.close()
    assert exit_code == 0, "the daemon stand-in did not stay up:\n" + "".join(served.errors)[-3000:]

    # The store on disk is sound and holds exactly what the user was told was saved.
    assert integrity(database) == "ok"
    again = Served(database, how)
    try:
        time.sleep(0.5)
        assert sorted(again.pending()) == ["交电费", "该吃药了"]
        assert again.fired() == [], "the timer fired again after a restart"
    finally:
        again.close()


@pytest.mark.slow
def test_kill_9_in_the_middle_of_reminder_writes_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL at random moments while reminders are written: each acknowledged one survives exactly once."""
    database, log, acks = tmp_path / "jobs.sqlite", tmp_path / "fired.jsonl", tmp_path / "acks.jsonl"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kills = 6
    due_at = time.time() + 1.0  # every fourth reminder: past due (within the grace) when the last process starts
    for round_ in range(kills):
        writer = subprocess.Popen(
            [
                *PROCESS,
                "hammer",
                str(database),
                str(log),
                "--acks",
                str(acks),
                "--prefix",
                f"k{round_}",
                "--due-at",
                str(due_at),
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready", f"the store did not open after kill {round_}"
            time.sleep(rng.uniform(0.2, 1.2))
            assert writer.poll() is None, f"the writer died on its own (seed {seed}): rc {writer.returncode}"
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait()

    acknowledged = [json.loads(line) for line in acks.read_text().splitlines()]
    assert len(acknowledged) > kills * 10, "too few writes to mean anything"
    due = {a["text"] for a in acknowledged if a["due"] == due_at}
    later = {a["text"] for a in acknowledged} - due
    final = subprocess.run(
        [*PROCESS, "resume", str(database), str(log), "--seconds", "2"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    pending = Counter(json.loads(final.stdout))
    fired = Counter(json.loads(line)["text"] for line in log.read_text().splitlines())

    context = f"(seed {seed}, {len(acknowledged)} acknowledged writes)"
    assert [t for t, n in pending.items() if n > 1] == [], f"doubled in the store {context}"
    assert [t for t, n in fired.items() if n > 1] == [], f"fired twice {context}"
    assert sorted(later - set(pending)) == [], f"acknowledged but lost {context}"
    assert sorted(due - set(fired)) == [], f"acknowledged but never fired {context}"
    assert not set(fired) & set(pending), f"fired and still pending {context}"
    # At most the one write in flight at each kill may be there without an acknowledgement.
    unacknowledged = (set(pending) | set(fired)) - due - later
    assert len(unacknowledged) <= kills, f"{sorted(unacknowledged)} {context}"
    assert integrity(database) == "ok"


def test_a_reminder_whose_process_dies_as_it_fires_fires_after_the_restart(tmp_path: Path) -> None:
    """Killed at the very moment a reminder is handed over: the next start delivers it, once."""
    database, log = tmp_path / "jobs.sqlite", tmp_path / "fired.jsonl"
    dying = subprocess.run([*PROCESS, "die-on-fire", str(database), str(log)], env=ENV, timeout=60)
    assert dying.returncode == -signal.SIGKILL
    assert not log.exists(), "nothing was announced before the kill"
    resumed = subprocess.run(
        [*PROCESS, "resume", str(database), str(log), "--seconds", "1"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fired = [json.loads(line)["text"] for line in log.read_text().splitlines()] if log.exists() else []
    assert fired == ["die-on-fire"], "the reminder was lost with the process"
    assert json.loads(resumed.stdout) == []


@pytest.mark.parametrize("damage", ["not a database", "a directory in the way"])
async def test_a_store_that_cannot_be_opened_leaves_the_rest_of_the_assistant_working(
    tmp_path: Path, damage: str
) -> None:
    """A corrupt or unreachable reminder file is reported; the daemon starts without the timers skill."""
    database = tmp_path / "jobs.sqlite"
    if damage == "not a database":
        database.write_bytes(b"this is no SQLite file, just bytes a broken disk left behind" * 100)
    else:
        database.mkdir()
    settings = Settings.model_validate(
        {"scheduler": {"database": str(database)}, "skills": {"timers": {}, "clock": {}}}
    )
    bus = Bus(MonotonicClock())
    events: list[Event] = []
    bus.tap(lambda envelope: events.append(envelope.event))
    async with contextlib.AsyncExitStack() as stack:
        tools, _ = await build_tools(settings, bus, MonotonicClock(), stack, [], ReplayVoice(FakeVoice(), None))
        assert "needs the scheduler" in tools.skipped["timers"]
        assert "get_date_time" in tools.names, "the other skills are loaded"
        assert "set_timer" not in tools.names
    down = [e for e in events if isinstance(e, ConnectionChanged) and e.service == "scheduler"]
    assert len(down) == 1 and not down[0].connected
    assert str(database) in down[0].detail and "cannot open the reminder store" in down[0].detail
