"""Decode steps on a CPU: weights laid out for one-row matrix products.

A decode step multiplies every weight matrix by one vector, so its speed is how fast the weights can be
read. MKL reads a row-major ``(out, in)`` matrix with ``out`` much larger than ``in`` (the MLP's gate and
up projections, ``lm_head``) at 13 to 16 GB/s here, and the same matrix stored transposed at 20 to 24
GB/s; the deeper-than-wide down projection is faster as it is. :func:`prepare` changes only the strides,
so every path computes with the same values, and logits match the row-major ones to rounding.

Splitting each product over the cores (MKL runs a one-row product on one core) was tried and measured
between ×0.9 and ×1.5 against one core on this busy 2-core machine, within the noise, so it is not done.
"""

from __future__ import annotations

import torch
from torch import nn


def prepare(layers: nn.Module, head: nn.Linear) -> None:
    """Store ``layers``' and ``head``'s wider-than-deep float32 weights column-major."""
    for module in [*layers.modules(), head]:
        if type(module) is not nn.Linear:
            continue
        weight = module.weight
        if weight.dtype == torch.float32 and weight.shape[0] > weight.shape[1] and weight.is_contiguous():
            weight.data = weight.data.t().contiguous().t()
