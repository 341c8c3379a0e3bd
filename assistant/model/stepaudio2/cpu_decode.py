"""Decode steps on a CPU: one-row products that read the weights as fast as the memory gives them.

A decode step multiplies every weight matrix by one vector, so its speed is how fast the weights can be
read. MKL runs such a one-row product on one core: 11 to 17 GB/s here, while a sum over a large tensor
reads 40 to 47 GB/s on both cores. Written as an elementwise product and a sum over each row and compiled
by Inductor, the same product becomes one vectorised loop whose rows are shared among the threads: 20 to
38 GB/s for the model's shapes (``python -m bench.model decode`` prints the step's share of the bandwidth).

:func:`prepare` swaps the decoder's large float32 ``nn.Linear`` layers for
:class:`RowProductLinear`, which keeps the same parameters, uses the compiled kernel for a single row and
``F.linear`` for anything else (a prefill). The kernel is compiled once per weight shape, when the model is
prepared, so the first answer does not wait for it. Where Inductor cannot compile (no C++ compiler), the
layers stay as they are and one warning says so. The sum runs in another order than MKL's, so logits agree
with ``F.linear``'s to float rounding, not bit for bit. bfloat16 weights stay on MKL, whose bfloat16
products here were as fast or faster for three of the five shapes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Final, TypeGuard

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

MIN_WEIGHT_BYTES: Final = 1 << 20
"""Smallest weight, bytes, worth the compiled product; below it (a tiny test model) ``F.linear`` is as fast."""


def _row_products(row: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    products = (row.unsqueeze(-2) * weight).sum(-1)
    return products if bias is None else products + bias


@functools.cache
def _kernel() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The compiled product; built on first use, so importing the model does not load the compiler."""
    return torch.compile(_row_products, dynamic=False, fullgraph=True)


class RowProductLinear(nn.Linear):
    """An ``nn.Linear`` whose one-row products run on the compiled kernel (see the module's text)."""

    @classmethod
    def wrapping(cls, linear: nn.Linear) -> RowProductLinear:
        """A layer sharing ``linear``'s parameters (no copy)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Linear's own name
        """``input @ weight.T + bias``; a single row on the compiled kernel."""
        if input.numel() != self.in_features or input.device.type != "cpu" or _state.failed:
            return F.linear(input, self.weight, self.bias)
        # A flat row has the same strides whatever it was cut from, so one compiled kernel fits every call.
        row = input.reshape(self.in_features)
        if torch.compiler.is_compiling():  # inside a compiled step: part of its graph
            products = _row_products(row, self.weight, self.bias)
        else:
            try:
                products = _kernel()(row, self.weight, self.bias)
            except Exception as err:  # noqa: BLE001 - a compiler failure must not fail the answer
                _state.give_up(err)
                return F.linear(input, self.weight, self.bias)
        return products.view(*input.shape[:-1], self.out_features)


class _State:
    """Whether the kernel has failed once in this process (then every layer uses ``F.linear``)."""

    def __init__(self) -> None:
        self.failed = False

    def give_up(self, err: Exception) -> None:
        self.failed = True
        log.warning("CPU decoding falls back to plain matrix products (slower): the fast kernel failed: %s", err)


_state = _State()


def prepare(root: nn.Module, within: Sequence[nn.Module], *, min_weight_bytes: int | None = None) -> int:
    """Swap the large CPU linear layers of ``within`` (parts of ``root``) for :class:`RowProductLinear`.

    Layers whose weight has fewer than ``min_weight_bytes`` (default :data:`MIN_WEIGHT_BYTES`) stay.
    Returns how many layers were swapped: none when the kernel cannot be compiled here.
    """
    least = MIN_WEIGHT_BYTES if min_weight_bytes is None else min_weight_bytes
    allowed = {id(module) for part in within for module in part.modules()}
    chosen = [
        (parent, name, child)
        for parent in root.modules()
        for name, child in parent.named_children()
        if id(child) in allowed and _worth_it(child, least)
    ]
    if not chosen or not _compiles([child for _, _, child in chosen]):
        return 0
    for parent, name, child in chosen:
        setattr(parent, name, RowProductLinear.wrapping(child))
    return len(chosen)


def swapped(root: nn.Module) -> int:
    """How many layers of ``root`` use the compiled one-row product (0 where it could not compile)."""
    return 0 if _state.failed else sum(isinstance(module, RowProductLinear) for module in root.modules())


def _worth_it(module: nn.Module, min_weight_bytes: int) -> TypeGuard[nn.Linear]:
    if type(module) is not nn.Linear:
        return False
    weight = module.weight
    size = weight.numel() * weight.element_size()
    on_cpu = weight.device.type == "cpu" and weight.dtype == torch.float32
    return on_cpu and weight.is_contiguous() and size >= min_weight_bytes


def _compiles(layers: list[nn.Linear]) -> bool:
    """Compile the kernel for each distinct shape now (under inference mode, as decoding runs)."""
    shapes = {(layer.weight.shape, layer.weight.dtype, layer.bias is not None): layer for layer in layers}
    try:
        with torch.inference_mode():
            for layer in shapes.values():
                row = torch.zeros(layer.in_features, dtype=layer.weight.dtype)
                _kernel()(row, layer.weight, layer.bias)
    except Exception as err:  # noqa: BLE001 - any compiler failure means: decode as before
        log.warning("CPU decoding uses plain matrix products (slower): the fast kernel did not compile: %s", err)
        return False
    return True
