"""Soak: thousands of scripted turns through the real daemon, with fakes only at the model and audio edges.

Run: python -m bench.soak [--turns 2000] [--every 200] [--warmup 200] [--seed 1]

The household of support/soak_rig.py talks to the real App (real bus, supervisor, turns, skills, scheduler on
SQLite, Home Assistant client, MQTT bridge on a real mosquitto, Wyoming server): questions, follow-ups,
tools, timers that fire as announcements, barge-ins, stop words, silence, model failures, MQTT commands and
Home Assistant's Wyoming requests. After a warm-up it
samples, every ``--every`` turns and at rest, the process's RSS, the memory tracemalloc traces, the asyncio
tasks, open file descriptors, threads, bus subscribers and taps, and the jobs in the scheduler's store. It
prints one row per sample, the turns per second, the growth per 1,000 turns, and what went wrong if
anything did (growth beyond :class:`Bounds`, a turn that never ended, a timer that never fired, a tool that
failed, an unexpected error in the log); the exit status is 1 then.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import gc
import logging
import os
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from assistant.app import App
from assistant.config import Settings
from assistant.integrations.discovery import Topics
from assistant.logs import configure_logging, secret_values
from support.servers import free_port, mosquitto
from support.soak_rig import (
    SCENARIOS,
    Edges,
    Household,
    SoakStuck,
    TurnBooks,
    home_assistant_process,
    soak_settings,
)

_MB = 1024 * 1024
_EXPECTED_ERRORS = frozenset({"turn %s crashed"})
"""Error log records the script provokes on purpose (the model raising a bug mid-answer)."""
_MQTT_SETTLE_SECONDS = 10.0
"""Longest the soak waits at the end for the reminders the bridge published to reach the household's client."""


@dataclass(frozen=True, slots=True)
class Sample:
    """What the process holds after ``turns`` turns, with the daemon at rest."""

    turns: int
    """Turns ended so far."""
    rss_mb: float
    """Resident set size, MiB."""
    traced_mb: float
    """Python memory traced by tracemalloc, MiB."""
    tasks: int
    """asyncio tasks alive."""
    fds: int
    """Open file descriptors."""
    threads: int
    """OS threads of the process."""
    subscribers: int
    """Bus subscriptions."""
    taps: int
    """Bus taps."""
    stored_jobs: int
    """Jobs in the scheduler's SQLite store."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """Most growth allowed between the first sample after the warm-up and the last."""

    rss_mb: float = 16.0
    """Resident memory, MiB: the allocator keeps freed pages, so it is noisier than traced memory."""
    traced_mb: float = 2.0
    """Traced Python memory, MiB."""
    tasks: int = 2
    """A timer firing or a message in flight may hold a task for a moment."""
    fds: int = 4
    """A connection being replaced may hold a descriptor for a moment, and the HTTP clients' keep-alive pools
    fill up to their limits as the turns' concurrency has it: +3 was seen once in 2,000 turns at rest, where
    a leak of one descriptor a turn shows as hundreds."""
    threads: int = 2
    """Executor threads are started on demand."""
    subscribers: int = 0
    taps: int = 0
    stored_jobs: int = 2
    """A timer set in the last turns may not have fired yet."""


def _statm_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _stored_jobs(database: Path) -> int:
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0])
        except sqlite3.OperationalError:  # the table is created with the first job
            return 0


def take_sample(app: App, turns: int, database: Path) -> Sample:
    """Measure the process now (after a full collection, so only what is still referenced counts)."""
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    # Descriptors first: the store's count opens one for a moment.
    fds = len(os.listdir("/proc/self/fd"))
    return Sample(
        turns=turns,
        rss_mb=_statm_rss_bytes() / _MB,
        traced_mb=traced / _MB,
        tasks=len(asyncio.all_tasks()),
        fds=fds,
        threads=len(os.listdir("/proc/self/task")),
        subscribers=app.bus.subscriber_count,
        taps=app.bus.tap_count,
        stored_jobs=_stored_jobs(database),
    )


_MEASURES = tuple(f.name for f in dataclasses.fields(Sample) if f.name != "turns")


def growth(samples: Sequence[Sample]) -> dict[str, float]:
    """Change of every measure from the first sample to the last."""
    first, last = samples[0], samples[-1]
    return {name: getattr(last, name) - getattr(first, name) for name in _MEASURES}


def growth_problems(samples: Sequence[Sample], bounds: Bounds = Bounds()) -> list[str]:
    """One line per measure that grew beyond its bound between the first sample and the last."""
    if len(samples) < 2:
        return ["fewer than two samples after the warm-up: nothing to compare"]
    span = samples[-1].turns - samples[0].turns
    return [
        f"{name} grew by {change:g} over {span} turns ({getattr(samples[0], name):g} → "
        f"{getattr(samples[-1], name):g}; at most {getattr(bounds, name):g} allowed)"
        for name, change in growth(samples).items()
        if change > getattr(bounds, name)
    ]


class LogTally(logging.Handler):
    """Counts warnings and errors by logger and message template (bounded: templates, not messages)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[(record.levelname, record.name, str(record.msg))] += 1

    def unexpected_errors(self) -> list[str]:
        return [
            f"{count}× {level} {name}: {template}"
            for (level, name, template), count in self.counts.items()
            if logging.getLevelNamesMapping().get(level, logging.ERROR) >= logging.ERROR
            and template not in _EXPECTED_ERRORS
        ]


@contextlib.contextmanager
def logs_to_nowhere(settings: Settings) -> Iterator[LogTally]:
    """The daemon's own logging (every bus event traced, secrets masked) written to /dev/null, and tallied.

    The tally sees each record first, before the masking filter replaces its template with the message.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    tally = LogTally()
    with open(os.devnull, "w") as nowhere:
        configure_logging(settings.logging, secret_values(settings))
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(nowhere)
        root.handlers.insert(0, tally)
        try:
            yield tally
        finally:
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)


@dataclass
class SoakResult:
    """Everything a soak saw."""

    samples: list[Sample]
    """At the warm-up's end, every ``every`` turns, and at rest after the last turn."""
    books: TurnBooks
    seconds: float
    """Real seconds the scenarios took (sampling included; the wait for the last timers left out)."""
    fake_seconds: float
    """Seconds the daemon lived through on its clock."""
    scenarios: collections.Counter[str] = field(default_factory=collections.Counter)
    timers_due: int = 0
    reminders_fired: int = 0
    follow_ups_skipped: int = 0
    model_requests: int = 0
    tool_failures: collections.Counter[str] = field(default_factory=collections.Counter)
    mqtt_answers: int = 0
    """Answers the household's MQTT client received on the box's answer topic."""
    mqtt_reminders: int = 0
    """Reminders received on the timers skill's notify topic."""
    wyoming_answers: int = 0
    """Questions Home Assistant asked over Wyoming that were answered."""
    log: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    unexpected_errors: list[str] = field(default_factory=list)

    @property
    def turns(self) -> int:
        return self.books.ended

    def problems(self, bounds: Bounds = Bounds()) -> list[str]:
        """Every way this soak failed: growth, turns not ended, reminders lost, tools failing, errors."""
        books = self.books
        found = growth_problems(self.samples, bounds)
        if books.open:
            found.append(f"{len(books.open)} turns never ended: {sorted(books.open.items())[:5]}")
        if books.unmatched_ends or books.started != books.ended:
            found.append(f"{books.started} turns started, {books.ended} ended ({books.unmatched_ends} unmatched)")
        if self.reminders_fired != self.timers_due:
            found.append(f"{self.timers_due} timers were due and {self.reminders_fired} fired")
        if self.mqtt_reminders != self.reminders_fired:
            found.append(f"{self.reminders_fired} reminders fired, {self.mqtt_reminders} reached MQTT")
        found.extend(f"{count}× tool failed: {what}" for what, count in self.tool_failures.items())
        found.extend(f"unexpected log record: {line}" for line in self.unexpected_errors)
        return found


Leak = Callable[[App], None]
"""Called after every scenario: lets a test plant a leak and see the soak catch it."""
OnSample = Callable[[Sample], None]


async def _count_messages(client: aiomqtt.Client, topics: Topics, counts: collections.Counter[str]) -> None:
    async for message in client.messages:
        if message.topic.matches(topics.state("answer")):
            counts["answers"] += 1
        elif message.topic.matches("soak/reminders"):
            counts["reminders"] += 1


@dataclass
class _Plan:
    turns: int
    warmup: int
    every: int
    seed: int
    leak: Leak | None
    on_sample: OnSample | None


async def run_soak(
    turns: int = 2000,
    *,
    warmup: int = 200,
    every: int = 200,
    seed: int = 1,
    leak: Leak | None = None,
    on_sample: OnSample | None = None,
) -> SoakResult:
    """Run scenarios until ``turns`` turns have ended, sampling after ``warmup`` turns and every ``every``."""
    plan = _Plan(turns, warmup, every, seed, leak, on_sample)
    was_tracing = tracemalloc.is_tracing()
    try:
        with tempfile.TemporaryDirectory(prefix="xiangyin-soak-") as folder:
            return await _soak(Path(folder), plan)
    finally:
        if not was_tracing:
            tracemalloc.stop()


async def _soak(folder: Path, plan: _Plan) -> SoakResult:
    with mosquitto(folder) as broker, home_assistant_process() as home_assistant_url:
        settings = soak_settings(
            folder, mqtt_port=broker.port, home_assistant_url=home_assistant_url, wyoming_port=free_port()
        )
        topics = Topics.from_settings(settings.mqtt)
        with logs_to_nowhere(settings) as tally:
            edges = Edges.create()
            app = App(settings, edges.build, clock=edges.clock)
            async with aiomqtt.Client(broker.host, broker.port, identifier="soak-household") as client:
                await client.subscribe(topics.state("answer"), qos=1)
                await client.subscribe("soak/reminders", qos=1)
                received: collections.Counter[str] = collections.Counter()
                household = Household(app, edges, client, settings)
                helpers = [
                    asyncio.create_task(edges.clock.drive(), name="soak:clock"),
                    asyncio.create_task(_count_messages(client, topics, received), name="soak:mqtt"),
                ]
                daemon = asyncio.create_task(app.run(), name="soak:daemon")
                driving = asyncio.create_task(_drive(app, household, Path(settings.scheduler.database), plan, received))
                try:
                    # A daemon that dies ends the soak at once, with its own error.
                    await asyncio.wait({driving, daemon}, return_when=asyncio.FIRST_COMPLETED)
                    if daemon.done():
                        daemon.result()
                        raise SoakStuck("the daemon stopped during the soak")
                    samples, scenarios, seconds = driving.result()
                finally:
                    driving.cancel()
                    app.request_shutdown("soak over")
                    await asyncio.wait({daemon}, timeout=10)
                    for task in helpers:
                        task.cancel()
                    await asyncio.gather(driving, *helpers, return_exceptions=True)
                daemon.result()
        return SoakResult(
            samples=samples,
            books=household.books,
            seconds=seconds,
            fake_seconds=edges.clock.now(),
            scenarios=scenarios,
            timers_due=household.timers_due,
            reminders_fired=household.reminders_fired,
            follow_ups_skipped=household.follow_ups_skipped,
            model_requests=edges.model.requests,
            tool_failures=edges.model.tool_failures,
            mqtt_answers=received["answers"],
            mqtt_reminders=received["reminders"],
            wyoming_answers=household.wyoming_answers,
            log=tally.counts,
            unexpected_errors=tally.unexpected_errors(),
        )


async def _drive(
    app: App, household: Household, database: Path, plan: _Plan, received: collections.Counter[str]
) -> tuple[list[Sample], collections.Counter[str], float]:
    """Play scenarios until enough turns ended, sampling on the way; return the samples, scenarios, seconds."""
    with household.clock_held():
        async with asyncio.timeout(30):
            await household.ready.wait()
            await household.mqtt_connected.wait()
    samples: list[Sample] = []
    scenarios: collections.Counter[str] = collections.Counter()

    def sample() -> None:
        samples.append(take_sample(app, household.books.ended, database))
        if plan.on_sample is not None:
            plan.on_sample(samples[-1])

    rng = random.Random(plan.seed)
    names, weights = list(SCENARIOS), list(SCENARIOS.values())
    next_sample = plan.warmup
    began = time.perf_counter()
    while household.books.ended < plan.turns:
        if household.books.ended >= plan.warmup // 2 and not tracemalloc.is_tracing():
            # Tracing halves the speed, and only growth after the warm-up matters. Every block allocated from
            # here on is traced, so a leak shows in full; the second half of the warm-up lets the structures
            # that turn over (logs, caches, bounded maps) replace their untraced contents first.
            tracemalloc.start()
        scenario = rng.choices(names, weights)[0]
        await household.play(scenario)
        scenarios[scenario] += 1
        if plan.leak is not None:
            plan.leak(app)
        if next_sample <= household.books.ended < plan.turns:  # the last sample is taken at rest, below
            sample()
            next_sample = household.books.ended + plan.every
    seconds = time.perf_counter() - began
    await household.wait_for_reminders()
    # Messages the bridge sent last may still be on their way to the household's client (a slow machine
    # may need more than a moment); one that never arrives is reported by SoakResult.problems.
    with household.clock_held():
        for _ in range(round(_MQTT_SETTLE_SECONDS / 0.02)):
            if received["reminders"] >= household.reminders_fired:
                break
            await asyncio.sleep(0.02)
    sample()
    return samples, scenarios, seconds


# --- report -------------------------------------------------------------------------------------

HEADER = (
    f"{'turn':>6} {'RSS MB':>8} {'traced MB':>10} {'tasks':>6} {'fds':>5} {'threads':>8} {'subs':>5} {'taps':>5} "
    f"{'jobs':>5}"
)


def row(sample: Sample) -> str:
    """One line of the table."""
    return (
        f"{sample.turns:>6} {sample.rss_mb:>8.1f} {sample.traced_mb:>10.3f} {sample.tasks:>6} {sample.fds:>5} "
        f"{sample.threads:>8} {sample.subscribers:>5} {sample.taps:>5} {sample.stored_jobs:>5}"
    )


def summary(result: SoakResult, bounds: Bounds = Bounds()) -> str:
    """Totals: speed, growth per 1,000 turns, what happened, and the problems found."""
    books = result.books
    lines = [
        f"{result.turns} turns ({sum(result.scenarios.values())} scenarios) in {result.seconds:.1f} s: "
        f"{result.turns / result.seconds:.0f} turns/s, {result.fake_seconds / 3600:.1f} h on the daemon's clock",
    ]
    if len(result.samples) >= 2:
        span = result.samples[-1].turns - result.samples[0].turns
        per_k = ", ".join(
            f"{name} {change * 1000 / max(span, 1):+.3g}" for name, change in growth(result.samples).items()
        )
        lines.append(f"growth per 1,000 turns after the warm-up ({span} turns measured): {per_k}")
    lines += [
        f"turns: {books.started} started, {books.ended} ended, {len(books.open)} open; "
        f"by trigger {dict(books.triggers)}; by outcome {dict(books.outcomes)}",
        f"timers: {result.timers_due} due, {result.reminders_fired} fired, {result.mqtt_reminders} on MQTT; "
        f"{result.mqtt_answers} answers on MQTT, {result.wyoming_answers} over Wyoming; "
        f"{result.follow_ups_skipped} follow-ups gave way to a reminder",
        f"model requests {result.model_requests}; scenarios {dict(sorted(result.scenarios.items()))}",
        "warnings and errors logged: "
        + (", ".join(f"{n}× {level} {template!r}" for (level, _, template), n in result.log.most_common()) or "none"),
    ]
    problems = result.problems(bounds)
    lines.append("PROBLEMS:\n  " + "\n  ".join(problems) if problems else "no problems found")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="turns before the first sample")
    parser.add_argument("--every", type=int, default=200, help="turns between samples")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(HEADER, flush=True)
    result = asyncio.run(
        run_soak(args.turns, warmup=args.warmup, every=args.every, seed=args.seed, on_sample=lambda s: print(row(s)))
    )
    print(summary(result))
    sys.exit(1 if result.problems() else 0)


if __name__ == "__main__":
    main()
