"""The Protocols the core needs; hardware, engines and network adapters implement them.

The speech model speaks a small stream of its own (``Model*`` types below); ``turn.py`` turns it into
bus facts, so provider quirks stop at the adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from .audio import AudioChunk
from .house import House

# --- time ---------------------------------------------------------------------------------------


class Clock(Protocol):
    """Monotonic time, injected so tests can run a conversation on a fake clock."""

    def now(self) -> float:
        """Return monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


# --- audio in -----------------------------------------------------------------------------------


class AudioSource(Protocol):
    """A microphone: an endless stream of 16 kHz mono chunks of fixed size."""

    def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield captured audio until cancelled; survive device loss inside the adapter."""
        ...


@dataclass(frozen=True, slots=True)
class WakeHit:
    """A wake-word detection."""

    name: str
    """Name of the model that fired."""
    score: float
    """Detector score, 0.0 to 1.0."""


class WakeDetector(Protocol):
    """Wake-word (or stop-word) detection over consecutive microphone chunks."""

    def process(self, chunk: AudioChunk) -> WakeHit | None:
        """Feed the next chunk; return a hit when a word ends in it."""
        ...

    def reset(self) -> None:
        """Forget buffered audio, e.g. after a detection or when re-armed."""
        ...


class SpeechDetector(Protocol):
    """Voice activity detection over consecutive microphone chunks."""

    def probability(self, chunk: AudioChunk) -> float:
        """Return the probability (0.0 to 1.0) that the chunk holds speech."""
        ...

    def reset(self) -> None:
        """Forget state between utterances."""
        ...


@dataclass(frozen=True, slots=True)
class Prosody:
    """How one chunk sounds, for telling a finished phrase from a pause."""

    pitch_hz: float | None
    """Fundamental frequency of the voiced part of the chunk in Hz; None when it has no voiced frame."""
    nasal: bool = False
    """True when the voiced part is a nasal murmur ("嗯", "um", "mm"): a hesitation, not a word's end."""


class ProsodyDetector(Protocol):
    """Pitch and voice quality over consecutive microphone chunks."""

    def prosody(self, chunk: AudioChunk) -> Prosody:
        """Return how the chunk sounds."""
        ...

    def reset(self) -> None:
        """Forget any partial frame between utterances."""
        ...


class WakeWordEnroller(Protocol):
    """The household's own wake words on disk, and a detector that hears them.

    Every method blocks (disk, VAD, embedding models: up to seconds of CPU); the core calls them on a thread.
    Refusals raise :class:`~assistant.errors.EnrollmentError` with a message for the user, changing nothing.
    """

    def check_name(self, name: str) -> None:
        """Refuse a name that cannot be a word (before any take is recorded for it)."""
        ...

    def check_take(self, label: str, audio: AudioChunk) -> None:
        """Refuse one take now (silent, clipped, too short or long, noisy), naming ``label`` and the reason."""
        ...

    def enrol(self, name: str, takes: Sequence[tuple[str, AudioChunk]]) -> str:
        """Add the (label, audio) takes to ``name``, recalibrate and store it; return a one-line summary."""
        ...

    def remove(self, name: str) -> None:
        """Delete an enrolled word."""
        ...

    def words(self) -> tuple[str, ...]:
        """Names of the enrolled words, sorted."""
        ...

    def detector(self) -> tuple[WakeDetector, tuple[str, ...]]:
        """A fresh wake detector for the words listened for now, and the enrolled ones among them."""
        ...


# --- audio out ----------------------------------------------------------------------------------


class AudioSink(Protocol):
    """A speaker that plays streams of any rate."""

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        """Play until the stream ends; return False if stop() cut it short."""
        ...

    def stop(self) -> None:
        """Stop at once and drop anything buffered. Safe to call at any time."""
        ...

    def set_volume(self, level: float) -> None:
        """Set the linear output gain, 0.0 to 1.0."""
        ...


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: provider-neutral JSON Schema."""

    name: str
    """Function name the model calls."""
    description: str
    """What the tool does, written for the model."""
    parameters: Mapping[str, Any]
    """JSON Schema of the arguments object."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned, as the model will read it."""

    call_id: str
    """Identifier of the call this answers."""
    name: str
    """Tool name."""
    content: Mapping[str, Any]
    """Small JSON object; ``{"ok": false, "error": ...}`` on failure."""

    @property
    def ok(self) -> bool:
        """False when the content reports an error."""
        return self.content.get("ok", True) is not False


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One call into the model: a user utterance, a text, or tool results."""

    conversation_id: str
    """Conversation (room) whose history the model continues."""
    tools: tuple[ToolSpec, ...] = ()
    """Tools the model may call."""
    audio: AudioChunk | None = None
    """The user's utterance, 16 kHz mono."""
    text: str | None = None
    """A text turn from the user (CLI ``ask``, Home Assistant)."""
    tool_results: tuple[ToolResult, ...] = ()
    """Results of the tool calls of the previous round."""
    speak: bool = True
    """True to ask for speech tokens as well as text."""
    speculative: bool = False
    """Started before the end of speech was decided; :meth:`SpeechModel.retract` may take it back."""


@dataclass(frozen=True, slots=True)
class ModelTranscript:
    """What the model heard the user say."""

    text: str


@dataclass(frozen=True, slots=True)
class ModelText:
    """A delta of the answer's text."""

    text: str


SPEECH_PAD: Final = 6561
"""The model's speech pad (``<audio_6561>``): a speech slot with no speech; it carries no sound."""


@dataclass(frozen=True, slots=True)
class ModelSpeech:
    """A chunk of speech tokens (codes 0..6560, 25 per second) for token2wav, as the model wrote them.

    The model's speech pad, code 6561, is passed on as StepFun's split passes it; the voice decides what
    becomes of it (``voice.token2wav.speech_pad``).
    """

    tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelAudio:
    """Speech already rendered to audio by the backend."""

    chunk: AudioChunk


@dataclass(frozen=True, slots=True)
class ModelToolCall:
    """The model asked for a tool; ``error`` is set when the call could not be parsed."""

    call_id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ModelDone:
    """The model finished this round."""

    reason: str = "stop"
    """``stop``, ``tool_calls`` or ``length``."""


ModelEvent = ModelTranscript | ModelText | ModelSpeech | ModelAudio | ModelToolCall | ModelDone
ReplyPiece = ModelText | ModelSpeech | ModelAudio


class SpeechModel(Protocol):
    """An end-to-end speech model; raises ``ModelError`` when it cannot answer."""

    def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream the answer to one request; cancelling the iteration stops generation."""
        ...

    def forget(self, conversation_id: str) -> None:
        """Drop the history of a conversation."""
        ...

    def retract(self, conversation_id: str) -> None:
        """Take back the conversation's last round if it was speculative, finished or not, as if it never ran.

        The KV cache of what came before it stays; a round that was not speculative stays too.
        """
        ...

    def set_dialect(self, dialect: str) -> None:
        """Answer in another dialect from the next request on."""
        ...


# --- speech out ---------------------------------------------------------------------------------


class Voice(Protocol):
    """Turns the pieces of an answer into sound (token2wav, or text through a TTS)."""

    def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        """Yield audio as early as possible while pieces keep arriving."""
        ...

    def set_dialect(self, dialect: str) -> None:
        """Speak text in another dialect from now on."""
        ...


class Replayer(Protocol):
    """A voice that can say its last answer again ("say that again")."""

    def queue_replay(self, *, slower: bool) -> bool:
        """Make the next ``speak`` start with the last answer; False when nothing was said yet."""
        ...


class VoiceControls(Replayer, Protocol):
    """What the voice skill may change: the last answer again, and how fast answers are spoken."""

    speed: float
    """Speaking speed now, as a factor of normal (1.0; 0.75 is a quarter slower)."""
    normal_speed: float
    """The configured speed that "normal" goes back to."""
    slower_speed: float
    """Factor that "slower" multiplies by (and "faster" divides by)."""

    def set_speed(self, speed: float) -> None:
        """Speak at ``speed`` from the next answer on."""
        ...


# --- tools --------------------------------------------------------------------------------------


@runtime_checkable
class ToolRunner(Protocol):
    """Runs the tools the model calls."""

    def specs(self) -> tuple[ToolSpec, ...]:
        """Return the tools offered to the model."""
        ...

    async def call(self, call: ModelToolCall) -> ToolResult:
        """Run one call; failures come back as results, never as exceptions."""
        ...


# --- home -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityState:
    """One Home Assistant entity as the API reports it."""

    entity_id: str
    """E.g. ``light.living_room``."""
    state: str
    """E.g. ``on``, ``off``, ``21.5``, ``unavailable``."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """Friendly name, brightness, area and so on."""


class HomeAssistantApi(Protocol):
    """The part of Home Assistant's API the daemon uses; raises ``HomeAssistantError`` on failure."""

    async def get_states(self) -> list[EntityState]:
        """Return every entity."""
        ...

    async def get_state(self, entity_id: str) -> EntityState:
        """Return one entity."""
        ...

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        """Call a service such as ``light.turn_on`` with its data."""
        ...


class MessagePublisher(Protocol):
    """Publishes MQTT messages; the adapter keeps them while the broker is away."""

    async def publish(self, topic: str, payload: str, *, qos: int = 1, retain: bool = False) -> None:
        """Send one message."""
        ...


class HouseRegistry(Protocol):
    """Home Assistant's areas, devices, entity registry and Assist exposure, kept up to date."""

    async def house(self) -> House:
        """Return the latest snapshot; raise ``HomeAssistantError`` when it cannot be known (not read yet)."""
        ...
