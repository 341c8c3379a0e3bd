"""Say that again, and speak slower: the last answer is kept and replayed, stretched without a pitch change."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import numpy as np
import pytest

from assistant.audio import AudioChunk, join, tone
from assistant.events import Event, SpeakingSpeedChanged
from assistant.ports import ModelText, ReplyPiece
from assistant.skills import SkillDeps
from assistant.tasks import MonotonicClock
from assistant.voice import ReplayTools, ReplayVoice, SoxTempo
from skills.voice import VoiceSkill

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


class ToneVoice:
    """Speaks every text piece as a 440 Hz tone of 0.1 s per character, in 0.2 s chunks."""

    async def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        async for piece in pieces:
            if isinstance(piece, ModelText):
                audio = tone(440.0, 0.1 * len(piece.text), rate_hz=24_000, level=0.5)
                for start in range(0, audio.samples, 4800):
                    yield AudioChunk(audio.pcm[2 * start : 2 * (start + 4800)], 24_000)


async def say(*texts: str) -> AsyncIterator[ReplyPiece]:
    for text in texts:
        yield ModelText(text)


async def heard(audio: AsyncIterator[AudioChunk]) -> AudioChunk:
    return join([chunk async for chunk in audio])


def dominant_hz(audio: AudioChunk) -> float:
    samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / audio.rate_hz)[np.argmax(spectrum)])


async def test_the_last_answer_is_remembered_with_its_text() -> None:
    voice = ReplayVoice(ToneVoice(), None)
    assert voice.last is None
    spoken = await heard(voice.speak(say("明天", "晴")))
    assert voice.last is not None
    assert voice.last.text == "明天晴"
    assert voice.last.audio == spoken


async def test_repeat_last_answer_plays_it_again_before_anything_else() -> None:
    voice = ReplayVoice(ToneVoice(), None)
    tools = ReplayTools(voice)
    assert (await tools.repeat_last_answer())["ok"] is False  # nothing said yet
    first = await heard(voice.speak(say("明天晴")))
    assert (await tools.repeat_last_answer())["ok"] is True
    # The model's short follow-up ("好的") comes after the replay and does not replace the answer.
    again = await heard(voice.speak(say("好")))
    assert again.pcm.startswith(first.pcm)
    assert again.samples == first.samples + 2400
    assert voice.last is not None and voice.last.text == "明天晴"


async def test_a_queued_replay_plays_even_when_the_model_adds_nothing() -> None:
    voice = ReplayVoice(ToneVoice(), None)
    first = await heard(voice.speak(say("明天晴")))
    assert voice.queue_replay(slower=False) and voice.replay_pending
    assert (await heard(voice.speak(say()))) == first
    assert not voice.replay_pending
    voice.queue_replay(slower=False)
    voice.cancel_replay()
    assert (await heard(voice.speak(say("好")))).samples == 2400


async def test_an_interrupted_answer_can_still_be_asked_for_again() -> None:
    voice = ReplayVoice(ToneVoice(), None)
    stream = voice.speak(say("一二三四五六七八九十"))
    await anext(stream)
    await stream.aclose()
    assert voice.last is not None and voice.last.audio.samples == 4800


@needs_sox
async def test_a_slower_replay_is_longer_and_keeps_its_pitch() -> None:
    voice = ReplayVoice(ToneVoice(), SoxTempo(), slower_speed=0.75)
    normal = await heard(voice.speak(say("一二三四五六七八九十")))
    assert (await ReplayTools(voice).repeat_last_answer(slower=True))["ok"]
    slow = await heard(voice.speak(say()))
    assert slow.samples == pytest.approx(normal.samples / 0.75, rel=0.03)
    assert dominant_hz(slow) == pytest.approx(440.0, abs=5.0)


@needs_sox
async def test_speaking_speed_can_be_lowered_and_restored() -> None:
    voice = ReplayVoice(ToneVoice(), SoxTempo(), slower_speed=0.8)
    tools = ReplayTools(voice)
    normal = await heard(voice.speak(say("一二三四五")))
    assert (await tools.set_speaking_speed("slower")) == {"ok": True, "speed": 0.8}
    slower = await heard(voice.speak(say("一二三四五")))
    assert slower.samples > normal.samples * 1.15
    assert (await tools.set_speaking_speed("normal")) == {"ok": True, "speed": 1.0}
    assert (await tools.set_speaking_speed("sideways"))["ok"] is False
    assert (await heard(voice.speak(say("一二三四五")))).samples == normal.samples


async def test_the_voice_skill_reports_a_new_speaking_speed_so_it_is_kept_across_restarts() -> None:
    """set_speaking_speed publishes SpeakingSpeedChanged (the preference store keeps it); a refusal does not."""
    published: list[Event] = []
    voice = ReplayVoice(ToneVoice(), None, slower_speed=0.8)
    deps = SkillDeps(publish=published.append, clock=MonotonicClock(), voice=voice)
    skill = VoiceSkill(VoiceSkill.Config(), deps)
    assert (await skill.set_speaking_speed("slower"))["ok"]
    assert (await skill.set_speaking_speed("sideways"))["ok"] is False  # type: ignore[arg-type]
    assert published == [SpeakingSpeedChanged(speed=0.8)]
    voice.set_speed(3.0)
    assert voice.speed == 1.5, "a kept speed out of range is brought back within 0.5-1.5"
