"""A daemon stand-in for the restart test: ``python -m tests.reminder_process MODE DATABASE LOG``.

``schedule`` stores a few reminders relative to now, prints their due times as JSON and runs until it is
killed. ``resume`` opens the same store and runs until ``--until`` (Unix seconds), then prints what is
still pending. Every announcement is appended to LOG as one JSON line, flushed and fsynced, so the test
can count them even after a SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from assistant.events import AnnounceRequested, Event
from assistant.scheduler import ReminderScheduler

TZ = "Asia/Shanghai"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["schedule", "resume"])
    parser.add_argument("database")
    parser.add_argument("log")
    parser.add_argument("--until", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(run(args.mode, args.database, args.log, args.until))


async def run(mode: str, database: str, log: str, until: float) -> None:
    def publish(event: Event) -> None:
        if isinstance(event, AnnounceRequested):
            with open(log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"pid": os.getpid(), "text": event.text, "at": time.time()}) + "\n")
                out.flush()
                os.fsync(out.fileno())

    scheduler = ReminderScheduler(database, publish=publish, timezone=TZ, misfire_grace_seconds=60)
    await scheduler.start()
    if mode == "schedule":
        now = time.time()
        due = {"early": now + 1.0, "missed-1": now + 3.0, "missed-2": now + 3.5, "later": now + 7.0}
        for text, at in due.items():
            scheduler.add_once("reminder", text, datetime.fromtimestamp(at, ZoneInfo(TZ)))
        scheduler.add_repeating("reminder", "daily-medicine", hour=8, minute=0, repeat="daily")
        print(json.dumps(due), flush=True)
        await asyncio.Event().wait()  # until SIGKILL
    await asyncio.sleep(max(0.0, until - time.time()))
    pending = [r.text for r in scheduler.pending()]
    await scheduler.stop()
    print(json.dumps(pending), flush=True)


if __name__ == "__main__":
    main()
