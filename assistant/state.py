"""The assistant's state, derived from events (for LEDs and Home Assistant), never stored elsewhere."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from .bus import Bus, Envelope
from .events import (
    AssistantStateChanged,
    ConnectionChanged,
    Event,
    ListeningStarted,
    MuteChanged,
    PlaybackFinished,
    PlaybackStarted,
    SpeechEnded,
    ToolCallRequested,
    TurnEnded,
    TurnFailed,
    TurnStarted,
)


class AssistantState(enum.StrEnum):
    """What the assistant is doing, as shown to people."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    MUTED = "muted"
    ERROR = "error"


_REQUIRED_SERVICES = frozenset({"microphone"})
"""Edges without which the assistant cannot work at all."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the state depends on."""

    phase: AssistantState = AssistantState.IDLE
    """Phase of the running turn, or IDLE."""
    muted: bool = False
    """True while listening is off."""
    down: frozenset[str] = frozenset()
    """Required edges that are disconnected."""

    @property
    def state(self) -> AssistantState:
        """The single state to show; a turn in progress wins over mute and errors."""
        if self.phase is not AssistantState.IDLE:
            return self.phase
        if self.down:
            return AssistantState.ERROR
        if self.muted:
            return AssistantState.MUTED
        return AssistantState.IDLE


def fold(snapshot: Snapshot, event: Event) -> Snapshot:
    """Return the snapshot after one event."""
    match event:
        case TurnStarted(trigger="announce" | "api"):
            # Text questions and replays do not listen; a listening "api" turn says so with ListeningStarted.
            return replace(snapshot, phase=AssistantState.THINKING)
        case TurnStarted() | ListeningStarted():
            return replace(snapshot, phase=AssistantState.LISTENING)
        case SpeechEnded() | ToolCallRequested():
            return replace(snapshot, phase=AssistantState.THINKING)
        case PlaybackStarted(kind="reply" | "announce"):
            return replace(snapshot, phase=AssistantState.SPEAKING)
        case PlaybackFinished(kind="reply" | "announce"):
            return replace(snapshot, phase=AssistantState.THINKING)
        case TurnFailed():
            return replace(snapshot, phase=AssistantState.ERROR)
        case TurnEnded():
            return replace(snapshot, phase=AssistantState.IDLE)
        case MuteChanged(muted=muted):
            return replace(snapshot, muted=muted)
        case ConnectionChanged(service=service, connected=connected) if service in _REQUIRED_SERVICES:
            down = snapshot.down - {service} if connected else snapshot.down | {service}
            return replace(snapshot, down=down)
    return snapshot


class StateTracker:
    """Folds every published event and publishes AssistantStateChanged when the state changes."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.snapshot = Snapshot()
        bus.tap(self._on_event)

    @property
    def state(self) -> AssistantState:
        """The current state."""
        return self.snapshot.state

    def _on_event(self, envelope: Envelope) -> None:
        old = self.snapshot.state
        self.snapshot = fold(self.snapshot, envelope.event)
        new = self.snapshot.state
        if new is not old:
            self._bus.publish(AssistantStateChanged(old=old.value, new=new.value))
