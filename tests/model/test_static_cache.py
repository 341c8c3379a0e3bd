"""The static KV cache decodes exactly what the dynamic one does, across turns and prompt changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import StaticCache

from assistant.audio import tone
from assistant.config import LocalModelSettings
from assistant.errors import ModelError
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.engine import FIRST_BUCKET, GenerationOptions, StepAudio2Engine
from assistant.ports import ModelRequest
from tests.model.conftest import EngineFactory, Speech
from tests.model.test_engine_numerics import Spy, run

pytestmark = pytest.mark.models


async def _conversation(
    engine_factory: EngineFactory, speech: Speech, **options: object
) -> tuple[Spy, StepAudio2Engine]:
    """Three rounds: a spoken question, a typed follow-up, and one after the system prompt changed."""
    spy = Spy()
    engine = engine_factory([_answer(speech)] * 3, spies=[spy], **options)
    await _converse(engine)
    return spy, engine


def _answer(speech: Speech) -> list[int]:
    return [*speech.spoken("我系小音", list(range(12))), t.EOT]


async def _converse(engine: StepAudio2Engine) -> None:
    await run(engine.respond(ModelRequest("kitchen", audio=tone(330, 2.0, rate_hz=16_000))))
    await run(engine.respond(ModelRequest("kitchen", text="仲有呢")))
    # A new dialect changes the system prompt: the cache is kept only up to there, the rest is stale.
    engine.set_dialect("mandarin")
    await run(engine.respond(ModelRequest("kitchen", text="再讲一次")))


async def test_static_and_dynamic_caches_give_the_same_logits_at_every_step(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    dynamic, _ = await _conversation(engine_factory, speech)
    static, engine = await _conversation(engine_factory, speech, kv_cache="static")
    assert engine.last_round.reused_tokens > 0  # the last round did reuse a prefix of the static cache
    assert len(static.scores) == len(dynamic.scores) > 0
    for step, (ours, theirs) in enumerate(zip(static.scores, dynamic.scores, strict=True)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=f"step {step}")


async def test_the_static_cache_is_allocated_once_for_the_usual_history_and_answer(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    _, engine = await _conversation(engine_factory, speech, kv_cache="static", history_tokens=3000)
    kitchen = engine._store.peek("kitchen")  # noqa: SLF001 - the allocation is what is checked
    cache = kitchen.cache if kitchen is not None else None
    assert isinstance(cache, StaticCache)
    assert cache.max_cache_len == 3000 + 256 + 1  # history_tokens + max_new_tokens (the conftest's 256) + spare


def test_compiling_needs_the_static_cache(engine_factory: EngineFactory) -> None:
    with pytest.raises(ModelError, match="static KV cache"):
        engine_factory(compile_decode=True)


@pytest.mark.slow
async def test_the_compiled_decode_step_gives_the_logits_of_the_eager_one(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    eager, _ = await _conversation(engine_factory, speech, kv_cache="static")
    compiled, _ = await _conversation(engine_factory, speech, kv_cache="static", compile_decode=True)
    assert len(compiled.scores) == len(eager.scores) > 0
    for step, (ours, theirs) in enumerate(zip(compiled.scores, eager.scores, strict=True)):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4, msg=f"step {step}")


def test_the_decode_setting_picks_cache_and_compilation() -> None:
    chosen = {
        (decode, device, row_products): (options.kv_cache, options.compile_decode)
        for decode in ("dynamic", "static", "compiled", "auto")
        for device in ("cpu", "cuda")
        for row_products in (0, 71)
        for options in [
            GenerationOptions.from_settings(LocalModelSettings(decode=decode), device, row_products=row_products)
        ]
    }
    expected: dict[tuple[str, str, int], tuple[str, bool]] = {}
    for row_products in (0, 71):
        expected |= {
            ("dynamic", "cpu", row_products): ("dynamic", False),
            ("dynamic", "cuda", row_products): ("dynamic", False),
            ("static", "cpu", row_products): ("static", False),
            ("static", "cuda", row_products): ("static", False),
            ("compiled", "cpu", row_products): ("static", True),
            ("compiled", "cuda", row_products): ("static", True),
            ("auto", "cuda", row_products): ("dynamic", False),
        }
    # The fastest measured on a CPU (bench/model.py decode) where the compiler works and the model is large
    # enough for the one-row product; a tiny or uncompilable model keeps the eager static step.
    expected[("auto", "cpu", 71)] = ("static", True)
    expected[("auto", "cpu", 0)] = ("static", False)
    assert chosen == expected


class CompilerThatBreaks:
    """Stands in for ``torch.compile``: the function runs as it is for ``calls`` calls, then fails."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def __call__(self, function: Callable[..., torch.Tensor], **_: object) -> Callable[..., torch.Tensor]:
        def step(*args: object) -> torch.Tensor:
            if self.calls == 0:
                raise RuntimeError("InductorError: no working C++ compiler")
            self.calls -= 1
            return function(*args)

        return step


@pytest.mark.slow
@pytest.mark.parametrize("working_calls", [0, 6], ids=["at the warm-up", "in the middle of an answer"])
async def test_a_compiled_step_that_fails_is_decoded_again_uncompiled_after_one_warning(
    engine_factory: EngineFactory,
    speech: Speech,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    working_calls: int,
) -> None:
    eager, _ = await _conversation(engine_factory, speech, kv_cache="static")
    monkeypatch.setattr(torch, "compile", CompilerThatBreaks(working_calls))
    spy = Spy()
    # The warm-up takes one scripted round (a stop at once) and makes one compiled step, at a second bucket.
    engine = engine_factory([[t.EOT], *[_answer(speech)] * 3], spies=[spy], kv_cache="static", compile_decode=True)
    with caplog.at_level("WARNING"):
        await engine.warm_up()
        spy.scores.clear()
        await _converse(engine)
    assert caplog.text.count("decoding without compilation") == 1
    assert "no working C++ compiler" in caplog.text
    assert len(spy.scores) == len(eager.scores) > 0
    for step, (ours, theirs) in enumerate(zip(spy.scores, eager.scores, strict=True)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5, msg=f"step {step}")


@pytest.mark.slow
async def test_the_warm_up_compiles_every_bucket_a_conversation_will_need(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    from torch._dynamo.utils import counters

    answer = [*speech.spoken("好", list(range(8))), t.EOT]
    engine = engine_factory([answer] * 3, kv_cache="static", compile_decode=True)
    torch._dynamo.reset()
    await engine.warm_up()
    compiled = counters["stats"]["unique_graphs"]
    assert compiled >= 1
    for words in (10, 150, 400):  # prompts in three different buckets of attended positions
        await run(engine.respond(ModelRequest("kitchen", text="早晨" * words)))
        engine.forget("kitchen")
    assert engine.last_round.prompt_tokens > 4 * FIRST_BUCKET
    assert counters["stats"]["unique_graphs"] == compiled  # no compilation after the warm-up
