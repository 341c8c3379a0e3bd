"""systemd notify protocol, the unit file, and logs that never show secrets."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
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
            out, _ = daemon.communicate(timeout=60)
        finally:
            daemon.kill()
    assert daemon.returncode == 0
    assert "turn-ended" in out and "outcome='completed'" in out
    assert "shutdown-requested reason='SIGTERM'" in out
    assert out.rstrip().endswith("clean exit")


def test_a_spoken_alarm_code_and_skill_secrets_never_reach_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.bus import Envelope
    from assistant.config import Settings
    from assistant.events import ToolCallRequested
    from assistant.logs import log_event, secret_values

    settings = Settings.model_validate(
        {"skills": {"smart_home": {"alarm_code": "80086"}}, "mqtt": {"password": "hunter22"}}
    )
    assert set(secret_values(settings)) == {"80086", "hunter22"}
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging(LoggingSettings(), secrets=secret_values(settings))
    arguments = {"target": "house", "code": "4711"}
    log_event(Envelope(0.0, ToolCallRequested(turn_id="t", call_id="c", tool="disarm_alarm", arguments=arguments)))
    logging.getLogger("test").info("the configured code is 80086")
    text = stream.getvalue()
    assert "4711" not in text and "80086" not in text
    assert "'target': 'house'" in text
    logging.getLogger().handlers.clear()


def test_stopping_while_a_slow_load_runs_does_not_wait_for_the_load() -> None:
    """A model load of minutes must not hold the exit (asyncio.to_thread would wait for it)."""
    code = (
        "import asyncio, time\n"
        "from assistant.tasks import in_daemon_thread\n"
        "async def main():\n"
        "    load = asyncio.create_task(in_daemon_thread(time.sleep, 3600))\n"
        "    await asyncio.sleep(0.2)\n"
        "    load.cancel()\n"
        "asyncio.run(main())\n"
    )
    # The load sleeps an hour: ending within the limit shows the exit did not wait for it.
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


async def test_a_daemon_thread_returns_the_result_or_raises_the_error() -> None:
    from assistant.tasks import in_daemon_thread

    assert await in_daemon_thread(lambda a, b: a + b, 2, 3) == 5

    def broken() -> None:
        raise ValueError("bad checkpoint")

    with pytest.raises(ValueError, match="bad checkpoint"):
        await in_daemon_thread(broken)


def test_a_blocking_call_stuck_in_a_worker_thread_does_not_keep_the_stopped_daemon_alive() -> None:
    """``asyncio.run`` and the interpreter wait for the default executor's threads; the daemon's executor does not.

    A device open hung in a wedged sound server (or paho's connect to a broker dropping the attempt) would
    otherwise hold the process until systemd kills it.
    """
    code = (
        "import asyncio, threading\n"
        "from assistant.tasks import DaemonThreadExecutor\n"
        "async def main():\n"
        "    asyncio.get_running_loop().set_default_executor(DaemonThreadExecutor())\n"
        "    wedged = asyncio.create_task(asyncio.to_thread(threading.Event().wait))\n"
        "    await asyncio.sleep(0.2)\n"
        "    wedged.cancel()\n"
        "asyncio.run(main())\n"
        "print('stopped')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


async def test_the_daemons_executor_returns_results_and_raises_errors_through_to_thread() -> None:
    import asyncio

    from assistant.tasks import DaemonThreadExecutor

    asyncio.get_running_loop().set_default_executor(DaemonThreadExecutor())
    assert await asyncio.to_thread(lambda a, b: a + b, 2, 3) == 5

    def broken() -> None:
        raise OSError("no such device")

    with pytest.raises(OSError, match="no such device"):
        await asyncio.to_thread(broken)


async def _from(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
    while (item := await queue.get()) is not None:
        yield item


async def test_an_answer_that_arrived_while_the_loop_was_busy_wins_over_the_deadline() -> None:
    """The item (due at 0.1 s) and the deadline (0.15 s) fall due in the same step after a busy loop."""
    import time

    from assistant.tasks import next_within

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    items = _from(queue)
    loop.call_later(0.05, time.sleep, 0.2)  # the loop is busy from 0.05 s to 0.25 s
    loop.call_later(0.1, queue.put_nowait, "the answer")
    assert await next_within(items, 0.15) == "the answer"
    queue.put_nowait("and more")
    assert await next_within(items, 0.15) == "and more", "the stream must still be open"
    await items.aclose()


async def test_next_within_times_out_on_silence_and_ends_with_the_stream() -> None:
    from assistant.tasks import next_within

    queue: asyncio.Queue[str | None] = asyncio.Queue()
    with pytest.raises(TimeoutError):
        await next_within(_from(queue), 0.05)
    queue.put_nowait(None)
    with pytest.raises(StopAsyncIteration):
        await next_within(_from(queue), 1)


async def test_cancelling_next_within_leaves_the_stream_closable() -> None:
    from assistant.tasks import next_within

    queue: asyncio.Queue[str | None] = asyncio.Queue()
    items = _from(queue)
    waiting = asyncio.create_task(next_within(items, 30))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await items.aclose()  # would raise "already running" if the step were still unwinding


async def test_next_within_cancelled_twice_still_leaves_a_slowly_unwinding_stream_closable() -> None:
    """A barge-in and a shutdown can cancel a turn back to back while its stream is closing a connection."""
    from assistant.tasks import next_within

    closed = asyncio.Event()

    async def slow_to_close(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            await asyncio.sleep(0.05)
            closed.set()

    items = slow_to_close(asyncio.Queue())
    waiting = asyncio.create_task(next_within(items, 30))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert closed.is_set()
    await items.aclose()  # "already running" if next_within had left before its step unwound


async def test_a_socket_registered_after_it_closed_is_not_logged_as_an_error() -> None:
    """aiomqtt's add_reader, scheduled from its connect thread, can land after the broker dropped the socket."""
    import socket

    from assistant.tasks import quiet_closed_socket_callbacks

    loop = asyncio.get_running_loop()
    other: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: other.append(context))
    quiet_closed_socket_callbacks(loop)
    left, right = socket.socketpair()
    fd = left.fileno()
    left.close()
    right.close()
    loop.call_soon(loop.add_reader, fd, lambda: None)  # the fd is closed: the loop's callback raises EBADF
    loop.call_soon(lambda: 1 / 0)  # anything else still reaches the handler that was there
    await asyncio.sleep(0.05)
    assert [type(c.get("exception")) for c in other] == [ZeroDivisionError]
