"""A rig that runs the supervisor with fakes on a fake clock (tests and bench.conversation)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.audio import AudioChunk
from assistant.bus import Bus
from assistant.config import Settings
from assistant.events import AssistantStateChanged, Event, ShutdownRequested, TurnEnded
from assistant.ports import AudioSource, Replayer, ToolRunner, Voice
from assistant.state import StateTracker
from assistant.supervisor import Supervisor, SupervisorOptions
from assistant.tasks import Worker
from assistant.turn import TurnDeps
from support.fakes import (
    FakeClock,
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    ScriptedModel,
    Step,
    fake_stop_detector,
)


def names(events: Sequence[Event]) -> list[str]:
    """Event class names, without the derived state changes."""
    return [type(e).__name__ for e in events if not isinstance(e, AssistantStateChanged)]


def settings(**sections: dict[str, Any]) -> Settings:
    """Settings with earcons off (most sequences are clearer without them) and the given overrides."""
    data: dict[str, Any] = {"conversation": {"earcons": False, "follow_up_seconds": 0}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return Settings.model_validate(data)


@dataclass
class Rig:
    """The supervisor wired to fakes; ``run`` plays a microphone timeline and returns every event."""

    settings: Settings = field(default_factory=settings)
    rounds: Sequence[Sequence[Step]] = ()
    tools: ToolRunner = field(default_factory=FakeTools)
    clock: FakeClock = field(default_factory=FakeClock)
    events: list[Event] = field(default_factory=list)
    voice: Voice = field(default_factory=FakeVoice)
    replayer: Replayer | None = None
    speak: bool = True
    detectors_on: Worker | None = None

    def __post_init__(self) -> None:
        self.bus = Bus(self.clock)
        self.bus.tap(lambda envelope: self.events.append(envelope.event))
        self.times: list[float] = []
        self.bus.tap(lambda envelope: self.times.append(envelope.at))
        self.state = StateTracker(self.bus)
        self.speaker = FakeSpeaker(self.clock)
        self.model = ScriptedModel(self.clock, self.rounds)
        self.wake = FakeWakeDetector()

    def at(self, seconds: float, event: Event) -> Callable[[], Any]:
        """Publish ``event`` at fake time ``seconds``."""

        async def later() -> None:
            await self.clock.sleep(seconds - self.clock.now())
            self.bus.publish(event)

        return later

    async def run(
        self,
        mic: Sequence[AudioChunk],
        *,
        until: Callable[[list[Event]], bool] | None = None,
        turns: int = 1,
        script: Sequence[Callable[[], Any]] = (),
        limit_seconds: float = 120.0,
        wake_words: tuple[str, ...] = (),
        source: AudioSource | None = None,
    ) -> list[Event]:
        """Run until ``until`` holds (default: ``turns`` TurnEnded events), then shut down cleanly."""
        s = self.settings
        done = until or (lambda events: sum(isinstance(e, TurnEnded) for e in events) >= turns)
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=self.clock,
            vad=FakeSpeechDetector(),
            model=self.model,
            voice=self.voice,
            sink=self.speaker,
            tools=self.tools,
            endpoint=s.endpointing,
            conversation=s.conversation,
            replayer=self.replayer,
            speak=self.speak,
        )
        supervisor = Supervisor(
            bus=self.bus,
            source=source or FakeMicrophone(self.clock, mic),
            wake=self.wake,
            stop_word=fake_stop_detector(),
            deps=deps,
            options=SupervisorOptions(
                follow_up_seconds=s.conversation.follow_up_seconds,
                suppress_wake_during_playback=s.wake.suppress_during_playback,
                wake_words=wake_words,
                speak_remote_answers=s.conversation.speak_remote_answers,
            ),
            detectors_on=self.detectors_on,
        )
        reached = asyncio.Event()
        cut: list[int] = []

        def check(_: object) -> None:
            if not cut and done(self.events):
                cut.append(len(self.events))
                reached.set()

        self.bus.tap(check)
        driver = asyncio.create_task(self.clock.drive())
        running = asyncio.create_task(supervisor.run())
        extras = [asyncio.create_task(step()) for step in script]

        async def limit() -> None:
            await self.clock.sleep(limit_seconds)

        async def poll() -> None:
            while True:
                await self.clock.sleep(0.04)
                check(None)

        limiter = asyncio.create_task(limit())
        extras.append(asyncio.create_task(poll()))
        waiter = asyncio.create_task(reached.wait())
        try:
            await asyncio.wait({waiter, limiter, running}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                running.result()
            assert waiter.done(), f"condition not reached in {limit_seconds} s: {names(self.events)}"
            self.bus.publish(ShutdownRequested(reason="test"))
            await asyncio.wait_for(running, timeout=5)
        finally:
            for task in (driver, limiter, waiter, running, *extras):
                task.cancel()
            await asyncio.gather(driver, limiter, waiter, running, *extras, return_exceptions=True)
        return self.events[: cut[0]]
