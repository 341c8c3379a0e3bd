"""How much the tool registry adds to a tool call: validation, timeout, result checks.

Run: ``.venv/bin/python bench/tool_dispatch.py``. Prints microseconds per call for a direct method call and
for the same call through ``ToolRegistry.call``, and their ratio; also the cost of a rejected call and of
building the JSON Schemas of every built-in tool (done once at start-up).
"""

from __future__ import annotations

import asyncio
import platform
import tempfile
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from assistant.errors import ConfigError
from assistant.ports import ModelToolCall
from assistant.scheduler import ReminderScheduler
from assistant.skills import SkillDeps, discover, validate_config
from assistant.tasks import MonotonicClock
from assistant.tools import ToolRegistry, tool, tools_of

CALLS = 20_000


class Probe:
    """A tool that does nothing, so only the dispatch is measured."""

    @tool(timeout_seconds=5)
    async def get_forecast(
        self,
        location: Annotated[str, Field(description="Place name")],
        day: Annotated[Literal["today", "tomorrow"], Field(description="Which day")] = "today",
    ) -> dict[str, object]:
        """Get the weather forecast for a place."""
        return {"location": location, "day": day}


async def per_call_us(make_call: object, count: int = CALLS) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await make_call()  # type: ignore[operator]
    return (time.perf_counter() - started) / count * 1e6


async def main(calls: int = CALLS) -> None:
    probe = Probe()
    tools = ToolRegistry(MonotonicClock())
    tools.add_all(tools_of(probe))
    good = ModelToolCall("c1", "get_forecast", {"location": "成都", "day": "tomorrow"})
    bad = ModelToolCall("c2", "get_forecast", {"day": "yesterday"})

    await per_call_us(lambda: tools.call(good), calls // 10)  # warm up
    direct = await per_call_us(lambda: probe.get_forecast("成都", "tomorrow"), calls)
    dispatched = await per_call_us(lambda: tools.call(good), calls)
    rejected = await per_call_us(lambda: tools.call(bad), calls)

    with tempfile.TemporaryDirectory() as tmp:
        scheduler = ReminderScheduler(Path(tmp) / "x.sqlite", publish=lambda e: None)
        deps = SkillDeps(publish=lambda e: None, clock=MonotonicClock(), scheduler=scheduler)
        configs = {"help": {"contacts": [{"name": "x", "mqtt_topic": "a/b"}]}}
        started = time.perf_counter()
        count = 0
        skipped: list[str] = []
        for name, entry in discover().items():
            skill_class = entry.load()
            try:
                skill = skill_class(validate_config(skill_class, configs.get(name, {})), deps)
            except ConfigError:
                skipped.append(name)  # e.g. the voice skill needs the running voice, absent here
                continue
            count += len(tools_of(skill, owner=name))
        build_ms = (time.perf_counter() - started) * 1e3

    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"direct await of the method:        {direct:7.1f} µs/call")
    print(f"through ToolRegistry.call:         {dispatched:7.1f} µs/call  (overhead {dispatched - direct:.1f} µs)")
    print(f"rejected by validation:            {rejected:7.1f} µs/call")
    print(f"ratio registry / direct:           {dispatched / direct:7.1f}x")
    print(f"schemas of {count} built-in tools:     {build_ms:7.1f} ms once at start-up (imports included)")
    if skipped:
        print(f"skills not built here (they need running parts): {', '.join(skipped)}")


if __name__ == "__main__":
    asyncio.run(main())
