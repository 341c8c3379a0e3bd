"""Speed and memory of the whole answer path on one device: model, token2wav, and their overlap.

Random weights of the true architecture (speed and memory do not depend on weight values): at
``--size full`` the 8.3 B Step-Audio 2 mini and the released-size flow (155.8 M) and HiFT (20.8 M); at
``--size tiny`` the test checkpoint's widths, so CI can check the benchmark still runs. The model is
written as a random checkpoint and loaded by the daemon's own loader (``loading.load``), so 8-bit and
4-bit rows quantize exactly as ``model.local.quantization`` does.

Each row runs in its own process (a clean peak-memory figure), on a conversation that already holds about
``--history-tokens`` tokens, and asks a ``--question-seconds`` spoken question whose answer is forced to
``--answer-seconds`` of speech. The answer goes through the daemon's voice (``AnswerVoice`` over
token2wav, in its own thread, while the model keeps decoding), and the row reports:

- peak memory: ``torch.cuda.max_memory_allocated`` (reserved in brackets) on a GPU; the process's peak
  RSS on the CPU (Python, torch and the libraries included);
- prefill: audio encoding plus the prompt the KV cache did not hold (the new question), with token counts;
- decode tokens/s over the answer (speech needs 31.25: one text and four speech tokens per 0.16 s);
- the end of speech (the request handed to the engine, as the daemon does after endpointing) to the first
  28 speech tokens, and to the first PCM sample out of token2wav;
- RTF: wall time from the end of speech to the last sample, over the seconds of audio.

The naive row is the same model with no KV cache at all: every token recomputes the whole prompt and
everything generated so far, as ``generate(use_cache=False)`` does and with nothing kept across turns.

    python -m bench.gpu                                   # tiny, CPU (the default without CUDA)
    python -m bench.gpu --size full                       # on a GPU: bf16, int8, int4 and naive rows
    python -m bench.gpu --size full --checkpoint /srv/random-mini   # keep the 16.6 GB checkpoint for reruns
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache

from assistant.audio import tone
from assistant.config import LocalModelSettings, PersonaSettings
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.engine import GenerationOptions, StepAudio2Engine
from assistant.model.stepaudio2.loading import load
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM
from assistant.ports import ModelEvent, ModelRequest, ModelSpeech, ModelText, ReplyPiece
from assistant.voice.speech import TOKEN2WAV_RATE_HZ, AnswerVoice, TokenSpeaker
from assistant.voice.token2wav.engine import Token2Wav
from assistant.voice.token2wav.flow import Flow, FlowConfig
from assistant.voice.token2wav.hift import Hift, HiftConfig
from assistant.voice.token2wav.prompt import PromptFeatures, PromptProcessor
from bench.model import TOOLS
from bench.voice import made_up_prompt
from support.synthetic import (
    MINI,
    TINY,
    ScriptedLogits,
    Sizes,
    config_json,
    interleave,
    write_tokenizer,
    write_weights,
)

FIRST_TOKENS = 28
"""Speech tokens the issue times to (25 + 3 look-ahead: upstream's first token2wav chunk)."""
SPEECH_TOKENS_PER_SECOND = 25
TOKENS_PER_SPEECH_SECOND = 31.25
"""Model tokens per second of speech: one text token per four speech tokens."""
ROW_MARK = "ROW "
NAIVE = "naive (no KV cache)"
CUDA_ROWS = "wide,wide:compiled,int8,int4,int4:compiled,naive"
CPU_ROWS = "wide,wide:static,int8,int4,naive"


@dataclass(frozen=True, slots=True)
class Size:
    """Widths of one benchmark size."""

    model: Sizes
    """Step-Audio 2 widths."""
    flow: FlowConfig
    """token2wav flow widths."""
    hift: HiftConfig
    """Vocoder widths."""


SIZES = {
    "tiny": Size(
        TINY,
        FlowConfig(
            input_size=64,
            encoder_size=64,
            encoder_heads=2,
            encoder_hidden=128,
            encoder_blocks=2,
            encoder_up_blocks=1,
            dit_depth=2,
            dit_size=64,
            dit_heads=2,
            dit_head_dim=32,
            dit_mlp_ratio=2.0,
        ),
        HiftConfig(base_channels=64, f0_channels=32),
    ),
    "full": Size(MINI, FlowConfig(), HiftConfig()),
}


@dataclass(slots=True)
class Row:
    """What one weight mode measured (seconds and bytes; a row that could not run has ``note`` only)."""

    label: str
    note: str = ""
    peak_bytes: float = 0.0
    reserved_bytes: float = 0.0
    prompt_tokens: int = 0
    prefill_tokens: int = 0
    prefill_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    first_tokens_s: float = 0.0
    first_pcm_s: float = 0.0
    rtf: float = 0.0
    audio_s: float = 0.0


# --- the naive baseline ---------------------------------------------------------------------------


class NoKvCache:
    """The model as an engine without a KV cache sees it: every step recomputes the whole sequence.

    The engine hands it the prompt once (with the question's audio embeddings) and then one token per
    step; each call runs the decoder over all of it from scratch, like ``generate(use_cache=False)``.
    Until ``active`` is set it passes through, so the history is built at the cached speed.
    """

    def __init__(self, model: StepAudio2ForCausalLM) -> None:
        self._model = model
        self._cache: object = None
        self._ids = torch.empty(0)
        self._audio: list[tuple[int, torch.Tensor]] = []
        self.config = model.config
        self.encode_audio = model.encode_audio
        self.next_logits = model.next_logits  # the engine's static path only; never used here
        self.active = False

    @property
    def device(self) -> torch.device:
        return self._model.device

    def step(
        self,
        input_ids: torch.Tensor,
        cache: DynamicCache,
        *,
        audio: Sequence[tuple[int, torch.Tensor]] = (),
        start: int | None = None,
    ) -> torch.Tensor:
        if not self.active:
            return self._model.step(input_ids, cache, audio=audio, start=start)
        if cache is not self._cache or input_ids.shape[1] > 1:  # a new prompt
            self._cache, self._ids, self._audio = cache, input_ids, list(audio)
        else:
            self._ids = torch.cat([self._ids, input_ids], dim=1)
        return self._model.step(self._ids, DynamicCache(), audio=self._audio, start=0)


# --- one row, in its own process ------------------------------------------------------------------


class MadeUpPrompt(PromptProcessor):
    """Voice prompt features of the real shapes, without the ONNX prompt models (paid once per voice)."""

    def features(self, wav_path: Path) -> PromptFeatures:
        return made_up_prompt(3.0)


def answer_tokens(seconds: float) -> list[int]:
    """A spoken answer of ``seconds`` as the model writes it: text and speech tokens 1 : 4, then EOT."""
    codes = [(17 * i) % 6561 for i in range(round(seconds * SPEECH_TOKENS_PER_SECOND))]
    return [*interleave([ord("a")] * (len(codes) // 4), codes), t.EOT]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


async def _drain(stream: AsyncIterator[ModelEvent]) -> None:
    async for _ in stream:
        pass


async def measure_answer(
    engine: StepAudio2Engine, voice: AnswerVoice, request: ModelRequest, device: torch.device
) -> dict[str, float]:
    """One spoken answer through engine and voice as the daemon overlaps them; seconds from the request.

    As in a turn, one task reads the model's stream (noting when speech tokens arrive) and hands the
    pieces over a queue to the voice, so a chunk being vocoded never delays reading the model.
    """
    marks: dict[str, float] = {}
    queue: asyncio.Queue[ReplyPiece | None] = asyncio.Queue()
    _sync(device)
    begun = time.perf_counter()

    async def read_model() -> None:
        speech_tokens = 0
        try:
            async for event in engine.respond(request):
                if isinstance(event, ModelSpeech):
                    speech_tokens += sum(1 for code in event.tokens if 0 <= code < 6561)
                    if speech_tokens >= FIRST_TOKENS and "first_tokens" not in marks:
                        marks["first_tokens"] = time.perf_counter() - begun
                if isinstance(event, ModelSpeech | ModelText):
                    queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    async def pieces() -> AsyncIterator[ReplyPiece]:
        while (piece := await queue.get()) is not None:
            yield piece

    reader = asyncio.create_task(read_model())
    samples = 0
    async for chunk in voice.speak(pieces()):
        if chunk.samples and "first_pcm" not in marks:
            marks["first_pcm"] = time.perf_counter() - begun
        samples += chunk.samples
    marks["last_pcm"] = time.perf_counter() - begun
    marks["audio"] = samples / TOKEN2WAV_RATE_HZ
    await reader
    return marks


async def run_row(args: argparse.Namespace) -> Row:
    """Load, warm up, build the history, then time ``--repeat`` answers; the median of each figure."""
    size = SIZES[args.size]
    device = torch.device(args.device)
    weights, _, decode = args.row.partition(":")
    naive = weights == "naive"
    quantization = weights if weights in ("int8", "int4") else "none"
    if device.type == "cuda":
        if quantization == "int4" and args.int4_cap_gb:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.int4_cap_gb * 1e9 / total), device)
        torch.cuda.reset_peak_memory_stats(device)
    settings = LocalModelSettings(
        path=args.checkpoint,
        device=device.type,
        dtype=args.dtype,
        quantization=quantization,
        decode=decode or "dynamic",
    )
    model, tokenizer = load(settings)
    wrapped = NoKvCache(model) if naive else model
    script = ScriptedLogits([])
    engine = StepAudio2Engine(
        wrapped,  # type: ignore[arg-type]
        tokenizer,
        PersonaSettings(location="广州", dialect="cantonese"),
        GenerationOptions.from_settings(
            settings, model.device.type
        ),  # the daemon's defaults: 8,192 tokens of history, 2,048 new
        logits_processors=[script],
        today=lambda: datetime(2026, 11, 25),
    )
    # token2wav as Token2Wav.load places it: the flow in half precision on a GPU, the vocoder in fp32.
    flow = Flow(size.flow).to(device, torch.float16 if device.type == "cuda" else torch.float32).eval()
    speaker = TokenSpeaker(
        Token2Wav(flow, Hift(size.hift).to(device).eval(), MadeUpPrompt(Path("."), None)), Path("bench.wav")
    )
    voice = AnswerVoice("model", speaker, None)
    answer = answer_tokens(args.answer_seconds)
    # Short earlier answers, so the history stops close to --history-tokens rather than a long answer past it.
    earlier = answer_tokens(1.0)
    question = tone(220, args.question_seconds, rate_hz=16_000)
    try:
        await engine.warm_up()
        await voice.prepare()
        runs: list[tuple[dict[str, float], Any]] = []
        for repeat in range(args.repeat + 1):  # the first answer warms the whole path up and is not kept
            conversation = f"bench-{repeat}"
            while engine.tokens_of(engine.history(conversation)) < args.history_tokens:
                script.add(earlier)
                await _drain(engine.respond(ModelRequest(conversation, TOOLS, text="今日天气点样？")))
            if isinstance(wrapped, NoKvCache):
                engine.release_cache(conversation)  # nothing kept across turns either
                wrapped.active = True
            script.add(answer)
            marks = await measure_answer(engine, voice, ModelRequest(conversation, TOOLS, audio=question), device)
            if isinstance(wrapped, NoKvCache):
                wrapped.active = False
            if repeat:
                runs.append((marks, engine.last_round))
            engine.forget(conversation)
    finally:
        engine.close()
        voice.close()
    stats = [s for _, s in runs]

    def median(key: str) -> float:
        return statistics.median(m[key] for m, _ in runs)

    if device.type == "cuda":
        peak, reserved = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
    else:
        peak, reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 0
    return Row(
        label=args.label,
        peak_bytes=float(peak),
        reserved_bytes=float(reserved),
        prompt_tokens=stats[0].prompt_tokens,
        prefill_tokens=stats[0].prefill_tokens,
        prefill_s=statistics.median(s.prefill_seconds for s in stats),
        decode_tokens_per_s=statistics.median(s.decode_steps / s.decode_seconds for s in stats),
        first_tokens_s=median("first_tokens"),
        first_pcm_s=median("first_pcm"),
        rtf=statistics.median(m["last_pcm"] / m["audio"] for m, _ in runs),
        audio_s=median("audio"),
    )


# --- the table ------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} (CPU, {torch.get_num_threads()} torch threads)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} (CPU)"


def write_checkpoint(directory: Path, size: Size, device: torch.device, dtype: torch.dtype) -> None:
    """A random checkpoint of ``size`` in the release's layout (skipped when one is already there)."""
    if (directory / "model.safetensors.index.json").is_file():
        return
    directory.mkdir(parents=True, exist_ok=True)
    config = config_json(size.model)
    config["text_config"]["max_position_embeddings"] = 16384  # the release's (the test checkpoints keep 4096)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(directory)
    # Drawn on the device in the run's dtype, 4 GB a shard: a full-size float32 draw on the host is 33 GB.
    write_weights(directory, size.model, dtype=dtype, device=device.type, shard_bytes=4_000_000_000)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the rows run in other processes and need the memory


def run_in_process(args: argparse.Namespace, row: str, label: str) -> Row:
    """Run one row in a fresh interpreter; a failure (out of memory, no bitsandbytes) becomes its note."""
    command = [
        sys.executable,
        "-m",
        "bench.gpu",
        "--row",
        row,
        "--label",
        label,
        *("--size", args.size, "--device", args.device, "--dtype", args.dtype, "--checkpoint", args.checkpoint),
        *("--history-tokens", str(args.history_tokens), "--question-seconds", str(args.question_seconds)),
        *("--answer-seconds", str(args.answer_seconds), "--repeat", str(args.repeat)),
        *("--int4-cap-gb", str(args.int4_cap_gb)),
    ]
    print(f"{label}: running", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.row_timeout)
    except subprocess.TimeoutExpired:
        return Row(label, note=f"failed: no result within {args.row_timeout:g} s")
    for line in done.stdout.splitlines():
        if line.startswith(ROW_MARK):
            return Row(**json.loads(line.removeprefix(ROW_MARK)))
    lines = (done.stderr or done.stdout).strip().splitlines()
    return Row(label, note=f"failed: {lines[-1] if lines else f'exit status {done.returncode}'}")


def _gb(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def table(rows: Sequence[Row], device: torch.device) -> str:
    """The figures as a Markdown table, with the naive row's ratios below."""
    memory = "peak GPU memory (reserved)" if device.type == "cuda" else "peak RSS"
    header = [
        "weights",
        memory,
        "prefill (computed / prompt tokens)",
        "decode tokens/s",
        f"first {FIRST_TOKENS} speech tokens",
        "first PCM",
        "RTF",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if row.note:
            lines.append(f"| {row.label} | {row.note} |" + " |" * (len(header) - 2))
            continue
        reserved = f" ({_gb(row.reserved_bytes)})" if row.reserved_bytes else ""
        lines.append(
            f"| {row.label} | {_gb(row.peak_bytes)}{reserved}"
            f" | {1000 * row.prefill_s:.1f} ms ({row.prefill_tokens} / {row.prompt_tokens})"
            f" | {row.decode_tokens_per_s:.1f} | {1000 * row.first_tokens_s:.0f} ms | {1000 * row.first_pcm_s:.0f} ms"
            f" | {row.rtf:.3f} |"
        )
    naive = next((r for r in rows if r.label.endswith(NAIVE) and not r.note), None)
    if naive is not None:
        lines.append("\nagainst the naive baseline:")
        lines.extend(
            f"  {row.label}: decode {row.decode_tokens_per_s / naive.decode_tokens_per_s:.1f}x faster,"
            f" prefill {naive.prefill_s / row.prefill_s:.1f}x faster, first PCM"
            f" {naive.first_pcm_s / row.first_pcm_s:.1f}x sooner, RTF {naive.rtf / row.rtf:.1f}x lower"
            for row in rows
            if not row.note and row is not naive
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cuda = torch.cuda.is_available()
    parser.add_argument("--size", choices=list(SIZES), default="full" if cuda else "tiny")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default=None)
    parser.add_argument("--checkpoint", default="", help="random checkpoint folder, written if absent (kept)")
    parser.add_argument("--history-tokens", type=int, default=1000, help="conversation tokens before the question")
    parser.add_argument("--question-seconds", type=float, default=5.0)
    parser.add_argument("--answer-seconds", type=float, default=8.0, help="seconds of speech in the answer")
    parser.add_argument("--repeat", type=int, default=3, help="timed answers per row (after one warm-up answer)")
    parser.add_argument("--int4-cap-gb", type=float, default=12.0, help="GPU memory cap of the int4 row (0: none)")
    parser.add_argument(
        "--rows",
        default=CUDA_ROWS if cuda else CPU_ROWS,
        help="comma-separated WEIGHTS[:DECODE]: WEIGHTS wide (--dtype), int8, int4 or naive;"
        " DECODE dynamic (default), static or compiled (model.local.decode)",
    )
    parser.add_argument("--row-timeout", type=float, default=1800, help="seconds one row may take")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.answer_seconds * SPEECH_TOKENS_PER_SECOND < FIRST_TOKENS:
        parser.error(f"--answer-seconds must hold {FIRST_TOKENS} speech tokens (at least 1.12 s)")
    device = torch.device(args.device)
    args.dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    if args.row:
        row = asyncio.run(run_row(args))
        print(ROW_MARK + json.dumps(asdict(row)), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="xiangyin-random-") as scratch:
        args.checkpoint = args.checkpoint or scratch
        started = time.perf_counter()
        write_checkpoint(Path(args.checkpoint), SIZES[args.size], device, getattr(torch, args.dtype))
        written_s = time.perf_counter() - started
        rows = []
        for name in args.rows.split(","):
            weights, _, decode = name.partition(":")
            label = {
                "wide": args.dtype,
                "int8": "int8 (bitsandbytes LLM.int8)",
                "int4": "int4 (bitsandbytes NF4)" + (f" capped at {args.int4_cap_gb:g} GB" if args.int4_cap_gb else ""),
                "naive": f"{args.dtype}, {NAIVE}",
            }[weights] + (f", {decode} decode" if decode else "")
            if weights in ("int8", "int4") and device.type != "cuda":
                rows.append(Row(label, note=f"not available on {device.type} (bitsandbytes needs CUDA)"))
            else:
                rows.append(run_in_process(args, name, label))
    print(
        f"{device_name(device)}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, size {args.size}"
        f" (random weights; checkpoint ready in {written_s:.1f} s)"
    )
    print(
        f"{args.question_seconds:g} s question after {args.history_tokens}+ tokens of history; answers of"
        f" {args.answer_seconds:g} s of speech; median of {args.repeat}; times from the end of speech;"
        f" speech needs {TOKENS_PER_SPEECH_SECOND} tokens/s"
    )
    print(table(rows, device))


if __name__ == "__main__":
    main()
