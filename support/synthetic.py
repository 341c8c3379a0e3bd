"""Random Step-Audio 2 checkpoints laid out like StepFun's release, for tests and benchmarks.

No weights can be downloaded in CI, so tests load a tiny checkpoint written here, and benchmarks time
random weights of realistic widths (speed does not depend on weight values). The names and shapes come from
:mod:`assistant.model.stepaudio2.release`, not from the model code, so loading a checkpoint written here
checks that our names match the release. The vocabulary size, the special token ids and the mel/kernel
constants are always the real ones.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # type: ignore[import-untyped]
from transformers import LogitsProcessor, PreTrainedTokenizerFast

from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.release import (
    AUDIO_CTX,
    MELS,
    MID,
    MINI,
    SMALL,
    TINY,
    VOCAB,
    Sizes,
    config_json,
    tensor_shapes,
)

__all__ = [
    "AUDIO_CTX",
    "MELS",
    "MID",
    "MINI",
    "SMALL",
    "TINY",
    "VOCAB",
    "ScriptedLogits",
    "Sizes",
    "build",
    "config_json",
    "interleave",
    "tensor_shapes",
    "write_tokenizer",
    "write_weights",
]

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
