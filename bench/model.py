"""Speed of the local Step-Audio 2 engine on one device: decode against the memory limit, and KV reuse.

Random weights of the real architecture (speed does not depend on weight values). The machine may be
shared, so each part interleaves its arms and reports ratios measured within the run, next to the load.

``decode``: one decode step at several context lengths with each way of keeping the KV cache: dynamic,
static (``--allocation`` positions; attention reads only the filled ones) and, with ``--compiled``, the
static step compiled by ``torch.compile``. The device's read bandwidth is measured between the steps, and
each arm prints ms/token, the GB/s it read (weights and the used KV cache) and that as a fraction of the
bandwidth. Then the cost of choosing one token at the real vocabulary, the engine's sampler against
transformers' processors.

``conversation``: a short spoken conversation, then one fixed next question, asked with the cache the
engine kept and again after dropping it (what an engine without KV reuse, like StepFun's transformers
code, pays every turn). Each question is taken back after its answer, so every run reads the same prompt.

    python -m bench.model decode                      # Qwen2.5-1.5B widths, 10 layers, float32, CPU
    python -m bench.model conversation                # mid widths, CPU
    python -m bench.model decode --size mini --layers 28 --device cuda --dtype bfloat16 --compiled
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import torch
from transformers import (
    DynamicCache,
    LogitsProcessorList,
    PreTrainedTokenizerFast,
    RepetitionPenaltyLogitsProcessor,
    StaticCache,
)
from transformers.cache_utils import Cache

from assistant.audio import tone
from assistant.config import PersonaSettings
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.engine import GenerationOptions, RoundStats, StepAudio2Engine, kv_bucket
from assistant.model.stepaudio2.modeling import StepAudio2Config, StepAudio2ForCausalLM
from assistant.model.stepaudio2.sampling import Sampler
from assistant.ports import ModelRequest, ToolSpec
from support.synthetic import (
    MID,
    MINI,
    SMALL,
    TINY,
    ScriptedLogits,
    Sizes,
    config_json,
    interleave,
    write_tokenizer,
)

SIZES = {"tiny": TINY, "mid": MID, "small": SMALL, "mini": MINI}
TOOLS = (
    ToolSpec("get_weather", "查询某个城市今天的天气", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolSpec("set_timer", "设置一个倒计时", {"type": "object", "properties": {"seconds": {"type": "integer"}}}),
)
QUESTIONS = ("明天呢", "后天呢")
"""Next questions of the same length: each run asks the one the cache does not hold yet."""
POSITIONS = 16384


def build_model(sizes: Sizes, device: str, dtype: torch.dtype) -> StepAudio2ForCausalLM:
    config = StepAudio2Config(**{k: v for k, v in config_json(sizes).items() if k not in ("architectures", "auto_map")})
    config.text_config.max_position_embeddings = POSITIONS
    # Built directly in the target dtype on the target device: 8 B parameters in float32 would not fit.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = StepAudio2ForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    model.use_decode_layout()  # as loading does
    return model


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function: Callable[[], object], device: str) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


# --- decode ----------------------------------------------------------------------------------------


class ReadBandwidth:
    """Bytes per second a full read of a large tensor reaches (a sum, which is bound by memory)."""

    def __init__(self, device: str, gigabytes: float = 1.0) -> None:
        self._device = device
        self._data = torch.ones(int(gigabytes * 1e9) // 4, dtype=torch.float32, device=device)
        self.samples: list[float] = []
        """Each read so far, bytes per second."""

    @property
    def best(self) -> float:
        """The fastest read so far, bytes per second."""
        return max(self.samples, default=0.0)

    def measure(self) -> None:
        seconds = timed(lambda: self._data.sum(), self._device)
        self.samples.append(self._data.numel() * 4 / seconds)


@dataclasses.dataclass
class Arm:
    name: str
    step: Callable[[], object]
    seconds: list[float] = dataclasses.field(default_factory=list)


def fill(cache: Cache, model: StepAudio2ForCausalLM, length: int) -> None:
    """Random keys and values in the first ``length`` positions of every layer."""
    text = model.config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    shape = (1, text.num_key_value_heads, length, head_dim)
    positions = torch.arange(length, device=model.device)
    for layer in range(text.num_hidden_layers):
        keys = torch.randn(shape, dtype=model.dtype, device=model.device)
        values = torch.randn(shape, dtype=model.dtype, device=model.device)
        cache.update(keys, values, layer, {"cache_position": positions})


def weight_bytes(model: StepAudio2ForCausalLM) -> int:
    """What one decode step must read of the weights: the decoder layers, the final norm and ``lm_head``."""
    read = [model.model.layers, model.model.norm, model.lm_head]
    return sum(p.numel() * p.element_size() for module in read for p in module.parameters())


def kv_bytes(model: StepAudio2ForCausalLM, length: int) -> int:
    """What one decode step must read of a KV cache that holds ``length`` positions."""
    text = model.config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    per_position = 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * model.dtype.itemsize
    return per_position * length


def decode_arms(
    model: StepAudio2ForCausalLM, length: int, args: argparse.Namespace, compiled: Callable[..., torch.Tensor] | None
) -> list[Arm]:
    token = torch.tensor([[1000]], device=model.device)
    dynamic = DynamicCache()
    fill(dynamic, model, length)

    def dynamic_step() -> None:
        model.step(token, dynamic, start=length)
        dynamic.crop(length)

    static = StaticCache(config=model.config.text_config, max_cache_len=args.allocation)
    fill(static, model, length)
    arms = [
        Arm("dynamic", dynamic_step),
        Arm(f"static {args.allocation}", lambda: model.step(token, static, start=length)),
    ]
    if compiled is not None:
        position = torch.tensor([length], device=model.device)
        bucket = kv_bucket(length + 1, args.allocation)
        arms.append(Arm(f"compiled, {bucket} read", lambda: compiled(token, position, static, bucket).clone()))
    return arms


def bench_decode(args: argparse.Namespace) -> None:
    sizes = dataclasses.replace(SIZES[args.size or "small"], layers=args.layers or SIZES[args.size or "small"].layers)
    model = build_model(sizes, args.device, getattr(torch, args.dtype))
    weights = weight_bytes(model)
    print(
        f"decode: {sizes.hidden} wide, {sizes.layers} layers, {weights / 1e9:.2f} GB of weights read per token,"
        f" {args.device}, {args.dtype}, {args.steps} interleaved steps per arm"
    )
    bandwidth = ReadBandwidth(args.device)
    bench_layout(model, args)
    compiled = None
    if args.compiled:
        mode = "reduce-overhead" if args.device.startswith("cuda") else None
        compiled = torch.compile(model.next_logits, mode=mode, fullgraph=True, dynamic=None)
    results: list[tuple[int, int, list[Arm], list[float]]] = []
    with torch.inference_mode():
        for length in args.contexts:
            arms = decode_arms(model, length, args, compiled)
            for arm in arms:  # warm-up (and compilation) outside the timing
                warm = timed(arm.step, args.device)
                if warm > 2:
                    print(f"  ({arm.name} at {length}: first step {warm:.1f} s)")
                timed(arm.step, args.device)
            first = len(bandwidth.samples)
            for _ in range(args.steps):
                bandwidth.measure()
                for arm in arms:
                    arm.seconds.append(timed(arm.step, args.device))
            beside = bandwidth.samples[first:]
            results.append((length, weights + kv_bytes(model, length), arms, beside))
            for arm in arms:  # free the caches; only the timings are kept
                arm.step = lambda: None
    # Printed once the bandwidth has been sampled all along, so every fraction uses the same figure.
    # Three shares: of the best read of the whole run (strict, but one quiet moment sets it), of the
    # median read (what the machine gave most of the run), and of the read measured just before each step
    # (the same moment's share of a machine that others load too).
    typical = statistics.median(bandwidth.samples)
    for length, needed, arms, beside in results:
        reference = arms[0].seconds
        for arm in arms:
            median = statistics.median(arm.seconds)
            ratio = statistics.median(a / b for a, b in zip(arm.seconds, reference, strict=True))
            rate = needed / median
            paired = statistics.median(needed / s / b for s, b in zip(arm.seconds, beside, strict=True))
            print(
                f"  context {length:>5}  {arm.name:<28} {1000 * median:7.1f} ms/token"
                f" (best {1000 * min(arm.seconds):6.1f})  ×{ratio:.2f} of dynamic"
                f"  {rate / 1e9:5.1f} GB/s = {100 * rate / bandwidth.best:3.0f} % of the best read"
                f" (best step {100 * needed / min(arm.seconds) / bandwidth.best:3.0f} %),"
                f" {100 * rate / typical:3.0f} % of the median read, {100 * paired:3.0f} % of the read beside each step"
            )
    reads = bandwidth.samples
    print(
        f"  read bandwidth measured between the steps: {bandwidth.best / 1e9:.1f} GB/s best,"
        f" {typical / 1e9:.1f} median of {len(reads)}; {load()}"
    )
    bench_sampling(args, max(args.contexts))


def bench_layout(model: StepAudio2ForCausalLM, args: argparse.Namespace) -> None:
    """One decode product with each of the model's distinct weight shapes: the layer's own against MKL's."""
    layers: dict[tuple[int, ...], torch.nn.Linear] = {}
    for module in [*model.model.layers[0].modules(), model.lm_head]:
        if isinstance(module, torch.nn.Linear):
            layers.setdefault(tuple(module.weight.shape), module)
    with torch.inference_mode():
        for shape, layer in layers.items():
            weight = layer.weight
            vector = torch.randn(1, 1, shape[1], dtype=weight.dtype, device=weight.device)
            ours, theirs = [], []
            for _ in range(args.steps):
                ours.append(timed(lambda f=layer, v=vector: f(v), args.device))
                theirs.append(timed(lambda w=weight, v=vector: torch.nn.functional.linear(v, w), args.device))
            size = weight.numel() * weight.element_size()
            print(
                f"  {shape[0]:>6} × {shape[1]:<5} {type(layer).__name__:<17} {size / min(ours) / 1e9:6.1f} GB/s"
                f" (F.linear {size / min(theirs) / 1e9:.1f} GB/s, best of {args.steps} interleaved)"
            )


def bench_sampling(args: argparse.Namespace, length: int) -> None:
    """One token chosen from the real vocabulary after ``length`` tokens: ours against transformers'."""
    generator = torch.Generator().manual_seed(0)
    context = torch.randint(0, t.LAST_ID, (1, length), generator=generator).to(args.device)
    logits = (4 * torch.randn(1, t.VOCAB_SIZE, generator=generator)).to(args.device)
    sampler = Sampler(context, temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.05)
    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.05)])

    def ours(scores: torch.Tensor) -> None:
        sampler.choose(scores)

    def theirs(scores: torch.Tensor) -> None:
        scores = processors(context, scores)[0]  # type: ignore[arg-type]
        values, indices = scores.topk(50)
        probabilities = torch.softmax(values / 0.7, dim=-1)
        probabilities = probabilities.masked_fill(probabilities.cumsum(-1) - probabilities >= 0.9, 0.0)
        int(indices[torch.multinomial(probabilities, 1)].item())

    mine: list[float] = []
    reference: list[float] = []
    for run in range(5 + max(20, args.steps)):
        # Fresh logits each time, copied outside the timing, as the model hands over new ones every step.
        first, second = logits.clone(), logits.clone()
        seconds = timed(partial(ours, first), args.device), timed(partial(theirs, second), args.device)
        if run >= 5:
            mine.append(seconds[0])
            reference.append(seconds[1])
    ratio = statistics.median(a / b for a, b in zip(mine, reference, strict=True))
    print(
        f"sampling after {length} tokens, {t.VOCAB_SIZE} logits: {1000 * statistics.median(mine):.3f} ms/token"
        f" (best {1000 * min(mine):.3f}); transformers' penalty and the same top-k/top-p:"
        f" {1000 * statistics.median(reference):.3f} ms (best {1000 * min(reference):.3f}); ours ×{ratio:.2f}; {load()}"
    )


# --- conversation ----------------------------------------------------------------------------------


def build_engine(
    sizes: Sizes, args: argparse.Namespace, script: ScriptedLogits, tokenizer_dir: Path
) -> StepAudio2Engine:
    model = build_model(sizes, args.device, getattr(torch, args.dtype))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    options = GenerationOptions(
        max_new_tokens=4096,
        history_tokens=POSITIONS - 4096,
        kv_cache="dynamic" if args.decode == "dynamic" else "static",
        compile_decode=args.decode == "compiled",
    )
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
    steps = max(1, stats.decode_steps)
    per_token = 1000 * stats.decode_seconds / steps
    return (
        f"  {label:<22} prompt {stats.prompt_tokens:>5}  reused {stats.reused_tokens:>5}"
        f"  computed {stats.prefill_tokens:>5}  prefill {1000 * stats.prefill_seconds:>8.1f} ms"
        f"  decode {per_token:>6.2f} ms/token (sampling {1000 * stats.sample_seconds / steps:.2f})"
    )


async def bench_conversation(args: argparse.Namespace, tokenizer_dir: Path) -> None:
    sizes = SIZES[args.size or "mid"]
    if args.layers:
        sizes = dataclasses.replace(sizes, layers=args.layers)
    script = ScriptedLogits([])
    engine = build_engine(sizes, args, script, tokenizer_dir)
    params = sum(p.numel() for p in engine._model.parameters())
    print(f"conversation: {params / 1e6:.1f} M parameters, {args.device}, {args.dtype}, decode {args.decode}")
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
    warm_runs, cold_runs = [], []
    # The first pair is not counted: after a spoken turn the cache lacks the answer's closing tokens, after a
    # taken-back question it holds the whole history, which every later pair finds.
    for repeat in range(args.repeat + 1):
        question = QUESTIONS[repeat % len(QUESTIONS)]
        script.add(answer, answer)
        warm_runs.append(await one_round(engine, ModelRequest("bench", TOOLS, text=question, speculative=True)))
        engine.retract("bench")
        engine.release_cache("bench")
        cold_runs.append(await one_round(engine, ModelRequest("bench", TOOLS, text=question, speculative=True)))
        engine.retract("bench")
    warm_runs, cold_runs = warm_runs[1:], cold_runs[1:]
    assert len({(s.prompt_tokens, s.prefill_tokens) for s in warm_runs}) == 1, "the warm prompt changed"
    assert len({s.prompt_tokens for s in cold_runs}) == 1, "the cold prompt changed"
    for label, runs in (("next turn, cache kept", warm_runs), ("next turn, no cache", cold_runs)):
        print(row(label, runs[len(runs) // 2]))
    warm, cold = warm_runs[0], cold_runs[0]
    speedup = statistics.median(
        c.prefill_seconds / w.prefill_seconds for w, c in zip(warm_runs, cold_runs, strict=True)
    )
    steps = sum(s.decode_steps for s in warm_runs + cold_runs)
    decode = 1000 * sum(s.decode_seconds for s in warm_runs + cold_runs) / steps
    sampling = 1000 * sum(s.sample_seconds for s in warm_runs + cold_runs) / steps
    print(
        f"  KV reuse: {warm.prefill_tokens} instead of {cold.prefill_tokens} prompt tokens computed"
        f" ({100 * (1 - warm.prefill_tokens / cold.prefill_tokens):.1f} % saved), prefill ×{speedup:.1f} faster"
        f" (median of {args.repeat} paired runs); decode {decode:.2f} ms/token, of which sampling {sampling:.2f}"
        f" ({1000 / decode:.0f} tokens/s; speech needs about 32); {load()}"
    )
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["decode", "conversation"])
    parser.add_argument("--size", choices=list(SIZES), help="widths (decode: small; conversation: mid)")
    parser.add_argument("--layers", type=int, help="decoder layers (decode: 10 by default, to fit a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--contexts", type=lambda s: [int(n) for n in s.split(",")], default=[256, 1000, 4000, 8000])
    parser.add_argument("--allocation", type=int, default=10240, help="static cache positions (decode)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per arm and context (decode)")
    parser.add_argument("--compiled", action="store_true", help="add the torch.compile'd static step (decode)")
    parser.add_argument("--decode", choices=["dynamic", "static", "compiled"], default="dynamic")
    parser.add_argument("--turns", type=int, default=3, help="spoken turns before the reuse comparison")
    parser.add_argument("--answer-tokens", type=int, default=150, help="tokens per answer (≈5 s of speech)")
    parser.add_argument("--utterance-seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="paired runs of the cache-kept/no-cache comparison")
    args = parser.parse_args()
    if args.part == "decode" and args.layers is None and (args.size or "small") == "small":
        args.layers = 10
    cpu = platform.processor() or platform.machine()
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(load())
    started = time.perf_counter()
    if args.part == "decode":
        bench_decode(args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            write_tokenizer(Path(tmp))
            asyncio.run(bench_conversation(args, Path(tmp)))
    print(f"({time.perf_counter() - started:.1f} s in all)")


if __name__ == "__main__":
    main()
