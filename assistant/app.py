"""Composition root: the only module that builds concrete adapters from the settings and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .bus import Bus
from .config import Settings
from .events import ConnectionChanged, DaemonStarted, ShutdownRequested
from .logs import log_event
from .ports import AudioSink, AudioSource, Clock, SpeechDetector, SpeechModel, ToolRunner, Voice, WakeDetector
from .sdnotify import Notifier
from .state import StateTracker
from .supervisor import Supervisor, SupervisorOptions
from .tasks import MonotonicClock
from .turn import TurnDeps

_LOGGER = logging.getLogger(__name__)

Service = Callable[[], Coroutine[Any, Any, None]]
"""A long-running edge (MQTT bridge, Wyoming server): runs until cancelled, never raises for a dropped link."""


@dataclass
class Adapters:
    """The concrete parts the core runs on."""

    source: AudioSource
    sink: AudioSink
    wake: WakeDetector
    vad: SpeechDetector
    model: SpeechModel
    voice: Voice
    tools: ToolRunner
    stop_word: WakeDetector | None = None
    services: Sequence[Service] = field(default_factory=list)
    """Edges run beside the supervisor."""


AdapterFactory = Callable[[Settings, Bus, Clock], Adapters]


class App:
    """The daemon: wires the core to its adapters and runs until a signal or ShutdownRequested."""

    def __init__(self, settings: Settings, build: AdapterFactory, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._build = build
        self.clock: Clock = clock or MonotonicClock()
        self.bus = Bus(self.clock)
        self.state = StateTracker(self.bus)
        if settings.logging.events:
            self.bus.tap(log_event)

    def request_shutdown(self, reason: str) -> None:
        """Ask the daemon to stop; safe from signal handlers."""
        self.bus.publish(ShutdownRequested(reason=reason))

    async def run(self) -> None:
        """Build the adapters, serve, and shut down cleanly on SIGTERM/SIGINT."""
        settings = self._settings
        adapters = self._build(settings, self.bus, self.clock)
        conversation = settings.conversation
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=self.clock,
            vad=adapters.vad,
            model=adapters.model,
            voice=adapters.voice,
            sink=adapters.sink,
            tools=adapters.tools,
            endpoint=settings.endpointing,
            conversation=conversation,
        )
        supervisor = Supervisor(
            bus=self.bus,
            source=adapters.source,
            wake=adapters.wake,
            stop_word=adapters.stop_word,
            deps=deps,
            options=SupervisorOptions(
                follow_up_seconds=conversation.follow_up_seconds,
                forget_after_seconds=conversation.forget_after_seconds,
                suppress_wake_during_playback=settings.wake.suppress_during_playback,
                initial_volume=settings.audio.volume,
            ),
        )
        notifier = Notifier()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_shutdown, signal.Signals(signum).name)
        try:
            async with asyncio.TaskGroup() as group:
                edges: list[asyncio.Task[None]] = [
                    group.create_task(service(), name=f"service:{i}") for i, service in enumerate(adapters.services)
                ]
                if (interval := notifier.watchdog_interval_seconds) is not None:
                    edges.append(group.create_task(self._watchdog(notifier, interval), name="watchdog"))
                self.bus.publish(DaemonStarted(version=__version__))
                notifier.notify("READY=1")
                _LOGGER.info("xiangyin %s ready", __version__)
                await supervisor.run()
                notifier.notify("STOPPING=1")
                for task in edges:
                    task.cancel()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        _LOGGER.info("stopped")

    async def _watchdog(self, notifier: Notifier, interval_seconds: float) -> None:
        """Ping systemd from the event loop, so a blocked loop gets the daemon restarted."""
        while True:
            notifier.notify("WATCHDOG=1")
            await self.clock.sleep(interval_seconds)


def report_unavailable(bus: Bus, service: str, detail: str) -> None:
    """Log and publish that an edge could not be set up."""
    _LOGGER.error("%s unavailable: %s", service, detail)
    with contextlib.suppress(Exception):
        bus.publish(ConnectionChanged(service=service, connected=False, detail=detail))
