"""Home Assistant down, failing or slow: the model hears so plainly, the daemon reports it, and recovers.

The smart-home skill runs behind the real tool registry with the real REST client (default retries),
against the stand-in server of support/fake_home_assistant.py, which can be switched off and on; one test
does the same with a real Home Assistant core.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from assistant.config import HomeAssistantSettings
from assistant.events import ConnectionChanged, Event
from assistant.integrations.ha_registry import HomeAssistantRegistry
from assistant.integrations.homeassistant import HomeAssistantClient
from assistant.ports import ModelToolCall
from assistant.skills import SkillDeps, load_skills
from assistant.tasks import MonotonicClock, cancel_and_wait
from assistant.tools import ToolRegistry
from support.fake_home_assistant import TOKEN, FakeHomeAssistant, fake_home_assistant
from support.servers import eventually
from tests.home_assistant_server import home_assistant

UNREACHABLE = "Home Assistant cannot be reached right now"


@dataclass
class Box:
    """The smart-home tools as the model calls them, and what the daemon published."""

    tools: ToolRegistry
    events: list[Event] = field(default_factory=list)
    calls: int = 0

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        self.calls += 1
        result = await self.tools.call(ModelToolCall(f"c{self.calls}", name, arguments))
        return dict(result.content)

    def reports(self) -> list[bool]:
        """Every ConnectionChanged for Home Assistant, in order."""
        return [e.connected for e in self.events if isinstance(e, ConnectionChanged) and e.service == "home_assistant"]


BoxFactory = Callable[..., Awaitable[Box]]


@pytest.fixture
def ha() -> Iterator[FakeHomeAssistant]:
    with fake_home_assistant() as fake:
        yield fake


@pytest.fixture
async def make_box() -> AsyncIterator[BoxFactory]:
    opened: list[tuple[ToolRegistry, HomeAssistantClient]] = []

    async def make(url: str, token: str = TOKEN, **overrides: Any) -> Box:
        events: list[Event] = []
        settings = HomeAssistantSettings(enabled=True, url=url, token=token, **overrides)  # type: ignore[arg-type]
        client = HomeAssistantClient(settings, publish=events.append)
        deps = SkillDeps(publish=events.append, clock=MonotonicClock(), home_assistant=client)
        tools = await load_skills({"smart_home": {"states_cache_seconds": 0}}, deps)
        assert not tools.skipped, tools.skipped
        opened.append((tools, client))
        return Box(tools, events)

    yield make
    for tools, client in opened:
        await tools.aclose()
        await client.close()


def failed(result: dict[str, Any]) -> str:
    assert result.get("ok") is False, f"expected a failure, got {result}"
    return str(result["error"])


async def test_home_assistant_down_is_reported_plainly_and_commands_work_once_it_is_back(
    ha: FakeHomeAssistant, make_box: BoxFactory
) -> None:
    box = await make_box(ha.url)
    assert "error" not in await box.call("turn_on", target="kitchen")
    assert box.reports() == [True]

    ha.down()
    assert failed(await box.call("turn_off", target="kitchen")) == UNREACHABLE
    assert failed(await box.call("get_state", target="kitchen")) == UNREACHABLE
    assert box.reports() == [True, False], "the drop is reported once"

    ha.up()
    assert "error" not in await box.call("turn_off", target="kitchen")
    assert box.reports() == [True, False, True]
    assert ha.states["light.kitchen"]["state"] == "off"
    assert [call[:2] for call in ha.calls] == [("light", "turn_on"), ("light", "turn_off")]


async def test_server_errors_are_retried_then_reported(ha: FakeHomeAssistant, make_box: BoxFactory) -> None:
    box = await make_box(ha.url)
    ha.fail_next = [500]
    assert "error" not in await box.call("turn_on", target="kitchen"), "one 500 is retried away"
    ha.fail_next = [500, 502, 503] * 3
    assert failed(await box.call("turn_off", target="kitchen")) == UNREACHABLE
    assert box.reports() == [True, False]
    ha.fail_next = []
    assert "error" not in await box.call("turn_off", target="kitchen")
    assert box.reports() == [True, False, True]


@pytest.mark.slow
async def test_a_home_assistant_that_hangs_is_given_up_on_with_a_clear_answer(
    ha: FakeHomeAssistant, make_box: BoxFactory
) -> None:
    """Every retry waits out its own timeout; together they must end before the tool's deadline does."""
    box = await make_box(ha.url, timeout_seconds=4)
    ha.delay_seconds = 5
    assert failed(await box.call("turn_on", target="kitchen")) == UNREACHABLE
    assert box.reports() == [False]
    ha.delay_seconds = 0
    assert "error" not in await box.call("turn_on", target="kitchen")
    assert box.reports() == [False, True]


@pytest.mark.homeassistant
@pytest.mark.slow
async def test_a_real_home_assistant_stopped_and_started_again(tmp_path: Path, make_box: BoxFactory) -> None:
    """The real HA core: off means 'cannot be reached', and after its restart the same lamp obeys again."""
    with home_assistant(tmp_path) as hass:
        box = await make_box(hass.url, token=hass.token)
        assert "error" not in await box.call("turn_on", target="test_lamp")
        assert hass.state("input_boolean.lamp") == "on"
        # The house registry's WebSocket too: it keeps its snapshot while HA is away and reconnects.
        settings = HomeAssistantSettings(enabled=True, url=hass.url, token=hass.token)  # type: ignore[arg-type]
        links: list[Event] = []
        registry = HomeAssistantRegistry(settings, publish=links.append, retry_initial_seconds=0.1, retry_max_seconds=1)
        following = asyncio.create_task(registry.run())
        try:
            house = await registry.house()
            assert "light.living_lamp" in house.entities

            await asyncio.to_thread(hass.stop)
            assert failed(await box.call("turn_off", target="test_lamp")) == UNREACHABLE
            assert box.reports() == [True, False]
            await eventually(lambda: [e.connected for e in links if isinstance(e, ConnectionChanged)] == [True, False])
            assert await registry.house() is house

            await asyncio.to_thread(hass.start)
            assert "error" not in await box.call("turn_off", target="test_lamp")
            assert hass.state("input_boolean.lamp") == "off"
            assert box.reports() == [True, False, True]
            connected = [True, False, True]
            await eventually(lambda: [e.connected for e in links if isinstance(e, ConnectionChanged)] == connected, 30)
        finally:
            await cancel_and_wait(following)
