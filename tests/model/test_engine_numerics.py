"""What the tiny model computes: audio really reaches it, and a reused cache gives the same logits."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from assistant.audio import tone
from assistant.errors import ModelError
from assistant.model.stepaudio2 import tokens as t
from assistant.ports import ModelDone, ModelEvent, ModelRequest, ModelText
from tests.model.conftest import EngineFactory, Speech

pytestmark = pytest.mark.models


class Spy(LogitsProcessor):
    """Keeps a copy of the raw scores of every step."""

    def __init__(self) -> None:
        self.scores: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.scores.append(scores.detach().clone())
        return scores


class Explode(LogitsProcessor):
    """Fails once, at a given step, like a driver error in the middle of an answer."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.calls += 1
        if self.calls == self.step + 1:
            raise RuntimeError("device lost")
        return scores


async def run(engine_respond: object) -> list[ModelEvent]:
    return [event async for event in engine_respond]  # type: ignore[attr-defined]


async def test_the_audio_reaches_the_model(engine_factory: EngineFactory, speech: Speech) -> None:
    answer = [*speech.spoken("好", [1]), t.EOT]
    spy = Spy()
    engine = engine_factory([answer] * 3, spies=[spy])
    for conversation, hz in (("a", 220), ("b", 220), ("c", 880)):
        await run(engine.respond(ModelRequest(conversation, audio=tone(hz, 1.0, rate_hz=16_000))))
    first_steps = [scores for scores in spy.scores[:: len(answer)]]
    assert torch.equal(first_steps[0], first_steps[1])  # same audio, same prompt, same logits
    assert not torch.allclose(first_steps[0], first_steps[2])  # other audio, other logits


async def test_a_reused_cache_gives_the_logits_of_a_full_recomputation(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    answer = [*speech.spoken("我系小音", list(range(12))), t.EOT]
    warm_spy, cold_spy = Spy(), Spy()
    warm = engine_factory([answer, answer], spies=[warm_spy])
    cold = engine_factory([answer, answer], spies=[cold_spy])
    utterance = tone(330, 2.0, rate_hz=16_000)
    for engine in (warm, cold):
        await run(engine.respond(ModelRequest("kitchen", audio=utterance)))
    cold.release_cache("kitchen")
    for engine in (warm, cold):
        await run(engine.respond(ModelRequest("kitchen", text="仲有呢")))
    assert warm.last_round.reused_tokens > 0 and cold.last_round.reused_tokens == 0
    assert warm.last_round.prompt_tokens == cold.last_round.prompt_tokens
    second_round = len(answer)
    for step in (second_round, second_round + 5):
        torch.testing.assert_close(warm_spy.scores[step], cold_spy.scores[step], atol=1e-4, rtol=1e-4)


async def test_a_failure_mid_answer_is_a_model_error_and_keeps_what_was_said(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    answer = [*speech.spoken("hello", list(range(8))), t.EOT]
    engine = engine_factory([answer], spies=[Explode(step=6)])
    events: list[ModelEvent] = []
    with pytest.raises(ModelError, match="RuntimeError: device lost"):
        async for event in engine.respond(ModelRequest("kitchen", text="hi")):
            events.append(event)
    assert "".join(e.text for e in events if isinstance(e, ModelText)) == "he"  # h, 4 speech tokens, e
    assert engine.history("kitchen")[-1].role == "assistant"
    events = await run(engine.respond(ModelRequest("kitchen", text="again")))  # the conversation goes on
    assert events[-1] == ModelDone("stop")
    assert [e.role for e in engine.history("kitchen")][-4:] == ["human", "assistant", "human", "assistant"]


async def test_only_the_most_recent_conversations_keep_a_cache(engine_factory: EngineFactory, speech: Speech) -> None:
    answer = [*speech.spoken("好", [1]), t.EOT]
    engine = engine_factory([answer] * 4, max_cached_conversations=2)
    for room in ("kitchen", "bedroom", "hall"):
        await run(engine.respond(ModelRequest(room, text="早晨")))
    await run(engine.respond(ModelRequest("kitchen", text="早晨")))
    stats = engine.last_round
    assert stats.reused_tokens == 0  # the kitchen's cache was the oldest and was freed
    assert [e.role for e in engine.history("kitchen")] == ["system", "human", "assistant", "human", "assistant"]
