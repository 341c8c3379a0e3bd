"""The doctor's self-test conversation: the loaded model and token2wav judge their own answer.

A shipped question WAV goes through the model like a user's question. Its spoken answer is synthesised by
token2wav, then given back to the model with an ASR prompt: the transcript must match the model's own text
(character error rate), which catches a broken voice path without a human ear. The model also names the
dialect it hears, and a canned question must produce a tool call.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from ..audio import AudioChunk, read_wav
from ..errors import ModelError
from ..ports import SPEECH_PAD, ModelRequest, ModelSpeech, ModelText, ModelToolCall, SpeechModel, ToolSpec
from ..voice.speech import TokenSpeaker
from .report import Check, Status

QUESTION_WAV = "question_zh_16k.wav"
"""Shipped in ``assistant/doctor/data``: 请用一句话介绍一下你自己。 (espeak-ng, Mandarin)."""
ASR_PROMPT = "请记录下你所听到的语音内容，只输出听到的文字。"
DIALECT_PROMPT = "这段话是用哪种话说的？只回答其中一个：普通话、粤语、四川话、英语。"
DIALECT_NAMES = {"mandarin": "普通话", "cantonese": "粤语", "sichuanese": "四川话", "english": "英语"}
TOOL_QUESTION = "广州今天天气怎么样？"
WEATHER = ToolSpec(
    "get_weather",
    "查询某个城市今天的天气",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
HEARD_BACK = ("self-test: transcript", "self-test: dialect")
"""The rows that need the spoken answer synthesised."""
HEARD_SECONDS = 0.5
"""A spoken answer shorter than this is not given back to the model."""
CER_OK, CER_WARN = 0.15, 0.4
"""Transcripts within these character error rates pass, or pass with a warning."""


def shipped_question() -> AudioChunk:
    """The question WAV that ships with the package."""
    with resources.as_file(resources.files("assistant.doctor") / "data" / QUESTION_WAV) as path:
        return read_wav(path)


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over characters, punctuation and spaces ignored, divided by the reference length."""
    ref, hyp = _characters(reference), _characters(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / len(ref)


def _characters(text: str) -> str:
    return "".join(c for c in text.lower() if unicodedata.category(c)[0] in "LN")


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    speech: tuple[int, ...]
    calls: tuple[ModelToolCall, ...]
    first_speech_seconds: float | None
    first_sound_seconds: float | None
    pcm: bytes


async def _ask(model: SpeechModel, request: ModelRequest, speaker: TokenSpeaker | None = None) -> _Answer:
    """One round; speech tokens go to ``speaker`` as they arrive, as in a real turn."""
    started = time.perf_counter()
    text: list[str] = []
    speech: list[int] = []
    calls: list[ModelToolCall] = []
    pcm: list[bytes] = []
    first_speech = first_sound = None
    stop = threading.Event()
    stream = await speaker.open(stop) if speaker is not None and request.speak else None
    async for event in model.respond(request):
        if isinstance(event, ModelText):
            text.append(event.text)
        elif isinstance(event, ModelToolCall):
            calls.append(event)
        elif isinstance(event, ModelSpeech):
            first_speech = first_speech or time.perf_counter() - started
            speech.extend(code for code in event.tokens if code != SPEECH_PAD)
            if stream is not None and speaker is not None:
                pcm += await speaker.push(stream, stop, event.tokens)
                if first_sound is None and any(pcm):
                    first_sound = time.perf_counter() - started
    if stream is not None and speaker is not None and speech:
        pcm.append(await speaker.finish(stream, stop))
        first_sound = first_sound or time.perf_counter() - started
    return _Answer("".join(text), tuple(speech), tuple(calls), first_speech, first_sound, b"".join(pcm))


async def self_test(
    model: SpeechModel,
    speaker: TokenSpeaker | None,
    dialect: str,
    *,
    decode_rate: Callable[[], float | None] = lambda: None,
    question: AudioChunk | None = None,
) -> list[Check]:
    """Run the self-test rounds; ``decode_rate`` gives the last round's decode speed (tokens/s) if known."""
    try:
        return await _rounds(model, speaker, dialect, decode_rate, question or shipped_question())
    except ModelError as err:
        return [Check("self-test", "fail", f"the model failed a self-test round: {err}")]


async def _rounds(
    model: SpeechModel,
    speaker: TokenSpeaker | None,
    dialect: str,
    decode_rate: Callable[[], float | None],
    question: AudioChunk,
) -> list[Check]:
    from ..recordings import resample
    from ..voice.token2wav.hift import SAMPLE_RATE_HZ

    checks: list[Check] = []
    answer = await _ask(model, ModelRequest("doctor:answer", audio=question), speaker)
    figures: dict[str, float | int | str | None] = {
        "answer_text": answer.text,
        "speech_tokens": len(answer.speech),
        "first_speech_token_seconds": answer.first_speech_seconds,
        "first_sound_seconds": answer.first_sound_seconds,
        "decode_tokens_per_second": decode_rate(),
    }
    if not answer.speech:
        checks.append(Check("self-test: spoken answer", "fail", "the model answered without speech tokens", figures))
        checks += [Check(name, "skip", "no spoken answer to hear back") for name in HEARD_BACK]
        return [*checks, await _tool_check(model)]
    sound = "no token2wav" if answer.first_sound_seconds is None else f"first sound {answer.first_sound_seconds:.2f} s"
    rate = figures["decode_tokens_per_second"]
    checks.append(
        Check(
            "self-test: spoken answer",
            "ok",
            f"{len(answer.speech)} speech tokens, {sound}" + ("" if rate is None else f", {rate:.1f} tokens/s"),
            figures,
        )
    )
    seconds = len(answer.pcm) / 2 / SAMPLE_RATE_HZ
    if speaker is None or seconds < HEARD_SECONDS:
        why = "no token2wav" if speaker is None else f"the spoken answer is {seconds:.2f} s, too short to hear back"
        checks += [Check(name, "skip", why) for name in HEARD_BACK]
    else:
        import numpy as np

        samples = np.frombuffer(answer.pcm, dtype="<i2").astype(np.float32) / 32768.0
        heard = (np.clip(resample(samples, SAMPLE_RATE_HZ, 16_000), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        spoken = AudioChunk(heard, 16_000)
        transcript = await _ask(model, ModelRequest("doctor:asr", audio=spoken, text=ASR_PROMPT, speak=False))
        checks.append(_cer_check(character_error_rate(answer.text, transcript.text), answer.text, transcript.text))
        judged = await _ask(model, ModelRequest("doctor:dialect", audio=spoken, text=DIALECT_PROMPT, speak=False))
        wanted = DIALECT_NAMES[dialect]
        status: Status = "ok" if wanted in judged.text else "warn"
        checks.append(
            Check(
                "self-test: dialect",
                status,
                f"asked for {wanted}; the model hears: {judged.text.strip()[:40] or '(nothing)'}",
                {"requested": wanted, "judged": judged.text.strip()},
            )
        )
    checks.append(await _tool_check(model))
    return checks


def _cer_check(cer: float, said: str, heard: str) -> Check:
    status: Status = "ok" if cer <= CER_OK else "warn" if cer <= CER_WARN else "fail"
    figures: dict[str, float | int | str | None] = {"cer": cer, "said": said, "heard": heard}
    return Check("self-test: transcript", status, f"the model hears its own answer at CER {cer:.2f}", figures)


async def _tool_check(model: SpeechModel, tools: Sequence[ToolSpec] = (WEATHER,)) -> Check:
    answer = await _ask(model, ModelRequest("doctor:tool", tuple(tools), text=TOOL_QUESTION, speak=False))
    good = [c for c in answer.calls if c.name == WEATHER.name and c.error is None]
    figures: dict[str, float | int | str | None] = {"calls": len(answer.calls), "text": answer.text}
    if good:
        return Check(
            "self-test: tool call", "ok", f"{TOOL_QUESTION} → {good[0].name}({dict(good[0].arguments)})", figures
        )
    found = ", ".join(f"{c.name} ({c.error or 'ok'})" for c in answer.calls) or "no tool call"
    return Check("self-test: tool call", "fail", f"{TOOL_QUESTION} → {found}", figures)
