"""SIGTERM in the middle of a turn: a real daemon process (``tests/daemon_with_fakes.py``) stops at once,
closes the turn's books, and keeps what it was asked to say for the next start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.app import Adapters, App
from assistant.bus import Bus
from assistant.config import Settings
from assistant.events import AnnounceRequested, PlaybackStarted, ShutdownRequested
from assistant.ports import Clock
from support.fakes import (
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    ScriptedModel,
)

ROOT = Path(__file__).resolve().parents[2]
REMINDER = "吃药时间到了"


class Daemon:
    """``python -m tests.daemon_with_fakes`` with its output collected line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon_with_fakes", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, *needles: str, timeout: float = 60.0) -> None:
        """Wait until one line holds every needle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(all(n in line for n in needles) for line in list(self.lines)):
                return
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {needles}; output:\n" + "\n".join(self.lines[-40:]))

    def terminate(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Send a stop signal and wait for the exit.

        What is waited on never ends by itself (a model or tool that hangs for an hour), so an exit proves the
        daemon did not wait for it; the limit only bounds a broken run, it times nothing.
        """
        self.process.send_signal(signum)
        self.process.wait(60)
        self._reader.join(5)

    def count(self, *needles: str) -> int:
        return sum(all(n in line for n in needles) for line in self.lines)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def daemon(*args: str) -> Iterator[Daemon]:
    running = Daemon(*args)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(5)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_while_the_model_answers_stops_at_once_and_the_queued_reminder_is_said_after_restart(
    tmp_path: Path, signum: signal.Signals
) -> None:
    store = str(tmp_path / "reminders.sqlite")
    with daemon("--busy", "model", "--store", store, "--remind", REMINDER) as first:
        first.wait_for("reply-text", "let me think")  # the model is answering and then hangs for an hour
        first.wait_for("reminder-fired", REMINDER)  # the reminder fell due meanwhile and waits for the turn
        first.terminate(signum)
    assert first.process.returncode == 0
    assert first.count("turn-ended", "outcome='interrupted'") == 1
    assert first.count("turn-started", "trigger='announce'") == 0
    assert first.lines[-1] == "clean exit"

    with daemon("--quiet", "--store", store) as second:
        second.wait_for("reminder-fired", REMINDER)
        second.wait_for("turn-ended", "outcome='completed'")
        second.terminate()
    assert second.process.returncode == 0
    assert second.count("announce-requested", REMINDER) == 1, "said once after the restart, not lost or doubled"
    assert second.count("turn-started", "trigger='announce'") == 1


def test_kill_9_while_a_reminder_waits_behind_the_answer_loses_nothing_it_is_said_once_after_restart(
    tmp_path: Path,
) -> None:
    """The reminder fired and was handed over, but no one had heard it yet: the store must still have it."""
    store = str(tmp_path / "reminders.sqlite")
    with daemon("--busy", "model", "--store", store, "--remind", REMINDER) as first:
        first.wait_for("reply-text", "let me think")
        first.wait_for("reminder-fired", REMINDER)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(15)
    assert first.count("turn-started", "trigger='announce'") == 0

    with daemon("--quiet", "--store", store) as second:
        second.wait_for("reminder-fired", REMINDER)
        second.wait_for("turn-ended", "outcome='completed'")
        second.wait_for("reminder-spoken")
        second.terminate()
    assert second.process.returncode == 0
    assert second.count("announce-requested", REMINDER) == 1

    with daemon("--quiet", "--store", store) as third:  # spoken once: nothing is left to say
        third.wait_for("ready")
        third.terminate()
    assert third.count("scheduler started with 0 stored jobs") == 1, third.output


def test_sigterm_while_a_tool_runs_cancels_the_tool_and_stops_at_once() -> None:
    with daemon("--busy", "tool") as running:
        running.wait_for("slow_lookup started")
        running.terminate()
    assert running.process.returncode == 0
    assert running.count("slow_lookup cancelled") == 1
    assert running.count("tool-call-finished", "ok=False") == 1
    assert running.count("turn-ended", "outcome='interrupted'") == 1
    assert running.lines[-1] == "clean exit"


def test_sigterm_while_a_command_that_must_finish_hangs_stops_within_the_systemd_stop_timeout() -> None:
    """A tool declared cancel_on_interrupt=False outlives its turn, but not the daemon's stop."""
    with daemon("--busy", "command") as running:
        running.wait_for("slow_command started")
        running.terminate()  # the command never returns: the exit shows the stop did not wait for it
    assert running.process.returncode == 0
    assert running.count("stopping tool slow_command, still running at shutdown") == 1
    assert running.count("slow_command stopped") == 1
    assert running.lines[-1] == "clean exit"


async def test_an_announcement_cut_short_by_the_shutdown_and_those_queued_behind_it_are_kept_in_order() -> None:
    kept: list[str] = []
    long_text, queued = "现在是下午三点，" * 20, "门口有快递"

    async def build(settings: Settings, bus: Bus, clock: Clock, stack: contextlib.AsyncExitStack) -> Adapters:
        return Adapters(
            source=FakeMicrophone(clock, []),
            sink=FakeSpeaker(clock),
            wake=FakeWakeDetector(),
            vad=FakeSpeechDetector(),
            model=ScriptedModel(clock, []),
            voice=FakeVoice(seconds_per_char=0.1),
            tools=FakeTools(),
            keep_unspoken=kept.extend,
        )

    settings = {"conversation": {"earcons": False, "follow_up_seconds": 0}, "state": {"settings_path": None}}
    app = App(Settings.model_validate(settings), build)
    speaking = asyncio.Event()
    app.bus.tap(lambda envelope: isinstance(envelope.event, PlaybackStarted) and speaking.set())
    running = asyncio.create_task(app.run())
    await asyncio.sleep(0.1)
    app.bus.publish(AnnounceRequested(text=long_text, source="mqtt"))
    await asyncio.wait_for(speaking.wait(), 5)
    app.bus.publish(AnnounceRequested(text=queued, source="scheduler"))
    app.bus.publish(ShutdownRequested(reason="SIGTERM"))
    await asyncio.wait_for(running, 5)
    assert kept == [long_text, queued]
