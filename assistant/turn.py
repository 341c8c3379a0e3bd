"""One interaction as one coroutine: listen → model → tools → speak.

Only the turn publishes turn-scoped events, each stamped with its id, and it always closes its books:
whatever happens (error, interruption, cancellation) exactly one ``TurnEnded`` follows ``TurnStarted``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from .audio import AudioChunk, join
from .config import ConversationSettings, EndpointSettings
from .earcons import Earcon, render
from .endpointing import Decision, PauseMemory, Room
from .errors import ModelError, TurnError
from .events import (
    Event,
    ListeningStarted,
    ListeningTimedOut,
    Outcome,
    PlaybackFinished,
    PlaybackKind,
    PlaybackStarted,
    ReplyCompleted,
    ReplyText,
    SpeechEnded,
    SpeechStarted,
    ToolCallFinished,
    ToolCallRequested,
    Trigger,
    TurnEnded,
    TurnFailed,
    TurnStarted,
    UserTranscript,
)
from .listening import UtteranceListener
from .ports import (
    AudioSink,
    Clock,
    ModelAudio,
    ModelDone,
    ModelEvent,
    ModelRequest,
    ModelSpeech,
    ModelText,
    ModelToolCall,
    ModelTranscript,
    ProsodyDetector,
    Replayer,
    ReplyPiece,
    SpeechDetector,
    SpeechModel,
    ToolResult,
    ToolRunner,
    ToolSpec,
    Voice,
)
from .tasks import cancel_and_wait, next_within

_LOGGER = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 5.0
"""Longest ``Retry-After`` a turn waits before its one retry; beyond it the turn fails at once."""

_MIC_GRACE_SECONDS = 2.0
"""Extra seconds a listening turn waits for audio beyond what the endpointer could need."""


class MicFeed:
    """The microphone as one turn hears it: the supervisor offers chunks, the turn takes them while open."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[AudioChunk | None] = asyncio.Queue()
        self.is_open = False
        """True while the turn is listening; the supervisor routes chunks here only then."""

    def offer(self, chunk: AudioChunk) -> None:
        """Hand a captured chunk to the turn if it listens."""
        if self.is_open:
            self._queue.put_nowait(chunk)

    def expire(self) -> None:
        """Tell the turn that no more audio is coming (the microphone went silent for too long)."""
        self._queue.put_nowait(None)

    async def get(self) -> AudioChunk | None:
        """Wait for the next chunk; None once the feed expired."""
        return await self._queue.get()


@dataclass(frozen=True, slots=True)
class TurnDeps:
    """The long-lived collaborators every turn uses."""

    publish: Callable[[Event], None]
    clock: Clock
    vad: SpeechDetector
    model: SpeechModel
    voice: Voice
    sink: AudioSink
    tools: ToolRunner
    endpoint: EndpointSettings
    conversation: ConversationSettings
    replayer: Replayer | None = None
    """The voice's memory of its last answer, for RepeatRequested."""
    speak: bool = True
    """Ask the model for speech tokens; False when the voice speaks its text through a TTS anyway."""
    prosody: ProsodyDetector | None = None
    """Pitch per chunk, to tell a finished phrase from a pause; None waits as if every phrase were finished."""
    pauses: PauseMemory | None = None
    """The household's mid-sentence pauses, learned across turns."""


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """What this one turn is for."""

    turn_id: str
    trigger: Trigger
    conversation_id: str
    mic: MicFeed = field(default_factory=MicFeed)
    """Audio from the supervisor, for turns that listen."""
    announce: str | None = None
    """Text to speak without listening (trigger ``announce``)."""
    question: str | None = None
    """A text question instead of listening (trigger ``api``)."""
    no_speech_timeout_seconds: float | None = None
    """Override of the endpointing timeout, e.g. the follow-up window."""
    repeat_slower: bool | None = None
    """Play the last answer again (slower if True) without asking the model."""
    room: Room | None = None
    """What the box heard before the wake word, so a TV talking on is not taken for the user."""
    aloud: bool = True
    """Speak the answer at the box; False answers only whoever asked from elsewhere (ReplyCompleted)."""


class _PieceStream:
    """A closable async queue of reply pieces feeding the voice while the model still generates."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[ReplyPiece | None] = asyncio.Queue()

    def put(self, piece: ReplyPiece) -> None:
        self._queue.put_nowait(piece)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[ReplyPiece]:
        while (piece := await self._queue.get()) is not None:
            yield piece


async def _single(piece: ReplyPiece) -> AsyncIterator[ReplyPiece]:
    yield piece


async def _nothing() -> AsyncIterator[ReplyPiece]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _chunks(chunk: AudioChunk) -> AsyncIterator[AudioChunk]:
    yield chunk


class _Speculation:
    """A model round started on the utterance so far, while the end of speech is still being decided.

    Its events wait in a queue: nothing is played before the turn decides the user has finished. If the
    user goes on, the round is cancelled and the model takes it back (its KV cache of what came before stays).
    """

    def __init__(self, request: ModelRequest, stream: AsyncIterator[ModelEvent], name: str) -> None:
        self.request = request
        self._events: asyncio.Queue[ModelEvent | ModelError | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pull(stream), name=name)

    async def _pull(self, stream: AsyncIterator[ModelEvent]) -> None:
        try:
            async for event in stream:
                self._events.put_nowait(event)
        except ModelError as err:
            self._events.put_nowait(err)
        finally:
            self._events.put_nowait(None)

    async def events(self) -> AsyncIterator[ModelEvent]:
        """The round's events, those that arrived while listening first."""
        while (item := await self._events.get()) is not None:
            if isinstance(item, ModelError):
                raise item
            yield item
        if self._task.done() and not self._task.cancelled() and (error := self._task.exception()) is not None:
            raise error

    async def stop(self) -> None:
        """Cancel the round if it still runs."""
        await cancel_and_wait(self._task)


class Turn:
    """Runs one turn; create one per interaction and await :meth:`run`."""

    def __init__(self, deps: TurnDeps, request: TurnRequest) -> None:
        self._deps = deps
        self._request = request
        self.outcome: Outcome | None = None
        """How the turn ended, once it has."""
        self._started = False

    @property
    def turn_id(self) -> str:
        """Identifier stamped on every event of this turn."""
        return self._request.turn_id

    @property
    def listening(self) -> bool:
        """True while the turn takes microphone audio."""
        return self._request.mic.is_open

    def _publish(self, event: Event) -> None:
        self._deps.publish(event)

    def start(self) -> None:
        """Publish TurnStarted (once); :meth:`run` does it if nobody did before."""
        if not self._started:
            self._started = True
            self._publish(TurnStarted(turn_id=self.turn_id, trigger=self._request.trigger))

    def abandon(self) -> None:
        """Close the books of a started turn that was cancelled before :meth:`run` began."""
        if self._started and self.outcome is None:
            self.outcome = "interrupted"
            self._publish(TurnEnded(turn_id=self.turn_id, outcome="interrupted"))

    async def run(self) -> Outcome:
        """Run the turn to its end; cancellation ends it ``interrupted`` and propagates."""
        request = self._request
        self.start()
        outcome: Outcome = "error"
        try:
            outcome = await self._converse()
        except asyncio.CancelledError:
            outcome = "interrupted"
            raise
        except TurnError as err:
            _LOGGER.warning("turn %s failed: %s", request.turn_id, err.message)
            await self._fail(err.code, err.message)
        except Exception as err:
            # An adapter bug must not take the daemon down with the turn.
            _LOGGER.exception("turn %s crashed", request.turn_id)
            await self._fail("internal-error", f"{type(err).__name__}: {err}")
        finally:
            request.mic.is_open = False
            self.outcome = outcome
            self._publish(TurnEnded(turn_id=request.turn_id, outcome=outcome))
        return outcome

    async def _fail(self, code: str, message: str) -> None:
        self._publish(TurnFailed(turn_id=self.turn_id, code=code, message=message))
        if self._deps.conversation.earcons and self._request.aloud:
            try:
                await self._play(_chunks(render(Earcon.ERROR)), "earcon")
            except Exception:
                _LOGGER.exception("could not play the error earcon")

    async def _converse(self) -> Outcome:
        request = self._request
        if request.announce is not None:
            await self._play(self._deps.voice.speak(_single(ModelText(request.announce))), "announce")
            return "completed"
        if request.repeat_slower is not None:
            replayer = self._deps.replayer
            if replayer is not None and replayer.queue_replay(slower=request.repeat_slower):
                await self._play(self._deps.voice.speak(_nothing()), "reply")
            return "completed"
        tools = self._deps.tools.specs()
        if request.question is not None:
            # An answer nobody hears at the box needs no speech tokens: the asker gets text.
            speak = self._deps.speak and request.aloud
            model_request = ModelRequest(request.conversation_id, tools, text=request.question, speak=speak)
            await self._answer(model_request)
            return "completed"
        speculation: _Speculation | None = None
        try:
            heard = await self._listen(tools)
            if heard is None:
                return "no_speech"
            utterance, speculation = heard
            if speculation is not None:
                await self._answer(speculation.request, speculation)
            else:
                asked = ModelRequest(request.conversation_id, tools, audio=utterance, speak=self._deps.speak)
                await self._answer(asked)
            return "completed"
        finally:
            if speculation is not None:
                await speculation.stop()

    # --- listening --------------------------------------------------------------------------------

    async def _listen(self, tools: tuple[ToolSpec, ...]) -> tuple[AudioChunk, _Speculation | None] | None:
        """Hear the user out; return the utterance and the model round started on it while deciding."""
        deps, request = self._deps, self._request
        settings = deps.endpoint
        if request.no_speech_timeout_seconds is not None:
            settings = settings.model_copy(update={"no_speech_timeout_seconds": request.no_speech_timeout_seconds})
        listener = UtteranceListener(settings, deps.vad, prosody=deps.prosody, room=request.room, memory=deps.pauses)
        endpointer = listener.endpointer
        preroll: collections.deque[AudioChunk] = collections.deque()
        captured: list[AudioChunk] = []
        speculation: _Speculation | None = None
        request.mic.is_open = True
        self._publish(ListeningStarted(turn_id=request.turn_id))
        if deps.conversation.earcons and request.trigger != "follow_up":
            await self._play(_chunks(render(Earcon.WAKE)), "earcon")
        # The endpointer counts the audio it hears; a microphone that delivers nothing (unplugged) must not
        # keep the turn listening forever, so a deadline on the clock backs it up.
        limit = settings.no_speech_timeout_seconds + settings.max_speech_seconds + _MIC_GRACE_SECONDS
        deadline = asyncio.create_task(self._expire_after(limit), name=f"listen-deadline:{self.turn_id}")
        try:
            while True:
                chunk = await request.mic.get()
                if chunk is None:
                    _LOGGER.warning("turn %s heard no audio for %.0f s; giving up", self.turn_id, limit)
                    if captured:
                        self._publish(
                            SpeechEnded(turn_id=request.turn_id, speech_seconds=round(endpointer.speech_seconds, 3))
                        )
                        await self._drop(speculation)
                        return join(captured), None
                    waited = round(endpointer.waited_seconds, 3)
                    self._publish(ListeningTimedOut(turn_id=request.turn_id, waited_seconds=waited))
                    return None
                decision = listener.hear(chunk)
                match decision:
                    case Decision.WAITING:
                        preroll.append(chunk)
                        while sum(c.seconds for c in preroll) > settings.preroll_seconds + settings.start_seconds:
                            preroll.popleft()
                    case Decision.STARTED:
                        self._publish(SpeechStarted(turn_id=request.turn_id))
                        captured = [*preroll, chunk]
                    case Decision.SPEAKING:
                        captured.append(chunk)
                        silence = endpointer.trailing_silence_seconds
                        if silence == 0.0 and speculation is not None:
                            # The user went on: the round started on half a sentence is dropped.
                            await self._drop(speculation)
                            speculation = None
                        elif speculation is None and 0.0 < settings.speculate_seconds <= silence + 1e-6:
                            speculation = self._speculate(join(captured), tools)
                    case Decision.ENDED:
                        captured.append(chunk)
                        self._publish(
                            SpeechEnded(turn_id=request.turn_id, speech_seconds=round(endpointer.speech_seconds, 3))
                        )
                        return join(captured), speculation
                    case Decision.TIMED_OUT:
                        waited = round(endpointer.waited_seconds, 3)
                        self._publish(ListeningTimedOut(turn_id=request.turn_id, waited_seconds=waited))
                        return None
        except BaseException:
            await self._drop(speculation)
            raise
        finally:
            request.mic.is_open = False
            deadline.cancel()

    def _speculate(self, utterance: AudioChunk, tools: tuple[ToolSpec, ...]) -> _Speculation:
        request = ModelRequest(
            self._request.conversation_id, tools, audio=utterance, speak=self._deps.speak, speculative=True
        )
        stream = self._paced(self._deps.model.respond(request))
        return _Speculation(request, stream, name=f"speculation:{self.turn_id}")

    async def _drop(self, speculation: _Speculation | None) -> None:
        """Drop a speculative round that will not be answered: cancel it, and have the model take it back."""
        if speculation is not None:
            await speculation.stop()
            self._deps.model.retract(self._request.conversation_id)

    async def _expire_after(self, seconds: float) -> None:
        await self._deps.clock.sleep(seconds)
        self._request.mic.expire()

    # --- answering --------------------------------------------------------------------------------

    async def _answer(self, model_request: ModelRequest, speculation: _Speculation | None = None) -> None:
        deps = self._deps
        aloud = self._request.aloud
        pieces = _PieceStream()
        playback: asyncio.Task[bool] | None = None
        texts: list[str] = []

        def speak(piece: ReplyPiece) -> None:
            nonlocal playback
            if not aloud:
                return
            pieces.put(piece)
            if playback is None:
                playback = asyncio.create_task(
                    self._play(deps.voice.speak(aiter(pieces)), "reply"), name=f"playback:{self.turn_id}"
                )

        try:
            for _ in range(deps.conversation.max_tool_rounds):
                calls: list[ModelToolCall] = []
                async for event in self._model_round(model_request, speculation):
                    match event:
                        case ModelTranscript(text=text):
                            self._publish(UserTranscript(turn_id=self.turn_id, text=text))
                        case ModelText(text=text):
                            self._publish(ReplyText(turn_id=self.turn_id, text=text))
                            texts.append(text)
                            speak(event)
                        case ModelSpeech() | ModelAudio():
                            speak(event)
                        case ModelToolCall():
                            calls.append(event)
                        case ModelDone():
                            pass
                if not calls:
                    break
                results = tuple([await self._run_tool(call) for call in calls])
                speculation = None
                model_request = ModelRequest(
                    model_request.conversation_id, model_request.tools, tool_results=results, speak=model_request.speak
                )
            else:
                raise TurnError(
                    f"the model still called tools after {deps.conversation.max_tool_rounds} rounds",
                    code="too-many-tool-rounds",
                )
            # The text is complete now: an asker elsewhere need not wait for the box to say it.
            self._publish(ReplyCompleted(turn_id=self.turn_id, text="".join(texts)))
            pieces.close()
            if playback is not None:
                await playback
            elif aloud:
                # The model said nothing itself, e.g. after asking the voice to replay the last answer:
                # the voice still gets its turn to speak.
                await self._play(deps.voice.speak(_nothing()), "reply")
        finally:
            if playback is not None and not playback.done():
                await cancel_and_wait(playback)

    async def _model_round(
        self, request: ModelRequest, speculation: _Speculation | None = None
    ) -> AsyncIterator[ModelEvent]:
        """Stream one model round, retrying once a recoverable failure that happened before any output.

        A round already started speculatively while listening is taken up where it is; its retry is an
        ordinary round.
        """
        for attempt in (1, 2):
            produced = False
            if speculation is not None and attempt == 1:
                stream = speculation.events()
            else:
                stream = self._paced(self._deps.model.respond(replace(request, speculative=False)))
            try:
                async for event in stream:
                    produced = True
                    yield event
                return
            except ModelError as err:
                if not err.recoverable or produced or attempt == 2:
                    raise
                wait = err.retry_after_seconds or 0.0
                if wait > MAX_RETRY_AFTER_SECONDS:
                    # Someone is waiting for an answer: a server busy for longer is an error now, not a pause.
                    raise ModelError(f"{err.message}; it asks to wait {wait:.0f} s") from err
                _LOGGER.warning("model failed (%s); retrying once%s", err.message, f" in {wait:g} s" if wait else "")
                if wait:
                    await self._deps.clock.sleep(wait)

    async def _paced(self, stream: AsyncIterator[ModelEvent]) -> AsyncIterator[ModelEvent]:
        """Pass the model's events on; a model silent past its deadline ends the turn, its stream closed.

        In-process models have no timeout of their own: without this, a hung generation would keep the turn
        (and so the daemon) busy forever. The deadlines guard real work (a thread, a server), so they run on
        the event loop's time rather than the injected clock, which tests move ahead of real work.
        """
        settings = self._deps.conversation
        limit, waiting_for = settings.model_first_event_timeout_seconds, "start answering"
        try:
            while True:
                try:
                    event = await next_within(stream, limit)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    message = f"the model did not {waiting_for} within {limit:g} s"
                    raise TurnError(message, code="model-timeout") from None
                yield event
                limit, waiting_for = settings.model_idle_timeout_seconds, "go on answering"
        finally:
            # Closing stops the generation (the engine checks before every decode step).
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    async def _run_tool(self, call: ModelToolCall) -> ToolResult:
        clock = self._deps.clock
        self._publish(
            ToolCallRequested(
                turn_id=self.turn_id, call_id=call.call_id, tool=call.name, arguments=dict(call.arguments)
            )
        )
        started = clock.now()
        ok = False
        try:
            result = await self._deps.tools.call(call)
            ok = result.ok
            return result
        finally:
            seconds = round(clock.now() - started, 3)
            self._publish(
                ToolCallFinished(turn_id=self.turn_id, call_id=call.call_id, tool=call.name, ok=ok, seconds=seconds)
            )

    # --- speaking ---------------------------------------------------------------------------------

    async def _play(self, audio: AsyncIterator[AudioChunk], kind: PlaybackKind) -> bool:
        """Play a stream, publishing PlaybackStarted at its first sound; return False if cut short."""
        started = False

        async def announced() -> AsyncIterator[AudioChunk]:
            nonlocal started
            async for chunk in audio:
                if not started:
                    started = True
                    self._publish(PlaybackStarted(turn_id=self.turn_id, kind=kind))
                yield chunk

        completed = False
        try:
            completed = await self._deps.sink.play(announced())
            return completed
        finally:
            if started:
                self._publish(PlaybackFinished(turn_id=self.turn_id, kind=kind, interrupted=not completed))
