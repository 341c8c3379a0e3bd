"""Run the real App (signals, sd_notify, watchdog) on fake adapters and the real clock, for process tests."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from assistant.app import Adapters, App
from assistant.bus import Bus
from assistant.config import Settings
from assistant.logs import configure_logging
from assistant.ports import Clock, ModelDone, ModelText, ModelTranscript
from tests.fakes import (
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    ScriptedModel,
    after,
    silence,
    speech,
    timeline,
    wake_word,
)


async def build(settings: Settings, bus: Bus, clock: Clock, stack: contextlib.AsyncExitStack) -> Adapters:
    mic = timeline(silence(0.3), wake_word(), speech(0.5), silence(30))
    model = ScriptedModel(
        clock, [[after(0.05, ModelTranscript("hi")), after(0.05, ModelText("hello")), after(0, ModelDone())]]
    )
    return Adapters(
        source=FakeMicrophone(clock, mic),
        sink=FakeSpeaker(clock),
        wake=FakeWakeDetector(),
        vad=FakeSpeechDetector(),
        model=model,
        voice=FakeVoice(seconds_per_char=0.02),
        tools=FakeTools(),
    )


def main() -> int:
    settings = Settings.model_validate({"conversation": {"follow_up_seconds": 0, "earcons": False}})
    configure_logging(settings.logging)
    asyncio.run(App(settings, build).run())
    print("clean exit", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
