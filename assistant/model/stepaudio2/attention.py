"""Decoder attention that reads only the filled part of the KV cache, and decodes without copying heads.

transformers' SDPA path, given a mask, repeats each grouped-query key/value head for every query head over
the whole *allocated* cache before attending: with a static cache of 10,240 positions that is gigabytes
written per decode step for the real model, and the cost grows with the allocation instead of the
conversation. Here the caller says how many cache positions hold anything (``kv_length``), the keys and
values are sliced (a view, no copy) to that, and a one-token step folds the query heads of each group into
extra query rows, so one key/value head serves its whole group as is.

The caller builds the mask too (:func:`prefill_mask`, :func:`decode_mask`); transformers' mask builder is
not registered for this implementation, so it never allocates one over the whole cache.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

NAME = "xiangyin_used_prefix"
"""The ``_attn_implementation`` under which :func:`attend` is registered with transformers."""


def attend(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float | None = None,
    dropout: float = 0.0,
    kv_length: int | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` ``(batch, heads, q, dim)`` over the first ``kv_length`` cache positions.

    ``attention_mask`` is boolean ``(batch or 1, 1, q, kv_length)``, True where a query may look; ``None``
    means every used position is visible to a single query, or causal order when ``q`` equals the keys.
    """
    if kv_length is not None:
        key, value = key[:, :, :kv_length], value[:, :, :kv_length]
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    if length == 1:
        # Query head h reads key/value head h // groups: the group's queries become rows of one head.
        folded = query.reshape(batch, kv_heads, heads // kv_heads, dim)
        out = F.scaled_dot_product_attention(folded, key, value, attn_mask=attention_mask, scale=scaling)
        return out.reshape(batch, 1, heads, dim), None
    if attention_mask is not None and kv_heads != heads:
        # A prefill after a reused prefix: given a mask, SDPA's own GQA falls back to its slowest kernel on
        # CUDA, so the heads are copied as transformers does, over the used positions only.
        key, value = key.repeat_interleave(heads // kv_heads, 1), value.repeat_interleave(heads // kv_heads, 1)
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=attention_mask is None,
        enable_gqa=key.shape[1] != heads,
    )
    return out.transpose(1, 2).contiguous(), None


def prefill_mask(start: int, length: int, device: torch.device) -> torch.Tensor | None:
    """The causal mask of ``length`` new positions after ``start`` cached ones.

    ``None`` where SDPA's own causal order is the same: nothing cached, or one new position that sees all.
    """
    if start == 0 or length == 1:
        return None
    rows = torch.arange(start, start + length, device=device)[:, None]
    return (torch.arange(start + length, device=device)[None, :] <= rows)[None, None]


def decode_mask(positions: torch.Tensor, kv_length: int) -> torch.Tensor:
    """The mask of one new token at ``positions`` ``(1,)`` over ``kv_length`` cache positions.

    They may run past the token: a compiled step reads a fixed bucket of positions, not the exact length.
    """
    return (torch.arange(kv_length, device=positions.device) <= positions[:, None]).view(1, 1, 1, kv_length)


AttentionInterface.register(NAME, attend)
