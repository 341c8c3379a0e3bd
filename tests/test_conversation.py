"""Whole conversations through the supervisor and turn, with fakes on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from assistant.errors import ModelError
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    ListeningTimedOut,
    MuteRequested,
    PlaybackFinished,
    ReminderSpoken,
    ReplyCompleted,
    RequestSource,
    SettingChanged,
    SettingRequested,
    SpeechEnded,
    StopRequested,
    ToolCallFinished,
    TurnEnded,
    TurnFailed,
    TurnStarted,
    WakeDetected,
)
from assistant.ports import (
    ModelDone,
    ModelEvent,
    ModelRequest,
    ModelSpeech,
    ModelText,
    ModelToolCall,
    ModelTranscript,
)
from support.fakes import FakeTools, after, silence, speech, stop_word, timeline, wake_word
from support.rig import Rig, names, settings

QUESTION = timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0))


def answer(text: str = "现在三点", seconds_of_speech: float = 2.0) -> list[Any]:
    return [
        after(0.3, ModelTranscript("几点了")),
        after(0.1, ModelText(text)),
        after(0.1, ModelSpeech(tuple(range(round(25 * seconds_of_speech))))),
        after(0.0, ModelDone()),
    ]


async def test_normal_turn_publishes_the_documented_sequence() -> None:
    rig = Rig(rounds=[answer()])
    events = await rig.run(QUESTION)
    assert names(events) == [
        "WakeDetected",
        "TurnStarted",
        "ListeningStarted",
        "SpeechStarted",
        "SpeechEnded",
        "UserTranscript",
        "ReplyText",
        "PlaybackStarted",
        "ReplyCompleted",
        "PlaybackFinished",
        "TurnEnded",
    ]
    turn_ids = {e.turn_id for e in events if not isinstance(e, WakeDetected) and e.turn_id}
    assert turn_ids == {events[0].turn_id}
    assert events[-1] == TurnEnded(turn_id=events[0].turn_id, outcome="completed")
    assert rig.speaker.played_seconds == 0.4 + 2.0  # 4 characters at 0.1 s, 50 tokens at 25 Hz


async def test_the_model_hears_the_question_from_just_before_speech_to_its_end() -> None:
    rig = Rig(rounds=[answer()])
    events = await rig.run(QUESTION)
    heard = rig.model.requests[0].audio
    assert heard is not None
    ended = next(e for e in events if isinstance(e, SpeechEnded))
    # The model starts on the question once 0.16 s of silence follow it (two 80 ms chunks), while the end
    # is still being decided: 1.2 s of speech, that silence, and the 0.15 s start window kept as pre-roll.
    assert rig.model.requests[0].speculative
    assert 1.2 + 0.16 <= heard.seconds <= 1.2 + 0.16 + 0.08 + 0.16
    assert ended.speech_seconds >= 1.2 + 0.3


async def test_tool_call_round_trip_feeds_the_result_back_to_the_model() -> None:
    async def get_weather(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"ok": True, "city": arguments["city"], "temperature_c": 21}

    rig = Rig(
        rounds=[
            [after(0.3, ModelTranscript("广州天气")), after(0.2, ModelToolCall("c1", "get_weather", {"city": "广州"}))],
            [after(0.2, ModelText("广州二十一度")), after(0.1, ModelDone())],
        ],
        tools=FakeTools({"get_weather": get_weather}),
    )
    events = await rig.run(QUESTION)
    assert names(events) == [
        "WakeDetected",
        "TurnStarted",
        "ListeningStarted",
        "SpeechStarted",
        "SpeechEnded",
        "UserTranscript",
        "ToolCallRequested",
        "ToolCallFinished",
        "ReplyText",
        "PlaybackStarted",
        "ReplyCompleted",
        "PlaybackFinished",
        "TurnEnded",
    ]
    second = rig.model.requests[1]
    assert second.audio is None
    assert [r.content for r in second.tool_results] == [{"ok": True, "city": "广州", "temperature_c": 21}]
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    assert finished.ok and finished.call_id == "c1"


async def test_no_speech_after_wake_times_out_without_asking_the_model() -> None:
    rig = Rig(rounds=[answer()])
    events = await rig.run(timeline(silence(0.4), wake_word(), silence(10)))
    assert names(events) == ["WakeDetected", "TurnStarted", "ListeningStarted", "ListeningTimedOut", "TurnEnded"]
    timed_out = next(e for e in events if isinstance(e, ListeningTimedOut))
    assert 5.0 <= timed_out.waited_seconds < 5.1
    assert events[-1].outcome == "no_speech"  # type: ignore[attr-defined]
    assert rig.model.requests == []


async def test_wake_word_during_playback_interrupts_and_starts_a_new_turn() -> None:
    long_answer = answer(seconds_of_speech=8.0)
    rig = Rig(rounds=[long_answer, answer()])
    mic = timeline(QUESTION[:-10], silence(2.0), wake_word(), speech(1.0), silence(3.0))
    events = await rig.run(mic, turns=2)
    assert names(events) == [
        "WakeDetected",
        "TurnStarted",
        "ListeningStarted",
        "SpeechStarted",
        "SpeechEnded",
        "UserTranscript",
        "ReplyText",
        "PlaybackStarted",
        "ReplyCompleted",
        "WakeDetected",
        "PlaybackFinished",
        "TurnEnded",
        "TurnStarted",
        "ListeningStarted",
        "SpeechStarted",
        "SpeechEnded",
        "UserTranscript",
        "ReplyText",
        "PlaybackStarted",
        "ReplyCompleted",
        "PlaybackFinished",
        "TurnEnded",
    ]
    first_end = [e for e in events if isinstance(e, TurnEnded)][0]
    assert first_end.outcome == "interrupted"
    assert [e.interrupted for e in events if isinstance(e, PlaybackFinished)] == [True, False]
    assert rig.speaker.stops, "the speaker was stopped before the turn was cancelled"
    # The first reply had 8.8 s of audio; barely a third of it played.
    assert rig.speaker.played_seconds < 0.4 + 8.0


async def test_stop_word_during_playback_ends_the_turn_interrupted() -> None:
    rig = Rig(rounds=[answer(seconds_of_speech=8.0)])
    mic = timeline(QUESTION[:-10], silence(2.0), stop_word(), silence(2.0))
    events = await rig.run(mic)
    assert names(events)[-5:] == ["PlaybackStarted", "ReplyCompleted", "StopRequested", "PlaybackFinished", "TurnEnded"]
    assert events[-1] == TurnEnded(turn_id=events[0].turn_id, outcome="interrupted")


async def test_stop_during_a_tool_call_cancels_the_tool_and_the_turn() -> None:
    cancelled = asyncio.Event()
    rig_clock_holder: list[Rig] = []

    async def slow_search(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            await rig_clock_holder[0].clock.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"ok": True}

    rig = Rig(
        rounds=[[after(0.3, ModelToolCall("c1", "web_search", {"query": "news"}))], answer()],
        tools=FakeTools({"web_search": slow_search}),
    )
    rig_clock_holder.append(rig)
    events = await rig.run(QUESTION, script=[rig.at(5.0, StopRequested(source="button"))])
    assert names(events)[-5:] == [
        "SpeechEnded",
        "ToolCallRequested",
        "StopRequested",
        "ToolCallFinished",
        "TurnEnded",
    ]
    assert cancelled.is_set()
    assert not next(e for e in events if isinstance(e, ToolCallFinished)).ok
    assert events[-1].outcome == "interrupted"  # type: ignore[attr-defined]
    assert len(rig.model.requests) == 1, "the model is not asked again after an interruption"


async def test_model_failure_plays_the_error_earcon_and_returns_to_idle() -> None:
    rig = Rig(
        settings=settings(conversation={"earcons": True}),
        rounds=[[after(0.5, ModelError("CUDA out of memory"))]],
    )
    events = await rig.run(QUESTION)
    assert names(events) == [
        "WakeDetected",
        "TurnStarted",
        "ListeningStarted",
        "PlaybackStarted",  # wake earcon
        "PlaybackFinished",
        "SpeechStarted",
        "SpeechEnded",
        "TurnFailed",
        "PlaybackStarted",  # error earcon
        "PlaybackFinished",
        "TurnEnded",
    ]
    failed = next(e for e in events if isinstance(e, TurnFailed))
    assert (failed.code, failed.message) == ("model-unavailable", "CUDA out of memory")
    assert events[-1].outcome == "error"  # type: ignore[attr-defined]
    assert rig.state.state == "idle"


async def test_a_recoverable_model_error_is_retried_once() -> None:
    rig = Rig(rounds=[[after(0.2, ModelError("connection reset", recoverable=True))], answer()])
    events = await rig.run(QUESTION)
    assert events[-1].outcome == "completed"  # type: ignore[attr-defined]
    assert len(rig.model.requests) == 2


async def test_a_server_that_asks_to_wait_is_retried_after_its_retry_after() -> None:
    busy = ModelError("the model server is struggling (HTTP 429)", recoverable=True, retry_after_seconds=3.0)
    rig = Rig(rounds=[[after(0.2, busy)], answer()])
    asked_at: list[float] = []
    respond = rig.model.respond

    def timed(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        asked_at.append(rig.clock.now())
        return respond(request)

    rig.model.respond = timed  # type: ignore[method-assign]
    events = await rig.run(QUESTION)
    assert events[-1].outcome == "completed"  # type: ignore[attr-defined]
    assert len(asked_at) == 2 and asked_at[1] - asked_at[0] >= 0.2 + 3.0


async def test_a_server_that_asks_to_wait_longer_than_a_person_would_fails_the_turn_at_once() -> None:
    busy = ModelError("the model server is struggling (HTTP 429)", recoverable=True, retry_after_seconds=120.0)
    rig = Rig(rounds=[[after(0.2, busy)], answer()])
    events = await rig.run(QUESTION)
    failed = next(e for e in events if isinstance(e, TurnFailed))
    assert failed.message.endswith("it asks to wait 120 s")
    assert len(rig.model.requests) == 1


async def test_follow_up_lets_the_user_answer_without_the_wake_word() -> None:
    rig = Rig(settings=settings(conversation={"follow_up_seconds": 4.0}), rounds=[answer(), answer("好的")])
    mic = timeline(QUESTION[:-10], silence(4.0), speech(1.0), silence(8.0))
    events = await rig.run(mic, turns=3)
    started = [e for e in events if isinstance(e, TurnStarted)]
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert [s.trigger for s in started] == ["wake", "follow_up", "follow_up"]
    assert [e.outcome for e in ended] == ["completed", "completed", "no_speech"]
    assert sum(isinstance(e, WakeDetected) for e in events) == 1
    assert rig.model.requests[1].conversation_id == rig.model.requests[0].conversation_id


async def test_announcement_during_a_turn_waits_for_the_turn_to_end() -> None:
    rig = Rig(rounds=[answer(seconds_of_speech=3.0)])
    events = await rig.run(
        QUESTION, turns=2, script=[rig.at(3.0, AnnounceRequested(text="该吃药了", source="scheduler"))]
    )
    sequence = names(events)
    assert sequence.index("AnnounceRequested") < sequence.index("TurnEnded")
    assert sequence[sequence.index("TurnEnded") + 1 :] == [
        "TurnStarted",
        "PlaybackStarted",
        "PlaybackFinished",
        "TurnEnded",
    ]
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert [e.outcome for e in ended] == ["completed", "completed"]
    assert [e.trigger for e in events if isinstance(e, TurnStarted)] == ["wake", "announce"]


async def test_a_reminder_is_reported_spoken_only_after_its_announcement_played() -> None:
    """The store writes it down as fired then, so a kill while it waited behind the turn loses nothing."""
    rig = Rig(rounds=[answer(seconds_of_speech=3.0)])
    events = await rig.run(
        QUESTION,
        turns=3,
        script=[
            rig.at(3.0, AnnounceRequested(text="该吃药了", source="scheduler", reminder_id="r1")),
            rig.at(3.1, AnnounceRequested(text="门铃响了", source="mqtt")),
        ],
    )
    sequence = names(events)
    assert sequence.count("ReminderSpoken") == 1
    assert [e.reminder_id for e in events if isinstance(e, ReminderSpoken)] == ["r1"]
    ends = [i for i, name in enumerate(sequence) if name == "TurnEnded"]
    assert sequence.index("ReminderSpoken") == ends[1] + 1, "right after the reminder's own turn, not before"


async def test_mute_stops_listening_for_the_wake_word() -> None:
    rig = Rig(rounds=[answer()])
    mic = timeline(silence(1.0), wake_word(), speech(1.0), silence(2.0))
    events = await rig.run(
        mic,
        script=[rig.at(0.5, MuteRequested(muted=True))],
        until=lambda events: rig.clock.now() > 5.0,
    )
    assert "WakeDetected" not in names(events)
    assert rig.state.state == "muted"


async def test_every_turn_started_has_exactly_one_turn_ended() -> None:
    rig = Rig(
        settings=settings(conversation={"follow_up_seconds": 2.0}),
        rounds=[answer(seconds_of_speech=5.0), [after(0.2, ModelError("boom"))], answer()],
    )
    mic = timeline(
        QUESTION[:-10], silence(1.0), wake_word(), speech(0.8), silence(1.5), wake_word(), speech(1.0), silence(9)
    )
    events = await rig.run(mic, until=lambda events: rig.clock.now() > 25)
    started = [e.turn_id for e in events if isinstance(e, TurnStarted)]
    ended = [e.turn_id for e in events if isinstance(e, TurnEnded)]
    assert len(started) >= 3
    assert sorted(started) == sorted(ended)
    assert len(set(started)) == len(started)


async def test_a_question_from_home_assistant_is_answered_to_it_without_a_sound_at_the_box() -> None:
    """An ask from HA (Wyoming, MQTT) runs a turn with the asker's id; the box stays silent."""
    rig = Rig(rounds=[[after(0.2, ModelText("八点")), after(0, ModelDone())]])
    events = await rig.run(
        silence(5), script=[rig.at(1.0, AskRequested(text="几点了", source="ha", turn_id="wyoming-7"))]
    )
    assert names(events) == ["AskRequested", "TurnStarted", "ReplyText", "ReplyCompleted", "TurnEnded"]
    assert {e.turn_id for e in events if names([e])} == {"wyoming-7"}
    assert ReplyCompleted(turn_id="wyoming-7", text="八点") in events
    assert events[-1] == TurnEnded(turn_id="wyoming-7", outcome="completed")
    assert rig.model.requests[0].text == "几点了" and rig.model.requests[0].audio is None
    assert not rig.model.requests[0].speak, "no speech tokens are asked for an answer nobody hears"
    assert rig.speaker.played_seconds == 0


async def test_a_failing_question_from_home_assistant_plays_no_error_earcon_at_the_box() -> None:
    """The asker learns of the failure; the room hears nothing."""
    rig = Rig(settings=settings(conversation={"earcons": True}), rounds=[[after(0.2, ModelError("boom"))]])
    events = await rig.run(silence(5), script=[rig.at(1.0, AskRequested(text="几点了", source="mqtt"))])
    assert [e.code for e in events if isinstance(e, TurnFailed)] == ["model-unavailable"]
    assert events[-1].outcome == "error"  # type: ignore[attr-defined]
    assert rig.speaker.played_seconds == 0


@pytest.mark.parametrize(
    ("source", "speak_remote_answers"), [("mqtt", True), ("ha", True), ("cli", False), ("api", False)]
)
async def test_a_question_is_spoken_when_the_setting_asks_or_it_was_not_asked_from_home_assistant(
    source: RequestSource, speak_remote_answers: bool
) -> None:
    """conversation.speak_remote_answers plays HA's answers too; a local typed question is always spoken."""
    rig = Rig(
        settings=settings(conversation={"speak_remote_answers": speak_remote_answers}),
        rounds=[[after(0.2, ModelText("八点")), after(0, ModelDone())]],
    )
    events = await rig.run(silence(5), script=[rig.at(1.0, AskRequested(text="几点了", source=source))])
    assert names(events) == [
        "AskRequested",
        "TurnStarted",
        "ReplyText",
        "PlaybackStarted",
        "ReplyCompleted",
        "PlaybackFinished",
        "TurnEnded",
    ]
    assert rig.speaker.played_seconds > 0 and rig.model.requests[0].speak


async def test_choosing_a_wake_word_ignores_the_others_and_reports_the_change() -> None:
    rig = Rig(rounds=[answer()])
    rig.wake.name = "alexa"
    events = await rig.run(
        QUESTION,
        script=[rig.at(0.1, SettingRequested(key="wake_word", value="hey_jarvis", source="mqtt"))],
        until=lambda events: rig.clock.now() > 6,
        wake_words=("alexa", "hey_jarvis"),
    )
    assert SettingChanged(key="wake_word", value="hey_jarvis") in events
    assert "WakeDetected" not in names(events), "alexa fired but hey_jarvis is the chosen word"


async def test_an_unknown_setting_value_changes_nothing() -> None:
    rig = Rig(rounds=[answer()])
    events = await rig.run(
        QUESTION, script=[rig.at(0.1, SettingRequested(key="dialect", value="klingon", source="mqtt"))]
    )
    assert not any(isinstance(e, SettingChanged) for e in events)
    assert events[-1].outcome == "completed"  # type: ignore[attr-defined]


async def test_choosing_a_dialect_reaches_the_model_and_the_voice() -> None:
    rig = Rig(rounds=[answer()])
    events = await rig.run(
        QUESTION, script=[rig.at(0.1, SettingRequested(key="dialect", value="cantonese", source="ha"))]
    )
    assert SettingChanged(key="dialect", value="cantonese") in events
    assert rig.model.dialects == ["cantonese"]
    assert rig.voice.dialects == ["cantonese"]  # type: ignore[attr-defined]


async def test_a_household_on_the_tts_voice_asks_the_model_for_text_only() -> None:
    rig = Rig(rounds=[answer(), answer()], speak=False)
    await rig.run(QUESTION)
    assert [request.speak for request in rig.model.requests] == [False]
