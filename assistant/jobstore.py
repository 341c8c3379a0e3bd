"""The scheduler's SQLite job store, which records that a reminder fired only once it was delivered.

APScheduler deletes (or moves on) a due job in the store *before* its coroutine runs. A process killed
in between loses the reminder for good, and a write that fails there (disk full) escapes APScheduler's
loop: it stops waking up, and fires the job again once something wakes it. This store keeps those
writes in memory instead, hides the job from further firing, and writes them when the reminder was
delivered (:meth:`ReminderStore.settle`); a write that fails then is retried until the disk has room.
A crash before that leaves the job in the file, so the next start delivers it (within the grace).

Writes the user asked for (adding, cancelling) go to the file at once and raise :class:`StorageError`
when they fail, so the user hears that nothing was saved.

Imported lazily by :mod:`assistant.scheduler` (APScheduler and SQLAlchemy are heavy).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime
from sqlalchemy import event, null, select
from sqlalchemy.exc import SQLAlchemyError

from .errors import StorageError

_LOGGER = logging.getLogger(__name__)

RETRY_SECONDS = 10.0
"""How often a write that failed (disk full) is tried again, in seconds."""

_DEFERRED = object()
"""Marks a job removal kept in memory."""


class ReminderStore(SQLAlchemyJobStore):  # type: ignore[misc]  # APScheduler ships no type hints
    """SQLAlchemy job store on a SQLite file with deferred "it fired" writes (see the module docstring)."""

    def __init__(self, path: str) -> None:
        super().__init__(url=f"sqlite:///{path}")
        event.listen(self.engine, "connect", _durable)
        self._deferred: dict[str, Job | object] = {}
        """Job id → the job as it is after firing (or _DEFERRED when it is gone), not yet in the file."""
        self._settled: set[str] = set()
        """Deferred ids whose reminder was delivered: their write is due (and is retried until it lands)."""
        self._strict = False
        self._complained: set[str] = set()
        """Ids whose failed write was logged as an error already (every read retries it)."""

    # --- what the scheduler reads: the file, with the deferred writes laid over it --------------------

    def lookup_job(self, job_id: str) -> Job | None:
        """The job as it is now, deferred writes included."""
        if job_id in self._deferred:
            kept = self._deferred[job_id]
            return kept if isinstance(kept, Job) else None
        return super().lookup_job(job_id)

    def get_due_jobs(self, now: datetime) -> list[Job]:
        """Jobs due at ``now``; a fired job waiting for its write is not due again."""
        self.flush()
        timestamp = datetime_to_utc_timestamp(now)
        due = self._stored(self.jobs_t.c.next_run_time <= timestamp)
        due += [job for job in self._kept() if job.next_run_time is not None and job.next_run_time <= now]
        return sorted(due, key=_run_time)

    def get_next_run_time(self) -> datetime | None:
        """When the scheduler must wake up next (sooner while a failed write waits for a retry)."""
        self.flush()
        if not self._deferred:
            return super().get_next_run_time()  # type: ignore[no-any-return]
        query = (
            select(self.jobs_t.c.next_run_time)
            .where(self.jobs_t.c.next_run_time != null(), self.jobs_t.c.id.notin_(list(self._deferred)))
            .order_by(self.jobs_t.c.next_run_time)
            .limit(1)
        )
        with self.engine.begin() as connection:
            stored = utc_timestamp_to_datetime(connection.execute(query).scalar())
        times = [t for t in (stored, *(job.next_run_time for job in self._kept())) if t is not None]
        if self._settled:
            # Wake up again soon to retry the writes that failed.
            times.append(datetime.now(UTC) + timedelta(seconds=RETRY_SECONDS))
        return min(times) if times else None

    def get_all_jobs(self) -> list[Job]:
        """Every job, soonest first, deferred writes included."""
        self.flush()
        jobs = self._stored() + self._kept()
        self._fix_paused_jobs_sorting(jobs)
        return sorted(jobs, key=_run_time)

    # --- writes -------------------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        """Store a new job now; StorageError if the file cannot take it."""
        try:
            super().add_job(job)
        except SQLAlchemyError as err:
            raise _storage_error("the new reminder", err) from None

    def update_job(self, job: Job) -> None:
        """Store a changed job: deferred when the scheduler moves a fired job on, else now."""
        if not self._strict:
            self._defer(job.id, job)
            return
        try:
            super().update_job(job)
        except SQLAlchemyError as err:
            raise _storage_error("the change", err) from None
        self._forget(job.id)

    def remove_job(self, job_id: str) -> None:
        """Delete a job: deferred when the scheduler drops a fired job, else now."""
        if not self._strict:
            if job_id not in self._deferred and super().lookup_job(job_id) is None:
                raise JobLookupError(job_id)
            self._defer(job_id, _DEFERRED)
            return
        try:
            super().remove_job(job_id)
        except JobLookupError:
            if job_id not in self._deferred:
                raise
        except SQLAlchemyError as err:
            raise _storage_error("the cancellation", err) from None
        self._forget(job_id)

    @contextlib.contextmanager
    def strict(self) -> Iterator[None]:
        """Within the block, updates and removals go to the file now and raise StorageError on failure."""
        self._strict = True
        try:
            yield
        finally:
            self._strict = False

    def settle(self, job_id: str) -> None:
        """The reminder ``job_id`` was delivered: write down that it fired (now, or once there is room)."""
        if job_id in self._deferred:
            self._settled.add(job_id)
            self.flush()
            if self._settled:
                self._scheduler.wakeup()  # get_next_run_time then schedules the retry

    # --- helpers ------------------------------------------------------------------------------------

    def _defer(self, job_id: str, kept: Job | object) -> None:
        self._deferred[job_id] = kept
        self._settled.discard(job_id)

    def _forget(self, job_id: str) -> None:
        self._deferred.pop(job_id, None)
        self._settled.discard(job_id)

    def _kept(self) -> list[Job]:
        return [job for job in self._deferred.values() if isinstance(job, Job)]

    def _stored(self, *conditions: Any) -> list[Job]:
        if self._deferred:
            conditions = (*conditions, self.jobs_t.c.id.notin_(list(self._deferred)))
        return self._get_jobs(*conditions)  # type: ignore[no-any-return]

    def flush(self) -> None:
        """Write the settled deferred writes; stop at the first failure (retried later, and before stopping)."""
        for job_id in list(self._settled):
            kept = self._deferred[job_id]
            try:
                if isinstance(kept, Job):
                    super().update_job(kept)
                else:
                    super().remove_job(job_id)
            except JobLookupError:
                pass  # cancelled meanwhile
            except SQLAlchemyError as err:
                level = logging.DEBUG if job_id in self._complained else logging.ERROR
                self._complained.add(job_id)
                _LOGGER.log(
                    level,
                    "cannot record that reminder %s fired (%s); it will not fire again, retrying",
                    job_id,
                    failure_reason(err),
                )
                return
            if job_id in self._complained:
                _LOGGER.info("recorded at last that reminder %s fired", job_id)
                self._complained.discard(job_id)
            self._forget(job_id)


def _durable(connection: Any, _: Any) -> None:
    # synchronous=FULL is SQLite's default in rollback-journal mode; said here so no build default changes it.
    connection.execute("PRAGMA synchronous=FULL")


def _run_time(job: Job) -> float:
    return datetime_to_utc_timestamp(job.next_run_time) if job.next_run_time is not None else float("inf")


def failure_reason(err: BaseException) -> str:
    """SQLite's own words for a failure (e.g. 'database or disk is full')."""
    original = getattr(err, "orig", None)
    return str(original) if original is not None else type(err).__name__


def _storage_error(what: str, err: SQLAlchemyError) -> StorageError:
    _LOGGER.error("could not save %s in the reminder store: %s", what, failure_reason(err))
    return StorageError(f"could not save {what}: {failure_reason(err)} (is the disk full?)")
