"""Decode steps on a CPU: weights laid out and products spread for one-row matrix products.

A decode step multiplies every weight matrix by one vector, so its speed is how fast the weights can be
read. Two things keep PyTorch's CPU path well below the memory bandwidth:

- MKL reads a row-major ``(out, in)`` matrix with ``out`` much larger than ``in`` (the MLP's gate and up
  projections, ``lm_head``) at 13 to 16 GB/s here, and the same matrix stored transposed at 19 to 25 GB/s;
  the deeper-than-wide down projection is faster as it is. :func:`prepare` changes only the strides.
- MKL runs a one-row product on one core whatever ``torch.get_num_threads()`` says, and one core cannot
  draw the whole bandwidth. :class:`SplitProducts` gives each of the other cores a block of output rows.

Both keep each output's sum in the same order, so logits match the plain path to rounding.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MIN_SPLIT_BYTES = 4 << 20
"""Weights smaller than this (4 MiB) are multiplied on one core: handing work out costs tens of µs."""


class SplitProducts:
    """Multiplies one-row inputs by big weights on ``cores`` cores, a block of output rows each."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.enabled = True
        """Off, every product runs on one core (for benchmarks that compare)."""

    def linear(self, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """``module(x)``, split across the cores when ``x`` is one row."""
        if not self.enabled or x.numel() != x.shape[-1]:
            return F.linear(x, module.weight, module.bias)
        # An operator of its own, so a torch.compile'd step calls it too instead of tracing into threads.
        out: torch.Tensor = torch.ops.xiangyin.row_split_linear(x, module.weight, module.bias, self.cores)
        return out


_POOLS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """The process's threads for ``workers`` extra cores (idle between steps; they end with the process)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode-mv")
        return pool


@torch.library.custom_op("xiangyin::row_split_linear", mutates_args=())
def row_split_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cores: int) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for a one-row ``x``, with the output rows split over ``cores`` cores."""
    rows = weight.shape[0]
    out = torch.empty(*x.shape[:-1], rows, dtype=x.dtype, device=x.device)
    flat, flat_out = x.reshape(1, -1), out.view(1, rows)
    bounds = [rows * i // cores for i in range(cores + 1)]
    inference = torch.is_inference_mode_enabled()

    def block(first: int, last: int) -> None:
        # Grad and inference modes are per thread: a worker sets them to write into the caller's tensors.
        with torch.inference_mode(inference), torch.no_grad():
            torch.mm(flat, weight[first:last].t(), out=flat_out[:, first:last])
            if bias is not None:
                flat_out[:, first:last] += bias[first:last]

    others = [_pool(cores - 1).submit(block, bounds[i], bounds[i + 1]) for i in range(1, cores)]
    block(bounds[0], bounds[1])
    for future in others:
        future.result()
    return out


@row_split_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cores: int) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def prepare(layers: nn.Module, head: nn.Linear) -> SplitProducts | None:
    """Lay out ``layers``' and ``head``'s float32 weights for decoding on a CPU and spread their products.

    Returns the splitter (``None`` on one core, where there is nothing to spread).
    """
    linears = [m for m in [*layers.modules(), head] if type(m) is nn.Linear and m.weight.dtype == torch.float32]
    for module in linears:
        weight = module.weight
        if weight.shape[0] > weight.shape[1] and weight.is_contiguous():
            weight.data = weight.data.t().contiguous().t()
    cores = torch.get_num_threads()
    if cores < 2:
        return None
    split = SplitProducts(cores)
    for module in linears:
        if module.weight.numel() * module.weight.element_size() >= MIN_SPLIT_BYTES:
            _route(module, split)
    return split


def _route(module: nn.Linear, split: SplitProducts) -> None:
    def forward(x: torch.Tensor, *_: Any) -> torch.Tensor:
        return split.linear(module, x)

    module.forward = forward  # type: ignore[method-assign,assignment]
