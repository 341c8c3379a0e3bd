"""token2wav beside StepFun's: first-chunk time and real-time factor on the same weights, prompt and noise.

Both arms load identical random weights at the released sizes (flow 155.8 M parameters, HiFT 20.8 M;
speed does not depend on the values): ours (``assistant.voice.token2wav``) and StepFun's ``Token2wav``
(PyPI ``step-audio2==1.0.0`` through support/stepfun.py's shims). Both get the same made-up 2 s voice
prompt, the same flow noise table, the same vocoder seed and the same chunks (StepFun's call pattern: the
first chunk small, each with its look-ahead). The arms alternate within each repeat, the one that goes
first alternating too, and medians over the repeats are printed with the load average: the machine is shared.

    python bench/token2wav.py                 # CPU fp32, 2 threads, 5 repeats
    python bench/token2wav.py --profile       # and where the first call spends its time, both arms
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assistant.voice.token2wav.engine import StreamSchedule, Token2Wav
from assistant.voice.token2wav.flow import Flow, FlowConfig
from assistant.voice.token2wav.hift import Hift, HiftConfig
from assistant.voice.token2wav.prompt import PromptFeatures, PromptProcessor
from bench.gpu import SIZES
from bench.voice import made_up_prompt
from support.stepfun import build_token2wav, flow_yaml, legacy_weight_norm, stream_pieces

TOKENS_PER_S = 25
TINY_FLOW, TINY_HIFT = SIZES["tiny"].flow, SIZES["tiny"].hift
"""The flow's and the vocoder's widths of the tiny checkpoint the tests write, for the smoke test."""


@dataclass
class Arm:
    """One implementation's timings, one entry per repeat."""

    name: str
    """Printed label."""
    prepare_s: list[float] = field(default_factory=list)
    """Seconds to prepare the voice prompt (paid once per voice)."""
    chunk_s: list[list[float]] = field(default_factory=list)
    """Seconds per chunk, first chunk first (the first includes opening the stream)."""

    def total_s(self, repeat: int) -> float:
        """Seconds of synthesis in one repeat, prompt preparation excluded."""
        return sum(self.chunk_s[repeat])


@dataclass(frozen=True)
class Pair:
    """The two arms over the same weights."""

    ours: Token2Wav
    """The project's token2wav."""
    theirs: Any
    """StepFun's ``Token2wav``, on the CPU."""


def load() -> str:
    """The load average, to judge how much the other jobs on the machine disturbed the figures."""
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


def build(flow_config: FlowConfig, hift_config: HiftConfig, schedule: StreamSchedule, seed: int = 0) -> Pair:
    """Random weights for both arms; StepFun's noise table is replaced by ours, as the differential tests do."""
    torch.manual_seed(seed)
    flow = Flow(flow_config).eval()
    hift = Hift(hift_config).eval()
    # StepFun's HiFT loads the weight-normed layout, which Token2Wav folds away: export before building ours.
    theirs = build_token2wav(
        flow_yaml(flow_config),
        flow.state_dict(),
        legacy_weight_norm(hift.state_dict()),
        hift_channels=hift_config.base_channels,
        f0_channels=hift_config.f0_channels,
    )
    ours = Token2Wav(flow, hift, PromptProcessor(Path("."), None), schedule=schedule)
    theirs.flow.decoder.rand_noise.copy_(flow.decoder.get_buffer("noise"))
    return Pair(ours, theirs)


def run_ours(pair: Pair, features: PromptFeatures, tokens: Sequence[int], arm: Arm) -> bytes:
    """Prepare the voice and stream one answer through ours, timing each call; returns the PCM."""
    engine = pair.ours
    started = time.perf_counter()
    voice = engine.prepare("bench", features)
    arm.prepare_s.append(time.perf_counter() - started)
    lookahead = engine.flow.lookahead
    pcm: list[bytes] = []
    times: list[float] = []
    stream = None
    for piece, last in stream_pieces(tokens, engine.schedule, lookahead):
        started = time.perf_counter()
        if stream is None:
            stream = engine.open(voice)
            new = piece
        else:
            new = piece[lookahead:]  # the previous chunk's look-ahead was pushed with it
        pcm.extend(stream.push(new))
        if last:
            pcm.append(stream.finish())
        times.append(time.perf_counter() - started)
    arm.chunk_s.append(times)
    return b"".join(pcm)


def run_theirs(pair: Pair, features: PromptFeatures, tokens: Sequence[int], arm: Arm, seed: int) -> bytes:
    """The same through StepFun's ``set_stream_cache`` and ``stream``; the vocoder's noise seeded as ours."""
    engine = pair.theirs
    started = time.perf_counter()
    key = "bench"
    count = len(features.tokens)
    mel = torch.from_numpy(features.mel).unsqueeze(0)
    # What StepFun's _prepare_prompt returns, from the same features (its ONNX and torchaudio parts are shimmed).
    engine.cache[key] = (
        torch.tensor([features.tokens], dtype=torch.int32),
        torch.tensor([count], dtype=torch.int32),
        torch.from_numpy(features.embedding),
        mel,
        torch.tensor([mel.shape[1]], dtype=torch.int32),
    )
    engine.set_stream_cache(key)
    arm.prepare_s.append(time.perf_counter() - started)
    torch.manual_seed(seed)  # StepFun's source draws from the global generator; ours from one seeded alike
    pcm: list[bytes] = []
    times: list[float] = []
    for piece, last in stream_pieces(tokens, pair.ours.schedule, pair.ours.flow.lookahead):
        started = time.perf_counter()
        pcm.append(engine.stream(piece, key, last_chunk=last))
        times.append(time.perf_counter() - started)
    arm.chunk_s.append(times)
    return b"".join(pcm)


def ms(values: Sequence[float]) -> str:
    """Median and best of a list of seconds, in milliseconds."""
    return f"{1000 * statistics.median(values):7.1f} ms (best {1000 * min(values):7.1f})"


def ratio(mine: Sequence[float], reference: Sequence[float]) -> float:
    """Median of the per-repeat ratios: each pair ran back to back, under the same load."""
    return statistics.median(a / b for a, b in zip(mine, reference, strict=True))


def report(ours: Arm, theirs: Arm, audio_s: float) -> list[str]:
    """The figures: preparation, first chunk, each later chunk, real-time factors and ratios ours/StepFun."""
    lines = [
        f"  prompt preparation   ours {ms(ours.prepare_s)}   StepFun {ms(theirs.prepare_s)}"
        f"   ours ×{ratio(ours.prepare_s, theirs.prepare_s):.2f}"
    ]
    for index in range(len(ours.chunk_s[0])):
        mine = [times[index] for times in ours.chunk_s]
        reference = [times[index] for times in theirs.chunk_s]
        label = "first chunk" if index == 0 else f"chunk {index + 1}"
        lines.append(f"  {label:<20} ours {ms(mine)}   StepFun {ms(reference)}   ours ×{ratio(mine, reference):.2f}")
    repeats = range(len(ours.chunk_s))
    mine = [ours.total_s(r) / audio_s for r in repeats]
    reference = [theirs.total_s(r) / audio_s for r in repeats]
    lines.append(
        f"  real-time factor     ours {statistics.median(mine):.3f} (best {min(mine):.3f})"
        f"   StepFun {statistics.median(reference):.3f} (best {min(reference):.3f})"
        f"   ours ×{ratio(mine, reference):.2f}"
    )
    return lines


def profile_first_call(pair: Pair, features: PromptFeatures, tokens: Sequence[int], seed: int, rows: int) -> None:
    """torch.profiler over preparation and the first chunk of each arm: the operators that take the time."""
    from torch.profiler import ProfilerActivity, profile

    first = next(stream_pieces(tokens, pair.ours.schedule, pair.ours.flow.lookahead))[0]
    arms: list[tuple[str, Callable[[], bytes]]] = [
        ("ours", lambda: run_ours(pair, features, first, Arm("ours"))),
        ("StepFun", lambda: run_theirs(pair, features, first, Arm("StepFun"), seed)),
    ]
    for name, run in arms:
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            run()
        print(f"--- {name}: preparation + first chunk, by self CPU time")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats after one warm-up each")
    parser.add_argument("--prompt-seconds", type=float, default=2.0)
    parser.add_argument("--answer-tokens", type=int, default=113, help="speech tokens (25 a second) to render")
    parser.add_argument("--first-chunk", type=int, default=10, help="tokens in the first chunk")
    parser.add_argument("--chunk", type=int, default=25, help="tokens in later chunks")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny widths (a smoke run, no figures)")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS", help="profile the first call, ROWS rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seed = 0
    schedule = StreamSchedule(first_chunk_tokens=args.first_chunk, chunk_tokens=args.chunk)
    started = time.perf_counter()
    pair = build(TINY_FLOW if args.tiny else FlowConfig(), TINY_HIFT if args.tiny else HiftConfig(), schedule, seed)
    build_s = time.perf_counter() - started
    pair.ours.seed = seed
    features = made_up_prompt(args.prompt_seconds)
    tokens = np.random.default_rng(1).integers(0, 6561, args.answer_tokens).tolist()
    modules = (pair.ours.flow, pair.ours.hift)
    parameters = sum(p.numel() for module in modules for p in module.parameters())
    print(
        f"token2wav CPU fp32, {torch.get_num_threads()} threads, {parameters / 1e6:.1f} M parameters "
        f"(built in {build_s:.1f} s); prompt {args.prompt_seconds:.1f} s, answer {len(tokens)} tokens; {load()}"
    )
    if args.profile:
        profile_first_call(pair, features, tokens, seed, args.profile)
    ours, theirs = Arm("ours"), Arm("StepFun")
    # One warm-up each (allocator, thread pool), then the repeats, whose first arm alternates.
    run_ours(pair, features, tokens, Arm("warm-up"))
    run_theirs(pair, features, tokens, Arm("warm-up"), seed)
    for repeat in range(args.repeats):
        arms = [
            lambda: run_ours(pair, features, tokens, ours),
            lambda: run_theirs(pair, features, tokens, theirs, seed),
        ]
        for run in arms if repeat % 2 == 0 else arms[::-1]:
            run()
    sizes = [len(piece) for piece, _ in stream_pieces(tokens, schedule, pair.ours.flow.lookahead)]
    print(f"chunks (tokens with look-ahead) {sizes}; medians of {args.repeats} interleaved repeats:")
    for line in report(ours, theirs, len(tokens) / TOKENS_PER_S):
        print(line)
    print(f"  {load()}")


if __name__ == "__main__":
    main()
