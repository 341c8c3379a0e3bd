"""Model faults: a backend that raises, hangs, stalls mid-answer, or runs out of memory.

The generic cases run the real supervisor and turn with a scripted model on the fake clock; out-of-memory
runs the real in-process engine on the tiny checkpoint with one decoder layer made to fail allocation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import torch

from assistant.errors import ModelError
from assistant.events import AskRequested, AssistantStateChanged, PlaybackStarted, ReplyText, TurnEnded, TurnFailed
from assistant.model.stepaudio2 import tokens as t
from assistant.ports import ModelDone, ModelEvent, ModelRequest, ModelSpeech, ModelText, ModelTranscript
from support import fakes
from support.fakes import after, silence, timeline, wake_word
from support.rig import Rig, settings
from tests.model.conftest import EngineFactory, Speech, engine_factory, speech, tiny_checkpoint, tiny_model  # noqa: F401


def asked_twice(gap_seconds: float = 40.0) -> list[Any]:
    """The wake word and a question, a pause, then the wake word and a question again."""
    question = [*wake_word(), *fakes.speech(1.2), *silence(2.0)]
    return timeline(silence(0.4), question, silence(gap_seconds), question, silence(3.0))


def answer(text: str = "现在三点") -> list[Any]:
    return [
        after(0.3, ModelTranscript("几点了")),
        after(0.1, ModelText(text)),
        after(0.1, ModelSpeech(tuple(range(50)))),
        after(0.0, ModelDone()),
    ]


def rig(rounds: list[list[Any]]) -> Rig:
    return Rig(settings=settings(conversation={"earcons": True}), rounds=rounds)


def outcomes(events: list[Any]) -> list[str]:
    return [e.outcome for e in events if isinstance(e, TurnEnded)]


def failures(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.code, e.message) for e in events if isinstance(e, TurnFailed)]


def error_earcons(events: list[Any]) -> int:
    """Earcons that follow a TurnFailed (the wake earcon comes before it)."""
    played = 0
    events = [e for e in events if not isinstance(e, AssistantStateChanged)]
    for before, event in zip(events, events[1:], strict=False):
        if isinstance(before, TurnFailed) and isinstance(event, PlaybackStarted) and event.kind == "earcon":
            played += 1
    return played


# --- raising -------------------------------------------------------------------------------------


async def test_a_recoverable_error_that_repeats_is_retried_once_then_ends_the_turn() -> None:
    flaky = [after(0.2, ModelError("connection reset", recoverable=True))]
    r = rig([flaky, flaky, answer()])
    events = await r.run(asked_twice(), turns=2)
    assert outcomes(events) == ["error", "completed"]
    assert failures(events) == [("model-unavailable", "connection reset")]
    assert error_earcons(events) == 1
    assert len(r.model.requests) == 3  # two attempts, then the next question


async def test_an_error_after_the_answer_started_is_not_retried_so_nothing_is_said_twice() -> None:
    broken = [
        after(0.3, ModelTranscript("几点了")),
        after(0.1, ModelText("现在")),
        after(0.2, ModelError("reset", recoverable=True)),
    ]
    r = rig([broken, answer("好的")])
    events = await r.run(asked_twice(), turns=2)
    assert outcomes(events) == ["error", "completed"]
    assert len(r.model.requests) == 2
    assert [e.text for e in events if isinstance(e, ReplyText)] == ["现在", "好的"]


async def test_a_bug_in_the_backend_is_an_internal_error_and_the_daemon_answers_the_next_question() -> None:
    r = rig([[after(0.2, KeyError("logits"))], answer()])
    events = await r.run(asked_twice(), turns=2)
    assert outcomes(events) == ["error", "completed"]
    assert failures(events) == [("internal-error", "KeyError: 'logits'")]
    assert r.state.state == "idle"


# Fake time runs ahead while the engine computes on its thread; the limits only guard against hangs.
ENGINE_LIMIT = 100_000.0


def ask_in_turn(rig: Rig, questions: list[str], before: dict[int, Any] | None = None) -> Any:
    """Ask each question once the previous turn has ended, calling ``before[i]()`` first if given."""

    async def asking() -> None:
        for i, text in enumerate(questions):
            while sum(isinstance(e, TurnEnded) for e in rig.events) < i:
                await rig.clock.sleep(0.1)
            if before and i in before:
                before[i]()
            rig.bus.publish(AskRequested(text=text, source="api"))

    return asking


# --- hanging -------------------------------------------------------------------------------------

# The deadlines guard real work, so they run on real (event-loop) time: a hung model here really hangs.
HANG_TIMEOUTS = {"model_first_event_timeout_seconds": 2.0, "model_idle_timeout_seconds": 1.0}


class RealTimeModel:
    """Plays one round of ``(real seconds, event)`` steps per request; a round not ending in ModelDone then
    hangs on the real loop until cancelled. Requests beyond the rounds get a short answer."""

    def __init__(self, *rounds: list[tuple[float, ModelEvent]]) -> None:
        self._rounds = list(rounds)
        self.cancelled = 0

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        steps = self._rounds.pop(0) if self._rounds else [(0.0, ModelText("好的")), (0.0, ModelDone())]
        hang = not steps or not isinstance(steps[-1][1], ModelDone)
        try:
            for delay, event in steps:
                await asyncio.sleep(delay)
                yield event
            if hang:
                await asyncio.Event().wait()
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise

    def forget(self, conversation_id: str) -> None:
        """Nothing to forget."""

    def retract(self, conversation_id: str) -> None:
        """Nothing to take back."""

    def set_dialect(self, dialect: str) -> None:
        """Nothing to change."""


def real_time_rig(model: RealTimeModel) -> Rig:
    r = Rig(settings=settings(conversation={"earcons": True, **HANG_TIMEOUTS}))
    r.model = model  # type: ignore[assignment]
    return r


async def test_a_model_that_never_answers_ends_the_turn_at_the_first_event_deadline() -> None:
    model = RealTimeModel([])
    r = real_time_rig(model)
    asking = ask_in_turn(r, ["几点了", "现在呢"])
    events = await r.run(silence(1.0), turns=2, script=[asking], limit_seconds=ENGINE_LIMIT)
    assert outcomes(events) == ["error", "completed"]
    [(code, message)] = failures(events)
    assert (code, message) == ("model-timeout", "the model did not start answering within 2 s")
    assert error_earcons(events) == 1
    assert model.cancelled == 1  # the hung generation was stopped, not left running
    assert r.state.state == "idle"


async def test_a_model_that_stalls_mid_answer_ends_the_turn_at_the_idle_deadline() -> None:
    model = RealTimeModel([(0.1, ModelTranscript("几点了")), (0.1, ModelText("现在"))])
    r = real_time_rig(model)
    asking = ask_in_turn(r, ["几点了", "现在呢"])
    events = await r.run(silence(1.0), turns=2, script=[asking], limit_seconds=ENGINE_LIMIT)
    assert outcomes(events) == ["error", "completed"]
    assert failures(events) == [("model-timeout", "the model did not go on answering within 1 s")]
    assert model.cancelled == 1
    assert [e.text for e in events if isinstance(e, ReplyText)] == ["现在", "好的"]


async def test_a_slow_but_steady_model_is_never_cut_off() -> None:
    """Each event comes well inside the idle limit; the whole answer takes longer than either limit."""
    steps: list[tuple[float, ModelEvent]] = [(1.0, ModelTranscript("讲个故事"))]
    steps += [(0.3, ModelText(c)) for c in "一二三四五六七八"]
    model = RealTimeModel([*steps, (0.0, ModelDone())])
    r = real_time_rig(model)
    events = await r.run(silence(1.0), script=[ask_in_turn(r, ["讲个故事"])], limit_seconds=ENGINE_LIMIT)
    assert outcomes(events) == ["completed"]
    assert "".join(e.text for e in events if isinstance(e, ReplyText)) == "一二三四五六七八"


# --- out of memory, with the real engine ---------------------------------------------------------


@pytest.fixture
def allocation_fails(tiny_model: Any) -> Iterator[dict[str, int]]:  # noqa: F811
    """While ``armed["rounds"]`` > 0, the last decoder layer's MLP raises torch.OutOfMemoryError.

    The layers before it have already written the new tokens into the KV cache by then, as on a real GPU
    that runs out half-way through a forward pass.
    """
    model, _ = tiny_model
    armed = {"rounds": 0, "raised": 0}

    def fail(*_: object) -> None:
        if armed["rounds"] > 0:
            armed["rounds"] -= 1
            armed["raised"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    handle = model.model.layers[-1].mlp.register_forward_pre_hook(fail)
    yield armed
    handle.remove()


ENGINE_TIMEOUTS = {"model_first_event_timeout_seconds": 600.0, "model_idle_timeout_seconds": 600.0}


async def test_running_out_of_memory_ends_the_turn_keeps_the_history_and_the_next_turn_works(
    engine_factory: EngineFactory,  # noqa: F811
    speech: Speech,  # noqa: F811
    allocation_fails: dict[str, int],
) -> None:
    first, third = [*speech.spoken("一号", [1, 2]), t.EOT], [*speech.spoken("三号", [3, 4]), t.EOT]
    engine = engine_factory([first, third])
    r = Rig(settings=settings(conversation={"earcons": True, **ENGINE_TIMEOUTS}))
    r.model = engine  # type: ignore[assignment]

    def fail_the_second_question() -> None:
        allocation_fails["rounds"] = 2  # the attempt and its one retry

    asking = ask_in_turn(r, ["甲", "乙", "丙"], {1: fail_the_second_question})
    events = await r.run(silence(1.0), turns=3, script=[asking], limit_seconds=ENGINE_LIMIT)
    assert outcomes(events) == ["completed", "error", "completed"]
    [(code, message)] = failures(events)
    assert code == "model-unavailable" and "ran out of memory (CUDA out of memory. Tried to allocate" in message
    assert error_earcons(events) == 1
    assert allocation_fails["raised"] == 2
    assert "".join(e.text for e in events if isinstance(e, ReplyText)) == "一号三号"
    history = engine.render(engine.history("default"))
    assert history.count("甲") == 1 and history.count("丙") == 1 and "乙" not in history
    assert history.index("甲") < history.index("<audio_1>") < history.index("丙") < history.index("<audio_3>")


async def test_a_single_out_of_memory_is_retried_once_without_asking_the_question_twice(
    engine_factory: EngineFactory,  # noqa: F811
    speech: Speech,  # noqa: F811
    allocation_fails: dict[str, int],
) -> None:
    first, second, third = ([*speech.spoken(w, [code]), t.EOT] for w, code in (("一号", 5), ("二号", 6), ("三号", 7)))
    engine = engine_factory([first, second, third])
    r = Rig(settings=settings(conversation={"earcons": True, **ENGINE_TIMEOUTS}))
    r.model = engine  # type: ignore[assignment]

    def fail_once() -> None:
        allocation_fails["rounds"] = 1

    asking = ask_in_turn(r, ["甲", "乙", "丙"], {1: fail_once})
    events = await r.run(silence(1.0), turns=3, script=[asking], limit_seconds=ENGINE_LIMIT)
    assert outcomes(events) == ["completed", "completed", "completed"]
    assert allocation_fails["raised"] == 1
    history = engine.render(engine.history("default"))
    assert [history.count(q) for q in ("甲", "乙", "丙")] == [1, 1, 1]
    assert history.index("乙") < history.index("<audio_6>") < history.index("丙")
    # The cache was rebuilt from the kept history: the last round reuses it again.
    assert engine.last_round.reused_tokens > 0


async def test_the_real_engine_stalling_mid_answer_is_stopped_at_the_idle_deadline_and_answers_the_next_question(
    engine_factory: EngineFactory,  # noqa: F811
    speech: Speech,  # noqa: F811
) -> None:
    """One decode step hangs (a wedged GPU kernel); the turn gives up, the engine stops at the next step."""
    stalled, released = threading.Event(), threading.Event()

    def wedge() -> None:
        stalled.set()
        released.wait(30)

    # Steps 0-12 are the story until the wedge at step 12; the engine stops before step 13, so the script's
    # remaining tokens are what the next round says.
    story = [*[t.TTS_PAD, *[t.AUDIO_0 + 5] * 4] * 2, t.TTS_PAD, t.AUDIO_0 + 5, t.AUDIO_0 + 5]
    answer = [*speech.spoken("好的", [9]), t.EOT]
    engine = engine_factory([[*story, *answer]], gate=(12, wedge), speech_chunk_tokens=4)
    # Only the idle deadline is under test; torch on two busy cores can take over a second to its first event.
    timeouts = {"model_first_event_timeout_seconds": 60.0, "model_idle_timeout_seconds": 3.0}
    r = Rig(settings=settings(conversation={"earcons": True, **timeouts}))
    r.model = engine  # type: ignore[assignment]

    def unwedge() -> None:
        released.set()  # the kernel returns long after the turn gave up

    asking = ask_in_turn(r, ["讲个故事", "你好"], {1: unwedge})
    events = await r.run(silence(1.0), turns=2, script=[asking], limit_seconds=ENGINE_LIMIT)
    assert stalled.is_set()
    assert outcomes(events) == ["error", "completed"]
    assert failures(events)[0] == ("model-timeout", "the model did not go on answering within 3 s")
    await asyncio.wait_for(engine.drain(), 10)
    assert engine.last_round.decode_steps == len(answer)
    history = engine.render(engine.history("default"))
    assert history.count("讲个故事") == 1 and history.count("你好") == 1
    assert history.index("讲个故事") < history.index("你好") < history.index("<audio_9>")
