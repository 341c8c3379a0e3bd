"""The used-prefix attention computes transformers' SDPA attention and never reads past the filled positions."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase, StaticCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from assistant.model.stepaudio2.attention import attend, decode_mask, prefill_mask
from assistant.model.stepaudio2.engine import kv_bucket
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM

pytestmark = pytest.mark.models

HEADS, KV_HEADS, DIM = 8, 2, 16


class _Grouped(nn.Module):
    """What transformers' SDPA function reads from an attention module."""

    num_key_value_groups = HEADS // KV_HEADS
    is_causal = True


def _qkv(length: int, kv_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(length * 1000 + kv_length)
    return (
        torch.randn(1, HEADS, length, DIM, generator=generator),
        torch.randn(1, KV_HEADS, kv_length, DIM, generator=generator),
        torch.randn(1, KV_HEADS, kv_length, DIM, generator=generator),
    )


def _reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, start: int) -> torch.Tensor:
    """transformers' SDPA attention over exactly the filled positions, with its own causal mask."""
    length = query.shape[2]
    allowed = torch.arange(start + length)[None, :] <= torch.arange(start, start + length)[:, None]
    out, _ = sdpa_attention_forward(_Grouped(), query, key, value, allowed[None, None], scaling=DIM**-0.5)
    return out


@pytest.mark.parametrize(("start", "length"), [(0, 1), (0, 7), (9, 1), (9, 5)])
def test_the_filled_positions_give_transformers_attention_and_the_rest_is_never_read(start: int, length: int) -> None:
    query, key, value = _qkv(length, start + length)
    allocated = start + length + 32
    # Unused cache positions full of NaN: reading any of them, even masked, would make the output NaN.
    poisoned_key = torch.cat([key, torch.full((1, KV_HEADS, 32, DIM), float("nan"))], dim=2)
    poisoned_value = torch.cat([value, torch.full((1, KV_HEADS, 32, DIM), float("nan"))], dim=2)
    assert poisoned_key.shape[2] == allocated
    ours, _ = attend(
        _Grouped(),
        query,
        poisoned_key,
        poisoned_value,
        prefill_mask(start, length, query.device),
        scaling=DIM**-0.5,
        kv_length=start + length,
    )
    torch.testing.assert_close(ours, _reference(query, key, value, start), atol=1e-6, rtol=1e-5)


def test_a_decode_bucket_masks_the_positions_after_the_token() -> None:
    query, key, value = _qkv(1, 40)
    position = 24
    ours, _ = attend(
        _Grouped(), query, key, value, decode_mask(torch.tensor([position]), 32), scaling=DIM**-0.5, kv_length=32
    )
    expected = _reference(query, key[:, :, : position + 1], value[:, :, : position + 1], position)
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_buckets_double_from_256_and_stop_at_the_allocation() -> None:
    assert [kv_bucket(used, 10_240) for used in (1, 256, 257, 1000, 5000, 9000)] == [
        256,
        256,
        512,
        1024,
        8192,
        10_240,
    ]


def test_the_model_gives_transformers_sdpa_logits_and_ignores_a_poisoned_static_tail(
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
) -> None:
    model, _ = tiny_model
    text = model.config.text_config
    prompt = torch.arange(1000, 1040)[None]
    follow_up = torch.arange(2000, 2006)[None]

    def logits(cache: DynamicCache | StaticCache) -> list[torch.Tensor]:
        """A prefill, a second prefill after it (a reused prefix), then three decode steps."""
        out = [model.step(prompt, cache, start=0), model.step(follow_up, cache, start=40)]
        out += [model.step(torch.tensor([[7 + i]]), cache, start=46 + i) for i in range(3)]
        return out

    implementation = text._attn_implementation
    text._attn_implementation = "sdpa"
    try:
        expected = logits(DynamicCache())
    finally:
        text._attn_implementation = implementation
    static = StaticCache(config=text, max_cache_len=1024)
    static.early_initialization(
        1, text.num_key_value_heads, text.hidden_size // text.num_attention_heads, model.dtype, model.device
    )
    for layer in static.layers:
        layer.keys.fill_(float("nan"))
        layer.values.fill_(float("nan"))
    for ours in (logits(DynamicCache()), logits(static)):
        for step, (mine, theirs) in enumerate(zip(ours, expected, strict=True)):
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5, msg=f"step {step}")
