"""Speed of the local Step-Audio 2 engine: prefill, per-token decode, and what KV-cache reuse saves.

Random weights of the real architecture (speed does not depend on weight values), answers forced by a
scripted logits processor so every run decodes the same number of tokens. Each size runs a short
conversation (spoken questions, spoken answers of ``--answer-tokens`` interleaved tokens, two tools), then
asks one more question twice: with the cache the engine kept, and after dropping it, which is what an
engine without KV reuse (like StepFun's transformers code) pays every turn.

    python bench/model.py                     # tiny and mid on the CPU
    python bench/model.py --size mini --device cuda --dtype bfloat16   # the real widths, on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from assistant.audio import tone
from assistant.config import PersonaSettings
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.engine import GenerationOptions, RoundStats, StepAudio2Engine
from assistant.model.stepaudio2.modeling import StepAudio2Config, StepAudio2ForCausalLM
from assistant.ports import ModelRequest, ToolSpec
from support.synthetic import (
    MID,
    MINI,
    TINY,
    ScriptedLogits,
    Sizes,
    config_json,
    interleave,
    write_tokenizer,
)

SIZES = {"tiny": TINY, "mid": MID, "mini": MINI}
TOOLS = (
    ToolSpec("get_weather", "查询某个城市今天的天气", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolSpec("set_timer", "设置一个倒计时", {"type": "object", "properties": {"seconds": {"type": "integer"}}}),
)


def build_engine(
    sizes: Sizes, device: str, dtype: torch.dtype, script: ScriptedLogits, tokenizer_dir: Path
) -> StepAudio2Engine:
    config = StepAudio2Config(**{k: v for k, v in config_json(sizes).items() if k not in ("architectures", "auto_map")})
    config.text_config.max_position_embeddings = 16384
    # Built directly in the target dtype on the target device: 8 B parameters in float32 would not fit.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = StepAudio2ForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    options = GenerationOptions(max_new_tokens=4096, history_tokens=16384 - 4096)
    return StepAudio2Engine(
        model,
        tokenizer,
        PersonaSettings(location="广州"),
        options,
        logits_processors=[script],
        today=lambda: datetime(2026, 11, 25),
    )


async def one_round(engine: StepAudio2Engine, request: ModelRequest) -> RoundStats:
    async for _ in engine.respond(request):
        pass
    return engine.last_round


def row(label: str, stats: RoundStats) -> str:
    per_token = 1000 * stats.decode_seconds / max(1, stats.decode_steps)
    return (
        f"  {label:<22} prompt {stats.prompt_tokens:>5}  reused {stats.reused_tokens:>5}"
        f"  computed {stats.prefill_tokens:>5}  prefill {1000 * stats.prefill_seconds:>8.1f} ms"
        f"  decode {per_token:>6.2f} ms/token ({1000 / per_token:>6.1f} tokens/s)"
    )


async def run(name: str, sizes: Sizes, args: argparse.Namespace, tokenizer_dir: Path) -> None:
    script = ScriptedLogits([])
    dtype = getattr(torch, args.dtype)
    engine = build_engine(sizes, args.device, dtype, script, tokenizer_dir)
    params = sum(p.numel() for p in engine._model.parameters())
    print(f"\n{name}: {params / 1e6:.1f} M parameters, {args.device}, {args.dtype}")
    text_slots = args.answer_tokens // 5
    answer = interleave([ord("a")] * text_slots, list(range(4 * text_slots)))[: args.answer_tokens - 1] + [t.EOT]
    utterance = tone(220, args.utterance_seconds, rate_hz=16_000)
    script.add(answer)
    await one_round(engine, ModelRequest("warmup", TOOLS, text="hi"))
    engine.forget("warmup")
    for turn in range(1, args.turns + 1):
        script.add(answer)
        stats = await one_round(engine, ModelRequest("bench", TOOLS, audio=utterance))
        print(row(f"turn {turn} (spoken)", stats))
    # The machine may be shared: repeat the comparison and keep each side's fastest run.
    warm_runs, cold_runs = [], []
    for _ in range(args.repeat):
        script.add(answer, answer)
        warm_runs.append(await one_round(engine, ModelRequest("bench", TOOLS, text="明天呢")))
        engine.release_cache("bench")
        cold_runs.append(await one_round(engine, ModelRequest("bench", TOOLS, text="明天呢")))
    warm = min(warm_runs, key=lambda s: s.prefill_seconds)
    cold = min(cold_runs, key=lambda s: s.prefill_seconds)
    decode = min(1000 * s.decode_seconds / s.decode_steps for s in warm_runs + cold_runs)
    print(row("next turn, cache kept", warm))
    print(row("next turn, no cache", cold))
    saved = 1 - warm.prefill_tokens / cold.prefill_tokens
    print(
        f"  KV reuse: {warm.prefill_tokens} instead of {cold.prefill_tokens} prompt tokens computed"
        f" ({100 * saved:.1f} % saved), prefill {1000 * warm.prefill_seconds:.1f} ms instead of"
        f" {1000 * cold.prefill_seconds:.1f} ms ({cold.prefill_seconds / warm.prefill_seconds:.1f}x faster);"
        f" best decode {decode:.2f} ms/token ({1000 / decode:.0f} tokens/s; speech needs about 32)"
    )
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", choices=[*SIZES, "all-cpu"], default="all-cpu", help="model widths (all-cpu: tiny and mid)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--turns", type=int, default=3, help="spoken turns before the reuse comparison")
    parser.add_argument("--answer-tokens", type=int, default=150, help="tokens per answer (≈5 s of speech)")
    parser.add_argument("--utterance-seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the cache-kept/no-cache comparison")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    names = ["tiny", "mid"] if args.size == "all-cpu" else [args.size]
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        for name in names:
            started = time.perf_counter()
            asyncio.run(run(name, SIZES[name], args, Path(tmp)))
            print(f"  ({time.perf_counter() - started:.1f} s in all)")


if __name__ == "__main__":
    main()
