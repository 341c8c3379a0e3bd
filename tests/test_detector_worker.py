"""Wake-word inference off the event loop: the serial worker, the bounded backlog, the supervisor using both."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from assistant.audio import AudioChunk
from assistant.backlog import AudioBacklog
from assistant.events import Event, TurnEnded, WakeDetected
from assistant.ports import ModelDone, ModelSpeech, ModelText, ModelTranscript, WakeHit
from assistant.tasks import SerialWorker
from support.fakes import FakeClock, after, silence, speech, timeline, wake_word
from support.rig import Rig, names

_T = TypeVar("_T")


def tagged(index: int) -> AudioChunk:
    """An 80 ms chunk that says which it is in its first two bytes."""
    return AudioChunk(index.to_bytes(2, "little") + bytes(2558))


def index_of(chunk: AudioChunk) -> int:
    return int.from_bytes(chunk.pcm[:2], "little")


# --- the worker ---------------------------------------------------------------------------------


async def test_the_worker_runs_calls_in_order_on_one_thread_of_its_own() -> None:
    worker = SerialWorker("test")
    threads: list[int] = []
    order: list[int] = []

    def work(i: int) -> int:
        threads.append(threading.get_ident())
        order.append(i)
        return i * 2

    worker.post(work, 0)
    results = await asyncio.gather(*(worker.run(work, i) for i in range(1, 20)))
    worker.close()
    assert results == [i * 2 for i in range(1, 20)]
    assert order == list(range(20))
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()


async def test_errors_reach_the_waiter_and_a_posted_calls_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    worker = SerialWorker("test")

    def fail() -> None:
        raise ValueError("broken model")

    worker.post(fail)
    with pytest.raises(ValueError, match="broken model"):
        await worker.run(fail)
    worker.close()
    assert any("fail failed on test" in r.getMessage() for r in caplog.records)


async def test_a_cancelled_waiter_is_released_at_once_and_its_unstarted_call_is_skipped() -> None:
    worker = SerialWorker("test")
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def block() -> None:
        entered.set()
        release.wait(10)
        ran.append("block")

    blocking = asyncio.create_task(worker.run(block))
    assert await asyncio.to_thread(entered.wait, 10)
    queued = asyncio.create_task(worker.run(ran.append, "queued"))
    await asyncio.sleep(0)
    for task in (blocking, queued):
        task.cancel()
    done, _ = await asyncio.wait({blocking, queued}, timeout=5)
    assert done == {blocking, queued} and blocking.cancelled() and queued.cancelled()
    release.set()
    assert await worker.run(len, "after") == 5  # the worker goes on, in order
    worker.close()
    assert ran == ["block"]


# --- the backlog --------------------------------------------------------------------------------


async def test_the_backlog_keeps_the_newest_audio_within_its_bound_in_order() -> None:
    backlog = AudioBacklog(0.4, lambda: 0.0)
    for i in range(8):
        backlog.put(tagged(i))
    assert backlog.dropped == 3
    assert backlog.seconds == pytest.approx(0.4)
    backlog.close()
    got = []
    while (chunk := await backlog.get()) is not None:
        got.append(index_of(chunk))
    assert got == [3, 4, 5, 6, 7]


async def test_drops_are_logged_at_most_once_per_interval_with_their_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    backlog = AudioBacklog(0.08, lambda: now[0], warn_every_seconds=10.0)
    with caplog.at_level(logging.WARNING, logger="assistant.backlog"):
        for i in range(30):
            now[0] = i * 0.5
            backlog.put(tagged(i))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings  # at 0.5 s and at 10.5 s
    assert "dropped 1 chunks" in warnings[0] and "dropped 20 chunks" in warnings[1]


async def test_get_waits_for_audio_and_ends_after_close() -> None:
    backlog = AudioBacklog(1.0, lambda: 0.0)
    waiting = asyncio.create_task(backlog.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    backlog.put(tagged(7))
    assert index_of(await waiting) == 7  # type: ignore[arg-type]
    backlog.close()
    assert await backlog.get() is None


# --- the supervisor -----------------------------------------------------------------------------


class HeldClockWorker:
    """The serial worker, with fake time standing still while a call runs: inference takes no fake time.

    Without the hold the fake clock would race ahead whenever the loop waits for the thread, and the
    microphone would deliver minutes of fake audio during a millisecond of inference.
    """

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._worker = SerialWorker("wake-word")

    async def run(self, work: Callable[..., _T], *args: Any) -> _T:
        self._clock.holds += 1
        try:
            return await self._worker.run(work, *args)
        finally:
            self._clock.holds -= 1

    def post(self, work: Callable[..., object], *args: Any) -> None:
        self._worker.post(work, *args)


class HeldSource:
    """A microphone the test feeds by hand; ``emptied`` is set whenever the supervisor has read all of it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[AudioChunk | None] = asyncio.Queue()
        self.emptied = asyncio.Event()

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        while (chunk := await self.queue.get()) is not None:
            if self.queue.empty():
                self.emptied.set()
            yield chunk


class BlockingDetector:
    """Holds its first call until released; records what it processed and on which thread."""

    def __init__(self, expected: int) -> None:
        self.entered, self.release, self.all_done = threading.Event(), threading.Event(), threading.Event()
        self._expected = expected
        self.processed: list[int] = []
        self.threads: set[int] = set()
        self.resets = 0

    def process(self, chunk: AudioChunk) -> WakeHit | None:
        self.threads.add(threading.get_ident())
        self.entered.set()
        self.release.wait(10)
        self.processed.append(index_of(chunk))
        if len(self.processed) == self._expected:
            self.all_done.set()
        return None

    def reset(self) -> None:
        self.resets += 1


async def test_a_stuck_detector_holds_up_neither_the_loop_nor_the_microphone_and_the_newest_audio_is_kept() -> None:
    """While inference is stuck the microphone is still read; 3 s wait, older chunks go; order is kept."""
    rig = Rig()
    rig.detectors_on = HeldClockWorker(rig.clock)
    detector = BlockingDetector(expected=1 + 37)
    rig.wake = detector  # type: ignore[assignment]
    source = HeldSource()
    finished = asyncio.Event()

    async def feed() -> None:
        await source.queue.put(tagged(0))
        assert await asyncio.to_thread(detector.entered.wait, 10)
        source.emptied.clear()
        for i in range(1, 61):  # 4.8 s more, while the detector is stuck on the first chunk
            await source.queue.put(tagged(i))
        await source.emptied.wait()  # all read: the loop and the microphone went on
        detector.release.set()
        assert await asyncio.to_thread(detector.all_done.wait, 10)
        finished.set()

    events = await rig.run([], until=lambda _: finished.is_set(), script=[feed], source=source)
    assert detector.processed == [0, *range(24, 61)], "the first chunk, then the newest 3 s (37 chunks) in order"
    assert threading.get_ident() not in detector.threads
    assert names(events) == []


async def test_a_whole_conversation_runs_the_same_with_the_detectors_on_their_own_thread() -> None:
    answer = [
        after(0.3, ModelTranscript("几点了")),
        after(0.1, ModelText("现在三点")),
        after(0.1, ModelSpeech(tuple(range(50)))),
        after(0.0, ModelDone()),
    ]
    rig = Rig(rounds=[answer])
    rig.detectors_on = HeldClockWorker(rig.clock)
    events: list[Event] = await rig.run(timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0)))
    assert names(events)[:3] == ["WakeDetected", "TurnStarted", "ListeningStarted"]
    assert isinstance(events[0], WakeDetected)
    assert events[-1] == TurnEnded(turn_id=events[0].turn_id, outcome="completed")
    heard = rig.model.requests[0].audio
    # The whole question, and the 0.16 s of silence after which the model starts on it.
    assert heard is not None and heard.seconds >= 1.2 + 0.16, "the whole question reached the model"
