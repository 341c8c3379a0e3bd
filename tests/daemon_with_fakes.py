"""Run the real App (signals, sd_notify, watchdog) on fake adapters and the real clock, for process tests.

``python -m tests.daemon_with_fakes`` hears one question and answers it. Options for the fault tests:
``--busy model`` (the model starts answering, then hangs), ``--busy tool`` (the model calls a skill
tool that hangs) or ``--busy command`` (the same with a tool that must not be cut short) keep the first
turn running; ``--store PATH`` adds the real reminder scheduler on that
SQLite file, ``--remind TEXT`` schedules a reminder 1.5 s after start, and ``--quiet`` hears nothing.
``--mqtt PORT`` adds the real MQTT bridge (device ``fake_box``, wake words hey_jarvis and alexa) on a broker
at 127.0.0.1:PORT, and ``--state PATH`` keeps the settings changed at run time in that file (none by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
from importlib.metadata import EntryPoint
from typing import Any

from assistant.app import Adapters, App, Service
from assistant.bus import Bus
from assistant.config import Settings
from assistant.logs import configure_logging
from assistant.ports import Clock, ModelDone, ModelText, ModelToolCall, ModelTranscript, ToolRunner
from assistant.scheduler import ReminderScheduler
from assistant.skills import ENTRY_POINT_GROUP, Skill, SkillDeps, load_skills
from assistant.tools import tool
from support.fakes import (
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    ScriptedModel,
    Step,
    after,
    silence,
    speech,
    timeline,
    wake_word,
)


class SlowSkill(Skill):
    """A skill whose lookup never answers (its timeout is far away)."""

    name = "slow"

    @tool(timeout_seconds=600)
    async def slow_lookup(self, city: str) -> dict[str, Any]:
        """Look up a city."""
        print("slow_lookup started", flush=True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            print("slow_lookup cancelled", flush=True)
            raise
        return {}

    @tool(timeout_seconds=600, cancel_on_interrupt=False)
    async def slow_command(self, city: str) -> dict[str, Any]:
        """Send a command that must not be cut short (its device never answers)."""
        print("slow_command started", flush=True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            print("slow_command stopped", flush=True)
            raise
        return {}


def _answer(busy: str | None) -> list[Step]:
    if busy == "model":
        return [after(0.05, ModelTranscript("hi")), after(0.05, ModelText("let me think")), after(3600, ModelDone())]
    if busy in ("tool", "command"):
        name = "slow_lookup" if busy == "tool" else "slow_command"
        return [after(0.05, ModelToolCall("c1", name, {"city": "广州"})), after(0, ModelDone("tool_calls"))]
    return [after(0.05, ModelTranscript("hi")), after(0.05, ModelText("hello")), after(0, ModelDone())]


async def build(
    settings: Settings,
    bus: Bus,
    clock: Clock,
    stack: contextlib.AsyncExitStack,
    *,
    busy: str | None = None,
    store: str | None = None,
    remind: str | None = None,
    quiet: bool = False,
) -> Adapters:
    services: list[Service] = []
    if settings.mqtt.enabled:
        from assistant.integrations.mqtt import MqttBridge

        names = [word.name for word in settings.wake.words]
        bridge = MqttBridge(
            settings.mqtt,
            bus,
            "0.1.0-test",
            wake_words=names,
            wake_word=names[0],
            dialect=settings.persona.dialect,
            volume=settings.audio.volume,
        )
        services.append(bridge.run)
    mic = [] if quiet else timeline(silence(0.3), wake_word(), speech(0.5), silence(30))
    model = ScriptedModel(clock, [_answer(busy)])
    tools: ToolRunner = FakeTools()
    if busy in ("tool", "command"):
        available = {"slow": EntryPoint(name="slow", value=f"{__name__}:SlowSkill", group=ENTRY_POINT_GROUP)}
        registry = await load_skills({"slow": {}}, SkillDeps(publish=bus.publish, clock=clock), available=available)
        stack.push_async_callback(registry.aclose)
        tools = registry
    keep = None
    if store is not None:
        scheduler = ReminderScheduler(store, publish=bus.publish, wait_until_spoken=True)
        await scheduler.start(paused=True)
        bus.tap(scheduler.observe)
        stack.push_async_callback(scheduler.stop)
        if remind is not None:
            scheduler.add_after("reminder", remind, 1.5)
        keep = scheduler.keep
    return Adapters(
        source=FakeMicrophone(clock, mic),
        sink=FakeSpeaker(clock),
        wake=FakeWakeDetector(),
        vad=FakeSpeechDetector(),
        model=model,
        voice=FakeVoice(seconds_per_char=0.02),
        tools=tools,
        keep_unspoken=keep,
        services=services,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", choices=["model", "tool", "command"])
    parser.add_argument("--store")
    parser.add_argument("--remind")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--mqtt", type=int, metavar="PORT")
    parser.add_argument("--state", metavar="PATH")
    args = parser.parse_args(argv)
    data: dict[str, Any] = {
        "conversation": {"follow_up_seconds": 0, "earcons": False},
        "state": {"settings_path": args.state},
    }
    if args.mqtt is not None:
        data["mqtt"] = {"enabled": True, "port": args.mqtt, "device_id": "fake_box", "keepalive_seconds": 5}
        data["wake"] = {"words": [{"model": "hey_jarvis"}, {"model": "alexa"}]}
    settings = Settings.model_validate(data)
    configure_logging(settings.logging)
    factory = functools.partial(build, busy=args.busy, store=args.store, remind=args.remind, quiet=args.quiet)
    asyncio.run(App(settings, factory).run())
    print("clean exit", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
