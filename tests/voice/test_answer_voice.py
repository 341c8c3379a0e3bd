"""The Voice port: speech tokens through token2wav as they stream, text through the TTS, per mode."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import AudioChunk
from assistant.config import PersonaSettings, VoiceSettings
from assistant.ports import ModelAudio, ModelSpeech, ModelText, ReplyPiece
from assistant.voice import AnswerVoice, ReplayVoice, VoiceUnavailable, build_voice
from assistant.voice.speech import TokenSpeaker
from tests.voice.conftest import PROMPT_WAV

pytest.importorskip("torch")
pytestmark = pytest.mark.models


class RecordingTts:
    """A TTS that renders one 22.05 kHz chunk per sentence and remembers what it was asked."""

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def synthesize(self, text: str) -> AudioChunk:
        self.spoken.append(text)
        return AudioChunk(b"\x01\x00" * 2205, 22_050)


@pytest.fixture(scope="module")
def speaker(token2wav_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TokenSpeaker:
    from assistant.voice.token2wav.engine import StreamSchedule, Token2Wav

    engine = Token2Wav.load(
        token2wav_dir,
        device="cpu",
        cache_dir=tmp_path_factory.mktemp("voices"),
        schedule=StreamSchedule(first_chunk_tokens=5, chunk_tokens=10),
    )
    speaker = TokenSpeaker(engine, PROMPT_WAV)
    speaker.prepare()
    return speaker


async def pieces(*items: ReplyPiece, gap: float = 0.0) -> AsyncIterator[ReplyPiece]:
    for item in items:
        if gap:
            await asyncio.sleep(gap)
        yield item


def speech(count: int, seed: int = 0) -> ModelSpeech:
    return ModelSpeech(tuple(np.random.default_rng(seed).integers(0, 6561, count).tolist()))


async def collect(audio: AsyncIterator[AudioChunk]) -> list[AudioChunk]:
    return [chunk async for chunk in audio]


async def test_auto_speaks_speech_tokens_and_keeps_text_as_captions(speaker: TokenSpeaker) -> None:
    tts = RecordingTts()
    voice = AnswerVoice("auto", speaker, tts)
    # The model's interleaving: a little text, then the speech tokens for it.
    chunks = await collect(voice.speak(pieces(ModelText("明天"), speech(12), ModelText("晴。"), speech(12, 1))))
    assert tts.spoken == []
    assert {c.rate_hz for c in chunks} == {24_000}
    assert sum(c.samples for c in chunks) == 24 * 960


async def test_auto_does_not_speak_a_short_first_sentence_twice(speaker: TokenSpeaker) -> None:
    tts = RecordingTts()
    voice = AnswerVoice("auto", speaker, tts)
    await collect(voice.speak(pieces(ModelText("好。"), speech(12), ModelText("明天晴。"), speech(12, 1))))
    assert tts.spoken == []


async def test_auto_speaks_text_through_the_tts_when_no_speech_comes(speaker: TokenSpeaker) -> None:
    tts = RecordingTts()
    voice = AnswerVoice("auto", speaker, tts)
    chunks = await collect(voice.speak(pieces(ModelText("定时器到了。"), ModelText("请关火。"), ModelText("谢谢"))))
    assert tts.spoken == ["定时器到了。", "请关火。", "谢谢"]
    assert [c.rate_hz for c in chunks] == [22_050] * 3


async def test_model_mode_speaks_an_announcement_through_the_tts_rather_than_stay_silent(
    speaker: TokenSpeaker,
) -> None:
    tts = RecordingTts()
    chunks = await collect(AnswerVoice("model", speaker, tts).speak(pieces(ModelText("该吃药了。"))))
    assert tts.spoken == ["该吃药了。"] and len(chunks) == 1


async def test_tts_mode_ignores_speech_tokens_and_rendered_audio(speaker: TokenSpeaker) -> None:
    tts = RecordingTts()
    rendered = ModelAudio(AudioChunk(b"\x00\x00" * 100, 24_000))
    chunks = await collect(AnswerVoice("tts", speaker, tts).speak(pieces(ModelText("你好。"), speech(12), rendered)))
    assert tts.spoken == ["你好。"]
    assert [c.rate_hz for c in chunks] == [22_050]


async def test_padding_codes_from_the_model_are_dropped(speaker: TokenSpeaker) -> None:
    voice = AnswerVoice("model", speaker, None)
    chunks = await collect(voice.speak(pieces(ModelSpeech((1, 2, 6561, 3, 4, 6561, 5, 6, -1, 9999)))))
    assert sum(c.samples for c in chunks) == 6 * 960  # the pads and the codes outside the codebook carry no sound


async def test_with_speech_pad_stepfun_a_pad_fails_the_voice_as_in_stepfuns_code_and_the_tts_speaks(
    token2wav_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from assistant.voice.token2wav.engine import StreamSchedule, Token2Wav

    engine = Token2Wav.load(
        token2wav_dir, device="cpu", cache_dir=tmp_path, schedule=StreamSchedule(first_chunk_tokens=5, chunk_tokens=10)
    )
    tts = RecordingTts()
    voice = AnswerVoice("auto", TokenSpeaker(engine, PROMPT_WAV, speech_pad="stepfun"), tts)
    with caplog.at_level(logging.WARNING):
        chunks = await collect(voice.speak(pieces(ModelText("晴。"), ModelSpeech((1, 2, 3, 6561, 4, 5, 6, 7)))))
    assert "token2wav failed" in caplog.text and "speech codes must be 0..6560" in caplog.text
    assert tts.spoken == ["晴。"] and [c.rate_hz for c in chunks] == [22_050]


async def test_the_first_audio_comes_while_the_model_is_still_generating(speaker: TokenSpeaker) -> None:
    voice = AnswerVoice("model", speaker, None)
    arrivals: list[float] = []
    fed_all_at: list[float] = []

    async def slow_model() -> AsyncIterator[ReplyPiece]:
        for i in range(8):
            yield speech(5, seed=i)
            await asyncio.sleep(0.05)
        fed_all_at.append(time.monotonic())

    async for _ in voice.speak(slow_model()):
        arrivals.append(time.monotonic())
    assert arrivals[0] < fed_all_at[0]
    assert len(arrivals) >= 3


async def test_cancelling_playback_stops_synthesis_promptly(speaker: TokenSpeaker) -> None:
    voice = AnswerVoice("model", speaker, None)
    started = asyncio.Event()

    async def endless() -> AsyncIterator[ReplyPiece]:
        seed = 0
        while True:
            seed += 1
            yield speech(10, seed)
            started.set()
            await asyncio.sleep(0)

    async def play() -> None:
        async for _ in voice.speak(endless()):
            pass

    task = asyncio.create_task(play())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker gave up at its next Euler step: a new answer starts without waiting for the old one, which
    # is endless, so the new answer arriving at all shows it; the limit only bounds a broken run.
    chunks = await asyncio.wait_for(collect(voice.speak(pieces(speech(8)))), 300)
    assert sum(c.samples for c in chunks) == 8 * 960


def test_build_voice_falls_back_to_tts_in_auto_mode_without_weights(tmp_path: Path) -> None:
    voice = build_voice(VoiceSettings(mode="auto"), PersonaSettings(), tmp_path)
    assert isinstance(voice, ReplayVoice)
    with pytest.raises(VoiceUnavailable, match="lacks flow.pt"):
        build_voice(VoiceSettings(mode="model"), PersonaSettings(), tmp_path)


async def test_build_voice_loads_token2wav_with_the_default_prompt(token2wav_dir: Path, tmp_path: Path) -> None:
    settings = VoiceSettings.model_validate(
        {"mode": "auto", "token2wav": {"path": str(token2wav_dir), "device": "cpu", "cache_dir": str(tmp_path)}}
    )
    voice = build_voice(settings, PersonaSettings(), None)
    chunks = await collect(voice.speak(pieces(speech(9))))
    assert {c.rate_hz for c in chunks} == {24_000}
    assert sum(c.samples for c in chunks) == 9 * 960
    cached = await asyncio.to_thread(lambda: list(tmp_path.glob("prompt-*.npz")))
    assert cached  # the prompt is cached for the next start


class BrokenSpeaker:
    """A token2wav whose weights turn out unusable at the first answer."""

    async def open(self, stop: object) -> object:
        from assistant.voice import SpeechError

        raise SpeechError("token2wav failed: CUDA out of memory")


async def test_auto_speaks_the_text_when_token2wav_fails() -> None:
    tts = RecordingTts()
    voice = AnswerVoice("auto", BrokenSpeaker(), tts)  # type: ignore[arg-type]
    chunks = await collect(voice.speak(pieces(ModelText("明天"), speech(12), ModelText("晴。"), speech(12, 1))))
    assert tts.spoken == ["明天晴。"]
    assert [c.rate_hz for c in chunks] == [22_050]


async def test_an_unusable_voice_prompt_falls_back_to_the_tts_and_is_not_retried(
    token2wav_dir: Path, tmp_path: Path
) -> None:
    from assistant.audio import silence, write_wav
    from assistant.voice import SpeechError
    from assistant.voice.token2wav.engine import Token2Wav

    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, silence(3.0))
    speaker = TokenSpeaker(Token2Wav.load(token2wav_dir, device="cpu"), quiet)
    with pytest.raises(SpeechError, match="silent"):
        await speaker.prepare_async()
    tts = RecordingTts()
    voice = AnswerVoice("auto", speaker, tts)
    for _ in range(2):
        chunks = await collect(voice.speak(pieces(ModelText("明天晴。"), speech(12))))
        assert [c.rate_hz for c in chunks] == [22_050]
    assert tts.spoken == ["明天晴。", "明天晴。"]


class _BrokenTokens:
    """token2wav failing on its first tokens (a CUDA out-of-memory, say)."""

    async def open(self, stop: object) -> object:
        from assistant.voice.errors import SpeechError

        raise SpeechError("CUDA out of memory")


class _RecordingTts:
    def __init__(self) -> None:
        self.said: list[str] = []

    async def synthesize(self, text: str) -> AudioChunk:
        self.said.append(text)
        return AudioChunk(b"\0\0" * 10, 22_050)


async def test_when_token2wav_fails_the_tts_says_the_words_in_their_order() -> None:
    async def pieces() -> AsyncIterator[ReplyPiece]:
        yield ModelText("今天天气很好。明天")
        yield ModelSpeech((1, 2, 3))
        yield ModelText("会下雨。")

    tts = _RecordingTts()
    voice = AnswerVoice("auto", _BrokenTokens(), tts)  # type: ignore[arg-type]
    async for _ in voice.speak(pieces()):
        pass
    assert "".join(tts.said) == "今天天气很好。明天会下雨。"
