"""Fakes that implement the same Protocols as the real adapters, for fast tests on a fake clock.

Core tests use tagged audio: a chunk whose PCM starts with ``b"WAKE"`` is the wake word, ``b"STOP"`` the
stop word, ``b"SPCH"`` speech, and all-zero PCM is silence.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.audio import AudioChunk, read_wav, split
from assistant.earcons import Earcon, render
from assistant.errors import ModelError
from assistant.ports import (
    SPEECH_PAD,
    Clock,
    ModelAudio,
    ModelEvent,
    ModelRequest,
    ModelSpeech,
    ModelText,
    ModelToolCall,
    ReplyPiece,
    ToolResult,
    ToolSpec,
    WakeHit,
)

CHUNK_SECONDS = 0.08
_WAKE, _STOP, _SPEECH = b"WAKE", b"STOP", b"SPCH"


# --- time ---------------------------------------------------------------------------------------


class FakeClock:
    """A clock that jumps to the next sleeper's deadline as soon as the event loop has nothing to do.

    Run :meth:`drive` as a background task; a 30-second conversation then takes milliseconds and every
    run interleaves the same way.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.holds = 0
        """While positive, time stands still: something waits on real I/O that takes next to no real time."""

    def now(self) -> float:
        """Return the fake time in seconds."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the fake time has advanced by ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._order), future))
        await future

    async def drive(self) -> None:
        """Advance time whenever every task is blocked; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            quiet = 0
            while quiet < 3:
                await asyncio.sleep(0)
                # CPython keeps runnable callbacks in loop._ready; empty means everyone is waiting.
                quiet = quiet + 1 if not loop._ready else 0  # type: ignore[attr-defined]
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers or self.holds:
                await asyncio.sleep(0.0005)
                continue
            self._now = max(self._now, self._sleepers[0][0])
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)


# --- tagged audio -------------------------------------------------------------------------------


def _tagged(tag: bytes, seconds: float) -> list[AudioChunk]:
    count = max(1, round(seconds / CHUNK_SECONDS))
    size = round(CHUNK_SECONDS * 16_000) * 2
    pcm = tag + bytes(size - len(tag)) if tag else bytes(size)
    return [AudioChunk(pcm) for _ in range(count)]


def silence(seconds: float) -> list[AudioChunk]:
    """Chunks of digital silence."""
    return _tagged(b"", seconds)


def speech(seconds: float) -> list[AudioChunk]:
    """Chunks the fake VAD calls speech."""
    return _tagged(_SPEECH, seconds)


def wake_word() -> list[AudioChunk]:
    """One chunk the fake wake detector fires on."""
    return _tagged(_WAKE, CHUNK_SECONDS)


def stop_word() -> list[AudioChunk]:
    """One chunk the fake stop detector fires on."""
    return _tagged(_STOP, CHUNK_SECONDS)


def timeline(*parts: Iterable[AudioChunk]) -> list[AudioChunk]:
    """Concatenate audio parts into one microphone timeline."""
    return [chunk for part in parts for chunk in part]


# --- audio in -----------------------------------------------------------------------------------


class FakeMicrophone:
    """Plays a timeline of chunks in real (fake-clock) time, then silence forever or the end."""

    def __init__(self, clock: Clock, chunks: Sequence[AudioChunk], *, then_silence: bool = True) -> None:
        self._clock = clock
        self._chunks = list(chunks)
        self._then_silence = then_silence

    @classmethod
    def from_wav(cls, clock: Clock, path: Path, *, then_silence: bool = True) -> FakeMicrophone:
        """Cut a 16 kHz WAV into 80 ms chunks."""
        return cls(clock, list(split(read_wav(path), CHUNK_SECONDS)), then_silence=then_silence)

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield each chunk after its duration has passed, as a real microphone does."""
        for chunk in self._chunks:
            await self._clock.sleep(chunk.seconds)
            yield chunk
        while self._then_silence:
            await self._clock.sleep(CHUNK_SECONDS)
            yield silence(CHUNK_SECONDS)[0]


class FakeWakeDetector:
    """Fires on chunks starting with a tag (``WAKE`` by default)."""

    def __init__(self, name: str = "hey_jarvis", tag: bytes = _WAKE) -> None:
        self.name = name
        self._tag = tag
        self.resets = 0

    def process(self, chunk: AudioChunk) -> WakeHit | None:
        """Return a hit for a tagged chunk."""
        return WakeHit(self.name, 0.9) if chunk.pcm.startswith(self._tag) else None

    def reset(self) -> None:
        """Count resets (nothing is buffered)."""
        self.resets += 1


def fake_stop_detector() -> FakeWakeDetector:
    """A detector for the tagged stop word."""
    return FakeWakeDetector("stop", _STOP)


class FakeSpeechDetector:
    """Calls any non-silent chunk speech."""

    def probability(self, chunk: AudioChunk) -> float:
        """1.0 for chunks with any non-zero byte, else 0.0."""
        return 1.0 if any(chunk.pcm) else 0.0

    def reset(self) -> None:
        """Nothing to forget."""


class SayingMicrophone:
    """Silence, or what the test says into it (with silence around it), faster than real time."""

    def __init__(self, *, pace_seconds: float, before_seconds: float = 0.4, after_seconds: float = 1.0) -> None:
        self.pending: collections.deque[AudioChunk] = collections.deque()
        self._pace = pace_seconds
        self._before, self._after = before_seconds, after_seconds

    def say(self, chunks: Sequence[AudioChunk]) -> None:
        """Queue ``chunks`` between the silences."""
        self.pending.extend([*silence(self._before), *chunks, *silence(self._after)])

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """One chunk every ``pace_seconds`` of wall time: what was said, else silence."""
        while True:
            await asyncio.sleep(self._pace)
            yield self.pending.popleft() if self.pending else silence(CHUNK_SECONDS)[0]


# --- audio out ----------------------------------------------------------------------------------


class FakeSpeaker:
    """Records what it plays, taking each chunk's duration on the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._generation = 0
        self.played: list[AudioChunk] = []
        self.stops: list[float] = []
        self.volume = 1.0

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        """Play until the stream ends or stop() is called."""
        generation = self._generation
        async for chunk in audio:
            if generation != self._generation:
                return False
            self._heard(chunk)
            await self._clock.sleep(chunk.seconds)
            if generation != self._generation:
                return False
        return True

    def _heard(self, chunk: AudioChunk) -> None:
        self.played.append(chunk)

    def stop(self) -> None:
        """Cut the current stream short."""
        self._generation += 1
        self._stopped()

    def _stopped(self) -> None:
        self.stops.append(self._clock.now())

    def set_volume(self, level: float) -> None:
        """Remember the gain."""
        self.volume = level

    @property
    def played_seconds(self) -> float:
        """Seconds of audio played so far."""
        return sum(chunk.seconds for chunk in self.played)


class BeepCountingSpeaker(FakeSpeaker):
    """Counts the wake earcons played: an enrolment beeps before each take."""

    beeps = 0

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        """Play, then count the stream if it was the wake earcon."""
        done = await super().play(audio)
        if self.played and self.played[-1] is render(Earcon.WAKE):
            self.beeps += 1
        return done


class FakeVoice:
    """Renders text at ``seconds_per_char`` and speech tokens at 25 per second, in 24 kHz chunks.

    The speech pad 6561 is left out, as the real voice does by default.
    """

    def __init__(self, seconds_per_char: float = 0.1) -> None:
        self._seconds_per_char = seconds_per_char
        self.dialects: list[str] = []

    def set_dialect(self, dialect: str) -> None:
        """Record the change."""
        self.dialects.append(dialect)

    async def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        """Yield audio for each piece as it arrives."""
        async for piece in pieces:
            match piece:
                case ModelText(text=text):
                    seconds = len(text) * self._seconds_per_char
                case ModelSpeech(tokens=tokens):
                    seconds = sum(code != SPEECH_PAD for code in tokens) / 25
                case ModelAudio(chunk=chunk):
                    yield chunk
                    continue
            if seconds > 0:
                pcm = b"VOIC" + bytes(round(seconds * 24_000) * 2 - 4)
                for chunk in split(AudioChunk(pcm, 24_000), 0.2):
                    yield chunk


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """After ``delay_seconds``, yield ``event`` (or raise it, if it is an exception)."""

    delay_seconds: float
    event: ModelEvent | Exception


def after(delay_seconds: float, event: ModelEvent | Exception) -> Step:
    """Shorthand for a timeline step."""
    return Step(delay_seconds, event)


class ScriptedModel:
    """A speech model that plays one scripted round per request, on the fake clock."""

    def __init__(self, clock: Clock, rounds: Sequence[Sequence[Step]]) -> None:
        self._clock = clock
        self._rounds = [list(r) for r in rounds]
        self.requests: list[ModelRequest] = []
        self.cancelled = 0
        self.forgotten: list[str] = []
        self.retracted: list[str] = []
        self.dialects: list[str] = []
        self._last: tuple[ModelRequest, list[Step]] | None = None

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Play the next round; raise ModelError if the script has no round left."""
        self.requests.append(request)
        if not self._rounds:
            raise ModelError("script exhausted")
        steps = self._rounds.pop(0)
        self._last = (request, steps)
        try:
            for step in steps:
                await self._clock.sleep(step.delay_seconds)
                if isinstance(step.event, Exception):
                    raise step.event
                yield step.event
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise

    def forget(self, conversation_id: str) -> None:
        """Record the reset."""
        self.forgotten.append(conversation_id)

    def retract(self, conversation_id: str) -> None:
        """Record the retraction; a speculative round's script is played again for the next request."""
        self.retracted.append(conversation_id)
        if self._last is not None and self._last[0].speculative:
            self._rounds.insert(0, self._last[1])
            self._last = None

    def set_dialect(self, dialect: str) -> None:
        """Record the change."""
        self.dialects.append(dialect)


# --- tools --------------------------------------------------------------------------------------

Handler = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]


@dataclass
class FakeTools:
    """A ToolRunner over plain async handlers."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[ModelToolCall] = field(default_factory=list)

    def specs(self) -> tuple[ToolSpec, ...]:
        """One permissive spec per handler."""
        return tuple(ToolSpec(name, f"fake {name}", {"type": "object"}) for name in self.handlers)

    async def call(self, call: ModelToolCall) -> ToolResult:
        """Run the handler; unknown tools come back as an error result."""
        self.calls.append(call)
        handler = self.handlers.get(call.name)
        if handler is None:
            return ToolResult(call.call_id, call.name, {"ok": False, "error": f"unknown tool {call.name}"})
        return ToolResult(call.call_id, call.name, dict(await handler(call.arguments)))


# --- starvation ---------------------------------------------------------------------------------


def freeze_this_process(seconds: float) -> subprocess.Popen[bytes]:
    """Stop every thread of this process for ``seconds``, as the worst CPU starvation would; a helper wakes it.

    Sound devices go on recording meanwhile; on waking, the overdue timers and the held-up audio race.
    Returns the helper, for the caller to wait for later: waiting now would let the other threads go
    first, which is the lucky order.
    """
    waker = subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {os.getpid()}"])
    os.kill(os.getpid(), signal.SIGSTOP)
    return waker
