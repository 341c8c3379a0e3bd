"""A stand-in for Home Assistant's WebSocket API (aiohttp, loopback): the registry commands and their events.

It answers the commands HouseRegistry uses with the shapes Home Assistant 2024.3 gives, records them, can
fire registry events, drop every connection (a restart), and answer one command with something broken.
The real thing is exercised in test_home_assistant_real.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "ws-test-token-0123456789"
PARTIAL = (
    "area_id",
    "device_id",
    "disabled_by",
    "entity_category",
    "entity_id",
    "hidden_by",
    "name",
    "options",
    "original_name",
    "platform",
    "unique_id",
)
"""Keys of config/entity_registry/list; get_entries adds aliases and the device classes."""


@dataclass
class FakeHaWebSocket:
    areas: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    """Extended entries (with aliases, device_class, original_device_class)."""
    exposed: dict[str, dict[str, bool]] = field(default_factory=dict)
    expose_new: bool = True
    admin: bool = True
    broken: dict[str, Any] = field(default_factory=dict)
    """Command type → the result to answer it with instead."""
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    url: str = ""
    _sockets: dict[web.WebSocketResponse, dict[str, int]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/websocket", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def aclose(self) -> None:
        await self.drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def fire(self, event_type: str) -> None:
        """Send the event to every connection subscribed to it."""
        for ws, subscriptions in list(self._sockets.items()):
            if event_type in subscriptions:
                event = {"event_type": event_type, "data": {"action": "update"}, "origin": "LOCAL"}
                await ws.send_json({"id": subscriptions[event_type], "type": "event", "event": event})

    async def drop(self) -> None:
        """Close every connection, as Home Assistant does when it stops."""
        for ws in list(self._sockets):
            await ws.close()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        await ws.send_json({"type": "auth_required", "ha_version": "2024.3.3"})
        auth = await ws.receive_json()
        if auth.get("access_token") != TOKEN:
            await ws.send_json({"type": "auth_invalid", "message": "Invalid access token or password"})
            await ws.close()
            return ws
        await ws.send_json({"type": "auth_ok", "ha_version": "2024.3.3"})
        self._sockets[ws] = {}
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._answer(ws, json.loads(message.data))
        finally:
            self._sockets.pop(ws, None)
        return ws

    async def _answer(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        kind, ident = message["type"], message["id"]
        self.commands.append(kind)
        if kind in self.broken:
            return await ws.send_json({"id": ident, "type": "result", "success": True, "result": self.broken[kind]})
        result: Any = None
        match kind:
            case "subscribe_events":
                self._sockets[ws][message["event_type"]] = ident
            case "config/area_registry/list":
                result = self.areas
            case "config/device_registry/list":
                result = self.devices
            case "config/entity_registry/list":
                result = [{k: e.get(k) for k in PARTIAL} for e in self.entities]
            case "config/entity_registry/get_entries":
                by_id = {e["entity_id"]: e for e in self.entities}
                result = {entity_id: by_id.get(entity_id) for entity_id in message["entity_ids"]}
            case "homeassistant/expose_entity/list" | "homeassistant/expose_new_entities/get" if not self.admin:
                error = {"code": "unauthorized", "message": "Unauthorized"}
                return await ws.send_json({"id": ident, "type": "result", "success": False, "error": error})
            case "homeassistant/expose_entity/list":
                result = {"exposed_entities": self.exposed}
            case "homeassistant/expose_new_entities/get":
                result = {"expose_new": self.expose_new}
            case _:
                error = {"code": "unknown_command", "message": "Unknown command."}
                return await ws.send_json({"id": ident, "type": "result", "success": False, "error": error})
        await ws.send_json({"id": ident, "type": "result", "success": True, "result": result})
