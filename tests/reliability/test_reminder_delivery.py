"""A reminder is written down as fired only once someone heard it, and never stays stuck in the store.

Found by review: an announcement cancelled before its first step was dropped (and reported spoken), one the
speaker could not play was reported spoken, a failed "fired" write was never retried, and a reminder missed
while the box was off stayed listed forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.exc import OperationalError

from assistant import jobstore
from assistant.audio import AudioChunk
from assistant.bus import Envelope
from assistant.errors import PlaybackError
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    DaemonStarted,
    Event,
    ReminderSpoken,
    RepeatRequested,
    StopRequested,
    TurnEnded,
    TurnStarted,
)
from assistant.ports import ModelDone, ModelText
from assistant.scheduler import ReminderScheduler
from support.fakes import FakeSpeaker, after, silence
from support.rig import Rig


def announced_texts(heard: list[str], announced: asyncio.Event | None = None) -> Callable[[Event], None]:
    def publish(event: Event) -> None:
        if isinstance(event, AnnounceRequested):
            heard.append(event.text)
            if announced is not None:
                announced.set()

    return publish


def rows(store: Path) -> int:
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0])


async def test_an_announcement_cancelled_before_its_first_step_is_said_later_and_only_then_reported_spoken() -> None:
    rig = Rig(rounds=[[after(0.1, ModelText("三点")), after(0, ModelDone())]])
    spoken: list[ReminderSpoken] = []
    rig.bus.tap(lambda envelope: isinstance(envelope.event, ReminderSpoken) and spoken.append(envelope.event))

    async def both_at_once() -> None:
        await rig.clock.sleep(0.5)
        rig.bus.publish(AnnounceRequested(text="吃药", source="scheduler", reminder_id="r1"))
        rig.bus.publish(AskRequested(text="几点了", source="mqtt"))  # typed in Home Assistant at that instant

    events = await rig.run(silence(20.0), until=lambda _: rig.clock.now() > 15, script=[both_at_once])
    completed = [e for e in events if isinstance(e, TurnEnded) and e.outcome == "completed"]
    assert len(completed) == 2, "the announcement was dropped without a word"
    assert [e.trigger for e in events if isinstance(e, TurnStarted)][-1] == "announce"
    assert [s.reminder_id for s in spoken] == ["r1"]


_REMINDER = AnnounceRequested(text="该吃降压药了，记得喝一杯温水", source="scheduler", reminder_id="r1")
"""Said for 1.4 s at FakeVoice's 0.1 s per character."""


def _said(events: list[Event]) -> list[str]:
    """What each turn was: the announcement's trigger or the question's, in order, with its outcome."""
    started = {e.turn_id: e.trigger for e in events if isinstance(e, TurnStarted)}
    return [f"{started[e.turn_id]}:{e.outcome}" for e in events if isinstance(e, TurnEnded)]


@pytest.mark.parametrize(
    "interruption",
    [AskRequested(text="几点了", source="mqtt"), RepeatRequested(source="mqtt")],
    ids=["remote-question", "repeat"],
)
async def test_a_reminder_cut_short_by_a_question_or_a_repeat_is_said_again_whole_after_it(
    interruption: Event,
) -> None:
    rig = Rig(rounds=[[after(0.1, ModelText("三点")), after(0, ModelDone())]] * 2)
    spoken: list[ReminderSpoken] = []
    rig.bus.tap(lambda envelope: isinstance(envelope.event, ReminderSpoken) and spoken.append(envelope.event))
    events = await rig.run(
        silence(20.0),
        until=lambda seen: _said(seen)[-1:] == ["announce:completed"],
        script=[rig.at(0.5, _REMINDER), rig.at(1.0, interruption)],
    )
    assert _said(events) == ["announce:interrupted", "api:completed", "announce:completed"]
    assert [s.reminder_id for s in spoken] == ["r1"], "reported spoken once, after it was heard whole"


async def test_a_stopped_reminder_is_silenced_now_and_said_after_the_next_turn_not_lost() -> None:
    rig = Rig(rounds=[[after(0.1, ModelText("三点")), after(0, ModelDone())]])
    spoken: list[ReminderSpoken] = []
    rig.bus.tap(lambda envelope: isinstance(envelope.event, ReminderSpoken) and spoken.append(envelope.event))
    events = await rig.run(
        silence(30.0),
        until=lambda seen: _said(seen)[-1:] == ["announce:completed"],
        script=[
            rig.at(0.5, _REMINDER),
            rig.at(1.0, StopRequested(source="mqtt")),
            rig.at(10.0, AskRequested(text="几点了", source="mqtt")),
        ],
    )
    assert _said(events) == ["announce:interrupted", "api:completed", "announce:completed"]
    second_start = [e for e in events if isinstance(e, TurnStarted)][1]
    assert rig.times[events.index(second_start)] >= 10.0, "the stop was obeyed: nothing said until the question"
    assert [s.reminder_id for s in spoken] == ["r1"]


class UnpluggedSpeaker(FakeSpeaker):
    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        async for _ in audio:
            raise PlaybackError("speaker took no audio")
        return True


async def test_a_reminder_the_speaker_could_not_play_is_not_reported_spoken() -> None:
    rig = Rig()
    rig.speaker = UnpluggedSpeaker(rig.clock)
    spoken: list[ReminderSpoken] = []
    rig.bus.tap(lambda envelope: isinstance(envelope.event, ReminderSpoken) and spoken.append(envelope.event))
    reminder = AnnounceRequested(text="吃药", source="scheduler", reminder_id="r1")
    events = await rig.run(silence(2.0), script=[rig.at(0.5, reminder)])
    assert [e.outcome for e in events if isinstance(e, TurnEnded)] == ["error"]
    assert spoken == [], "never heard, yet it would be written down as fired"


async def test_a_failed_fired_write_is_retried_once_the_disk_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobstore, "RETRY_SECONDS", 0.2)
    store, heard, announced = tmp_path / "r.sqlite", [], asyncio.Event()
    scheduler = ReminderScheduler(store, publish=announced_texts(heard, announced), name="retry")
    await scheduler.start()
    full = True
    remove_job = SQLAlchemyJobStore.remove_job

    def remove_unless_full(self: Any, job_id: str) -> None:
        if full:
            raise OperationalError("DELETE", {}, Exception("database or disk is full"))
        remove_job(self, job_id)

    monkeypatch.setattr(SQLAlchemyJobStore, "remove_job", remove_unless_full)
    try:
        scheduler.add_after("timer", "面条", 0.2)
        async with asyncio.timeout(5):
            await announced.wait()
        full = False  # room again, and nothing else wakes the scheduler
        await asyncio.sleep(1.5)
        assert rows(store) == 0, "the 'fired' write was never retried"
    finally:
        await scheduler.stop()
    assert heard == ["面条"]


async def test_a_reminder_missed_beyond_the_grace_leaves_the_store(tmp_path: Path) -> None:
    store, heard = tmp_path / "r.sqlite", []
    first = ReminderScheduler(store, publish=announced_texts(heard), misfire_grace_seconds=1, name="missed-1")
    await first.start()
    first.add_after("timer", "面条", 0.2)
    await first.stop()
    await asyncio.sleep(2.0)  # the box is off for longer than the grace
    second = ReminderScheduler(store, publish=announced_texts(heard), misfire_grace_seconds=1, name="missed-2")
    await second.start()
    await asyncio.sleep(0.5)
    pending = [r.text for r in second.pending()]
    await second.stop()
    assert heard == []
    assert pending == []
    assert rows(store) == 0, "a skipped reminder would be listed as pending at every start"


async def test_reminders_due_at_start_wait_until_the_daemon_listens(tmp_path: Path) -> None:
    """One missed while the box was off must not fire into a bus no supervisor reads yet."""
    store, heard = tmp_path / "r.sqlite", []
    before = ReminderScheduler(store, publish=announced_texts(heard), name="starting")
    await before.start()
    before.add_after("reminder", "吃药", 0.1)
    await before.stop()
    await asyncio.sleep(0.3)  # due while off
    announced = asyncio.Event()
    scheduler = ReminderScheduler(store, publish=announced_texts(heard, announced), name="starting")
    await scheduler.start(paused=True)
    try:
        await asyncio.sleep(0.5)  # a skill's slow start, say
        assert heard == []
        scheduler.observe(Envelope(0.0, DaemonStarted(version="test")))
        async with asyncio.timeout(5):
            await announced.wait()
    finally:
        await scheduler.stop()
    assert heard == ["吃药"]
