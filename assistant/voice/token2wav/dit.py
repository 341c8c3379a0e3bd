"""The flow-matching estimator: a DiT with adaLN-Zero, QK-norm attention and a causal conv in each block.

Parameter names follow ``flow.pt`` (``decoder.estimator.*``). Like the encoder it runs over a whole
sequence with a mask, or chunk by chunk with per-block attention and convolution caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Mlp(nn.Module):
    def __init__(self, size: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(size, hidden)
        self.fc2 = nn.Linear(hidden, size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
        return out


class _Attention(nn.Module):
    def __init__(self, size: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(size, inner)
        self.to_k = nn.Linear(size, inner)
        self.to_v = nn.Linear(size, inner)
        self.q_norm = nn.LayerNorm(head_dim)
        self.k_norm = nn.LayerNorm(head_dim)
        self.proj = nn.Linear(inner, size)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor | None, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        b, t, _ = x.shape
        q = self.q_norm(self._heads(self.to_q(x)))
        k = self.k_norm(self._heads(self.to_k(x)))
        v = self._heads(self.to_v(x))
        if cache is not None and cache.shape[2] > 0:
            # Newest first, as in StepFun's estimator: its cache trim (DiTCache.keep) depends on this order.
            k_cache, v_cache = cache.chunk(2, dim=-1)
            k = torch.cat([k, k_cache], dim=2)
            v = torch.cat([v, v_cache], dim=2)
        new_cache = torch.cat([k, v], dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask.unsqueeze(1))
        return self.proj(out.transpose(1, 2).reshape(b, t, -1)), new_cache


class _CausalConv1d(nn.Conv1d):
    def forward_cached(self, x: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """Convolve (b, c, t) after the ``kernel-1`` frames in ``cache`` (zeros at the start)."""
        width = self.kernel_size[0] - 1
        if cache is None:
            cache = x.new_zeros(x.shape[0], self.in_channels, width)
        padded = torch.cat([cache, x], dim=2)
        out: Tensor = super().forward(padded)
        return out, padded[..., padded.shape[2] - width :]


class _Transpose(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class _CausalConvBlock(nn.Module):
    def __init__(self, size: int, kernel: int = 3) -> None:
        super().__init__()
        self.size = size
        # Indices 1, 3 and 6 are the parameterised layers, as named in the checkpoint.
        self.block = nn.Sequential(
            _Transpose(),
            _CausalConv1d(size, size, kernel),
            _Transpose(),
            nn.LayerNorm(size),
            nn.Mish(),
            _Transpose(),
            _CausalConv1d(size, size, kernel),
            _Transpose(),
        )

    def forward(self, x: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """Run (b, t, c) after ``cache`` (b, 2c, kernel-1); return the output and the new cache."""
        first, second = self.block[1], self.block[6]
        assert isinstance(first, _CausalConv1d) and isinstance(second, _CausalConv1d)
        cache1, cache2 = (cache[:, : self.size], cache[:, self.size :]) if cache is not None else (None, None)
        h, new1 = first.forward_cached(x.transpose(1, 2), cache1)
        h = self.block[4](self.block[3](h.transpose(1, 2))).transpose(1, 2)
        h, new2 = second.forward_cached(h, cache2)
        return h.transpose(1, 2), torch.cat([new1, new2], dim=1)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """Attention, causal conv and MLP, each gated and modulated by the time embedding."""

    def __init__(self, size: int, heads: int, head_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(size, elementwise_affine=False, eps=1e-6)
        self.attn = _Attention(size, heads, head_dim)
        self.norm2 = nn.LayerNorm(size, elementwise_affine=False, eps=1e-6)
        self.mlp = _Mlp(size, int(size * mlp_ratio))
        self.norm3 = nn.LayerNorm(size, elementwise_affine=False, eps=1e-6)
        self.conv = _CausalConvBlock(size)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(size, 9 * size))

    def forward(
        self, x: Tensor, c: Tensor, mask: Tensor | None, conv_cache: Tensor | None, att_cache: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One block over (b, t, c) with time embedding ``c``; returns output, conv cache, k/v cache."""
        (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp, shift_conv, scale_conv, gate_conv) = (
            self.adaLN_modulation(c).chunk(9, dim=-1)
        )
        attended, new_att = self.attn(_modulate(self.norm1(x), shift_msa, scale_msa), mask, att_cache)
        x = x + gate_msa * attended
        convolved, new_conv = self.conv(_modulate(self.norm3(x), shift_conv, scale_conv), conv_cache)
        x = x + gate_conv * convolved
        x = x + gate_mlp * self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x, new_conv, new_att


class _TimestepEmbedder(nn.Module):
    def __init__(self, size: int, frequencies: int = 256) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, size), nn.SiLU(), nn.Linear(size, size))

    def forward(self, t: Tensor) -> Tensor:
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = (t.float() * 1000)[:, None] * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(t.dtype)
        out: Tensor = self.mlp(embedding)
        return out


class _FinalLayer(nn.Module):
    def __init__(self, size: int, out_channels: int) -> None:
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(size, 2 * size))
        self.norm_final = nn.LayerNorm(size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(size, out_channels)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        out: Tensor = self.linear(_modulate(self.norm_final(x), shift, scale))
        return out


@dataclass
class DiTCache:
    """One Euler step's caches: per block, conv tails (b, 2c, 2) and keys/values (b, heads, t, 2·head_dim)."""

    conv: list[Tensor]
    """Per block, the last two frames before each causal convolution, (b, 2c, 2)."""
    attention: list[Tensor]
    """Per block, keys and values with the newest chunk first, (b, heads, t, 2·head_dim)."""

    @property
    def frames(self) -> int:
        """Frames whose keys and values are kept."""
        return int(self.attention[0].shape[2])

    def keep(self, newest: int, oldest: int) -> DiTCache:
        """Keep the first ``newest`` entries and the last ``oldest`` ones, as StepFun's streaming does.

        The cache is newest-first, so with ``newest`` = the prompt's frame count this keeps that many of
        the latest frames and the last ``oldest`` frames of the voice prompt (the weights were checked
        with exactly this context).
        """
        if self.frames <= newest + oldest:
            return self
        return DiTCache(
            self.conv,
            [torch.cat([a[:, :, :newest], a[:, :, a.shape[2] - oldest :]], dim=2) for a in self.attention],
        )

    def to(self, device: torch.device, dtype: torch.dtype) -> DiTCache:
        """Return a copy on ``device`` in ``dtype``."""
        return DiTCache([c.to(device, dtype) for c in self.conv], [a.to(device, dtype) for a in self.attention])


class DiT(nn.Module):
    """The velocity estimator: input [x, mu, speaker, cond] (320 channels) → velocity (80 channels)."""

    def __init__(
        self,
        in_channels: int = 320,
        out_channels: int = 80,
        mlp_ratio: float = 4.0,
        depth: int = 16,
        num_heads: int = 8,
        head_dim: int = 64,
        hidden_size: int = 512,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.t_embedder = _TimestepEmbedder(hidden_size)
        self.in_proj = nn.Linear(in_channels, hidden_size)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, head_dim, mlp_ratio) for _ in range(depth)])
        self.final_layer = _FinalLayer(hidden_size, out_channels)

    def forward(
        self, x: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor, mask: Tensor | None, cache: DiTCache | None
    ) -> tuple[Tensor, DiTCache]:
        """Velocity for (b, 80, n) inputs at times ``t`` (b,); ``mask`` (b, n, keys) is True where allowed."""
        c = self.t_embedder(t).unsqueeze(1)
        h = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.shape[-1]), cond], dim=1).transpose(1, 2)
        h = self.in_proj(h)
        convs: list[Tensor] = []
        atts: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            h, conv, att = block(h, c, mask, cache.conv[i] if cache else None, cache.attention[i] if cache else None)
            convs.append(conv)
            atts.append(att)
        return self.final_layer(h, c).transpose(1, 2), DiTCache(convs, atts)
