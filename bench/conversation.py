"""How fast the core runs a scripted conversation on the fake clock, and its per-turn overhead.

Run: python -m bench.conversation
Prints the virtual seconds of conversation, the wall seconds they took, and the speed-up ratio.
"""

from __future__ import annotations

import asyncio
import time

from assistant.events import TurnEnded
from assistant.ports import ModelDone, ModelSpeech, ModelText, ModelToolCall, ModelTranscript
from support.fakes import FakeTools, after, silence, speech, timeline, wake_word
from support.rig import Rig, settings


async def weather(arguments: object) -> dict[str, object]:
    return {"ok": True, "temperature_c": 21}


def script(turns: int) -> tuple[list[object], list[list[object]]]:
    mic: list[object] = [*silence(0.5)]
    rounds: list[list[object]] = []
    for _ in range(turns):
        mic += timeline(wake_word(), speech(1.5), silence(1.0), silence(6.0))
        rounds.append([after(0.3, ModelTranscript("天气")), after(0.2, ModelToolCall("c", "get_weather", {}))])
        rounds.append(
            [after(0.2, ModelText("二十一度")), after(0.1, ModelSpeech(tuple(range(75)))), after(0, ModelDone())]
        )
    return mic, rounds


async def run(turns: int) -> tuple[float, float]:
    mic, rounds = script(turns)
    rig = Rig(settings=settings(), rounds=rounds, tools=FakeTools({"get_weather": weather}))  # type: ignore[arg-type]
    started = time.perf_counter()
    events = await rig.run(mic, turns=turns, limit_seconds=10.0 * turns + 30)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    assert sum(isinstance(e, TurnEnded) for e in events) == turns
    return rig.clock.now(), wall


def main() -> None:
    print(f"{'turns':>5} {'conversation s':>15} {'wall s':>8} {'speed-up':>9} {'wall ms/turn':>13}")
    for turns in (1, 4, 16):
        virtual, wall = asyncio.run(run(turns))
        print(f"{turns:>5} {virtual:>15.1f} {wall:>8.3f} {virtual / wall:>8.0f}x {1000 * wall / turns:>13.1f}")


if __name__ == "__main__":
    main()
