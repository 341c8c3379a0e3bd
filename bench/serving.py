"""Serving at scale: turns per second and time to first speech token with N rooms sharing one server.

Each room is a conversation id on one shared ``VllmSpeechModel`` (as on a box with several satellites);
the rooms talk at the same time, each turn sending a spoken question and streaming a spoken answer.

    python bench/serving.py                      # against the fake server: the client's own overhead
    python bench/serving.py --token-delay-ms 22  # fake server pacing tokens like an L40S (~46 tok/s)
    python bench/serving.py --url http://gpu-box:8000/v1 --audio question.wav   # a real vLLM server

Against the fake (a separate process, so its CPU is not ours) the figures are the client's ceiling:
request building, base64 WAV, SSE parsing and event assembly. ``client CPU/turn`` is this process's CPU
time per turn, which is what a box pays per room.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.audio import AudioChunk, read_wav  # noqa: E402
from assistant.config import PersonaSettings, VllmModelSettings  # noqa: E402
from assistant.model.stepaudio2.vllm import VllmSpeechModel  # noqa: E402
from assistant.ports import ModelRequest, ModelSpeech, ToolSpec  # noqa: E402

TOOLS = (
    ToolSpec("get_weather", "查询天气", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolSpec(
        "set_light", "开关灯", {"type": "object", "properties": {"room": {"type": "string"}, "on": {"type": "boolean"}}}
    ),
)


def synthetic_question(seconds: float) -> AudioChunk:
    """A stand-in utterance: a 220 Hz square wave (the fake server does not listen)."""
    period = 16_000 // 220
    samples = bytearray()
    for i in range(round(seconds * 16_000)):
        samples += (6000 if (i % period) < period // 2 else -6000).to_bytes(2, "little", signed=True)
    return AudioChunk(bytes(samples))


async def one_turn(model: VllmSpeechModel, room: str, audio: AudioChunk) -> tuple[float | None, float]:
    """Return (seconds to the first speech token or None, seconds for the whole turn)."""
    started = time.perf_counter()
    first: float | None = None
    async for event in model.respond(ModelRequest(room, TOOLS, audio=audio)):
        if first is None and isinstance(event, ModelSpeech):
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def run(settings: VllmModelSettings, rooms: int, turns: int, audio: AudioChunk) -> dict[str, float]:
    """Run ``turns`` turns in each of ``rooms`` rooms at once; return the figures."""
    model = VllmSpeechModel(settings, PersonaSettings(), lambda event: None)
    try:
        await one_turn(model, "warm-up", audio)
        model.forget("warm-up")

        async def room(name: str) -> list[tuple[float | None, float]]:
            return [await one_turn(model, name, audio) for _ in range(turns)]

        cpu, wall = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(room(f"room{r}") for r in range(rooms)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await model.aclose()
    firsts = sorted(f for per_room in results for f, _ in per_room if f is not None)
    totals = [t for per_room in results for _, t in per_room]
    count = len(totals)
    p95 = statistics.quantiles(firsts, n=20)[18] if len(firsts) >= 2 else (firsts[0] if firsts else float("nan"))
    return {
        "turns": count,
        "turns_per_second": count / wall,
        "first_median_ms": 1000 * statistics.median(firsts) if firsts else float("nan"),
        "first_p95_ms": 1000 * p95,
        "turn_median_ms": 1000 * statistics.median(totals),
        "cpu_per_turn_ms": 1000 * cpu / count,
    }


def start_fake(token_delay_ms: float, codes: int) -> tuple[subprocess.Popen[str], str]:
    """Start the fake server in its own process and return it with its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "support.vllm_fake", "--token-delay-ms", str(token_delay_ms), "--codes", str(codes)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise SystemExit(f"the fake server did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def main() -> None:
    """Print one row per room count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rooms", default="1,4,16", help="comma-separated room counts")
    parser.add_argument("--turns", type=int, default=8, help="turns per room")
    parser.add_argument("--url", help="a real server's base URL (…/v1); default: the fake server")
    parser.add_argument("--model", default="step-audio-2-mini", help="served model name")
    parser.add_argument("--api-key-env", default="VLLM_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--audio", type=Path, help="16 kHz mono WAV question (default: 3 s synthetic)")
    parser.add_argument("--codes", type=int, default=125, help="fake: speech codes per answer (25 per second)")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="fake: pause before each streamed token")
    args = parser.parse_args()

    audio = read_wav(args.audio) if args.audio else synthetic_question(3.0)
    fake = None
    if args.url:
        url, where = args.url, f"server {args.url}"
    else:
        fake, url = start_fake(args.token_delay_ms, args.codes)
        where = f"fake server ({args.codes} speech codes per answer, {args.token_delay_ms:g} ms per token)"
    key = os.environ.get(args.api_key_env)
    settings = VllmModelSettings.model_validate(
        {
            "base_url": url,
            "model": args.model,
            "api_key": key,
            "first_token_timeout_seconds": 120,
            "timeout_seconds": 600,
        }
    )
    print(f"{where}; question {audio.seconds:.1f} s; {args.turns} turns per room; {os.cpu_count()} CPUs")
    print(
        f"{'rooms':>5} {'turns':>6} {'turns/s':>9} {'TTFS med ms':>12} {'TTFS p95 ms':>12} {'turn med ms':>12} "
        f"{'client CPU/turn ms':>19}"
    )
    try:
        for rooms in (int(r) for r in args.rooms.split(",")):
            row = asyncio.run(run(settings, rooms, args.turns, audio))
            print(
                f"{rooms:>5} {row['turns']:>6.0f} {row['turns_per_second']:>9.1f} {row['first_median_ms']:>12.1f} "
                f"{row['first_p95_ms']:>12.1f} {row['turn_median_ms']:>12.1f} {row['cpu_per_turn_ms']:>19.2f}"
            )
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(timeout=10)


if __name__ == "__main__":
    main()
