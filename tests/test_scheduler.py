"""Timers and reminders: they fire as announcements, survive a killed process, and never fire twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.bus import Envelope
from assistant.events import AnnounceRequested, Event, ReminderFired, ReminderSpoken
from assistant.scheduler import Reminder, ReminderScheduler

TZ = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Callable[..., ReminderScheduler]]:
    running: list[ReminderScheduler] = []

    def make(events: list[Event], grace: int = 60) -> ReminderScheduler:
        scheduler = ReminderScheduler(
            tmp_path / "jobs.sqlite", publish=events.append, timezone="Asia/Shanghai", misfire_grace_seconds=grace
        )
        running.append(scheduler)
        return scheduler

    yield make
    for scheduler in running:
        await scheduler.stop()


async def test_a_due_timer_is_announced_once_and_forgotten(started: Callable[..., ReminderScheduler]) -> None:
    events: list[Event] = []
    fired = asyncio.Event()
    scheduler = started(events)

    async def listener(reminder: Reminder) -> None:
        fired.set()

    scheduler.add_listener(listener)
    await scheduler.start()
    timer = scheduler.add_after("timer", "面条煮好了", 0.2)
    assert [r.id for r in scheduler.pending()] == [timer.id]
    async with asyncio.timeout(5):
        await fired.wait()
    await asyncio.sleep(0.3)
    assert events == [
        AnnounceRequested(text="面条煮好了", source="scheduler", reminder_id=timer.id),
        ReminderFired(reminder_id=timer.id, kind="timer", text="面条煮好了"),
    ]
    assert scheduler.pending() == []


async def test_daily_reminder_is_listed_at_its_next_local_time_and_can_be_cancelled(
    started: Callable[..., ReminderScheduler],
) -> None:
    scheduler = started([])
    await scheduler.start()
    later = scheduler.add_once("alarm", "起床了", datetime.now(TZ) + timedelta(hours=30))
    daily = scheduler.add_repeating("reminder", "该吃药了", hour=8, minute=0, repeat="daily")
    assert daily.next_run is not None and (daily.next_run.hour, daily.next_run.minute) == (8, 0)
    assert daily.next_run.utcoffset() == timedelta(hours=8)
    assert timedelta(0) < daily.next_run - datetime.now(TZ) <= timedelta(days=1)
    assert [r.text for r in scheduler.pending()] == ["该吃药了", "起床了"]
    assert scheduler.cancel(daily.id) == daily
    assert scheduler.cancel(daily.id) is None
    assert [r.id for r in scheduler.pending()] == [later.id]


async def test_weekday_reminder_skips_the_weekend(started: Callable[..., ReminderScheduler]) -> None:
    scheduler = started([])
    await scheduler.start()
    reminder = scheduler.add_repeating("reminder", "上班", hour=7, minute=30, repeat="weekdays")
    assert reminder.next_run is not None and reminder.next_run.weekday() < 5


async def test_reminders_survive_a_restart_in_process(started: Callable[..., ReminderScheduler]) -> None:
    first = started([])
    await first.start()
    kept = first.add_once("reminder", "交电费", datetime.now(TZ) + timedelta(days=2))
    await first.stop()
    second = started([])
    await second.start()
    assert second.pending() == [kept]


async def test_a_reminder_missed_beyond_the_grace_is_skipped(started: Callable[..., ReminderScheduler]) -> None:
    events: list[Event] = []
    first = started(events, grace=1)
    await first.start()
    first.add_after("reminder", "too late", 0.1)
    await first.stop()
    await asyncio.sleep(1.4)
    second = started(events, grace=1)
    await second.start()
    await asyncio.sleep(0.4)
    assert events == []
    assert second.pending() == []


async def test_a_second_scheduler_with_the_same_name_is_refused(started: Callable[..., ReminderScheduler]) -> None:
    await started([]).start()
    with pytest.raises(RuntimeError, match="already running"):
        await started([]).start()


@pytest.mark.slow
def test_reminders_fire_exactly_once_across_a_sigkill(tmp_path: Path) -> None:
    """Kill the daemon between reminders; the restarted one fires every due reminder once, none twice."""
    database, log = tmp_path / "jobs.sqlite", tmp_path / "fired.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.reminder_process"]
    first = subprocess.Popen(
        [*command, "schedule", str(database), str(log)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert first.stdout is not None
        due = json.loads(first.stdout.readline())
        deadline = time.time() + 15
        while not (log.exists() and "early" in log.read_text()):
            assert time.time() < deadline, "the first reminder never fired"
            time.sleep(0.02)
        assert time.time() < due["missed-1"], "too slow to kill between reminders"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()

    while time.time() < due["missed-2"] + 0.3:  # the box is off while two reminders fall due
        time.sleep(0.05)
    second = subprocess.run(
        [*command, "resume", str(database), str(log), "--until", str(due["later"] + 1.5), "--seconds", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    fired = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(f["text"] for f in fired) == ["early", "later", "missed-1", "missed-2"]
    assert [f["pid"] for f in fired if f["text"] == "early"] == [first.pid]
    assert {f["pid"] for f in fired if f["text"] != "early"} != {first.pid}
    assert json.loads(second.stdout) == ["daily-medicine"]


async def test_a_clashing_id_is_replaced_by_a_fresh_one(
    started: Callable[..., ReminderScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids are 24 bits so people can say them; a clash must not fail the user's request."""
    scheduler = started([])
    await scheduler.start()
    ids = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr("assistant.scheduler.secrets.token_hex", lambda _: next(ids))
    first = scheduler.add_after("timer", "one", 600)
    second = scheduler.add_after("timer", "two", 600)
    assert (first.id, second.id) == ("aaaaaa", "bbbbbb")
    assert sorted(r.text for r in scheduler.pending()) == ["one", "two"]


async def test_a_fired_reminder_leaves_the_file_only_after_it_was_handed_over(tmp_path: Path) -> None:
    """A crash before the announcement is published must leave the reminder in the store, to fire again."""
    database = tmp_path / "jobs.sqlite"
    in_file_when_published: list[int] = []
    published = asyncio.Event()

    def publish(event: Event) -> None:
        if isinstance(event, AnnounceRequested):
            with sqlite3.connect(database) as db:
                in_file_when_published.append(db.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0])
            published.set()

    scheduler = ReminderScheduler(database, publish=publish, timezone="Asia/Shanghai", name="handover")
    await scheduler.start()
    try:
        scheduler.add_after("timer", "tea", 0.1)
        async with asyncio.timeout(5):
            await published.wait()
        assert scheduler.pending() == []
    finally:
        await scheduler.stop()
    assert in_file_when_published == [1]
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0] == 0


async def test_a_reminder_waiting_to_be_spoken_stays_in_the_file_until_it_is_reported_spoken(tmp_path: Path) -> None:
    """In the daemon a fired reminder may wait behind a turn; a kill then must not lose it."""
    database = tmp_path / "jobs.sqlite"
    announced: list[AnnounceRequested] = []
    published = asyncio.Event()

    def publish(event: Event) -> None:
        if isinstance(event, AnnounceRequested):
            announced.append(event)
            published.set()

    def stored() -> int:
        with sqlite3.connect(database) as db:
            return int(db.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0])

    scheduler = ReminderScheduler(database, publish=publish, name="spoken", wait_until_spoken=True)
    await scheduler.start()
    try:
        tea = scheduler.add_after("timer", "tea", 0.1)
        async with asyncio.timeout(5):
            await published.wait()
        await asyncio.sleep(0.2)
        assert scheduler.pending() == [], "fired: not listed, and not fired again"
        assert [a.reminder_id for a in announced] == [tea.id]
        assert stored() == 1, "not spoken yet, so a restart would still say it"
        scheduler.observe(Envelope(0.0, ReminderSpoken(reminder_id="someone-else")))
        assert stored() == 1
        scheduler.observe(Envelope(0.0, ReminderSpoken(reminder_id=tea.id)))
        assert stored() == 0
    finally:
        await scheduler.stop()


def test_the_private_job_store_call_we_rely_on_still_takes_conditions_and_returns_jobs(tmp_path: Path) -> None:
    """assistant/jobstore.py filters with SQLAlchemyJobStore._get_jobs(*conditions), which APScheduler does not
    promise; pyproject pins the minor release, and this fails first if an upgrade changes it."""
    import inspect

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    parameters = list(inspect.signature(SQLAlchemyJobStore._get_jobs).parameters.values())
    assert [(p.name, p.kind) for p in parameters] == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("conditions", inspect.Parameter.VAR_POSITIONAL),
    ]
    store = SQLAlchemyJobStore(url=f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    scheduler = BackgroundScheduler(jobstores={"default": store})
    scheduler.add_job(print, DateTrigger(datetime.now(UTC) + timedelta(hours=1)), id="tea")
    scheduler.add_job(print, DateTrigger(datetime.now(UTC) + timedelta(hours=2)), id="walk")
    scheduler.start(paused=True)
    try:
        assert [job.id for job in store._get_jobs(store.jobs_t.c.id != "tea")] == ["walk"]
    finally:
        scheduler.shutdown(wait=False)
