"""Helpers for the skill tests: a local HTTP server that replays recorded answers, a Home Assistant that
implements the port in memory, a recording MQTT publisher, and fixture loading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from assistant.errors import HomeAssistantError
from assistant.events import Event
from assistant.house import House
from assistant.ports import EntityState
from assistant.skills import SkillDeps
from assistant.voice.replay import ReplayVoice
from support.fakes import FakeClock, FakeVoice

DATA = Path(__file__).parent / "data" / "skills"


def fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ReplayServer:
    """An aiohttp server on 127.0.0.1 and a free port; routes answer with fixtures and record requests."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.seen: list[Seen] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def json(self, method: str, path: str, reply: Callable[[Seen], tuple[int, Any]] | Any) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.json() if request.can_read_body else None
            seen = Seen(request.method, request.path, dict(request.query), body, dict(request.headers))
            self.seen.append(seen)
            status, payload = reply(seen) if callable(reply) else (200, reply)
            return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))

        self.app.router.add_route(method, path, handle)

    def raw(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeHomeAssistant:
    """HomeAssistantApi in memory: states from the REST fixture, service calls recorded and applied."""

    def __init__(self, states: list[dict[str, Any]] | None = None, *, fail: HomeAssistantError | None = None) -> None:
        raw = fixture("ha_states.json") if states is None else states
        self.states = {s["entity_id"]: EntityState(s["entity_id"], s["state"], s["attributes"]) for s in raw}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = fail

    async def get_states(self) -> list[EntityState]:
        if self.fail:
            raise self.fail
        return list(self.states.values())

    async def get_state(self, entity_id: str) -> EntityState:
        if self.fail:
            raise self.fail
        if entity_id not in self.states:
            raise HomeAssistantError(f"entity {entity_id} not found", reason="rejected")
        return self.states[entity_id]

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        if self.fail:
            raise self.fail
        self.calls.append((domain, service, dict(data)))
        new = {"turn_on": "on", "turn_off": "off", "lock": "locked", "unlock": "unlocked"}.get(service)
        for entity_id in data.get("entity_id", []):
            if new and entity_id in self.states:
                old = self.states[entity_id]
                self.states[entity_id] = EntityState(entity_id, new, old.attributes)


class FakeHouseRegistry:
    """HouseRegistry in memory: a snapshot, or the failure Home Assistant's WebSocket would give."""

    def __init__(self, house: House | None = None, *, fail: HomeAssistantError | None = None) -> None:
        self.snapshot = house
        self.fail = fail
        self.reads = 0

    async def house(self) -> House:
        self.reads += 1
        if self.fail is not None or self.snapshot is None:
            raise self.fail or HomeAssistantError("not read yet")
        return self.snapshot


@dataclass
class RecordingPublisher:
    """MessagePublisher that keeps what it was asked to send."""

    sent: list[tuple[str, str, int, bool]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, topic: str, payload: str, *, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))
        self.arrived.set()


def deps(**overrides: Any) -> tuple[SkillDeps, list[Event]]:
    """SkillDeps on a fake clock whose published events land in the returned list."""
    events: list[Event] = []
    voice = ReplayVoice(FakeVoice(), None)
    values: dict[str, Any] = {
        "publish": events.append,
        "clock": FakeClock(),
        "timezone": "Asia/Shanghai",
        "voice": voice,
    }
    values.update(overrides)
    return SkillDeps(**values), events
