"""The released Step-Audio 2 checkpoint's layout: its widths, its config.json and every tensor's shape.

Written from the published architecture (a Qwen2 decoder under ``model.``, a Whisper-style ``encoder.``, the
``adapter.`` conv + MLP and an untied ``lm_head``), deliberately not from :mod:`.modeling`, so a checkpoint
checked against it (``xiangyin doctor``) or written from it (the tests' random checkpoints) checks that our
names match the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
