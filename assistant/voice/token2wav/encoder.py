"""The flow's token encoder: a causal conformer with look-ahead that upsamples 25 Hz tokens to 50 Hz.

Parameter names follow the released ``flow.pt`` (``encoder.*``), so its weights load unchanged. The
encoder runs two ways that give the same numbers: :meth:`TokenEncoder.forward` over a whole sequence with
block-causal masks, and :meth:`TokenEncoder.forward_chunk` one chunk at a time with caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _LinearEmbed(nn.Module):
    """Linear + LayerNorm, then the ESPnet relative-position scaling (``embed`` / ``up_embed``)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.out = nn.Sequential(nn.Linear(size, size), nn.LayerNorm(size, eps=1e-5), nn.Dropout(0.0))
        self.xscale = math.sqrt(size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.out(x)
        return out * self.xscale


def relative_positions(size: int, length: int, *, device: torch.device, dtype: torch.dtype) -> Tensor:
    """ESPnet sinusoidal encodings of relative positions ``length-1 … -(length-1)``: ``(1, 2·length-1, size)``."""
    position = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=device).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, size, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / size))
    pe = torch.zeros(2 * length - 1, size, device=device)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0).to(dtype)


class RelPositionAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions (``self_attn``)."""

    def __init__(self, heads: int, size: int) -> None:
        super().__init__()
        self.heads = heads
        self.d_k = size // heads
        self.linear_q = nn.Linear(size, size)
        self.linear_k = nn.Linear(size, size)
        self.linear_v = nn.Linear(size, size)
        self.linear_out = nn.Linear(size, size)
        self.linear_pos = nn.Linear(size, size, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.d_k))

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d_k).transpose(1, 2)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """Attend ``x`` (b, t, c) over the cached keys and itself; return the output and the new k/v cache.

        ``pos`` holds the encodings of relative positions for ``cache + t`` keys; ``mask`` (b, t, keys)
        is True where a query may look.
        """
        b, t, _ = x.shape
        q = self._split(self.linear_q(x))
        k = self._split(self.linear_k(x))
        v = self._split(self.linear_v(x))
        if cache is not None and cache.shape[2] > 0:
            k_cache, v_cache = cache.chunk(2, dim=-1)
            k = torch.cat([k_cache, k], dim=2)
            v = torch.cat([v_cache, v], dim=2)
        new_cache = torch.cat([k, v], dim=-1)
        keys = k.shape[2]
        p = self.linear_pos(pos).view(1, -1, self.heads, self.d_k).transpose(1, 2)
        q_t = q.transpose(1, 2)
        ac = torch.matmul((q_t + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = torch.matmul((q_t + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
        # Column (keys-1) of bd is relative distance 0; the query at absolute index keys-t+i looks at key j
        # at distance (keys-t+i) - j, i.e. column t-1-i+j.
        index = (t - 1 - torch.arange(t, device=x.device)).unsqueeze(1) + torch.arange(keys, device=x.device)
        bd = torch.gather(bd, 3, index.expand(b, self.heads, t, keys))
        scores = (ac + bd) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        if mask is not None:
            attn = attn.masked_fill(~mask.unsqueeze(1), 0.0)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, -1)
        return self.linear_out(out), new_cache


class _FeedForward(nn.Module):
    def __init__(self, size: int, hidden: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(size, hidden)
        self.w_2 = nn.Linear(hidden, size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.w_2(F.silu(self.w_1(x)))
        return out


class ConformerLayer(nn.Module):
    """Pre-norm attention + feed-forward (the released layers have no convolution module)."""

    def __init__(self, size: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = RelPositionAttention(heads, size)
        self.feed_forward = _FeedForward(size, hidden)
        self.norm_ff = nn.LayerNorm(size, eps=1e-12)
        self.norm_mha = nn.LayerNorm(size, eps=1e-12)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """Run (b, t, c) after ``cache``; return the output and the layer's new key/value cache."""
        attended, new_cache = self.self_attn(self.norm_mha(x), pos, mask, cache)
        x = x + attended
        return x + self.feed_forward(self.norm_ff(x)), new_cache


class PreLookaheadLayer(nn.Module):
    """Each position sees ``lookahead`` future tokens (conv1), then two past ones (causal conv2)."""

    def __init__(self, channels: int, lookahead: int) -> None:
        super().__init__()
        self.pre_lookahead_len = lookahead
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=lookahead + 1)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3)

    def look_ahead(self, x: Tensor) -> Tensor:
        """conv1 over (b, t+lookahead, c): one output per position that has its look-ahead, (b, c, t)."""
        return F.leaky_relu(self.conv1(x.transpose(1, 2)))

    def finish(self, ahead: Tensor, residual: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """Causal conv2 over conv1's outputs with the two previous ones as ``cache``; add the residual."""
        if cache is None:
            cache = ahead.new_zeros(ahead.shape[0], ahead.shape[1], 2)
        padded = torch.cat([cache, ahead], dim=2)
        out = self.conv2(padded).transpose(1, 2)
        return out + residual, padded[..., -2:]


class Upsample1D(nn.Module):
    """Nearest-neighbour ×stride, then a causal convolution (``up_layer``)."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(channels, channels, stride * 2 + 1)

    def forward(self, x: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """Upsample (b, c, t) to (b, c, stride·t); ``cache`` holds the last 2·stride upsampled frames."""
        up = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        if cache is None:
            cache = up.new_zeros(up.shape[0], up.shape[1], self.stride * 2)
        padded = torch.cat([cache, up], dim=2)
        return self.conv(padded), padded[..., -self.stride * 2 :]


@dataclass
class EncoderCache:
    """What the encoder carries from one chunk to the next."""

    lookahead: Tensor
    """The last two conv1 outputs, (b, c, 2)."""
    upsample: Tensor
    """The last 2·stride upsampled frames, (b, c, 2·stride)."""
    attention: list[Tensor]
    """Per layer (encoders, then up_encoders), keys and values so far, (b, heads, t, 2·d_k)."""

    @property
    def tokens(self) -> int:
        """Number of 25 Hz positions already encoded."""
        return int(self.attention[0].shape[2])

    def to(self, device: torch.device, dtype: torch.dtype) -> EncoderCache:
        """Return a copy on ``device`` in ``dtype``."""
        return EncoderCache(
            self.lookahead.to(device, dtype),
            self.upsample.to(device, dtype),
            [a.to(device, dtype) for a in self.attention],
        )


def block_mask(bounds: list[int], scale: int, device: torch.device) -> Tensor:
    """A (1, T, T) mask where a position sees everything up to the end of its chunk.

    ``bounds`` are the chunk ends in input positions; ``scale`` multiplies them (2 after upsampling).
    """
    total = bounds[-1] * scale
    ends = torch.empty(total, dtype=torch.long, device=device)
    start = 0
    for end in bounds:
        ends[start * scale : end * scale] = end * scale
        start = end
    keys = torch.arange(total, device=device)
    return (keys.unsqueeze(0) < ends.unsqueeze(1)).unsqueeze(0)


class TokenEncoder(nn.Module):
    """``UpsampleConformerEncoderV2``: embed, look-ahead, conformers, ×2 upsample, more conformers."""

    def __init__(
        self,
        size: int = 512,
        heads: int = 8,
        hidden: int = 2048,
        blocks: int = 6,
        up_blocks: int = 4,
        lookahead: int = 3,
        stride: int = 2,
    ) -> None:
        super().__init__()
        self.size = size
        self.embed = _LinearEmbed(size)
        self.pre_lookahead_layer = PreLookaheadLayer(size, lookahead)
        self.encoders = nn.ModuleList([ConformerLayer(size, heads, hidden) for _ in range(blocks)])
        self.up_layer = Upsample1D(size, stride)
        self.up_embed = _LinearEmbed(size)
        self.up_encoders = nn.ModuleList([ConformerLayer(size, heads, hidden) for _ in range(up_blocks)])
        self.after_norm = nn.LayerNorm(size, eps=1e-5)

    @property
    def lookahead(self) -> int:
        """Future tokens each position needs."""
        return self.pre_lookahead_layer.pre_lookahead_len

    @property
    def stride(self) -> int:
        """Output frames per token."""
        return self.up_layer.stride

    def _embed(self, tokens: Tensor, last: bool) -> Tensor:
        x: Tensor = self.embed(tokens)
        # The end of speech has no future tokens: it looks ahead at zeros, after the embedding.
        return F.pad(x, (0, 0, 0, self.lookahead)) if last else x

    def forward(self, segments: list[Tensor], bounds: list[int]) -> Tensor:
        """Encode a whole utterance at once, exactly as chunk-by-chunk streaming would.

        ``segments`` are token-vector runs (b, n, c): all but the last carry ``lookahead`` extra tokens
        to look at (the voice prompt carries stand-ins); the last looks ahead at zeros. ``bounds`` are
        the streaming chunk ends in tokens. Returns (b, stride·T, c).
        """
        embedded = [self._embed(s, i == len(segments) - 1) for i, s in enumerate(segments)]
        residual = torch.cat([e[:, : e.shape[1] - self.lookahead] for e in embedded], dim=1)
        ahead = torch.cat([self.pre_lookahead_layer.look_ahead(e) for e in embedded], dim=2)
        x, _ = self.pre_lookahead_layer.finish(ahead, residual, None)
        mask = block_mask(bounds, 1, x.device)
        pos = relative_positions(self.size, x.shape[1], device=x.device, dtype=x.dtype)
        for layer in self.encoders:
            x, _ = layer(x, pos, mask, None)
        x, _ = self.up_layer(x.transpose(1, 2), None)
        x = self.up_embed(x.transpose(1, 2))
        mask = block_mask(bounds, self.stride, x.device)
        pos = relative_positions(self.size, x.shape[1], device=x.device, dtype=x.dtype)
        for layer in self.up_encoders:
            x, _ = layer(x, pos, mask, None)
        out: Tensor = self.after_norm(x)
        return out

    def forward_chunk(
        self, tokens: Tensor, cache: EncoderCache | None, *, last: bool = False
    ) -> tuple[Tensor, EncoderCache]:
        """Encode one chunk of token vectors after ``cache``.

        ``tokens`` is (b, n+lookahead, c), or (b, n, c) for the ``last`` chunk; returns (b, stride·n, c).
        """
        x = self._embed(tokens, last)
        ahead = self.pre_lookahead_layer.look_ahead(x)
        x, lookahead_cache = self.pre_lookahead_layer.finish(
            ahead, x[:, : x.shape[1] - self.lookahead], cache.lookahead if cache else None
        )
        past = cache.tokens if cache else 0
        pos = relative_positions(self.size, past + x.shape[1], device=x.device, dtype=x.dtype)
        attention: list[Tensor] = []
        for i, layer in enumerate(self.encoders):
            x, layer_cache = layer(x, pos, None, cache.attention[i] if cache else None)
            attention.append(layer_cache)
        x, upsample_cache = self.up_layer(x.transpose(1, 2), cache.upsample if cache else None)
        x = self.up_embed(x.transpose(1, 2))
        pos = relative_positions(self.size, past * self.stride + x.shape[1], device=x.device, dtype=x.dtype)
        offset = len(self.encoders)
        for i, layer in enumerate(self.up_encoders):
            x, layer_cache = layer(x, pos, None, cache.attention[offset + i] if cache else None)
            attention.append(layer_cache)
        return self.after_norm(x), EncoderCache(lookahead_cache, upsample_cache, attention)
