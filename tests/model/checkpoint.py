"""A tiny random Step-Audio 2 checkpoint laid out like StepFun's release, built in a temporary directory.

The tensor names and shapes below are written from the published architecture (reference: a Qwen2
decoder under ``model.``, a Whisper-style ``encoder.``, the ``adapter.`` conv + MLP and an untied
``lm_head``), not taken from our model code, so loading it checks that our names match the release.
Widths are tiny; the vocabulary size, special token ids and mel/kernel constants are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

VOCAB = 158720
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS = 64, 128, 2, 4, 2
AUDIO_STATE, AUDIO_HEADS, AUDIO_LAYERS, AUDIO_CTX, MELS = 32, 2, 1, 1500, 128

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


def config_json() -> dict[str, Any]:
    """``config.json`` in the released shape, with tiny widths."""
    return {
        "architectures": ["StepAudio2ForCausalLM"],
        "model_type": "step_audio_2",
        "auto_map": {
            "AutoConfig": "configuration_step_audio_2.StepAudio2Config",
            "AutoModelForCausalLM": "modeling_step_audio_2.StepAudio2ForCausalLM",
        },
        "torch_dtype": "float32",
        "text_config": {
            "model_type": "qwen2",
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
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
            "n_audio_state": AUDIO_STATE,
            "n_audio_head": AUDIO_HEADS,
            "n_audio_layer": AUDIO_LAYERS,
            "llm_dim": HIDDEN,
            "kernel_size": 3,
            "adapter_stride": 2,
        },
    }


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the checkpoint, by the names the release uses."""
    head_dim = HIDDEN // HEADS
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
            p + "self_attn.q_proj.bias": (HIDDEN,),
            p + "self_attn.k_proj.weight": (KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.k_proj.bias": (KV_HEADS * head_dim,),
            p + "self_attn.v_proj.weight": (KV_HEADS * head_dim, HIDDEN),
            p + "self_attn.v_proj.bias": (KV_HEADS * head_dim,),
            p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
            p + "mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": (HIDDEN,),
            p + "post_attention_layernorm.weight": (HIDDEN,),
        }
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    w = AUDIO_STATE
    shapes |= {
        "encoder.conv1.weight": (w, MELS, 3),
        "encoder.conv1.bias": (w,),
        "encoder.conv2.weight": (w, w, 3),
        "encoder.conv2.bias": (w,),
        "encoder.positional_embedding.weight": (AUDIO_CTX, w),
        "encoder.after_norm.weight": (w,),
        "encoder.after_norm.bias": (w,),
    }
    for i in range(AUDIO_LAYERS):
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
        "adapter.linear2.weight": (HIDDEN, 2048),
        "adapter.linear2.bias": (HIDDEN,),
    }
    return shapes


def write_weights(directory: Path, seed: int = 0) -> None:
    """Random weights in two shards with an index, like the release's four."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in tensor_shapes().items():
        if name.endswith(("norm.weight", "_ln.weight", "layernorm.weight")):
            tensors[name] = torch.ones(shape)
        elif name.endswith("bias"):
            tensors[name] = torch.zeros(shape)
        else:
            tensors[name] = torch.randn(shape, generator=generator) * 0.02
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": [n for n in names if n.startswith(("model.", "lm_head"))],
        "model-00002-of-00002.safetensors": [n for n in names if not n.startswith(("model.", "lm_head"))],
    }
    weight_map = {}
    for file, members in shards.items():
        save_file({n: tensors[n] for n in members}, str(directory / file), metadata={"format": "pt"})
        weight_map |= {n: file for n in members}
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


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
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|EOT|>", pad_token="<|endoftext|>")
    tokenizer.save_pretrained(str(directory))


def build(directory: Path) -> Path:
    """Write the whole tiny checkpoint into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config_json(), indent=2))
    write_tokenizer(directory)
    write_weights(directory)
    return directory
