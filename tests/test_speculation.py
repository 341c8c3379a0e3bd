"""The model starts on the question while the end of speech is still being decided, and never plays early."""

from __future__ import annotations

from assistant.config import Settings
from assistant.errors import ModelError
from assistant.events import PlaybackStarted, ReplyText, SpeechEnded, StopRequested, TurnEnded, UserTranscript
from assistant.ports import ModelDone, ModelText, ModelTranscript
from support.fakes import after, silence, speech, timeline, wake_word
from support.rig import Rig


def answer(text: str = "好的") -> list[object]:
    return [after(0.05, ModelTranscript("几点了")), after(0.05, ModelText(text)), after(0.0, ModelDone("stop"))]


def settings(**endpointing: object) -> Settings:
    return Settings.model_validate({"endpointing": {"learn_pauses": False, **endpointing}})


async def test_the_answer_waits_for_the_end_of_speech_though_the_model_answered_sooner() -> None:
    rig = Rig(settings=settings(end_silence_seconds=1.0, hold_silence_seconds=1.0), rounds=[answer()])
    events = await rig.run(timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0)))
    ended = events.index(next(e for e in events if isinstance(e, SpeechEnded)))
    transcript = events.index(next(e for e in events if isinstance(e, UserTranscript)))
    played = events.index(next(e for e in events if isinstance(e, PlaybackStarted) and e.kind == "reply"))
    assert rig.model.requests[0].speculative
    assert len(rig.model.requests) == 1, "the speculative round was the answer"
    assert ended < transcript < played, "nothing of the speculative round is published or played before the end"
    assert rig.model.retracted == []


async def test_a_user_who_goes_on_after_a_short_pause_gets_a_fresh_round_on_the_whole_question() -> None:
    slow = [after(1.0, ModelTranscript("几点")), after(0.05, ModelText("半句")), after(0.0, ModelDone("stop"))]
    rig = Rig(settings=settings(), rounds=[slow, answer("整句")])
    events = await rig.run(timeline(silence(0.4), wake_word(), speech(0.8), silence(0.24), speech(0.8), silence(3.0)))
    assert rig.model.retracted == ["default"], "the round started on half the question was taken back"
    assert [r.speculative for r in rig.model.requests] == [True, True]
    first, second = (r.audio for r in rig.model.requests)
    assert first is not None and second is not None and second.seconds > first.seconds + 0.8
    assert rig.model.cancelled == 1, "the round on half the question was stopped"
    # The fake plays a taken-back round's script again for the next request: the same question, whole.
    replies = [e.text for e in events if isinstance(e, ReplyText)]
    assert replies == ["半句"]
    assert events[-1] == TurnEnded(turn_id=events[-1].turn_id, outcome="completed")


async def test_speculation_can_be_turned_off() -> None:
    rig = Rig(settings=settings(speculate_seconds=0.0), rounds=[answer()])
    await rig.run(timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0)))
    assert [r.speculative for r in rig.model.requests] == [False]


async def test_a_speculative_round_that_fails_recoverably_is_asked_again_once_the_end_is_decided() -> None:
    failing = [after(0.05, ModelError("connection reset", recoverable=True))]
    rig = Rig(settings=settings(), rounds=[failing, answer("好的")])
    events = await rig.run(timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0)))
    assert [r.speculative for r in rig.model.requests] == [True, False]
    assert [e.text for e in events if isinstance(e, ReplyText)] == ["好的"]
    assert events[-1] == TurnEnded(turn_id=events[-1].turn_id, outcome="completed")


async def test_a_turn_stopped_while_the_model_speculates_takes_the_round_back() -> None:
    slow = [after(5.0, ModelText("太晚了")), after(0.0, ModelDone("stop"))]
    rig = Rig(settings=settings(end_silence_seconds=1.0, hold_silence_seconds=1.0), rounds=[slow])
    mic = timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0))
    # 0.48 s of wake word and lead, 1.2 s of speech, then 0.16 s of silence: the round has started.
    events = await rig.run(mic, script=[rig.at(2.2, StopRequested(source="button"))])
    assert rig.model.requests[0].speculative
    assert rig.model.cancelled == 1
    assert rig.model.retracted == ["default"]
    assert not any(isinstance(e, ReplyText) for e in events)
    assert events[-1] == TurnEnded(turn_id=events[-1].turn_id, outcome="interrupted")
