"""token2wav speed: real-time factor per chunk and time to the first audio chunk.

Real-size flow (155.8 M parameters) and HiFT (20.8 M) with random weights: speed does not depend on the
weight values. The voice prompt is made-up features of the real shapes (the ONNX prompt models are not
available here); prompt preparation is timed separately because it is paid once per voice.

    python bench/voice.py                       # CPU, fp32
    python bench/voice.py --device cuda --fp16  # GPU, half-precision flow
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from assistant.voice.token2wav.engine import StreamSchedule, Token2Wav
from assistant.voice.token2wav.flow import Flow
from assistant.voice.token2wav.hift import Hift
from assistant.voice.token2wav.prompt import PromptFeatures, PromptProcessor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def made_up_prompt(seconds: float, seed: int = 0) -> PromptFeatures:
    """Voice prompt features of the real shapes for ``seconds`` of prompt (the ONNX models are not needed)."""
    rng = np.random.default_rng(seed)
    tokens = round(seconds * 25)
    return PromptFeatures(
        tuple(rng.integers(0, 6561, tokens).tolist()),
        rng.normal(size=(1, 192)).astype(np.float32),
        rng.normal(size=(2 * tokens, 80)).astype(np.float32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fp16", action="store_true", help="run the flow in half precision")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--prompt-seconds", type=float, default=3.0)
    parser.add_argument("--answer-seconds", type=float, default=4.0)
    parser.add_argument("--first-chunk", type=int, default=10, help="tokens in the first chunk")
    parser.add_argument("--chunk", type=int, default=25, help="tokens in later chunks")
    parser.add_argument("--answers", type=int, default=2, help="answers to time (the first one warms up)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float16 if args.fp16 else torch.float32

    started = time.perf_counter()
    flow = Flow().to(device, dtype).eval()
    hift = Hift().to(device).eval()
    build_s = time.perf_counter() - started
    schedule = StreamSchedule(first_chunk_tokens=args.first_chunk, chunk_tokens=args.chunk)
    engine = Token2Wav(flow, hift, PromptProcessor(__import__("pathlib").Path("."), None), schedule=schedule)

    rng = np.random.default_rng(0)
    features = made_up_prompt(args.prompt_seconds)
    _sync(device)
    started = time.perf_counter()
    voice = engine.prepare("bench", features)
    _sync(device)
    prepare_s = time.perf_counter() - started

    tokens = rng.integers(0, 6561, round(args.answer_seconds * 25)).tolist()
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"flow {'fp16' if args.fp16 else 'fp32'}, torch threads {torch.get_num_threads()}"
    )
    print(f"build models {build_s:.2f} s; prepare a {args.prompt_seconds:.1f} s voice prompt {prepare_s:.2f} s")
    for answer in range(args.answers):
        stream = engine.open(voice)
        chunk_times: list[tuple[int, float]] = []
        first_audio_s = 0.0
        begun = time.perf_counter()
        # Tokens arrive instantly, one at a time: this measures synthesis alone, not the model's token rate.
        for token in tokens:
            before = time.perf_counter()
            pcm = stream.push([token])
            if pcm:
                _sync(device)
                chunk_times.append((stream.chunks[-1], time.perf_counter() - before))
                if first_audio_s == 0.0:
                    first_audio_s = time.perf_counter() - begun
        before = time.perf_counter()
        stream.finish()
        _sync(device)
        chunk_times.append((stream.chunks[-1], time.perf_counter() - before))
        total_s = time.perf_counter() - begun
        rtfs = [spent / (count / 25) for count, spent in chunk_times]
        label = "warm-up" if answer == 0 and args.answers > 1 else f"answer {answer}"
        print(
            f"{label}: {len(tokens) / 25:.1f} s of speech in {total_s:.2f} s (RTF {total_s / (len(tokens) / 25):.3f}); "
            f"first audio after {first_audio_s * 1000:.0f} ms; per-chunk RTF median {statistics.median(rtfs):.3f}, "
            f"max {max(rtfs):.3f}; chunks {stream.chunks}"
        )


if __name__ == "__main__":
    main()
