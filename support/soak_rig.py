"""The daemon under soak and the household that talks to it, for bench/soak.py and its test.

The real App runs with its real Bus, Supervisor, Turn, StateTracker and, through ``build_tools``, the real
skills (clock, timers on the real reminder scheduler and a SQLite file, help, smart home), the real Home
Assistant client (against support/fake_home_assistant.py in its own process), the real MQTT bridge (against a
real mosquitto) and the real Wyoming server. Only the edges are fakes: the microphone, wake word, VAD and
voice from support/fakes.py (the voice inside the real ReplayVoice), a speaker that only counts, and
:class:`SoakModel`, a scripted model.

The turns run on the fake clock, so thousands of them take a minute. The parts that run on the real clock
in the daemon stay on it here: MQTT, HTTP and Wyoming traffic, tool timeouts, and the scheduler, which fires
timers by the wall clock (the household sets them 1-3 s long, so they fire as announcements in the middle
of later turns). While a tool call or an MQTT command waits on loopback I/O, the household holds the fake
clock still, as a millisecond of real time is a millisecond of audio, not seconds of it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk as AudioChunkEvent
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event as WyomingEvent
from wyoming.handle import Handled
from wyoming.tts import Synthesize

from assistant.app import Adapters, App, Service, build_tools
from assistant.audio import AudioChunk
from assistant.bus import Bus, Envelope
from assistant.config import Settings
from assistant.errors import ModelError
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    ConnectionChanged,
    DaemonStarted,
    Event,
    ListeningStarted,
    ListenRequested,
    PlaybackStarted,
    ReminderFired,
    RepeatRequested,
    StopRequested,
    ToolCallFinished,
    ToolCallRequested,
    TurnEnded,
    TurnStarted,
    WakeDetected,
)
from assistant.integrations.discovery import Topics
from assistant.ports import (
    Clock,
    ModelDone,
    ModelEvent,
    ModelRequest,
    ModelText,
    ModelToolCall,
    ModelTranscript,
    ToolResult,
)
from assistant.voice.replay import ReplayVoice
from support.fake_home_assistant import TOKEN
from support.fakes import (
    CHUNK_SECONDS,
    FakeClock,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeVoice,
    FakeWakeDetector,
    Step,
    after,
    fake_stop_detector,
    silence,
    stop_word,
    wake_word,
)

ROOT = Path(__file__).resolve().parent.parent
STUCK_SECONDS = 30.0
"""Real seconds any single step of the household may wait before the soak reports the daemon stuck."""
_SPEECH_TAG = b"SPCH"
_CHUNK_BYTES = round(CHUNK_SECONDS * 16_000) * 2


class SoakStuck(AssertionError):
    """The daemon did not do what the household waited for."""


# --- the edges ----------------------------------------------------------------------------------


def said(tag: str, seconds: float = 0.5) -> list[AudioChunk]:
    """Speech the fake VAD hears, carrying ``tag`` so :class:`SoakModel` knows what was "said"."""
    pcm = _SPEECH_TAG + tag.encode() + b"\0"
    chunk = AudioChunk(pcm + bytes(_CHUNK_BYTES - len(pcm)))
    return [chunk] * max(1, round(seconds / CHUNK_SECONDS))


def tag_of(audio: AudioChunk | None) -> str:
    """The tag hidden in an utterance by :func:`said`; empty if there is none."""
    if audio is None:
        return ""
    start = audio.pcm.find(_SPEECH_TAG)
    if start < 0:
        return ""
    start += len(_SPEECH_TAG)
    return audio.pcm[start : audio.pcm.index(b"\0", start)].decode()


class LiveMicrophone:
    """A microphone the household speaks into: what it says, in (fake-clock) real time, else silence."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queued: collections.deque[AudioChunk] = collections.deque()
        self._silence = silence(CHUNK_SECONDS)[0]

    def say(self, chunks: Iterable[AudioChunk]) -> None:
        """Queue audio; it is heard after what was queued before."""
        self._queued.extend(chunks)

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield each chunk after its duration has passed, as a real microphone does."""
        while True:
            await self._clock.sleep(CHUNK_SECONDS)
            yield self._queued.popleft() if self._queued else self._silence


class CountingSpeaker(FakeSpeaker):
    """A speaker that keeps no audio (a soak must not grow), only how much it played."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.seconds = 0.0
        self.stop_count = 0

    def _heard(self, chunk: AudioChunk) -> None:
        self.seconds += chunk.seconds

    def _stopped(self) -> None:
        self.stop_count += 1

    @property
    def played_seconds(self) -> float:
        """Seconds of audio played so far."""
        return self.seconds


class SoakModel:
    """A scripted speech model: answers each request by the tag the household hid in its audio or text.

    Answers depend only on the request, never on the order of requests, so a timer firing in the middle of
    the script cannot put the model out of step. It keeps counters, never the requests.
    """

    LONG_ANSWER = "好的，我慢慢说给你听。" * 6
    """Long enough (3 s at the voice's pace) that the household can interrupt it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._calls = 0
        self._token = ""
        self._flaky: ModelRequest | None = None
        self.requests = 0
        self.cancelled = 0
        self.tool_failures: collections.Counter[str] = collections.Counter()

    def forget(self, conversation_id: str) -> None:
        """Nothing is remembered."""

    def retract(self, conversation_id: str) -> None:
        """Nothing is remembered."""

    def set_dialect(self, dialect: str) -> None:
        """Any dialect will do."""

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Play the round the request asks for."""
        self.requests += 1
        try:
            for step in self._round(request):
                await self._clock.sleep(step.delay_seconds)
                if isinstance(step.event, Exception):
                    raise step.event
                yield step.event
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise

    def _call(self, name: str, **arguments: Any) -> list[Step]:
        self._calls += 1
        return [after(0.2, ModelToolCall(f"call-{self._calls}", name, arguments)), after(0, ModelDone("tool_calls"))]

    def _round(self, request: ModelRequest) -> list[Step]:
        if request.tool_results:
            return self._after_tools(request.tool_results)
        tag = request.text if request.text is not None else tag_of(request.audio)
        heard = [after(0.3, ModelTranscript(f"<{tag}>"))]
        match tag:
            case "long":
                return [*heard, *(after(0.05, ModelText(part + "。")) for part in self.LONG_ANSWER.split("。") if part)]
            case "clock":
                return heard + self._call("get_date_time")
            case "timer":
                return heard + self._call("set_timer", announcement="面条煮好了", seconds=1 + self._calls % 3)
            case "timer_cancel":
                return heard + self._call("set_timer", announcement="该出门了", minutes=30)
            case "light_on" | "light_off":
                return heard + self._call("turn_" + tag.removeprefix("light_"), target="厨房灯")
            case "fan":
                return heard + self._call("turn_on", target="风扇")
            case "unlock":
                return heard + self._call("unlock_door", target="前门")
            case "yes":
                return heard + self._call("confirm_action", confirm_token=self._token)
            case "help":
                return heard + self._call("call_for_help", details="我摔倒了")
            case "error":
                return [after(0.2, ModelError("the backend refused the request"))]
            case "retry" if self._flaky is not request:
                self._flaky = request
                return [after(0.2, ModelError("the backend is busy", recoverable=True))]
            case "crash":
                return [*heard, after(0.1, ModelText("好的，")), after(0.1, RuntimeError("decoder state corrupted"))]
        return [*heard, after(0.2, ModelText("今天晴，二十五度。")), after(0, ModelDone())]

    def _after_tools(self, results: Sequence[ToolResult]) -> list[Step]:
        result = results[0]
        content = result.content
        if content.get("needs_confirmation"):
            self._token = str(content["confirm_token"])
            return [after(0.1, ModelText(str(content["say"]))), after(0, ModelDone())]
        if not result.ok:
            self.tool_failures[f"{result.name}: {content.get('error')}"] += 1
        elif result.name == "set_timer" and content.get("seconds") == 1800:
            return self._call("cancel_reminder", reminder_id=content["set"]["id"])
        return [after(0.1, ModelText("好的，办好了。" if result.ok else "抱歉，没办成。")), after(0, ModelDone())]


# --- the daemon ---------------------------------------------------------------------------------


@contextlib.contextmanager
def home_assistant_process() -> Iterator[str]:
    """support/fake_home_assistant.py in its own process (its threads and sockets are not the daemon's)."""
    states = {
        "light.kitchen": {"state": "off", "attributes": {"friendly_name": "Kitchen light"}},
        "lock.front_door": {"state": "locked", "attributes": {"friendly_name": "Front door"}},
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "support.fake_home_assistant", json.dumps(states)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url:
            raise RuntimeError(f"the fake Home Assistant did not start (exit status {server.wait()})")
        yield url
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


def soak_settings(folder: Path, *, mqtt_port: int, home_assistant_url: str, wyoming_port: int) -> Settings:
    """The daemon's settings: defaults, with every skill the soak exercises and the local servers."""
    return Settings.model_validate(
        {
            # Shorter windows than the defaults (4 s and 5 s), as a household may set them: each turn then
            # takes fewer ticks of the fake clock, and the code paths are the same.
            "conversation": {"follow_up_seconds": 2.0},
            "endpointing": {"no_speech_timeout_seconds": 2.5},
            "mqtt": {
                "enabled": True,
                "port": mqtt_port,
                "device_id": "soak_box",
                "command_topics": ["home/+/set"],
            },
            "wyoming": {"enabled": True, "host": "127.0.0.1", "port": wyoming_port},
            "home_assistant": {"enabled": True, "url": home_assistant_url, "token": TOKEN, "timeout_seconds": 5},
            "scheduler": {"database": str(folder / "jobs.sqlite"), "misfire_grace_seconds": 60},
            "state": {"settings_path": str(folder / "settings.json")},
            "skills": {
                "clock": {},
                "timers": {"notify_topic": "soak/reminders", "notify_services": ["notify.mobile_app_daughter"]},
                "help": {"contacts": [{"name": "女儿", "notify_service": "notify.mobile_app_daughter"}]},
                "smart_home": {
                    "aliases": {"厨房灯": "light.kitchen", "前门": "lock.front_door"},
                    "mqtt_devices": [{"name": "风扇", "topic": "home/fan/set", "kind": "fan"}],
                },
            },
        }
    )


@dataclass
class Edges:
    """The fakes the daemon runs on, kept so the household can speak and the soak can count."""

    clock: FakeClock
    mic: LiveMicrophone
    speaker: CountingSpeaker
    model: SoakModel

    @classmethod
    def create(cls) -> Edges:
        clock = FakeClock()
        return cls(clock, LiveMicrophone(clock), CountingSpeaker(clock), SoakModel(clock))

    async def build(self, settings: Settings, bus: Bus, clock: Clock, stack: contextlib.AsyncExitStack) -> Adapters:
        """The App's adapter factory: fakes at the audio and model edges, the real tools and integrations."""
        services: list[Service] = []
        voice = ReplayVoice(FakeVoice(seconds_per_char=0.05), None)
        # As build_adapters does: a replay queued by a turn that ended before speaking must not leak on.
        bus.tap(lambda envelope: voice.cancel_replay() if isinstance(envelope.event, TurnEnded) else None)
        tools, _ = await build_tools(settings, bus, clock, stack, services, voice)
        return Adapters(
            source=self.mic,
            sink=self.speaker,
            wake=FakeWakeDetector(),
            stop_word=fake_stop_detector(),
            vad=FakeSpeechDetector(),
            model=self.model,
            voice=voice,
            tools=tools,
            replayer=voice,
            services=services,
        )


# --- what the household watches ---------------------------------------------------------------------


@dataclass
class TurnBooks:
    """Every TurnStarted and TurnEnded: which turns are open, and any end without a start."""

    open: dict[str, str] = field(default_factory=dict)
    """Turn id → trigger of the turns started and not yet ended."""
    started: int = 0
    ended: int = 0
    unmatched_ends: int = 0
    """TurnEnded for a turn that was not open (never started, or ended twice)."""
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    triggers: collections.Counter[str] = field(default_factory=collections.Counter)

    def note(self, event: Event) -> None:
        match event:
            case TurnStarted(turn_id=str(turn_id), trigger=trigger):
                self.started += 1
                self.triggers[trigger] += 1
                self.open[turn_id] = trigger
            case TurnEnded(turn_id=turn_id, outcome=outcome):
                self.ended += 1
                self.outcomes[outcome] += 1
                if self.open.pop(str(turn_id), None) is None:
                    self.unmatched_ends += 1


Condition = Callable[[Sequence[Event]], bool]

_REQUESTS: dict[str, type[Event]] = {
    "ask": AskRequested,
    "listen": ListenRequested,
    "repeat": RepeatRequested,
    "stop": StopRequested,
    "announce": AnnounceRequested,
}
"""The bus request each MQTT command the household sends becomes."""


def _first(log: Sequence[Event], event_type: type[Event], *, after: int = 0, **fields: object) -> int | None:
    """Index of the first event of ``event_type`` at or after ``after`` whose fields match; None if none."""
    for index in range(after, len(log)):
        event = log[index]
        if isinstance(event, event_type) and all(getattr(event, k) == v for k, v in fields.items()):
            return index
    return None


class Household:
    """People using the box: play scenarios through the microphone, MQTT and Wyoming, and wait for the daemon.

    Every step waits for what the daemon should do next, seen on the bus, with a real-time limit
    (:data:`STUCK_SECONDS`) so a daemon that stops answering fails the soak instead of hanging it.
    """

    def __init__(self, app: App, edges: Edges, mqtt: aiomqtt.Client, settings: Settings) -> None:
        self._edges = edges
        self._mqtt = mqtt
        self._topics = Topics.from_settings(settings.mqtt)
        self._wyoming_port = settings.wyoming.port
        self.wyoming_answers = 0
        self.wyoming_audio_seconds = 0.0
        self.books = TurnBooks()
        self._log: list[Event] = []
        """Events since the current scenario began (cleared by each, so it stays small)."""
        self._waiting: list[tuple[Condition, asyncio.Future[None]]] = []
        self.timers_set = 0
        self.timers_cancelled = 0
        self.reminders_fired = 0
        self.follow_ups_skipped = 0
        self.mqtt_connected = asyncio.Event()
        self.ready = asyncio.Event()
        app.bus.tap(self._on_event)

    def _on_event(self, envelope: Envelope) -> None:
        event = envelope.event
        self.books.note(event)
        # A tool waits on real I/O (Home Assistant, SQLite) that takes milliseconds; the daemon's clock
        # would otherwise race through seconds of microphone audio meanwhile.
        if isinstance(event, ToolCallRequested):
            self._edges.clock.holds += 1
        elif isinstance(event, ToolCallFinished):
            self._edges.clock.holds -= 1
        match event:
            case DaemonStarted():
                self.ready.set()
            case ConnectionChanged(service="mqtt", connected=True):
                self.mqtt_connected.set()
            case ConnectionChanged(service="mqtt", connected=False):
                self.mqtt_connected.clear()
            case ReminderFired():
                self.reminders_fired += 1
            case ToolCallFinished(tool="set_timer", ok=True):
                self.timers_set += 1
            case ToolCallFinished(tool="cancel_reminder", ok=True):
                self.timers_cancelled += 1
        self._log.append(event)
        for waiting in list(self._waiting):
            condition, future = waiting
            if future.done() or condition(self._log):
                self._waiting.remove(waiting)
                if not future.done():
                    future.set_result(None)

    async def until(self, condition: Condition, what: str) -> None:
        """Wait until the events of this scenario fulfil ``condition``."""
        if condition(self._log):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((condition, future))
        try:
            await asyncio.wait_for(future, STUCK_SECONDS)
        except TimeoutError:
            seen = [type(e).__name__ for e in self._log][-30:]
            raise SoakStuck(f"waited {STUCK_SECONDS:.0f} s for {what}; the last events were {seen}") from None

    async def idle(self) -> None:
        """Wait until no turn runs and none starts for a moment (a follow-up or announcement would)."""
        while True:
            await self.until(lambda _: not self.books.open, "every turn to end")
            started = self.books.started
            await self._edges.clock.sleep(0.3)
            if not self.books.open and self.books.started == started:
                return

    # --- steps ------------------------------------------------------------------------------------

    async def _wake(self, *audio: Iterable[AudioChunk], nth: int = 1) -> str:
        """Say the wake word (and more); return the id of the turn it starts."""
        self._edges.mic.say([*wake_word(), *(chunk for part in audio for chunk in part)])

        def woken(log: Sequence[Event]) -> bool:
            return sum(isinstance(e, WakeDetected) for e in log) >= nth

        await self.until(woken, "the wake word to start a turn")
        return str([e for e in self._log if isinstance(e, WakeDetected)][nth - 1].turn_id)

    async def _command(self, key: str, payload: str = "") -> str:
        """Send an MQTT command; for ask, listen and repeat, return the id of the api turn it starts."""
        before = len(self._log)
        request = _REQUESTS[key]

        def arrived(log: Sequence[Event]) -> bool:
            return _first(log, request, after=before, source="mqtt") is not None

        # The command's way through the broker takes a millisecond of real time; the clock waits for it.
        with self.clock_held():
            await self._mqtt.publish(self._topics.command(key), payload, qos=1)
            await self.until(arrived, f"the MQTT {key} command to arrive")
        if key not in ("ask", "listen", "repeat"):
            return ""
        await self.until(lambda log: _first(log, TurnStarted, after=before, trigger="api") is not None, key)
        index = _first(self._log, TurnStarted, after=before, trigger="api")
        assert index is not None
        return str(self._log[index].turn_id)

    async def _ended(self, turn_id: str) -> None:
        await self.until(lambda log: _first(log, TurnEnded, turn_id=turn_id) is not None, f"turn {turn_id} to end")

    async def _speaking(self, turn_id: str) -> None:
        def playing(log: Sequence[Event]) -> bool:
            return _first(log, PlaybackStarted, turn_id=turn_id, kind="reply") is not None

        await self.until(playing, f"turn {turn_id} to speak")

    async def _listening(self, turn_id: str) -> None:
        await self.until(lambda log: _first(log, ListeningStarted, turn_id=turn_id) is not None, "listening")

    async def _follow_up(self, turn_id: str, tag: str) -> bool:
        """Answer in the follow-up window after ``turn_id``; False if an announcement took its place."""
        await self._ended(turn_id)

        def next_turn(log: Sequence[Event]) -> bool:
            end = _first(log, TurnEnded, turn_id=turn_id)
            return end is not None and _first(log, TurnStarted, after=end) is not None

        await self.until(next_turn, f"the turn after {turn_id}")
        end = _first(self._log, TurnEnded, turn_id=turn_id)
        assert end is not None
        index = _first(self._log, TurnStarted, after=end)
        assert index is not None
        follow_up = self._log[index]
        assert isinstance(follow_up, TurnStarted)
        if follow_up.trigger != "follow_up":
            # A timer fired meanwhile: its announcement rightly goes first, and the window is gone.
            self.follow_ups_skipped += 1
            return False
        await self._listening(str(follow_up.turn_id))
        self._edges.mic.say(said(tag))
        await self._ended(str(follow_up.turn_id))
        return True

    # --- scenarios --------------------------------------------------------------------------------

    async def play(self, scenario: str) -> None:
        """Run one scenario to its end, then wait until the daemon is idle again."""
        self._log.clear()
        await getattr(self, f"_{scenario}")()
        await self.idle()

    async def _question(self) -> None:
        await self._ended(await self._wake(said("plain")))

    async def _conversation(self) -> None:
        turn = await self._wake(said("plain"))
        await self._follow_up(turn, "clock")

    async def _clock(self) -> None:
        await self._ended(await self._wake(said("clock")))

    async def _timer(self) -> None:
        await self._ended(await self._wake(said("timer")))

    async def _timer_cancelled(self) -> None:
        await self._ended(await self._wake(said("timer_cancel")))

    async def _lights(self) -> None:
        turn = await self._wake(said("light_on"))
        await self._follow_up(turn, "light_off")

    async def _fan(self) -> None:
        await self._ended(await self._wake(said("fan")))

    async def _unlock_confirmed(self) -> None:
        turn = await self._wake(said("unlock"))
        await self._follow_up(turn, "yes")

    async def _call_for_help(self) -> None:
        await self._ended(await self._wake(said("help")))

    async def _barge_in(self) -> None:
        first = await self._wake(said("long"))
        await self._speaking(first)
        second = await self._wake(said("plain"), nth=2)
        await self._ended(first)
        await self._ended(second)

    async def _stop_word(self) -> None:
        turn = await self._wake(said("long"))
        await self._speaking(turn)
        self._edges.mic.say(stop_word())
        await self._ended(turn)

    async def _no_speech(self) -> None:
        await self._ended(await self._wake())

    async def _model_error(self) -> None:
        await self._ended(await self._wake(said("error")))

    async def _model_retry(self) -> None:
        await self._ended(await self._wake(said("retry")))

    async def _model_crash(self) -> None:
        await self._ended(await self._wake(said("crash")))

    async def _mqtt_ask(self) -> None:
        await self._ended(await self._command("ask", "clock"))

    async def _mqtt_listen(self) -> None:
        turn = await self._command("listen")
        await self._listening(turn)
        self._edges.mic.say(said("plain"))
        await self._ended(turn)

    async def _mqtt_stop(self) -> None:
        # A question asked over MQTT is answered to Home Assistant only, so a spoken one is stopped here.
        turn = await self._command("listen")
        await self._listening(turn)
        self._edges.mic.say(said("long"))
        await self._speaking(turn)
        await self._command("stop")
        await self._ended(turn)

    async def _mqtt_announce(self) -> None:
        before = len(self._log)
        await self._command("announce", "该吃药了")
        await self.until(lambda log: _first(log, TurnStarted, after=before, trigger="announce") is not None, "announce")

    async def _mqtt_repeat(self) -> None:
        await self._ended(await self._command("repeat"))

    async def _wyoming(self, request: WyomingEvent) -> WyomingEvent:
        """Send one request as Home Assistant does (a connection of its own); return the reply after any audio."""
        async with AsyncTcpClient("127.0.0.1", self._wyoming_port) as client:
            await client.write_event(request)
            async with asyncio.timeout(STUCK_SECONDS):
                while (reply := await client.read_event()) is not None:
                    if AudioChunkEvent.is_type(reply.type):
                        chunk = AudioChunkEvent.from_event(reply)
                        self.wyoming_audio_seconds += len(chunk.audio) / (chunk.rate * chunk.width)
                    elif not AudioStart.is_type(reply.type):
                        answer: WyomingEvent = reply
                        return answer
        raise SoakStuck(f"the Wyoming server closed the connection instead of answering {request.type}")

    async def _wyoming_ask(self) -> None:
        reply = await self._wyoming(Transcript(text="clock").event())
        if not Handled.is_type(reply.type):
            raise SoakStuck(f"Home Assistant's question over Wyoming got {reply.type}: {reply.data}")
        self.wyoming_answers += 1

    async def _wyoming_speak(self) -> None:
        reply = await self._wyoming(Synthesize(text="饭好了，快来吃").event())
        if not AudioStop.is_type(reply.type):
            raise SoakStuck(f"a Wyoming synthesize request got {reply.type}: {reply.data}")

    @property
    def timers_due(self) -> int:
        """Timers set and not cancelled: each must fire exactly once."""
        return self.timers_set - self.timers_cancelled

    async def wait_for_reminders(self, timeout_seconds: float = 15.0) -> None:
        """Wait (real time: the scheduler keeps wall-clock time) until every timer due has fired and spoken."""
        async with asyncio.timeout(timeout_seconds):
            while self.reminders_fired < self.timers_due:
                # Hours of silence on the fake clock meanwhile would only burn CPU.
                with self.clock_held():
                    await asyncio.sleep(0.01)
                await self.idle()

    @contextlib.contextmanager
    def clock_held(self) -> Iterator[None]:
        """Keep the daemon's clock still while real time passes (start-up, a command on its way)."""
        self._edges.clock.holds += 1
        try:
            yield
        finally:
            self._edges.clock.holds -= 1


SCENARIOS: dict[str, int] = {
    "question": 3,
    "conversation": 3,
    "clock": 2,
    "timer": 2,
    "timer_cancelled": 1,
    "lights": 2,
    "fan": 1,
    "unlock_confirmed": 1,
    "call_for_help": 1,
    "barge_in": 2,
    "stop_word": 1,
    "no_speech": 2,
    "model_error": 1,
    "model_retry": 1,
    "model_crash": 1,
    "mqtt_ask": 2,
    "mqtt_listen": 1,
    "mqtt_stop": 1,
    "mqtt_announce": 1,
    "mqtt_repeat": 1,
    "wyoming_ask": 1,
    "wyoming_speak": 1,
}
"""Scenario → weight: how often it comes up in the household's day."""
