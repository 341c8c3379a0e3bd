"""Step-Audio 2 mini in PyTorch, with the parameter names of the released checkpoint.

``model.*`` is a plain Qwen2 decoder, ``encoder.*`` a Whisper-large-v3-shaped audio encoder, ``adapter.*``
the conv + MLP that maps 25 Hz encoder frames to 12.5 Hz LLM embeddings, and ``lm_head`` the untied
output layer, so ``from_pretrained`` on StepFun's safetensors loads every tensor by name. Unlike the
upstream remote code, the forward pass takes and returns a KV cache: audio embeddings are written into
the input embeddings of the placeholder positions once, at prefill, and decoding runs one token at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Qwen2Config, Qwen2Model
from transformers.cache_utils import Cache, DynamicCache

from . import attention, cpu_decode
from .tokens import VOCAB_SIZE

_MINI_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 16384,
    "vocab_size": VOCAB_SIZE,
    "tie_word_embeddings": False,
}

_MINI_AUDIO_CONFIG: dict[str, Any] = {
    "n_mels": 128,
    "n_audio_ctx": 1500,
    "n_audio_state": 1280,
    "n_audio_head": 20,
    "n_audio_layer": 32,
    "llm_dim": 3584,
    "kernel_size": 3,
    "adapter_stride": 2,
}

ADAPTER_HIDDEN = 2048
"""Hidden width of the adaptor's MLP (fixed in the released model)."""


class StepAudio2Config(PretrainedConfig):
    """``config.json`` of Step-Audio 2: a Qwen2 ``text_config`` and an ``audio_encoder_config``."""

    model_type = "step_audio_2"
    sub_configs = {"text_config": Qwen2Config}

    def __init__(
        self,
        text_config: dict[str, Any] | Qwen2Config | None = None,
        audio_encoder_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if text_config is None:
            text_config = Qwen2Config(**_MINI_TEXT_CONFIG)  # type: ignore[no-untyped-call]
        elif isinstance(text_config, dict):
            fields = {k: v for k, v in text_config.items() if k != "model_type"}
            text_config = Qwen2Config(**fields)  # type: ignore[no-untyped-call]
        self.text_config = text_config
        self.audio_encoder_config = {**_MINI_AUDIO_CONFIG, **(audio_encoder_config or {})}
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    def audio(self, key: str) -> int:
        """One integer of ``audio_encoder_config``."""
        return int(self.audio_encoder_config[key])


# --- audio encoder ---------------------------------------------------------------------------------


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(batch, length, self.heads, -1).transpose(1, 2)

        # Whisper scales q and k by d^-1/4 each, which is SDPA's default 1/sqrt(d) on the product.
        y = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=bias
        )
        out: torch.Tensor = self.out(y.transpose(1, 2).reshape(batch, length, width))
        return out


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _Attention(width, heads)
        self.attn_ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.mlp_ln = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), bias)
        out: torch.Tensor = x + self.mlp(self.mlp_ln(x))
        return out


class AudioEncoder(nn.Module):
    """Log-mel frames (100 Hz) → encoder states (25 Hz)."""

    def __init__(self, n_mels: int, n_ctx: int, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.positional_embedding = nn.Embedding(n_ctx, width)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.avg_pooler = nn.AvgPool1d(2, stride=2)
        self.after_norm = nn.LayerNorm(width)

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encode ``(batch, n_mels, frames)`` mels whose valid lengths are ``lengths`` frames."""
        frames = mels.shape[-1]
        x = F.gelu(self.conv1(mels))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.positional_embedding.num_embeddings:
            raise ValueError(
                f"{frames} mel frames exceed the encoder's {self.positional_embedding.num_embeddings} positions"
            )
        valid = torch.arange(frames, device=mels.device)[None, :] < lengths[:, None]
        # The stride-2 conv keeps every second frame, aligned to the end of the window.
        valid = valid[:, (frames + 1) % 2 :: 2][:, : x.shape[1]]
        bias = torch.zeros(valid.shape, dtype=x.dtype, device=x.device).masked_fill(~valid, torch.finfo(x.dtype).min)
        bias = bias[:, None, None, :]
        x = x + self.positional_embedding.weight[: x.shape[1]].to(x.dtype)
        for block in self.blocks:
            x = block(x, bias)
        x = self.avg_pooler(x.transpose(1, 2)).transpose(1, 2)
        out: torch.Tensor = self.after_norm(x)
        return out


class Adaptor(nn.Module):
    """Encoder states (25 Hz) → LLM input embeddings (12.5 Hz)."""

    def __init__(self, width: int, llm_dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size, stride, padding=1)
        self.linear1 = nn.Linear(width, ADAPTER_HIDDEN)
        self.linear2 = nn.Linear(ADAPTER_HIDDEN, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, time, width)`` to ``(batch, time / stride, llm_dim)``."""
        x = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        out: torch.Tensor = self.linear2(F.relu(self.linear1(x)))
        return out


# --- the whole model -------------------------------------------------------------------------------


class StepAudio2ForCausalLM(PreTrainedModel):  # type: ignore[no-untyped-call]
    """Step-Audio 2: audio encoder + adaptor + Qwen2 decoder + ``lm_head``."""

    config_class = StepAudio2Config
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["Qwen2DecoderLayer", "_Block"]
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: StepAudio2Config) -> None:
        super().__init__(config)
        text: Qwen2Config = config.text_config
        if getattr(text, "_attn_implementation_internal", None) is None:
            text._attn_implementation = attention.NAME
        self.encoder = AudioEncoder(
            config.audio("n_mels"),
            config.audio("n_audio_ctx"),
            config.audio("n_audio_state"),
            config.audio("n_audio_head"),
            config.audio("n_audio_layer"),
        )
        self.adapter = Adaptor(
            config.audio("n_audio_state"),
            config.audio("llm_dim"),
            config.audio("kernel_size"),
            config.audio("adapter_stride"),
        )
        self.model = Qwen2Model(text)
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)
        self.post_init()  # type: ignore[no-untyped-call]

    def _init_weights(self, module: nn.Module) -> None:
        std = 0.02
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def use_decode_layout(self) -> int:
        """On a CPU, give the decoder's large linear layers a compiled one-row product (see :mod:`.cpu_decode`).

        GPUs are left alone (cuBLAS reads the weights at full speed). Call once, after the model is on its
        device; it compiles a kernel per weight shape (seconds). Returns how many layers now use it.
        """
        if self.device.type != "cpu":
            return 0
        return cpu_decode.prepare(self, (self.model.layers, self.lm_head))

    def get_input_embeddings(self) -> nn.Module:
        """The decoder's token embeddings."""
        embeddings: nn.Module = self.model.embed_tokens
        return embeddings

    @torch.inference_mode()
    def encode_audio(self, mels: torch.Tensor, count: int) -> torch.Tensor:
        """Encode one chunk's ``(n_mels, frames)`` log-mel to its ``count`` LLM embeddings."""
        weight = self.encoder.conv1.weight
        frames = mels.shape[-1]
        x = mels.to(device=weight.device, dtype=weight.dtype)[None]
        lengths = torch.tensor([frames - 2], device=weight.device)
        embeddings = self.adapter(self.encoder(x, lengths))[0]
        if embeddings.shape[0] < count:
            raise ValueError(f"the adaptor made {embeddings.shape[0]} embeddings for {count} placeholders")
        return embeddings[:count]  # type: ignore[no-any-return]

    @torch.inference_mode()
    def step(
        self,
        input_ids: torch.Tensor,
        cache: Cache,
        *,
        audio: Sequence[tuple[int, torch.Tensor]] = (),
        start: int | None = None,
    ) -> torch.Tensor:
        """Run ``input_ids`` ``(1, n)`` after what ``cache`` holds; return the last position's logits.

        ``audio`` lists ``(position within input_ids, embeddings)`` to write over placeholder embeddings;
        only a prefill carries audio, decode steps never re-encode it. ``start`` is the position of the
        first id; a static cache needs it (its length cannot be read back), a dynamic one knows it.
        Attention reads the ``start + n`` filled positions of the cache, never the rest of its allocation.
        """
        embeds = self.model.embed_tokens(input_ids)
        for offset, rows in audio:
            embeds[0, offset : offset + rows.shape[0]] = rows.to(embeds.dtype)
        start = cache.get_seq_length() if start is None else start
        length = input_ids.shape[1]
        positions = torch.arange(start, start + length, device=input_ids.device)
        hidden = self.model(
            inputs_embeds=embeds,
            attention_mask={"full_attention": attention.prefill_mask(start, length, input_ids.device)},
            past_key_values=cache,
            use_cache=True,
            cache_position=positions,
            position_ids=positions[None],
            kv_length=start + length,
        ).last_hidden_state
        logits: torch.Tensor = self.lm_head(hidden[:, -1:, :])[:, -1, :]
        return logits.float()

    def next_logits(
        self, input_ids: torch.Tensor, positions: torch.Tensor, cache: Cache, kv_length: int
    ) -> torch.Tensor:
        """Logits after one token ``input_ids`` ``(1, 1)`` at ``positions`` ``(1,)``: a decode step.

        Shaped for ``torch.compile`` with a static cache: the position is a tensor and attention reads the
        first ``kv_length`` cache positions (at least ``positions + 1``; the rest are masked), so every step
        of one ``kv_length`` bucket has the same shapes and one graph (one CUDA graph with
        ``mode="reduce-overhead"``) serves them all. Run it under ``torch.inference_mode``.
        """
        hidden = self.model(
            input_ids=input_ids,
            attention_mask={"full_attention": attention.decode_mask(positions, kv_length)},
            past_key_values=cache,
            use_cache=True,
            cache_position=positions,
            position_ids=positions[None],
            kv_length=kv_length,
        ).last_hidden_state
        logits: torch.Tensor = self.lm_head(hidden[:, -1, :])
        return logits.float()

    def forward(self, input_ids: torch.Tensor, past_key_values: Cache | None = None, **_: Any) -> torch.Tensor:
        """Logits of the last position (``generate`` is not used; the engine calls :meth:`step`)."""
        return self.step(input_ids, past_key_values if past_key_values is not None else DynamicCache())
