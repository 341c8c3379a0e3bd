"""Every fact and request that travels on the bus, as frozen dataclasses.

Events carry no timestamp: the bus stamps each one in an envelope with the injected clock, so two
events compare equal by value. Facts are past tense (``WakeDetected``); requests end in ``Requested``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Trigger = Literal["wake", "button", "announce", "api", "follow_up"]
Outcome = Literal["completed", "interrupted", "no_speech", "error"]
PlaybackKind = Literal["reply", "announce", "earcon"]
RequestSource = Literal["button", "stop_word", "wake_word", "mqtt", "ha", "api", "cli", "scheduler"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base for everything published on the bus."""

    turn_id: str | None = None
    """Interaction this event belongs to; None for device-level events."""

    urgent: ClassVar[bool] = False
    """Urgent events are delivered before queued ones and are never dropped."""


# --- device level -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStarted(Event):
    """The daemon finished starting and is listening."""

    version: str
    """Package version of the running daemon."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownRequested(Event):
    """Something asked the daemon to stop (a signal, the CLI)."""

    urgent: ClassVar[bool] = True
    reason: str
    """Why, e.g. the signal name ``SIGTERM``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionChanged(Event):
    """An edge (microphone, speaker, MQTT, Home Assistant, model server) connected or dropped."""

    service: str
    """Short name of the edge, e.g. ``microphone`` or ``mqtt``."""
    connected: bool
    """True when the edge is usable now."""
    detail: str = ""
    """Human-readable reason, free of secrets."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenRequested(Event):
    """Start a turn without the wake word (button, MQTT, Home Assistant)."""

    urgent: ClassVar[bool] = True
    source: RequestSource
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRequested(Event):
    """Stop whatever the assistant is doing now (barge-in)."""

    urgent: ClassVar[bool] = True
    source: RequestSource
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnounceRequested(Event):
    """Speak a text without listening first (reminders, MQTT, Home Assistant)."""

    text: str
    """What to say."""
    source: RequestSource
    """Who asked."""
    reminder_id: str | None = None
    """The stored reminder this says, if any; it counts as fired only once :class:`ReminderSpoken` names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MuteRequested(Event):
    """Stop or resume listening for the wake word."""

    urgent: ClassVar[bool] = True
    muted: bool
    """True to stop listening."""
    source: RequestSource = "api"
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MuteChanged(Event):
    """Listening was stopped or resumed."""

    muted: bool
    """True while the assistant does not listen."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeRequested(Event):
    """Change the output volume."""

    urgent: ClassVar[bool] = True
    level: float
    """Linear gain, 0.0 (silent) to 1.0 (full)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeChanged(Event):
    """The output volume changed."""

    level: float
    """Linear gain, 0.0 (silent) to 1.0 (full)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeDetected(Event):
    """A wake word was heard; ``turn_id`` is the turn it starts."""

    wake_word: str
    """Name of the wake-word model that fired."""
    score: float
    """Detector score, 0.0 to 1.0."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantStateChanged(Event):
    """The derived assistant state changed (for LEDs and Home Assistant)."""

    old: str
    """Previous state name."""
    new: str
    """Current state name."""


# --- turn scoped --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnStarted(Event):
    """One interaction began."""

    trigger: Trigger
    """What started it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListeningStarted(Event):
    """The turn is capturing what the user says."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted(Event):
    """The user started speaking."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechEnded(Event):
    """The user stopped speaking (or hit the maximum).

    Only a turn listening to the microphone publishes it: a sensitive tool is confirmed only in a turn
    that did (see :mod:`assistant.confirmation`).
    """

    speech_seconds: float
    """Seconds of audio sent to the model, from the start of speech."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListeningTimedOut(Event):
    """Nobody spoke after the wake word or in the follow-up window."""

    waited_seconds: float
    """Seconds of audio heard without speech."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTranscript(Event):
    """What the model understood the user to say."""

    text: str
    """The transcript."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyText(Event):
    """A piece of the assistant's answer as text."""

    text: str
    """A delta: the text generated since the previous ReplyText."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyCompleted(Event):
    """The model wrote the whole answer; its playback at the box may still go on, or never happen.

    Who asked from elsewhere (Home Assistant over MQTT or Wyoming) takes the answer from here, without
    waiting for the box to finish speaking it.
    """

    text: str
    """The answer's whole text: every ReplyText of the turn, joined."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallRequested(Event):
    """The model asked to run a tool."""

    call_id: str
    """Identifier pairing this request with its ToolCallFinished."""
    tool: str
    """Tool name."""
    arguments: dict[str, Any]
    """Arguments as the model gave them (not yet validated)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallFinished(Event):
    """A tool returned, failed or was cancelled."""

    call_id: str
    """Identifier of the matching ToolCallRequested."""
    tool: str
    """Tool name."""
    ok: bool
    """False when the result is an error the model will read."""
    seconds: float
    """Wall time the tool took."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(Event):
    """The first sound of a reply, announcement or earcon reached the speaker."""

    kind: PlaybackKind
    """What is playing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(Event):
    """Playback ended, completely or cut short."""

    kind: PlaybackKind
    """What was playing."""
    interrupted: bool
    """True when it was stopped before the end."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnFailed(Event):
    """The turn hit an error; TurnEnded(outcome="error") follows."""

    code: str
    """Stable, kebab-case error code, e.g. ``model-unavailable``."""
    message: str
    """Human-readable explanation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEnded(Event):
    """The interaction is over; exactly one per TurnStarted."""

    outcome: Outcome
    """How it ended."""


# --- integrations (MQTT, Home Assistant, Wyoming) --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AskRequested(Event):
    """Answer a question given as text, as if the user had said it (MQTT, Home Assistant, Wyoming).

    When ``turn_id`` is set, the turn started for this request uses it, so the asker can collect that
    turn's ReplyText and TurnEnded.
    """

    text: str
    """The question."""
    source: RequestSource
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingRequested(Event):
    """Change a runtime setting (wake word, dialect) from Home Assistant or MQTT."""

    key: Literal["wake_word", "dialect"]
    """Which setting."""
    value: str
    """The new value, one of the options the setting offers."""
    source: RequestSource
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingChanged(Event):
    """A runtime setting took a new value (published after applying a SettingRequested)."""

    key: Literal["wake_word", "dialect"]
    """Which setting."""
    value: str
    """Its value now."""


# --- skills and scheduler ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderFired(Event):
    """A timer, alarm or reminder fell due (its AnnounceRequested is published just before)."""

    reminder_id: str
    """Identifier of the reminder, as listed to the user."""
    kind: str
    """``timer``, ``alarm`` or ``reminder``."""
    text: str
    """What was announced."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderSpoken(Event):
    """A stored reminder's announcement was played (or cut short by the user), so it is not said again.

    Until then it stays due in the store: a daemon killed while the announcement waited behind a turn says
    it after the restart.
    """

    reminder_id: str
    """Identifier of the reminder."""


# --- voice --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RepeatRequested(Event):
    """Play the last answer again without asking the model (a button, MQTT, Home Assistant)."""

    slower: bool = False
    """True to play it at ``voice.slower_speed``."""
    source: RequestSource = "api"
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakingSpeedChanged(Event):
    """Answers are spoken at a new speed from now on (the user asked to speak slower or faster)."""

    speed: float
    """Playback speed factor, 0.5-1.5; 1.0 is the voice's own speed, below 1 slower."""


# --- enrolled wake words -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolRequested(Event):
    """Enrol a wake word from takes said into the box's microphone now (Home Assistant, MQTT)."""

    name: str
    """The word's name; an enrolled name gets more takes (another member of the household)."""
    source: RequestSource = "mqtt"
    """Who asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnenrolRequested(Event):
    """Delete an enrolled wake word and its takes."""

    name: str
    """The word's name."""
    source: RequestSource = "mqtt"
    """Who asked."""


EnrolmentStage = Literal["recording", "rejected", "checking", "done", "failed", "cancelled", "removed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolmentProgress(Event):
    """How an enrolment (or a removal) asked for over the bus is going, in words a user can act on."""

    name: str
    """The word being enrolled."""
    stage: EnrolmentStage
    """``recording`` a take, a take ``rejected``, ``checking`` the takes, then ``done``, ``failed`` or
    ``cancelled``; ``removed`` after an UnenrolRequested."""
    message: str
    """What to tell the user, e.g. "say it again: take 2 of 4"."""
    take: int = 0
    """Number of the take being recorded (1-based); 0 when no take is meant."""
    takes: int = 0
    """Takes this enrolment records."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolledWordsChanged(Event):
    """The enrolled wake words now on disk (at start, and after every enrolment or removal)."""

    words: tuple[str, ...] = ()
    """Their names, sorted."""
    listening: tuple[str, ...] = ()
    """The enrolled words the wake detector listens for now."""


_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def wire_name(event_type: type[Event]) -> str:
    """Return the kebab-case name used for an event at the edges (MQTT, trace logs)."""
    return _CAMEL_BOUNDARY.sub("-", event_type.__name__).lower()


def all_event_types() -> list[type[Event]]:
    """Return every concrete event class defined here."""
    return [cls for cls in globals().values() if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event]
