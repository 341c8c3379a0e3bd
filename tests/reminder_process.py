"""A daemon stand-in for the reminder tests: ``python -m tests.reminder_process MODE DATABASE LOG``.

``schedule`` stores a few reminders relative to now, prints their due times as JSON and runs until it is
killed. ``resume`` opens the same store and runs until ``--until`` (Unix seconds) and for at least
``--seconds`` after it opened the store (start-up time varies with load), then prints what is
still pending. Every announcement is appended to LOG as one JSON line, flushed and fsynced, so the test
can count them even after a SIGKILL. As in the daemon, where the supervisor speaks an announcement
some time after the scheduler published it, a separate task writes them down.

``hammer`` stores reminders in a loop until it is killed: after each write returns it appends
``{"id", "text", "due"}`` to ``--acks`` (fsynced), so the test knows what the store promised to keep.
Every ``--due-every``-th one is due at ``--due-at`` (Unix seconds), the rest in three days; nothing fires
while it writes, so every kill lands in or between writes. ``die-on-fire`` stores one reminder due at
once and kills itself with SIGKILL the moment the scheduler hands it over.

``serve`` is the timers skill behind the real tool registry, driven by JSON lines on stdin, one answer
line each on stdout: ``{"do": "tool", "name", "arguments"}``, ``{"do": "pending"}``, and ``{"do": "fill"}``
/ ``{"do": "free"}``, which take the disk's space away and give it back (see ``--disk``). Its
announcements go to stderr as ``FIRED <json>`` lines, since a full disk would refuse LOG too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from assistant.events import AnnounceRequested, Event
from assistant.ports import ModelToolCall
from assistant.scheduler import ReminderScheduler
from assistant.skills import SkillDeps, load_skills
from assistant.tasks import MonotonicClock

TZ = "Asia/Shanghai"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["schedule", "resume", "hammer", "die-on-fire", "serve"])
    parser.add_argument("database")
    parser.add_argument("log", help="announcements, one JSON line each (not used by serve)")
    parser.add_argument("--until", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--acks", default="")
    parser.add_argument("--prefix", default="r")
    parser.add_argument("--due-every", type=int, default=4)
    parser.add_argument("--due-at", type=float, default=0.0)
    parser.add_argument(
        "--disk",
        choices=["rlimit", "filler"],
        default="rlimit",
        help="how 'fill' takes the space: a file-size limit of 0 (EFBIG), or a filler file on a small disk",
    )
    args = parser.parse_args()
    asyncio.run(run(args))


class Announcer:
    """The bus and the speaker: ``publish`` only queues, :meth:`speak` writes each announcement down."""

    def __init__(self, log: str) -> None:
        self._log = log
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.die_on_announcement = False

    def publish(self, event: Event) -> None:
        if isinstance(event, AnnounceRequested):
            if self.die_on_announcement:
                os.kill(os.getpid(), signal.SIGKILL)
            self._queue.put_nowait(event.text)

    async def speak(self) -> None:
        while True:
            text = await self._queue.get()
            record = {"pid": os.getpid(), "text": text, "at": time.time()}
            if self._log == "-":
                print("FIRED", json.dumps(record, ensure_ascii=False), file=sys.stderr, flush=True)
            else:
                append_synced(self._log, record)


def append_synced(path: str, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())


async def run(args: argparse.Namespace) -> None:
    announcer = Announcer("-" if args.mode == "serve" else args.log)
    speaker = asyncio.create_task(announcer.speak())
    scheduler = ReminderScheduler(args.database, publish=announcer.publish, timezone=TZ, misfire_grace_seconds=60)
    await scheduler.start()
    if args.mode == "schedule":
        now = time.time()
        due = {"early": now + 1.0, "missed-1": now + 3.0, "missed-2": now + 3.5, "later": now + 7.0}
        for text, at in due.items():
            scheduler.add_once("reminder", text, datetime.fromtimestamp(at, ZoneInfo(TZ)))
        scheduler.add_repeating("reminder", "daily-medicine", hour=8, minute=0, repeat="daily")
        print(json.dumps(due), flush=True)
        await asyncio.Event().wait()  # until SIGKILL
    elif args.mode == "hammer":
        await hammer(scheduler, args.acks, args.prefix, args.due_every, args.due_at)
    elif args.mode == "die-on-fire":
        announcer.die_on_announcement = True
        scheduler.add_after("reminder", "die-on-fire", 0.2)
        await asyncio.Event().wait()  # until the announcement kills us
    elif args.mode == "serve":
        await serve(scheduler, Disk(Path(args.database).parent, args.disk), announcer.publish)
        await scheduler.stop()
        speaker.cancel()
        return
    await asyncio.sleep(max(args.seconds, args.until - time.time()))
    pending = [r.text for r in scheduler.pending()]
    await scheduler.stop()
    await asyncio.sleep(0.1)  # the last announcements are written down
    speaker.cancel()
    print(json.dumps(pending), flush=True)


async def hammer(scheduler: ReminderScheduler, acks: str, prefix: str, due_every: int, due_at: float) -> None:
    # Only writing here: reminders from earlier rounds may fall due meanwhile, and fire in the next process.
    scheduler._running().pause()
    print("ready", flush=True)
    for n in range(1_000_000):
        text = f"{prefix}-{n}"
        at = due_at if n % due_every == 0 else time.time() + 86400 * 3
        reminder = scheduler.add_once("reminder", text, datetime.fromtimestamp(at, ZoneInfo(TZ)))
        append_synced(acks, {"id": reminder.id, "text": text, "due": at})
        await asyncio.sleep(0)


class Disk:
    """Takes the store's disk space away and gives it back."""

    def __init__(self, directory: Path, how: str) -> None:
        self._filler = directory / "filler"
        self._how = how
        self._limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        # Past the limit the kernel sends SIGXFSZ, which would kill us; ignored, the write fails with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def fill(self) -> None:
        if self._how == "rlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, self._limits[1]))
            return
        descriptor = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            # Big blocks, then single bytes for the last partial block: nothing may fit afterwards.
            for size in (65536, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(descriptor, b"\0" * size)
        finally:
            os.close(descriptor)

    def free(self) -> None:
        if self._how == "rlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limits)
        else:
            self._filler.unlink(missing_ok=True)


async def serve(scheduler: ReminderScheduler, disk: Disk, publish: Any) -> None:
    deps = SkillDeps(publish=publish, clock=MonotonicClock(), timezone=TZ, scheduler=scheduler)
    tools = await load_skills({"timers": {}}, deps)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    calls = 0
    while line := await reader.readline():
        command = json.loads(line)
        answer: Any
        match command["do"]:
            case "fill":
                disk.fill()
                answer = "full"
            case "free":
                disk.free()
                answer = "free"
            case "pending":
                answer = [{"id": r.id, "text": r.text} for r in scheduler.pending()]
            case "tool":
                calls += 1
                result = await tools.call(ModelToolCall(f"call-{calls}", command["name"], command["arguments"]))
                answer = result.content
            case other:
                answer = f"unknown command {other}"
        print(json.dumps({"answer": answer}, ensure_ascii=False), flush=True)
    await tools.aclose()


if __name__ == "__main__":
    main()
