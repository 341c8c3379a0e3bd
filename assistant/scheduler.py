"""Timers, alarms and reminders that survive restarts and power cuts.

APScheduler 3 (the maintained stable line; 4.x is still a pre-release) runs on the daemon's event loop
with its jobs in a SQLite file. Every job calls the module-level :func:`fire` with plain arguments,
so the job store holds a text reference and a few strings, never a pickled object. When a job is due,
the scheduler publishes ``AnnounceRequested`` and ``ReminderFired`` and calls its listeners (MQTT or Home
Assistant notifications).

A reminder that fell due while the box was off fires once when it comes back, if it is at most
``misfire_grace_seconds`` late; a daily reminder missed several times fires once (coalesced), not once
per missed day.

The store (:mod:`assistant.jobstore`) writes down that a reminder fired only once it was delivered: in the
daemon (``wait_until_spoken``), when the supervisor reports it spoken with
:class:`~assistant.events.ReminderSpoken`; otherwise right after it was handed to the bus. A process
killed before that point delivers it on the next start, one killed after it does not, so no reminder is
said twice or lost while it waits behind a turn. A write that fails (disk full) raises
:class:`~assistant.errors.StorageError` and changes nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from .bus import Envelope
from .errors import StorageError
from .events import AnnounceRequested, DaemonStarted, Event, ReminderFired, ReminderSpoken

_LOGGER = logging.getLogger(__name__)

Kind = Literal["timer", "reminder", "alarm"]
Repeat = Literal["none", "daily", "weekdays", "weekends", "weekly"]

_DAYS = {"daily": "*", "weekdays": "mon-fri", "weekends": "sat,sun"}
_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Schedulers started in this process, by name; jobs find theirs here after a restart.
_RUNNING: dict[str, ReminderScheduler] = {}

_ID_ATTEMPTS = 20
"""Fresh ids tried when a new one is taken (ids are short so that people can say them)."""

Listener = Callable[["Reminder"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reminder:
    """A timer, alarm or reminder as stored."""

    id: str
    """Stable identifier, used to cancel it."""
    kind: Kind
    """What the user asked for."""
    text: str
    """What to say when it fires, in the user's language."""
    repeat: Repeat
    """How it recurs."""
    next_run: datetime | None
    """When it fires next, in the household's time zone; None while paused."""


async def fire(scheduler_name: str, reminder_id: str, kind: str, text: str, repeat: str) -> None:
    """Job entry point: deliver a due reminder through the scheduler running in this process."""
    scheduler = _RUNNING.get(scheduler_name)
    if scheduler is None:
        _LOGGER.error("reminder %s is due but scheduler %s is not running", reminder_id, scheduler_name)
        return
    reminder = Reminder(reminder_id, kind, text, repeat, None)  # type: ignore[arg-type]
    await scheduler._deliver(reminder)


class ReminderScheduler:
    """Persistent timers and reminders on the running event loop; :meth:`start` and :meth:`stop` it."""

    def __init__(
        self,
        database: str | Path,
        *,
        publish: Callable[[Event], None],
        timezone: str = "Asia/Shanghai",
        misfire_grace_seconds: int = 3600,
        name: str = "xiangyin",
        wait_until_spoken: bool = False,
    ) -> None:
        self._path = Path(database).expanduser()
        self._publish = publish
        self._wait_until_spoken = wait_until_spoken
        self.timezone = ZoneInfo(timezone)
        self._grace = misfire_grace_seconds
        self.name = name
        self._listeners: list[Listener] = []
        self._scheduler: Any = None
        self._store: Any = None

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self, *, paused: bool = False) -> None:
        """Open the job store and start firing; due jobs missed while stopped fire now (within the grace).

        ``paused`` fires nothing until :meth:`resume`, or until :meth:`observe` sees ``DaemonStarted``: in
        the daemon, reminders that fell due while it was off must wait for the supervisor to listen, or
        their announcements would reach no one. Raise StorageError when the store cannot be opened
        (unwritable place, not a database, disk full).
        """
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
        from apscheduler.executors.asyncio import AsyncIOExecutor
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from sqlalchemy.exc import SQLAlchemyError

        from .jobstore import ReminderStore, failure_reason

        if self.name in _RUNNING:
            raise RuntimeError(f"a scheduler named {self.name!r} is already running")
        store = ReminderStore(str(self._path))
        scheduler = AsyncIOScheduler(
            jobstores={"default": store},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self._grace},
            timezone=self.timezone,
        )
        scheduler.add_listener(self._on_problem, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        _RUNNING[self.name] = self
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            scheduler.start(paused=paused)
            stored = len(scheduler.get_jobs())
        except (OSError, SQLAlchemyError) as err:
            del _RUNNING[self.name]
            if scheduler.running:
                scheduler.shutdown(wait=False)
            raise StorageError(f"cannot open the reminder store {self._path}: {failure_reason(err)}") from None
        except BaseException:
            del _RUNNING[self.name]
            raise
        self._scheduler, self._store = scheduler, store
        _LOGGER.info("scheduler started with %d stored jobs from %s", stored, self._path)

    async def stop(self) -> None:
        """Stop firing; stored jobs stay for the next start."""
        if self._scheduler is not None:
            self._store.flush()  # a last try for "fired" writes that failed (disk was full)
            self._scheduler.shutdown(wait=False)
            self._scheduler = self._store = None
        if _RUNNING.get(self.name) is self:
            del _RUNNING[self.name]

    def resume(self) -> None:
        """Start firing after ``start(paused=True)``; due reminders fire now."""
        self._running().resume()

    def observe(self, envelope: Envelope) -> None:
        """Bus tap: fire once the daemon listens; write down a reminder reported spoken as fired."""
        match envelope.event:
            case DaemonStarted() if self._scheduler is not None:
                self.resume()
            case ReminderSpoken(reminder_id=reminder_id) if self._store is not None:
                self._store.settle(reminder_id)

    def add_listener(self, listener: Listener) -> None:
        """Also call ``listener`` (after the announcement) whenever a reminder fires."""
        self._listeners.append(listener)

    # --- jobs -------------------------------------------------------------------------------------

    def add_once(self, kind: Kind, text: str, at: datetime) -> Reminder:
        """Fire once at ``at`` (aware, or naive in the household's time zone)."""
        from apscheduler.triggers.date import DateTrigger

        when = at if at.tzinfo is not None else at.replace(tzinfo=self.timezone)
        return self._add(kind, text, "none", DateTrigger(run_date=when, timezone=self.timezone))

    def add_after(self, kind: Kind, text: str, seconds: float) -> Reminder:
        """Fire once ``seconds`` from now."""
        return self.add_once(kind, text, datetime.now(self.timezone) + timedelta(seconds=seconds))

    def add_repeating(
        self, kind: Kind, text: str, *, hour: int, minute: int, repeat: Repeat, weekday: int = 0
    ) -> Reminder:
        """Fire at ``hour:minute`` local time every day, weekday, weekend day, or week (on ``weekday``, 0=Monday)."""
        from apscheduler.triggers.cron import CronTrigger

        if repeat == "none":
            raise ValueError("use add_once for a reminder that does not repeat")
        day = _WEEKDAY_NAMES[weekday] if repeat == "weekly" else _DAYS[repeat]
        trigger = CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=self.timezone)
        return self._add(kind, text, repeat, trigger)

    def _add(self, kind: Kind, text: str, repeat: Repeat, trigger: Any) -> Reminder:
        """Store a new job; raise StorageError when the store cannot write."""
        from apscheduler.jobstores.base import ConflictingIdError

        scheduler = self._running()
        for _ in range(_ID_ATTEMPTS):
            reminder_id = secrets.token_hex(3)
            try:
                job = scheduler.add_job(
                    f"{__name__}:fire",
                    trigger=trigger,
                    args=(self.name, reminder_id, kind, text, repeat),
                    id=reminder_id,
                    name=f"{kind}: {text}"[:80],
                    replace_existing=False,
                )
            except ConflictingIdError:
                continue  # 24-bit ids: a clash is rare but certain in the long run
            break
        else:
            raise StorageError(f"could not find a free id for the new {kind} in {_ID_ATTEMPTS} tries")
        _LOGGER.info("%s %s scheduled for %s", kind, reminder_id, job.next_run_time)
        return self._reminder(job)

    def keep(self, texts: Sequence[str]) -> None:
        """Store announcements the daemon could not speak before stopping; the next start says them.

        Firing is paused first, so they wait in the store instead of firing into a daemon that is going away.
        """
        if not texts:
            return
        self._running().pause()
        for text in texts:
            reminder = self.add_once("reminder", text, datetime.now(self.timezone))
            _LOGGER.info("kept unspoken announcement %s for the next start", reminder.id)

    def pending(self) -> list[Reminder]:
        """Every pending timer, alarm and reminder, soonest first."""
        jobs = [job for job in self._running().get_jobs() if job.id and len(job.args) == 5]
        return sorted((self._reminder(job) for job in jobs), key=lambda r: (r.next_run is None, r.next_run))

    def cancel(self, reminder_id: str) -> Reminder | None:
        """Remove one; return what was removed, or None if there was no such id; StorageError if not saved."""
        from apscheduler.jobstores.base import JobLookupError

        scheduler = self._running()
        job = scheduler.get_job(reminder_id)
        if job is None:
            return None
        reminder = self._reminder(job)
        try:
            with self._store.strict():
                scheduler.remove_job(reminder_id)
        except JobLookupError:
            return None
        return reminder

    # --- firing -----------------------------------------------------------------------------------

    async def _deliver(self, reminder: Reminder) -> None:
        _LOGGER.info("%s %s fires: %s", reminder.kind, reminder.id, reminder.text)
        self._publish(AnnounceRequested(text=reminder.text, source="scheduler", reminder_id=reminder.id))
        self._publish(ReminderFired(reminder_id=reminder.id, kind=reminder.kind, text=reminder.text))
        if not self._wait_until_spoken and self._store is not None:
            # Handed over, and nothing will report it spoken: from now on a restart must not deliver it again.
            self._store.settle(reminder.id)
        for listener in list(self._listeners):
            try:
                await listener(reminder)
            except Exception:
                _LOGGER.exception("a reminder listener failed for %s", reminder.id)

    def _on_problem(self, event: Any) -> None:
        if getattr(event, "exception", None) is not None:
            _LOGGER.error("reminder %s failed: %s", event.job_id, event.exception)
        else:
            _LOGGER.warning("reminder %s was missed by more than %d s and is skipped", event.job_id, self._grace)
            if self._store is not None:
                self._store.settle(event.job_id)

    def _running(self) -> Any:
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not running")
        return self._scheduler

    def _reminder(self, job: Any) -> Reminder:
        _, reminder_id, kind, text, repeat = job.args
        next_run = job.next_run_time.astimezone(self.timezone) if job.next_run_time else None
        return Reminder(reminder_id, kind, text, repeat, next_run)
