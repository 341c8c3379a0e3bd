"""``xiangyin run`` with fakes only at the audio and model edges, for the secret-leak tests.

Everything between is real: the config loader (``${ENV}`` and ``*_file`` secrets), logging with its
masking, the App, the MQTT bridge, the Home Assistant client, the skills and their HTTP. The model is a
worst case: each spoken turn calls the next tool of the script, then reads every tool result aloud word
for word, so whatever a tool returns ends up in the answer (the log, the MQTT answer topic).

Run: python -m tests.reliability.secret_daemon CONFIG SCRIPT_JSON
where SCRIPT_JSON is a list of ``[tool_name, arguments]``, one per spoken turn.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from assistant import app, cli
from assistant.bus import Bus
from assistant.config import Settings
from assistant.ports import Clock, ModelDone, ModelEvent, ModelRequest, ModelText, ModelToolCall, ModelTranscript
from assistant.voice.replay import ReplayVoice
from support.fakes import (
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeVoice,
    FakeWakeDetector,
    silence,
    speech,
    timeline,
    wake_word,
)


class ToolReadingModel:
    """Calls the scripted tool in each spoken turn, then says the tool results verbatim."""

    def __init__(self, script: list[tuple[str, dict[str, Any]]]) -> None:
        self._script = list(script)
        self._ids = itertools.count(1)

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        if request.tool_results:
            for result in request.tool_results:
                yield ModelText(json.dumps(result.content, ensure_ascii=False) + " ")
        elif self._script:
            name, arguments = self._script.pop(0)
            # What the user said, arguments and all (an alarm code said aloud lands in the transcript).
            yield ModelTranscript(f"please run {name} {json.dumps(arguments, ensure_ascii=False)}")
            yield ModelToolCall(f"call-{next(self._ids)}", name, arguments)
        else:
            yield ModelText("nothing left to do")
        yield ModelDone()

    def forget(self, conversation_id: str) -> None:
        pass

    def retract(self, conversation_id: str) -> None:
        pass

    def set_dialect(self, dialect: str) -> None:
        pass


def adapters_for(script: list[tuple[str, dict[str, Any]]]) -> app.AdapterFactory:
    async def build(settings: Settings, bus: Bus, clock: Clock, stack: contextlib.AsyncExitStack) -> app.Adapters:
        services: list[app.Service] = []
        voice = ReplayVoice(FakeVoice(seconds_per_char=0.001), None)
        tools, _ = await app.build_tools(settings, bus, clock, stack, services, voice)
        turns = [timeline(wake_word(), speech(0.4), silence(2.4)) for _ in script]
        # The MQTT bridge connects first; the microphone then ends, and with it the daemon.
        mic = timeline(silence(1.0), *turns, silence(1.0))
        return app.Adapters(
            source=FakeMicrophone(clock, mic, then_silence=False),
            sink=FakeSpeaker(clock),
            wake=FakeWakeDetector(),
            vad=FakeSpeechDetector(),
            model=ToolReadingModel(script),
            voice=voice,
            tools=tools,
            replayer=voice,
            services=services,
        )

    return build


def main(config: Path, script: list[tuple[str, dict[str, Any]]]) -> int:
    build = adapters_for(script)
    # `xiangyin run` builds the real adapters; only their factory is swapped, the rest is the CLI's own path.
    app.build_adapters = lambda settings, bus, clock, stack, **_: build(settings, bus, clock, stack)  # type: ignore[assignment]
    return cli.main(["run", "--config", str(config)])


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), [(name, args) for name, args in json.loads(sys.argv[2])]))
