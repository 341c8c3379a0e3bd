"""The assistant state is a pure fold over events."""

from __future__ import annotations

from functools import reduce

from assistant.events import (
    ConnectionChanged,
    Event,
    ListeningStarted,
    MuteChanged,
    PlaybackFinished,
    PlaybackStarted,
    SpeechEnded,
    TurnEnded,
    TurnFailed,
    TurnStarted,
)
from assistant.state import AssistantState, Snapshot, fold


def state_after(*events: Event) -> AssistantState:
    return reduce(fold, events, Snapshot()).state


def test_a_turn_walks_through_listening_thinking_speaking_and_back_to_idle() -> None:
    steps = [
        TurnStarted(trigger="wake"),
        ListeningStarted(),
        SpeechEnded(speech_seconds=1.0),
        PlaybackStarted(kind="reply"),
        TurnEnded(outcome="completed"),
    ]
    seen = [state_after(*steps[: i + 1]) for i in range(len(steps))]
    assert seen == ["listening", "listening", "thinking", "speaking", "idle"]


def test_earcons_do_not_count_as_speaking() -> None:
    assert state_after(TurnStarted(trigger="wake"), PlaybackStarted(kind="earcon")) == "listening"
    assert state_after(TurnStarted(trigger="wake"), PlaybackFinished(kind="earcon", interrupted=False)) == "listening"


def test_muted_shows_when_idle_and_a_failure_shows_until_the_turn_ends() -> None:
    assert state_after(MuteChanged(muted=True)) == "muted"
    assert state_after(MuteChanged(muted=True), MuteChanged(muted=False)) == "idle"
    assert state_after(TurnStarted(trigger="wake"), TurnFailed(code="x", message="y")) == "error"
    assert state_after(TurnStarted(trigger="wake"), TurnFailed(code="x", message="y"), TurnEnded(outcome="error")) == (
        "idle"
    )


def test_a_lost_microphone_is_an_error_until_it_returns() -> None:
    lost = ConnectionChanged(service="microphone", connected=False, detail="unplugged")
    back = ConnectionChanged(service="microphone", connected=True)
    assert state_after(lost) == "error"
    assert state_after(lost, back) == "idle"
    assert state_after(ConnectionChanged(service="mqtt", connected=False)) == "idle"
