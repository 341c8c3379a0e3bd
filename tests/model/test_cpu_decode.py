"""CPU decode: the weight layout changes no result."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM

pytestmark = pytest.mark.models


def test_the_cpu_decode_layout_keeps_values_and_logits(
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
) -> None:
    model, _ = tiny_model  # loaded by the real loading code, which applies the layout
    up = model.model.layers[0].mlp.up_proj.weight
    down = model.model.layers[0].mlp.down_proj.weight
    assert up.t().is_contiguous() and model.lm_head.weight.t().is_contiguous()  # wider than deep: transposed
    assert down.is_contiguous()
    prompt = torch.arange(1000, 1030)[None]
    ours = model.step(prompt, DynamicCache(), start=0)
    column_major = [(p, p.data) for p in model.parameters() if not p.is_contiguous()]
    try:
        for parameter, data in column_major:
            parameter.data = data.contiguous()
        row_major = model.step(prompt, DynamicCache(), start=0)
    finally:
        for parameter, data in column_major:
            parameter.data = data
    torch.testing.assert_close(ours, row_major, atol=1e-5, rtol=1e-5)
