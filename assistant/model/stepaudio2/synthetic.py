"""Random Step-Audio 2 checkpoints laid out like StepFun's release, for tests and benchmarks.

No weights can be downloaded in CI, so tests load a tiny checkpoint written here, and benchmarks time
random weights of realistic widths (speed does not depend on weight values). The tensor names and shapes
are written from the published architecture (a Qwen2 decoder under ``model.``, a Whisper-style
``encoder.``, the ``adapter.`` conv + MLP and an untied ``lm_head``), deliberately not from
:mod:`.modeling`, so loading a checkpoint written here checks that our names match the release. The
vocabulary size, the special token ids and the mel/kernel constants are always the real ones.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # type: ignore[import-untyped]
from transformers import LogitsProcessor, PreTrainedTokenizerFast

from . import tokens as t

VOCAB = 158720
MELS = 128
AUDIO_CTX = 1500


@dataclass(frozen=True, slots=True)
class Sizes:
    """The widths that a random checkpoint may shrink."""

    hidden: int
    """Decoder width."""
    intermediate: int
    """Decoder MLP width."""
    layers: int
    """Decoder layers."""
    heads: int
    """Decoder attention heads."""
    kv_heads: int
    """Decoder key/value heads (grouped-query attention)."""
    audio_state: int
    """Audio encoder width."""
    audio_heads: int
    """Audio encoder heads."""
    audio_layers: int
    """Audio encoder blocks."""


TINY = Sizes(hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, audio_state=32, audio_heads=2, audio_layers=1)
"""≈21 M parameters (almost all in the two vocabulary matrices); what the tests load."""
MID = Sizes(
    hidden=512, intermediate=1536, layers=6, heads=8, kv_heads=2, audio_state=256, audio_heads=4, audio_layers=2
)
"""≈190 M parameters: a CPU benchmark where the decoder, not the vocabulary, dominates."""
SMALL = Sizes(
    hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, audio_state=256, audio_heads=4, audio_layers=2
)
"""Qwen2.5-1.5B's decoder widths (1.5 B parameters at 28 layers): CPU decode benchmarks at a real width."""
MINI = Sizes(
    hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, audio_state=1280, audio_heads=20, audio_layers=32
)
"""The released Step-Audio 2 mini (8.3 B parameters)."""


QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]  # fmt: skip
STEP_SPECIALS = [
    "<|EOT|>", "<|BOT|>", "<|CALL_START|>", "<|CALL_END|>", "<|THINK_START|>", "<|THINK_END|>",
    *[f"<|step_reserved_{i}|>" for i in range(17)],  # image, meta, dream, mask, video and patch tokens
    "<audio_start>", "<audio_end>", "<audio_patch>", "<audio_patch_pad>", "<|SC|>",
    "<tts_start>", "<tts_end>", "<tts_pad>",
]  # fmt: skip
AUDIO_TOKENS = [f"<audio_{i}>" for i in range(6562)]


def config_json(sizes: Sizes = TINY) -> dict[str, Any]:
    """``config.json`` in the released shape, with tiny widths."""
    return {
        "architectures": ["StepAudio2ForCausalLM"],
        "model_type": "step_audio_2",
        "auto_map": {
            "AutoConfig": "configuration_step_audio_2.StepAudio2Config",
            "AutoModelForCausalLM": "modeling_step_audio_2.StepAudio2ForCausalLM",
        },
        "torch_dtype": "float32",
        "transformers_version": "4.49.0",
        "text_config": {
            "model_type": "qwen2",
            "hidden_size": sizes.hidden,
            "intermediate_size": sizes.intermediate,
            "num_hidden_layers": sizes.layers,
            "num_attention_heads": sizes.heads,
            "num_key_value_heads": sizes.kv_heads,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 4096,
            "vocab_size": VOCAB,
            "tie_word_embeddings": False,
            "torch_dtype": "float32",
        },
        "audio_encoder_config": {
            "n_mels": MELS,
            "n_audio_ctx": AUDIO_CTX,
            "n_audio_state": sizes.audio_state,
            "n_audio_head": sizes.audio_heads,
            "n_audio_layer": sizes.audio_layers,
            "llm_dim": sizes.hidden,
            "kernel_size": 3,
            "adapter_stride": 2,
        },
    }


def tensor_shapes(sizes: Sizes = TINY) -> dict[str, tuple[int, ...]]:
    """Every tensor of the checkpoint, by the names the release uses."""
    head_dim = sizes.hidden // sizes.heads
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (VOCAB, sizes.hidden),
        "model.norm.weight": (sizes.hidden,),
    }
    for i in range(sizes.layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (sizes.hidden, sizes.hidden),
            p + "self_attn.q_proj.bias": (sizes.hidden,),
            p + "self_attn.k_proj.weight": (sizes.kv_heads * head_dim, sizes.hidden),
            p + "self_attn.k_proj.bias": (sizes.kv_heads * head_dim,),
            p + "self_attn.v_proj.weight": (sizes.kv_heads * head_dim, sizes.hidden),
            p + "self_attn.v_proj.bias": (sizes.kv_heads * head_dim,),
            p + "self_attn.o_proj.weight": (sizes.hidden, sizes.hidden),
            p + "mlp.gate_proj.weight": (sizes.intermediate, sizes.hidden),
            p + "mlp.up_proj.weight": (sizes.intermediate, sizes.hidden),
            p + "mlp.down_proj.weight": (sizes.hidden, sizes.intermediate),
            p + "input_layernorm.weight": (sizes.hidden,),
            p + "post_attention_layernorm.weight": (sizes.hidden,),
        }
    shapes["lm_head.weight"] = (VOCAB, sizes.hidden)
    w = sizes.audio_state
    shapes |= {
        "encoder.conv1.weight": (w, MELS, 3),
        "encoder.conv1.bias": (w,),
        "encoder.conv2.weight": (w, w, 3),
        "encoder.conv2.bias": (w,),
        "encoder.positional_embedding.weight": (AUDIO_CTX, w),
        "encoder.after_norm.weight": (w,),
        "encoder.after_norm.bias": (w,),
    }
    for i in range(sizes.audio_layers):
        p = f"encoder.blocks.{i}."
        shapes |= {
            p + "attn.query.weight": (w, w),
            p + "attn.query.bias": (w,),
            p + "attn.key.weight": (w, w),
            p + "attn.value.weight": (w, w),
            p + "attn.value.bias": (w,),
            p + "attn.out.weight": (w, w),
            p + "attn.out.bias": (w,),
            p + "attn_ln.weight": (w,),
            p + "attn_ln.bias": (w,),
            p + "mlp.0.weight": (4 * w, w),
            p + "mlp.0.bias": (4 * w,),
            p + "mlp.2.weight": (w, 4 * w),
            p + "mlp.2.bias": (w,),
            p + "mlp_ln.weight": (w,),
            p + "mlp_ln.bias": (w,),
        }
    shapes |= {
        "adapter.conv.weight": (w, w, 3),
        "adapter.conv.bias": (w,),
        "adapter.linear1.weight": (2048, w),
        "adapter.linear1.bias": (2048,),
        "adapter.linear2.weight": (sizes.hidden, 2048),
        "adapter.linear2.bias": (sizes.hidden,),
    }
    return shapes


def write_weights(
    directory: Path,
    sizes: Sizes = TINY,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    shard_bytes: int | None = None,
) -> None:
    """Random weights in shards with an index, like the release's four.

    By default two shards (decoder, then audio path). ``shard_bytes`` cuts shards by size instead, and
    ``dtype``/``device`` let a real-size checkpoint (16.6 GB in bfloat16) be drawn on a GPU and written
    one shard at a time, never holding the whole model in host memory.
    """
    shapes = tensor_shapes(sizes)
    # Drawn in tensor_shapes' order, whatever the sharding, so a seed always gives the same values.
    order = list(shapes)
    if shard_bytes is None:
        groups = [
            [n for n in order if n.startswith(("model.", "lm_head"))],
            [n for n in order if not n.startswith(("model.", "lm_head"))],
        ]
    else:
        width = torch.finfo(dtype).bits // 8
        groups, filled = [[]], 0
        for name in order:
            nbytes = math.prod(shapes[name]) * width
            if groups[-1] and filled + nbytes > shard_bytes:
                groups.append([])
                filled = 0
            groups[-1].append(name)
            filled += nbytes
    generator = torch.Generator(device).manual_seed(seed)
    weight_map: dict[str, str] = {}
    total = 0
    for number, members in enumerate(groups, start=1):
        file = f"model-{number:05d}-of-{len(groups):05d}.safetensors"
        tensors = {name: _random(name, shapes[name], generator, device).to(dtype).cpu() for name in members}
        save_file(tensors, str(directory / file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(members, file)
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _random(name: str, shape: tuple[int, ...], generator: torch.Generator, device: str) -> torch.Tensor:
    if name.endswith(("norm.weight", "_ln.weight", "layernorm.weight")):
        return torch.ones(shape, device=device)
    if name.endswith("bias"):
        return torch.zeros(shape, device=device)
    return torch.randn(shape, generator=generator, device=device) * 0.02


def write_tokenizer(directory: Path) -> None:
    """A byte-level BPE with Step-Audio 2's special and audio token ids (no merges: one token per byte)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    for i in range(len(vocab), 151643):
        vocab[f"<|filler_{i}|>"] = i
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([*QWEN_SPECIALS, *STEP_SPECIALS])
    core.add_tokens(AUDIO_TOKENS)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core, eos_token="<|EOT|>", pad_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(str(directory))


def build(directory: Path, sizes: Sizes = TINY) -> Path:
    """Write a whole random checkpoint into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config_json(sizes), indent=2))
    write_tokenizer(directory)
    write_weights(directory, sizes)
    return directory


# --- scripted answers ---------------------------------------------------------------------------


def interleave(text_ids: Sequence[int], codes: Sequence[int]) -> list[int]:
    """Text ids and speech codes as Step-Audio 2 writes them: 1 : 4, pads filling the shorter side, ``<tts_end>``."""
    slots = max(len(text_ids), math.ceil(len(codes) / 4))
    out: list[int] = []
    for i in range(slots):
        out.append(text_ids[i] if i < len(text_ids) else t.TTS_PAD)
        chunk = list(codes[4 * i : 4 * i + 4])
        out.extend(t.AUDIO_0 + c for c in chunk + [t.AUDIO_PAD_CODE] * (4 - len(chunk)))
    return [*out, t.TTS_END]


class ScriptedLogits(LogitsProcessor):
    """Forces a random model's output: each round's tokens in turn (a round should end with ``<|EOT|>``).

    ``gate`` (if given) is a ``(step, callback)`` pair: the callback runs on the generating thread just
    before the token of that step (0-based, counted over the whole script) is chosen.
    """

    def __init__(self, rounds: Iterable[Sequence[int]], gate: tuple[int, Callable[[], None]] | None = None) -> None:
        self._rounds = deque(list(r) for r in rounds)
        self._current: deque[int] = deque()
        self._gate = gate
        self.steps = 0
        """Tokens forced so far."""

    def add(self, *rounds: Sequence[int]) -> None:
        """Queue more rounds."""
        self._rounds.extend(list(r) for r in rounds)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Set every score to -inf but the scripted token's."""
        if self._gate is not None and self.steps == self._gate[0]:
            self._gate[1]()
        self.steps += 1
        if not self._current:
            self._current = deque(self._rounds.popleft() if self._rounds else [t.EOT])
        token = self._current.popleft()
        forced = torch.full_like(scores, -math.inf)
        forced[:, token] = 0.0
        return forced  # type: ignore[return-value]
