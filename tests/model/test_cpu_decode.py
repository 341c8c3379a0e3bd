"""CPU decode: the compiled one-row product changes no result; where it cannot compile, decoding goes on as before."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import DynamicCache

from assistant.config import LocalModelSettings
from assistant.model.stepaudio2 import cpu_decode
from assistant.model.stepaudio2.loading import load
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM

pytestmark = pytest.mark.models


def loaded(checkpoint: Path) -> StepAudio2ForCausalLM:
    model, _ = load(LocalModelSettings(path=str(checkpoint), device="cpu"))
    return model


@pytest.fixture
def model(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> StepAudio2ForCausalLM:
    """A model of its own, loaded with plain products everywhere: the tests prepare it themselves."""
    with monkeypatch.context() as patch:
        patch.setattr(cpu_decode, "MIN_WEIGHT_BYTES", 1 << 62)
        return loaded(tiny_checkpoint)


def linears(model: StepAudio2ForCausalLM) -> list[nn.Linear]:
    return [m for m in [*model.model.layers.modules(), model.lm_head] if isinstance(m, nn.Linear)]


def decode_logits(model: StepAudio2ForCausalLM) -> tuple[torch.Tensor, torch.Tensor]:
    """A prefill's logits, then one decode step's."""
    cache = DynamicCache()
    prefill = model.step(torch.arange(1000, 1030)[None], cache, start=0)
    return prefill, model.step(torch.tensor([[1031]]), cache, start=30)


def test_loading_gives_the_compiled_product_to_the_layers_large_enough_to_be_worth_it(tiny_checkpoint: Path) -> None:
    model = loaded(tiny_checkpoint)
    # The tiny decoder's weights are a few kilobytes; lm_head has the real vocabulary's 158,720 rows.
    large = [layer for layer in linears(model) if layer.weight.nbytes >= cpu_decode.MIN_WEIGHT_BYTES]
    assert large == [model.lm_head]
    assert [type(layer) for layer in linears(model)] == [
        cpu_decode.RowProductLinear if layer is model.lm_head else nn.Linear for layer in linears(model)
    ]
    # What decides whether decoding is compiled (``decode: auto``): the decoder layers, not lm_head.
    assert (cpu_decode.swapped(model), cpu_decode.swapped(model.model.layers)) == (1, 0)


def test_the_compiled_one_row_product_gives_the_logits_of_plain_matrix_products(model: StepAudio2ForCausalLM) -> None:
    expected = decode_logits(model)
    weights = {id(layer.weight) for layer in linears(model)}

    swapped = cpu_decode.prepare(model, (model.model.layers, model.lm_head), min_weight_bytes=0)

    assert swapped == len(weights) and all(isinstance(layer, cpu_decode.RowProductLinear) for layer in linears(model))
    assert cpu_decode.swapped(model.model.layers) == swapped - 1  # all but lm_head
    assert {id(layer.weight) for layer in linears(model)} == weights  # the same parameters, not copies
    assert all(type(layer) is nn.Linear for layer in model.adapter.modules() if isinstance(layer, nn.Linear))
    prefill, step = decode_logits(model)
    torch.testing.assert_close(prefill, expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step, expected[1], atol=1e-5, rtol=1e-5)
    rows = torch.randn(1, 3, model.lm_head.in_features)  # a prefill's many rows keep MKL's product
    plain = nn.functional.linear(rows, model.lm_head.weight)
    torch.testing.assert_close(model.lm_head(rows), plain, atol=0, rtol=0)


def test_without_a_working_compiler_the_layers_stay_as_they_are(
    model: StepAudio2ForCausalLM, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: torch.Tensor | None) -> torch.Tensor:
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(cpu_decode, "_kernel", lambda: broken)
    expected = decode_logits(model)

    with caplog.at_level(logging.WARNING):
        swapped = cpu_decode.prepare(model, (model.model.layers, model.lm_head), min_weight_bytes=0)

    assert swapped == 0 and all(type(layer) is nn.Linear for layer in linears(model))
    assert "did not compile" in caplog.text and "C++ compiler" in caplog.text
    torch.testing.assert_close(decode_logits(model)[1], expected[1], atol=0, rtol=0)


def test_a_kernel_that_fails_while_decoding_hands_every_layer_back_to_plain_products(
    model: StepAudio2ForCausalLM, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = decode_logits(model)
    cpu_decode.prepare(model, (model.model.layers, model.lm_head), min_weight_bytes=0)
    monkeypatch.setattr(cpu_decode, "_state", cpu_decode._State())

    def failing(*_: torch.Tensor | None) -> torch.Tensor:
        raise RuntimeError("FailOnRecompileLimitHit")

    monkeypatch.setattr(cpu_decode, "_kernel", lambda: failing)
    with caplog.at_level(logging.WARNING):
        prefill, step = decode_logits(model)

    torch.testing.assert_close(step, expected[1], atol=0, rtol=0)  # the step's answer is still given
    assert cpu_decode._state.failed
    assert cpu_decode.swapped(model) == 0  # handed back: nothing decodes on the kernel any more
    assert caplog.text.count("falls back to plain matrix products") == 1  # said once, not per layer
