""" "Say that again": the last answer plays again without the model generating it twice."""

from __future__ import annotations

from assistant.events import PlaybackStarted, RepeatRequested, TurnEnded
from assistant.ports import ModelDone, ModelText, ModelToolCall, ModelTranscript
from assistant.skills import load_skills
from assistant.voice.replay import ReplayVoice
from support.fakes import FakeVoice, after, silence, speech, timeline, wake_word
from support.rig import Rig, names
from tests.skill_support import deps

ANSWER = [after(0.2, ModelTranscript("明天天气")), after(0.1, ModelText("明天晴，二十度")), after(0, ModelDone())]
QUESTION = timeline(silence(0.4), wake_word(), speech(1.0), silence(1.5))


async def test_asking_the_model_to_repeat_replays_the_recorded_answer() -> None:
    voice = ReplayVoice(FakeVoice(), None)
    skill_deps, _ = deps(voice=voice)
    registry = await load_skills({"voice": {}}, skill_deps)
    rig = Rig(
        rounds=[ANSWER, [after(0.2, ModelToolCall("c1", "repeat_last_answer", {}))], [after(0.1, ModelDone())]],
        tools=registry,
        voice=voice,
        replayer=voice,
    )
    events = await rig.run(timeline(QUESTION, wake_word(), speech(0.8), silence(3)), turns=2)
    first, second = (e.turn_id for e in events if isinstance(e, TurnEnded))
    assert [e.turn_id for e in events if isinstance(e, PlaybackStarted)] == [first, second]
    played = [chunk.seconds for chunk in rig.speaker.played]
    half = len(played) // 2
    assert played[:half] == played[half:], "the second turn played exactly the first answer again"
    assert rig.model.requests[2].tool_results[0].content["ok"] is True
    await registry.aclose()


async def test_repeat_request_from_a_button_plays_the_last_answer_without_the_model() -> None:
    voice = ReplayVoice(FakeVoice(), None)
    rig = Rig(rounds=[ANSWER], voice=voice, replayer=voice)
    events = await rig.run(
        timeline(QUESTION, silence(6)), turns=2, script=[rig.at(6.0, RepeatRequested(source="button"))]
    )
    assert names(events)[-5:] == ["RepeatRequested", "TurnStarted", "PlaybackStarted", "PlaybackFinished", "TurnEnded"]
    assert len(rig.model.requests) == 1, "the model was not asked again"
    half = len(rig.speaker.played) // 2
    assert [c.pcm for c in rig.speaker.played[:half]] == [c.pcm for c in rig.speaker.played[half:]]


async def test_repeat_before_anything_was_said_plays_nothing() -> None:
    voice = ReplayVoice(FakeVoice(), None)
    rig = Rig(voice=voice, replayer=voice)
    events = await rig.run(silence(3), script=[rig.at(1.0, RepeatRequested(source="mqtt"))])
    assert names(events) == ["RepeatRequested", "TurnStarted", "TurnEnded"]
    assert rig.speaker.played == []
