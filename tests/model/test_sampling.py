"""The sampler penalises exactly as transformers' processor does, and picks what the same draw would."""

from __future__ import annotations

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.sampling import Sampler
from tests.model.test_engine_numerics import Spy

pytestmark = pytest.mark.models


def _sampler(
    prompt: torch.Tensor, temperature: float = 0.7, spy: Spy | None = None, ban_speech: bool = False
) -> Sampler:
    """A sampler with the engine's default options."""
    processors = [spy] if spy else []
    return Sampler(
        prompt,
        temperature=temperature,
        top_p=0.9,
        top_k=50,
        repetition_penalty=1.05,
        processors=processors,
        ban_speech=ban_speech,
    )


def _logits(seed: int) -> torch.Tensor:
    return torch.randn(1, t.VOCAB_SIZE, generator=torch.Generator().manual_seed(seed)) * 4


def test_the_penalty_over_prompt_and_added_tokens_equals_transformers() -> None:
    prompt = torch.tensor([[5, 9, 9, 151665, 5, 158000]])
    spy = Spy()
    sampler = _sampler(prompt, spy=spy)
    context = prompt
    for step, token in enumerate([9, 70_000, 70_000, 3]):
        logits = _logits(step)
        expected = RepetitionPenaltyLogitsProcessor(1.05)(context, logits.clone())  # type: ignore[arg-type]
        sampler.choose(logits)
        assert torch.equal(spy.scores[-1], expected)
        sampler.add(token)
        context = torch.cat([context, torch.tensor([[token]])], dim=1)


def test_the_choice_is_the_draw_over_the_top_k_nucleus() -> None:
    prompt = torch.tensor([[1, 2, 3]])
    for seed in range(20):
        logits = _logits(100 + seed)
        scores = RepetitionPenaltyLogitsProcessor(1.05)(prompt, logits.clone())[0]  # type: ignore[arg-type]
        values, indices = scores.topk(50)
        probabilities = torch.softmax(values / 0.7, dim=-1)
        probabilities = probabilities.masked_fill(probabilities.cumsum(-1) - probabilities >= 0.9, 0.0)
        torch.manual_seed(seed)
        expected = int(indices[torch.multinomial(probabilities, 1)].item())
        torch.manual_seed(seed)
        assert _sampler(prompt).choose(logits) == expected


def test_greedy_text_only_never_picks_speech_and_a_dead_end_is_the_end_of_the_turn() -> None:
    logits = torch.full((1, t.VOCAB_SIZE), -5.0)
    logits[0, t.AUDIO_0 + 3] = 10.0
    logits[0, t.TTS_START] = 9.0
    logits[0, 42] = 1.0
    prompt = torch.tensor([[1]])
    assert _sampler(prompt, temperature=0.0, ban_speech=True).choose(logits.clone()) == 42
    assert _sampler(prompt, temperature=0.0).choose(logits.clone()) == t.AUDIO_0 + 3
    dead = torch.full((1, t.VOCAB_SIZE), -float("inf"))
    assert _sampler(prompt).choose(dead) == t.EOT
