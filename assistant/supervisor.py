"""The long-running loop: hears wake words, runs at most one turn, interrupts it, queues announcements.

It owns the microphone stream and routes each chunk: to the running turn while it listens, to a wake-word
enrolment while one records (asked for from Home Assistant; wake words are not heard meanwhile), otherwise
to the wake detector (and to the stop-word detector while the assistant speaks). The microphone is read into a
bounded backlog as fast as it delivers; the chunks are routed from there in order, and the detectors run on
a :class:`~assistant.tasks.Worker` (a thread of their own in the daemon), so neither a slow model nor a
starved CPU holds up the event loop or the microphone.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .audio import AudioChunk, level_db
from .backlog import AudioBacklog
from .bus import Bus, Envelope
from .endpointing import Room
from .enrolling import EnrolmentOptions, LiveEnrolment
from .errors import EnrollmentError
from .events import (
    AnnounceRequested,
    AskRequested,
    EnrolledWordsChanged,
    EnrolmentProgress,
    EnrolmentStage,
    EnrolRequested,
    ListenRequested,
    MuteChanged,
    MuteRequested,
    PlaybackFinished,
    PlaybackStarted,
    ReminderSpoken,
    RepeatRequested,
    RequestSource,
    SettingChanged,
    SettingRequested,
    ShutdownRequested,
    StopRequested,
    Trigger,
    UnenrolRequested,
    VolumeChanged,
    VolumeRequested,
    WakeDetected,
)
from .ports import AudioSource, Voice, WakeDetector, WakeWordEnroller
from .room import RoomTracker
from .tasks import InlineWorker, Worker, cancel_and_wait, in_daemon_thread
from .turn import Turn, TurnDeps, TurnRequest

_LOGGER = logging.getLogger(__name__)

_REMOTE_SOURCES: frozenset[RequestSource] = frozenset({"mqtt", "ha"})
"""Who asks from elsewhere: their questions are answered to them, not spoken at the box by default."""


@dataclass(frozen=True, slots=True)
class SupervisorOptions:
    """Behaviour switches the supervisor needs from the settings."""

    follow_up_seconds: float = 4.0
    """Seconds the user may answer without the wake word after a reply; 0 disables."""
    forget_after_seconds: float = 300.0
    """Idle seconds after which a new wake word starts a fresh conversation."""
    suppress_wake_during_playback: bool = False
    """Ignore wake words while the assistant speaks (for setups without an echo canceller)."""
    conversation_id: str = "default"
    """Conversation (room) this box continues in the model."""
    initial_volume: float = 0.8
    """Linear output gain at start."""
    initial_muted: bool = False
    """Start muted (the box was muted when it stopped)."""
    wake_words: tuple[str, ...] = ()
    """Names of the configured wake words; a SettingRequested may pick one of them."""
    wake_word: str | None = None
    """The one wake word listened for at start (one of ``wake_words``); None listens for all of them."""
    dialects: tuple[str, ...] = ("mandarin", "cantonese", "sichuanese", "english")
    """Dialects a SettingRequested may choose."""
    max_backlog_seconds: float = 3.0
    """Seconds of microphone audio that may wait for the detectors; older chunks are dropped beyond it."""
    speak_remote_answers: bool = False
    """Also speak at the box the answers to questions asked from Home Assistant (MQTT ask, Wyoming)."""
    dialect: str = "mandarin"
    """Dialect at start, for the enrolment's spoken instruction (a SettingRequested changes it)."""
    enrolment_takes: int = 4
    """Takes an enrolment from Home Assistant records."""
    listening_enrolled: tuple[str, ...] = ()
    """Enrolled words the wake detector given at start listens for."""


def _id_factory() -> Callable[[], str]:
    boot = secrets.token_hex(2)
    counter = itertools.count(1)
    return lambda: f"{boot}-{next(counter)}"


class Supervisor:
    """Runs turns one at a time and reacts to requests from the bus."""

    def __init__(
        self,
        *,
        bus: Bus,
        source: AudioSource,
        wake: WakeDetector,
        deps: TurnDeps,
        stop_word: WakeDetector | None = None,
        options: SupervisorOptions | None = None,
        new_id: Callable[[], str] | None = None,
        detectors_on: Worker | None = None,
        enroller: WakeWordEnroller | None = None,
        prompt_voice: Voice | None = None,
    ) -> None:
        self._bus = bus
        self._source = source
        self._wake = wake
        self._stop_word = stop_word
        self._deps = deps
        self._options = options or SupervisorOptions()
        self._worker = detectors_on or InlineWorker()
        """Where the detectors' process and reset run, in order; inline for fakes that take no time."""
        self._backlog = AudioBacklog(self._options.max_backlog_seconds, deps.clock.now)
        self._new_id = new_id or _id_factory()
        self._turn: Turn | None = None
        self._request: TurnRequest | None = None
        self._task: asyncio.Task[object] | None = None
        self._announcements: collections.deque[AnnounceRequested] = collections.deque()
        self._announcing: dict[str, AnnounceRequested] = {}
        """Turn id → the announcement that turn says."""
        self._stopped: set[str] = set()
        """Turns ended by a stop request: an announcement among them waits for the next turn to end."""
        self._hold_announcements = False
        """A stop silenced an announcement: keep the queue until another turn has run."""
        self._muted = self._options.initial_muted
        self._speaking = False
        self._closing = False
        self._last_turn_end: float | None = None
        self._active_wake_word = self._options.wake_word
        self._room = RoomTracker()
        self._last_room: Room | None = None
        """The room at the last wake word; a follow-up turn, which has no wake word, listens against it."""
        self._switching = asyncio.Lock()
        self._replacing = False
        self._enroller = enroller
        self._prompt_voice = prompt_voice or deps.voice
        """Says the enrolment's instruction; one that does not remember it as the answer to say again."""
        self._enrolment: LiveEnrolment | None = None
        """The enrolment that has the microphone, if one runs."""
        self._enrolling: asyncio.Task[None] | None = None
        self._dialect = self._options.dialect
        self._listening_enrolled = self._options.listening_enrolled
        self._enroller_words: tuple[str, ...] = ()
        self._requests = bus.subscribe(
            "supervisor",
            ListenRequested,
            StopRequested,
            AnnounceRequested,
            MuteRequested,
            VolumeRequested,
            ShutdownRequested,
            AskRequested,
            SettingRequested,
            RepeatRequested,
            EnrolRequested,
            UnenrolRequested,
        )
        bus.tap(self._track_playback)
        deps.sink.set_volume(self._options.initial_volume)

    @property
    def muted(self) -> bool:
        """True while the microphone is ignored."""
        return self._muted

    @property
    def busy(self) -> bool:
        """True while a turn runs."""
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Serve until ShutdownRequested; then interrupt the running turn and return."""
        # First the enrolled words, so that a kept wake word that is one of them is among the select's options.
        await self._report_words()
        # Settings kept from before a restart: Home Assistant and the state tracker learn them as changes.
        if self._muted:
            self._bus.publish(MuteChanged(muted=True))
        if self._active_wake_word is not None:
            self._bus.publish(SettingChanged(key="wake_word", value=self._active_wake_word))
        try:
            async with asyncio.TaskGroup() as group:
                mic = group.create_task(self._hear(), name="supervisor:microphone")
                route = group.create_task(self._route(), name="supervisor:route")
                await self._serve_requests()
                mic.cancel()
                route.cancel()
        finally:
            self._closing = True
            await self._stop_enrolment()
            await self._interrupt()
            self._bus.unsubscribe(self._requests)
            # Announcements that arrived but were never served must not vanish with the process.
            for envelope in self._requests.drain():
                if isinstance(envelope.event, AnnounceRequested):
                    self._announcements.append(envelope.event)

    @property
    def unspoken(self) -> tuple[str, ...]:
        """Announcements not (completely) spoken; after :meth:`run` returned, what a restart should say.

        Stored reminders are left out: they stay due in their store until :class:`ReminderSpoken`.
        """
        return tuple(a.text for a in self._announcements if a.reminder_id is None)

    # --- requests ---------------------------------------------------------------------------------

    async def _serve_requests(self) -> None:
        async for envelope in self._requests:
            match envelope.event:
                case ShutdownRequested(reason=reason):
                    _LOGGER.info("shutting down (%s)", reason)
                    return
                case StopRequested(source=source):
                    _LOGGER.info("stop requested by %s", source)
                    if self._request is not None:
                        self._stopped.add(self._request.turn_id)
                    if await self._stop_enrolment() and self._announcements:
                        # A stop silences the box now: what waited for the enrolment waits for the next turn.
                        self._hold_announcements = True
                    await self._interrupt()
                case ListenRequested(source=source):
                    await self._start("button" if source == "button" else "api", self._new_id())
                case AskRequested(text=text, turn_id=turn_id, source=source):
                    conversation = self._options.conversation_id
                    aloud = source not in _REMOTE_SOURCES or self._options.speak_remote_answers
                    request = TurnRequest(turn_id or self._new_id(), "api", conversation, question=text, aloud=aloud)
                    await self._replace(request)
                case RepeatRequested(slower=slower):
                    conversation = self._options.conversation_id
                    await self._replace(TurnRequest(self._new_id(), "api", conversation, repeat_slower=slower))
                case SettingRequested(key=key, value=value, source=source):
                    self._apply_setting(key, value, source)
                case AnnounceRequested() as announcement:
                    self._announcements.append(announcement)
                    self._hold_announcements = False  # something new to say: what a stop held goes first
                    if not self.busy:
                        self._next_announcement()
                case EnrolRequested(name=name):
                    await self._enrol(name.strip())
                case UnenrolRequested(name=name):
                    await self._unenrol(name.strip())
                case MuteRequested(muted=muted):
                    await self._set_muted(muted)
                case VolumeRequested(level=level):
                    level = min(1.0, max(0.0, level))
                    self._deps.sink.set_volume(level)
                    self._bus.publish(VolumeChanged(level=level))

    def _apply_setting(self, key: str, value: str, source: str) -> None:
        allowed = self._selectable_wake_words() if key == "wake_word" else self._options.dialects
        if value not in allowed:
            _LOGGER.warning("%s asked for %s=%r; expected one of %s", source, key, value, ", ".join(allowed))
            return
        if key == "wake_word":
            # Every configured model keeps running; hits from the others are ignored.
            self._active_wake_word = value
            self._bus.publish(SettingChanged(key="wake_word", value=value))
        else:
            self._dialect = value
            self._deps.model.set_dialect(value)
            self._deps.voice.set_dialect(value)
            self._bus.publish(SettingChanged(key="dialect", value=value))

    def _selectable_wake_words(self) -> tuple[str, ...]:
        """The configured words, then the enrolled ones listened for beside them."""
        configured = self._options.wake_words
        return (*configured, *(name for name in self._listening_enrolled if name not in configured))

    async def _set_muted(self, muted: bool) -> None:
        if muted == self._muted:
            return
        self._muted = muted
        self._bus.publish(MuteChanged(muted=muted))
        if muted and await self._stop_enrolment():
            self._next_announcement()
        if muted and self._turn is not None and self._turn.listening:
            async with self._switching:
                await self._interrupt()
        if not muted:
            self._worker.post(self._wake.reset)

    # --- microphone -------------------------------------------------------------------------------

    async def _hear(self) -> None:
        async for chunk in self._source.chunks():
            self._backlog.put(chunk)
        self._backlog.close()

    async def _route(self) -> None:
        while (chunk := await self._backlog.get()) is not None:
            if self._muted:
                continue
            if self._enrolment is not None:
                self._enrolment.offer(chunk)
                continue
            request = self._request
            if request is not None and request.mic.is_open and self.busy:
                request.mic.offer(chunk)
                continue
            if not self._speaking:
                # The assistant's own voice is not the room's background.
                self._room.hear(chunk.seconds, level_db(chunk))
            await self._detect(chunk)
        # The source ended (a WAV file given with --input): let the answer finish, then stop.
        while self.busy:
            request, task = self._request, self._task
            if request is not None and request.mic.is_open:
                await self._interrupt()
            elif task is not None:
                await asyncio.wait({task})
        self._bus.publish(ShutdownRequested(reason="input ended"))

    async def _detect(self, chunk: AudioChunk) -> None:
        if self._speaking and self._stop_word is not None:
            hit = await self._worker.run(self._stop_word.process, chunk)
            if hit is not None:
                _LOGGER.info("stop word %s (%.2f)", hit.name, hit.score)
                self._worker.post(self._stop_word.reset)
                self._bus.publish(StopRequested(source="stop_word"))
                return
        if self._speaking and self._options.suppress_wake_during_playback:
            return
        hit = await self._worker.run(self._wake.process, chunk)
        if hit is None or (self._active_wake_word is not None and hit.name != self._active_wake_word):
            return
        self._worker.post(self._wake.reset)
        turn_id = self._new_id()
        self._bus.publish(WakeDetected(turn_id=turn_id, wake_word=hit.name, score=round(hit.score, 3)))
        await self._start("wake", turn_id)

    def _track_playback(self, envelope: Envelope) -> None:
        match envelope.event:
            case PlaybackStarted(kind="reply" | "announce"):
                self._speaking = True
                if self._stop_word is not None:
                    self._worker.post(self._stop_word.reset)
            case PlaybackFinished(kind="reply" | "announce"):
                self._speaking = False

    # --- turns ------------------------------------------------------------------------------------

    async def _start(self, trigger: Trigger, turn_id: str) -> None:
        """Start a listening turn, interrupting the running one (barge-in)."""
        if self._muted:
            _LOGGER.info("muted: not listening (unmute first)")
            return
        last = self._last_turn_end
        if last is not None and self._deps.clock.now() - last > self._options.forget_after_seconds:
            self._deps.model.forget(self._options.conversation_id)
        room = self._room.room()
        if trigger == "wake":
            self._last_room = room
        await self._replace(TurnRequest(turn_id, trigger, self._options.conversation_id, room=room))

    async def _replace(self, request: TurnRequest) -> None:
        """End whatever runs, then launch ``request``; transitions are serialized so only one turn ever runs.

        While a turn is being replaced, its end does not start a follow-up or a queued announcement:
        those wait for the new turn.
        """
        async with self._switching:
            await self._stop_enrolment()
            await self._end_running_turn()
            if not self._closing:
                self._launch(request)

    async def _end_running_turn(self) -> None:
        """Interrupt until no turn runs (hold ``_switching``); meanwhile a turn's end starts nothing after it."""
        self._replacing = True
        try:
            while self.busy:
                await self._interrupt()
        finally:
            self._replacing = False

    async def _interrupt(self) -> None:
        """Stop the speaker at once, then cancel the running turn and wait for it to close its books."""
        task = self._task
        if task is None or task.done():
            return
        self._deps.sink.stop()
        await cancel_and_wait(task)

    def _launch(self, request: TurnRequest) -> None:
        if request.announce is None:
            self._hold_announcements = False  # what a stop held back is said once this turn ends
        turn = Turn(self._deps, request)
        self._turn, self._request = turn, request
        # TurnStarted goes out now, so a turn cancelled before it ever ran still closes its books.
        turn.start()
        self._task = asyncio.create_task(turn.run(), name=f"turn:{request.turn_id}")
        self._task.add_done_callback(lambda task: self._on_turn_done(turn, request, task))

    def _on_turn_done(self, turn: Turn, request: TurnRequest, task: asyncio.Task[object]) -> None:
        announcement = self._announcing.pop(request.turn_id, None)
        stopped = request.turn_id in self._stopped
        self._stopped.discard(request.turn_id)
        never_ran = turn.outcome is None
        if never_ran:
            turn.abandon()
        if announcement is not None:
            if never_ran or turn.outcome == "interrupted":
                # Not said (cancelled before its first step), or cut short by a question, a repeat, a wake
                # word, a stop or the shutdown: said again, whole, after what interrupted it (or after the next
                # start). A stop silences the box now; the announcement then waits for the next turn.
                self._announcements.appendleft(announcement)
                self._hold_announcements = self._hold_announcements or (stopped and not self._closing)
            elif announcement.reminder_id is not None and turn.outcome == "completed":
                # Heard whole. One the speaker could not play stays due in the store and is said after the
                # next start (queued again now, a missing speaker would loop).
                self._bus.publish(ReminderSpoken(reminder_id=announcement.reminder_id))
        if task is not self._task:
            return
        self._last_turn_end = self._deps.clock.now()
        self._turn = self._request = self._task = None
        if self._closing or self._replacing:
            return
        follow_up = self._options.follow_up_seconds
        if (
            turn.outcome == "completed"
            and request.announce is None
            and request.question is None
            and request.repeat_slower is None
            and follow_up > 0
            and not self._muted
            and not self._announcements
        ):
            self._launch(
                TurnRequest(
                    self._new_id(),
                    "follow_up",
                    request.conversation_id,
                    no_speech_timeout_seconds=follow_up,
                    room=self._last_room,
                )
            )
            return
        self._next_announcement()

    def _next_announcement(self) -> None:
        if (
            self._announcements
            and not self._closing
            and not self._hold_announcements
            and self._enrolment is None
            and not self.busy
        ):
            announcement = self._announcements.popleft()
            request = TurnRequest(self._new_id(), "announce", self._options.conversation_id, announce=announcement.text)
            self._announcing[request.turn_id] = announcement
            self._launch(request)

    # --- enrolled wake words ----------------------------------------------------------------------

    async def _enrol(self, name: str) -> None:
        """Give the microphone to an enrolment of ``name``, ending any turn first (like a button press)."""
        if self._enroller is None:
            self._enrolment_progress(name, "failed", "failed: this box cannot enrol wake words")
            return
        if self._enrolment is not None:
            busy = f"failed: {self._enrolment.name} is being enrolled; wait for it to finish, or press Stop"
            self._enrolment_progress(name, "failed", busy)
            return
        if self._muted:
            self._enrolment_progress(name, "failed", "failed: the box is muted; unmute it first")
            return
        async with self._switching:
            await self._end_running_turn()
            if self._closing:
                return
            self._enrolment = LiveEnrolment(
                name,
                enroller=self._enroller,
                sink=self._deps.sink,
                voice=self._prompt_voice,
                vad=self._deps.vad,
                publish=self._bus.publish,
                options=EnrolmentOptions(takes=self._options.enrolment_takes, dialect=self._dialect),
            )
            self._enrolling = asyncio.create_task(self._run_enrolment(self._enrolment), name=f"enrol:{name}")

    async def _run_enrolment(self, enrolment: LiveEnrolment) -> None:
        try:
            summary = await enrolment.run()
            if summary is not None:
                heard = await self._reload_wake(enrolment.name)
                self._enrolment_progress(enrolment.name, "done", f"{summary}; {heard}")
        except Exception as err:
            # Nobody awaits this task: whatever went wrong is reported, and the daemon listens on.
            _LOGGER.exception("enrolling %s failed", enrolment.name)
            self._enrolment_progress(enrolment.name, "failed", f"failed: {err}")
        finally:
            self._enrolment = None
        self._next_announcement()

    async def _stop_enrolment(self) -> bool:
        """Cancel the running enrolment, if any; True when there was one."""
        task = self._enrolling
        if task is None or task.done():
            return False
        await cancel_and_wait(task)
        return True

    async def _unenrol(self, name: str) -> None:
        if self._enroller is None:
            self._enrolment_progress(name, "failed", "failed: this box has no enrolled wake words")
            return
        if self._enrolment is not None and self._enrolment.name == name:
            self._enrolment_progress(name, "failed", f"failed: {name} is being enrolled now; press Stop first")
            return
        try:
            await in_daemon_thread(self._enroller.remove, name)
        except EnrollmentError as err:
            self._enrolment_progress(name, "failed", f"failed: {err}; nothing was changed")
            return
        heard = await self._reload_wake(name)
        self._enrolment_progress(name, "removed", f"removed {name}; {heard}")

    async def _reload_wake(self, name: str) -> str:
        """Swap in a wake detector built on the words as they are now; say whether ``name`` is heard."""
        assert self._enroller is not None
        try:
            detector, listening = await in_daemon_thread(self._enroller.detector)
        except Exception as err:
            # The old detector keeps listening; the word is taken up at the next start.
            _LOGGER.exception("could not reload the wake words after changing %s", name)
            await self._report_words()
            return f"the wake words could not be reloaded ({err}); restart the daemon"
        # The router reads self._wake for every chunk, so the next chunk goes to the new detector.
        self._wake = detector
        self._listening_enrolled = listening
        if self._active_wake_word is not None and self._active_wake_word not in self._selectable_wake_words():
            # The word chosen to wake the box is gone: every word wakes it again, as after a start.
            self._active_wake_word = None
            if self._options.wake_words:
                self._bus.publish(SettingChanged(key="wake_word", value=self._options.wake_words[0]))
        await self._report_words()
        if name in listening:
            return "listening for it now"
        if name in self._enroller_words:
            return "not listened for: add it to wake.words in the config (wake.listen_enrolled is off)"
        return "no longer listened for"

    async def _report_words(self) -> None:
        if self._enroller is None:
            return
        try:
            self._enroller_words = await in_daemon_thread(self._enroller.words)
        except Exception:
            _LOGGER.exception("could not list the enrolled wake words")
            return
        self._bus.publish(EnrolledWordsChanged(words=self._enroller_words, listening=self._listening_enrolled))

    def _enrolment_progress(self, name: str, stage: EnrolmentStage, message: str) -> None:
        _LOGGER.info("enrolment of %s: %s", name, message)
        self._bus.publish(EnrolmentProgress(name=name, stage=stage, message=message))
