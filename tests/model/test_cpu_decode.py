"""CPU decode: the weight layout and the split one-row products change no result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedTokenizerBase

from assistant.model.stepaudio2.cpu_decode import row_split_linear
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM

pytestmark = pytest.mark.models


@pytest.mark.parametrize("cores", [2, 3])
@pytest.mark.parametrize("column_major", [False, True])
@pytest.mark.parametrize("inference", [False, True])
def test_a_split_product_is_the_plain_one(cores: int, column_major: bool, inference: bool) -> None:
    generator = torch.Generator().manual_seed(cores)
    weight = torch.randn(1001, 64, generator=generator, requires_grad=True)
    bias = torch.randn(1001, generator=generator)
    x = torch.randn(1, 1, 64, generator=generator)
    if column_major:
        weight = weight.detach().t().contiguous().t().requires_grad_()
    with torch.inference_mode(inference), torch.no_grad():
        expected = F.linear(x, weight, bias)
        for with_bias in (bias, None):
            ours = row_split_linear(x, weight, with_bias, cores)
            reference = expected if with_bias is not None else F.linear(x, weight)
            assert ours.shape == (1, 1, 1001)
            torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_the_cpu_decode_layout_keeps_values_and_logits(
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
) -> None:
    model, _ = tiny_model  # loaded by the real loading code, which applies the layout
    split = model.cpu_products
    assert (split.cores if split else 1) == torch.get_num_threads()  # one core: nothing to split
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


def test_a_decode_step_with_split_products_gives_the_one_core_logits(
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
) -> None:
    model, _ = tiny_model
    split = model.cpu_products
    if split is None:
        pytest.skip("one core: products are never split")
    cache = DynamicCache()
    model.step(torch.arange(1000, 1030)[None], cache, start=0)
    ours = model.step(torch.tensor([[5]]), cache, start=30)
    cache.crop(30)
    split.enabled = False
    try:
        one_core = model.step(torch.tensor([[5]]), cache, start=30)
    finally:
        split.enabled = True
    torch.testing.assert_close(ours, one_core, atol=1e-5, rtol=1e-5)
