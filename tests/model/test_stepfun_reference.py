"""The LLM side against StepFun's own ``stepaudio2.py`` and ``utils.py`` (PyPI ``step-audio2==1.0.0``).

StepFun publishes no copy of the LLM forward on PyPI (it ships with the checkpoint as remote code), so the
model itself is covered by the project's own tests (``test_engine_numerics.py``, ``test_loading.py``).
What the wheel does have is compared here on the tiny checkpoint's tokenizer: the audio front end and
placeholder counts, the prompt ids of a whole conversation (tools, audio, history, an ``input`` turn, a
typed question), and how an answer's ids split into text and speech. ``StepAudio2.__call__`` runs for real;
only its ``llm.generate`` is a stand-in that records what it was given and answers with a script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerBase

from assistant.audio import AudioChunk, tone
from assistant.config import LocalModelSettings, PersonaSettings
from assistant.model.stepaudio2 import prompt
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.features import log_mel, samples, utterance_mels
from assistant.model.stepaudio2.frontend import MIN_SAMPLES, chunk_bounds, placeholder_count
from assistant.model.stepaudio2.history import assemble
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM
from assistant.model.stepaudio2.options import GenerationOptions
from assistant.model.stepaudio2.parser import TokenStreamParser
from assistant.ports import ModelRequest, ModelSpeech, ModelText, ModelToolCall, ToolResult, ToolSpec
from tests.model.conftest import TODAY, EngineFactory, Speech
from tests.stepfun.reference import Reference, cuda_is_cpu, load_reference

pytestmark = pytest.mark.models

WEATHER = ToolSpec("get_weather", "查询天气", {"type": "object", "properties": {"city": {"type": "string"}}})
UTTERANCE = tone(220, 1.5, rate_hz=16_000)
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def reference() -> Reference:
    return load_reference()


class _ScriptedLLM:
    """Stands in for StepFun's ``llm``: records the inputs of ``generate`` and appends a scripted answer."""

    def __init__(self, answer: Sequence[int]) -> None:
        self.answer = list(answer)
        self.inputs: dict[str, Any] = {}

    def generate(self, **inputs: Any) -> torch.Tensor:
        self.inputs = inputs
        return torch.cat([inputs["input_ids"][0].long(), torch.tensor(self.answer)]).unsqueeze(0)


def _stepfun(reference: Reference, tokenizer: PreTrainedTokenizerBase, answer: Sequence[int]) -> Any:
    """StepFun's ``StepAudio2`` over our tokenizer, set up as its constructor does, with a scripted LLM."""
    model = object.__new__(reference.stepaudio2.StepAudio2)
    model.llm_tokenizer = tokenizer
    model.llm = _ScriptedLLM(answer)
    model.eos_token_id = tokenizer.convert_tokens_to_ids("<|EOT|>")
    return model


def _audio_loader(reference: Reference, clips: dict[str, AudioChunk], monkeypatch: pytest.MonkeyPatch) -> None:
    # StepFun reads audio files with torchaudio (not installed): hand it the same samples we hear.
    monkeypatch.setattr(reference.stepaudio2, "load_audio", lambda name: samples(clips[name]))


@pytest.mark.parametrize(
    "seconds",
    [0.05, 1.0, 1.5, 7.3, 25.0, 25.0 + 0.2, 25.0 + 800 / 16_000, 50.0 + 0.7],
)
def test_log_mel_and_placeholder_counts_equal_stepfuns(reference: Reference, seconds: float) -> None:
    clip = tone(180, seconds, rate_hz=16_000)
    wave = samples(clip)
    ours = utterance_mels(clip)
    theirs = [
        reference.utils.log_mel_spectrogram(wave[i : i + 16_000 * 25], n_mels=128, padding=479)
        for i in range(0, wave.shape[0], 16_000 * 25)
    ]
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected, **TOLERANCE)
        assert placeholder_count(mine.shape[-1]) == reference.utils.compute_token_num(expected.shape[1])


TAILS = [1, 160, 320, 321, 799]
"""Samples after 25 s: under 50 ms, where StepFun's cut leaves a chunk of one placeholder or none."""


@pytest.mark.parametrize("tail", TAILS)
def test_a_tail_under_50_ms_is_cut_as_stepfun_cuts_it(reference: Reference, tail: int) -> None:
    wave = samples(tone(180, 25 + tail / 16_000, rate_hz=16_000))
    ours = utterance_mels(AudioChunk(wave_pcm(wave), 16_000))
    assert chunk_bounds(wave.shape[0]) == [(0, 16_000 * 25), (16_000 * 25, wave.shape[0])]
    for mine, start in zip(ours, (0, 16_000 * 25), strict=True):
        expected = reference.utils.log_mel_spectrogram(wave[start : start + 16_000 * 25], n_mels=128, padding=479)
        torch.testing.assert_close(mine, expected, **TOLERANCE)
        assert placeholder_count(mine.shape[-1]) == reference.utils.compute_token_num(expected.shape[1])
    # What the last ≤50 ms give the model this way: 0 embeddings up to 320 samples, 1 from 321.
    assert placeholder_count(ours[-1].shape[-1]) == (0 if tail <= 320 else 1)


@pytest.mark.parametrize("tail", TAILS)
def test_with_audio_tail_even_the_tail_is_evened_out_with_the_chunk_before_it(reference: Reference, tail: int) -> None:
    total = 16_000 * 25 + tail
    wave = samples(tone(180, total / 16_000, rate_hz=16_000))
    # Both chunks are ≥ 50 ms; each chunk's features are still StepFun's for that chunk.
    bounds = chunk_bounds(total, even_tail=True)
    assert len(bounds) == 2 and all(end - start >= MIN_SAMPLES for start, end in bounds)
    mels = utterance_mels(AudioChunk(wave_pcm(wave), 16_000), even_tail=True)
    for (start, end), mine in zip(bounds, mels, strict=True):
        expected = reference.utils.log_mel_spectrogram(wave[start:end], n_mels=128, padding=479)
        torch.testing.assert_close(mine, expected, **TOLERANCE)
        # The last 50 ms now lie inside a chunk of 12 s or more: 156 embeddings or more around them.
        assert placeholder_count(mine.shape[-1]) == reference.utils.compute_token_num(expected.shape[1]) >= 156


@pytest.mark.parametrize("tail", [1, 321])
async def test_a_question_with_a_short_tail_is_prompted_with_stepfuns_ids(
    engine_factory: EngineFactory,
    speech: Speech,
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
    tail: int,
) -> None:
    wave = samples(tone(200, 25 + tail / 16_000, rate_hz=16_000))
    clip = AudioChunk(wave_pcm(wave), 16_000)
    answer = [*speech.text("好"), t.EOT]
    engine = engine_factory([answer])
    events = [e async for e in engine.respond(ModelRequest("home", (), audio=clip, speak=False))]
    assert "".join(e.text for e in events if isinstance(e, ModelText)) == "好"  # the tail chunk ran through
    entries = engine.history("home")
    ours = [*assemble(entries[:-1]).tokens, *speech.text(prompt.assistant_prefix(False))]

    persona = PersonaSettings(location="广州", dialect="cantonese")  # engine_factory's default
    messages = [
        {"role": "system", "content": prompt.system_prompt(persona, TODAY, with_tools=False)},
        {"role": "human", "content": [{"type": "audio", "audio": "question.wav"}]},
        {"role": "assistant", "content": None},
    ]
    _audio_loader(reference, {"question.wav": clip}, monkeypatch)
    stepfun = _stepfun(reference, tiny_model[1], answer)
    with cuda_is_cpu():
        stepfun(messages)
    assert ours == stepfun.llm.inputs["input_ids"][0].tolist()
    assert ours.count(t.AUDIO_START) == 2 and ours.count(t.AUDIO_PATCH) == 313 + (0 if tail <= 320 else 1)


def wave_pcm(wave: torch.Tensor) -> bytes:
    """Float samples that came from int16 back to int16 bytes (exact)."""
    return (wave.numpy() * 32768.0).round().astype("<i2").tobytes()


def test_a_single_chunk_log_mel_equals_stepfuns_for_odd_lengths(reference: Reference) -> None:
    rng = np.random.default_rng(9)
    for length in (MIN_SAMPLES, 12_345, 16_001):
        wave = torch.from_numpy(rng.uniform(-0.3, 0.3, length).astype(np.float32))
        expected = reference.utils.log_mel_spectrogram(wave, n_mels=128, padding=479)
        torch.testing.assert_close(log_mel(wave), expected, **TOLERANCE)


async def test_prompt_ids_of_a_conversation_with_tools_history_and_input_turns_equal_stepfuns(
    engine_factory: EngineFactory,
    speech: Speech,
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = speech
    filler = [*s.spoken("我查下", list(range(8))), *s.tool_call("get_weather", '{"city": "广州"}'), t.EOT]
    answer = [*s.spoken("广州今日廿一度", list(range(100, 150))), t.EOT]
    closing = [*s.text("唔使客气"), t.EOT]
    engine = engine_factory([filler, answer, closing])
    first = [e async for e in engine.respond(ModelRequest("home", (WEATHER,), audio=UTTERANCE))]
    call = next(e for e in first if isinstance(e, ModelToolCall))
    result = ToolResult(call.call_id, call.name, {"ok": True, "city": "广州", "temperature_c": 21})
    [e async for e in engine.respond(ModelRequest("home", (WEATHER,), tool_results=(result,)))]
    question = "多谢你，听日呢？"
    [e async for e in engine.respond(ModelRequest("home", (WEATHER,), text=question, speak=False))]
    entries = engine.history("home")
    assert [e.role for e in entries] == [
        "system",
        "tools",
        "human",
        "assistant",
        "input",
        "assistant",
        "human",
        "assistant",
    ]
    opening = s.text(prompt.assistant_prefix(False))
    ours = [*assemble(entries[:-1]).tokens, *opening]

    persona = PersonaSettings(location="广州", dialect="cantonese")  # engine_factory's default
    system = prompt.system_prompt(persona, TODAY, with_tools=True)
    tools_json = prompt.tools_turn([WEATHER]).removeprefix("<|BOT|>tool_json_schemas\n").removesuffix("<|EOT|>")
    messages = [
        {"role": "system", "content": system},
        {"role": "tool_json_schemas", "content": tools_json},
        {"role": "human", "content": [{"type": "audio", "audio": "question.wav"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "<tts_start>"}, {"type": "token", "token": filler[:-1]}],
        },
        {"role": "input", "content": prompt.tool_results_text([result])},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "<tts_start>"}, {"type": "token", "token": answer[:-1]}],
        },
        {"role": "human", "content": question},
        {"role": "assistant", "content": None},
    ]
    _audio_loader(reference, {"question.wav": UTTERANCE}, monkeypatch)
    stepfun = _stepfun(reference, tiny_model[1], closing)
    with cuda_is_cpu():
        stepfun(messages)
    theirs = stepfun.llm.inputs["input_ids"][0].tolist()
    assert ours == theirs
    # The audio went in as the same log-mel, with the same length StepFun gives the encoder.
    (mel,) = utterance_mels(UTTERANCE)
    torch.testing.assert_close(stepfun.llm.inputs["wavs"][0], mel, **TOLERANCE)
    assert stepfun.llm.inputs["wav_lens"].tolist() == [mel.shape[-1] - 2]


def test_an_answer_splits_into_the_same_text_and_speech_as_stepfuns(
    speech: Speech,
    tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase],
    reference: Reference,
) -> None:
    tokenizer = tiny_model[1]
    codes = [int(c) for c in np.random.default_rng(4).integers(0, 6561, 57)]
    answer = [*speech.spoken("广州今日廿一度，有啲凉。", codes), *speech.text("Sunny, 21°C."), t.EOT]
    stepfun = _stepfun(reference, tokenizer, answer)
    with cuda_is_cpu():
        _, text, audio = stepfun(
            [{"role": "human", "content": "天气"}, {"role": "assistant", "content": "<tts_start>", "eot": False}]
        )

    parser = TokenStreamParser(lambda ids: tokenizer.decode(list(ids)), in_tts=True)
    events = [e for token in answer for e in parser.feed(token)] + parser.finish()
    assert "".join(e.text for e in events if isinstance(e, ModelText)) == text
    ours = [c for e in events if isinstance(e, ModelSpeech) for c in e.tokens]
    # Both splits pass the pad code 6561 on; the voice drops it (voice.token2wav.speech_pad).
    assert ours == audio and [c for c in audio if c != t.AUDIO_PAD_CODE] == codes
    assert t.AUDIO_PAD_CODE in audio


async def test_with_audio_tail_even_the_engine_hears_the_tail_inside_a_long_chunk(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    options = GenerationOptions.from_settings(LocalModelSettings(audio_tail="even"), "cpu")
    assert options.even_audio_tail
    clip = tone(200, 25 + 1 / 16_000, rate_hz=16_000)
    engine = engine_factory([[*speech.text("好"), t.EOT]], even_audio_tail=True)
    [e async for e in engine.respond(ModelRequest("home", (), audio=clip, speak=False))]
    human = engine.history("home")[-2]
    counts = [placeholder_count(m.shape[-1]) for m in utterance_mels(clip, even_tail=True)]
    assert human.tokens.count(t.AUDIO_PATCH) == sum(counts) and min(counts) >= 156
