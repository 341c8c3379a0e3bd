"""bench/gpu.py's naive baseline does the same computation as the engine, only without a KV cache."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from assistant.audio import tone
from assistant.config import PersonaSettings
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.engine import GenerationOptions, StepAudio2Engine
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM
from assistant.ports import ModelRequest
from bench.gpu import NoKvCache
from support.synthetic import ScriptedLogits
from tests.model.conftest import TODAY, Speech
from tests.model.test_engine_numerics import Spy, run

pytestmark = pytest.mark.models


async def test_the_no_kv_cache_baseline_gives_the_engines_logits_at_every_step(
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase], speech: Speech
) -> None:
    model, tokenizer = tiny_model
    answer = [*speech.spoken("我系小音", list(range(12))), t.EOT]
    spies = {"cached": Spy(), "naive": Spy()}
    for name, spy in spies.items():
        baseline = NoKvCache(model)
        engine = StepAudio2Engine(
            baseline if name == "naive" else model,  # type: ignore[arg-type]
            tokenizer,
            PersonaSettings(location="广州"),
            GenerationOptions(max_new_tokens=64),
            logits_processors=[spy, ScriptedLogits([answer, answer])],
            today=lambda: TODAY,
        )
        try:
            await run(engine.respond(ModelRequest("kitchen", audio=tone(330, 2.0, rate_hz=16_000))))
            engine.release_cache("kitchen")
            baseline.active = True
            await run(engine.respond(ModelRequest("kitchen", audio=tone(440, 1.0, rate_hz=16_000))))
        finally:
            engine.close()
    cached, naive = spies["cached"].scores, spies["naive"].scores
    assert len(cached) == len(naive) == 2 * len(answer)
    for step in range(len(answer), 2 * len(answer)):
        torch.testing.assert_close(naive[step], cached[step], atol=1e-4, rtol=1e-4, msg=f"step {step}")
