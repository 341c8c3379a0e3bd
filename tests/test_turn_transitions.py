"""Only one turn ever runs, and every started turn ends, even when requests race each other."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.bus import Envelope
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    Event,
    ListenRequested,
    MuteRequested,
    TurnEnded,
    TurnStarted,
    WakeDetected,
)
from support.fakes import FakeClock, FakeMicrophone, silence, speech, timeline, wake_word
from support.rig import Rig
from tests.test_conversation import QUESTION, answer


def most_at_once(events: Sequence[Event]) -> int:
    running = worst = 0
    for event in events:
        running += isinstance(event, TurnStarted) - isinstance(event, TurnEnded)
        worst = max(worst, running)
    return worst


def balanced(events: Sequence[Event]) -> bool:
    started = [e.turn_id for e in events if isinstance(e, TurnStarted)]
    ended = [e.turn_id for e in events if isinstance(e, TurnEnded)]
    return sorted(started) == sorted(ended)


async def test_barge_in_with_a_queued_announcement_runs_one_turn_at_a_time() -> None:
    rig = Rig(rounds=[answer(seconds_of_speech=8.0), answer()])
    mic = timeline(QUESTION[:-10], silence(2.0), wake_word(), speech(1.0), silence(6.0))
    events = await rig.run(mic, turns=3, script=[rig.at(3.0, AnnounceRequested(text="该吃药了", source="scheduler"))])
    assert most_at_once(events) == 1
    triggers = [e.trigger for e in events if isinstance(e, TurnStarted)]
    assert triggers == ["wake", "wake", "announce"], "the reminder waits for the new question's answer"


async def test_a_request_arriving_while_a_barge_in_is_under_way_leaks_no_turn() -> None:
    rig = Rig(rounds=[answer(seconds_of_speech=8.0), answer(), answer()])
    wakes: list[int] = []

    def press_the_button_on_the_second_wake(envelope: Envelope) -> None:
        if isinstance(envelope.event, WakeDetected):
            wakes.append(1)
            if len(wakes) == 2:
                rig.bus.publish(ListenRequested(source="button"))

    rig.bus.tap(press_the_button_on_the_second_wake)
    mic = timeline(QUESTION[:-10], silence(2.0), wake_word(), speech(1.0), silence(30.0))
    events = await rig.run(mic, until=lambda _: rig.clock.now() > 40.0)
    assert most_at_once(events) == 1
    assert balanced(events)


async def test_listen_requested_while_muted_starts_nothing_and_announcements_still_play() -> None:
    rig = Rig()
    events = await rig.run(
        silence(1.0),
        script=[
            rig.at(0.5, MuteRequested(muted=True)),
            rig.at(1.0, ListenRequested(source="button")),
            rig.at(2.0, AnnounceRequested(text="该吃药了", source="scheduler")),
        ],
        until=lambda _: rig.clock.now() > 10.0,
    )
    assert [e.trigger for e in events if isinstance(e, TurnStarted)] == ["announce"]
    assert balanced(events)


async def test_a_microphone_that_stops_delivering_does_not_keep_a_turn_listening() -> None:
    rig = Rig()
    clock: FakeClock = rig.clock

    class DeadAfterWake(FakeMicrophone):
        """A USB microphone unplugged right after the wake word: no chunk ever arrives again."""

        async def chunks(self):  # type: ignore[no-untyped-def]
            async for chunk in super().chunks():
                yield chunk
            await clock.sleep(10_000)

    events = await rig.run(
        [],
        until=lambda _: rig.clock.now() > 40.0,
        source=DeadAfterWake(clock, timeline(silence(0.4), wake_word()), then_silence=False),
    )
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert [e.outcome for e in ended] == ["no_speech"]
    assert balanced(events)


async def test_an_announcement_followed_at_once_by_a_question_is_kept_and_spoken_after_it() -> None:
    rig = Rig(rounds=[answer()])

    async def both() -> None:
        await rig.clock.sleep(1.0)
        rig.bus.publish(AnnounceRequested(text="该吃药了", source="scheduler"))
        rig.bus.publish(AskRequested(text="几点了", turn_id="ha-1", source="ha"))

    events = await rig.run(silence(1.0), script=[both], until=lambda _: rig.clock.now() > 20.0)
    assert "announce" in [e.trigger for e in events if isinstance(e, TurnStarted)], "the reminder was spoken"
    assert balanced(events)


async def test_two_questions_at_once_each_get_their_turn_ended() -> None:
    rig = Rig(rounds=[answer(), answer()])

    async def both() -> None:
        await rig.clock.sleep(1.0)
        rig.bus.publish(AskRequested(text="几点了", turn_id="ha-1", source="ha"))
        rig.bus.publish(AskRequested(text="天气", turn_id="ha-2", source="ha"))

    events = await rig.run(silence(1.0), script=[both], until=lambda _: rig.clock.now() > 20.0)
    assert {e.turn_id for e in events if isinstance(e, TurnEnded)} == {"ha-1", "ha-2"}
    assert most_at_once(events) == 1
