"""The house from Home Assistant's WebSocket API: areas, devices, the entity registry and Assist exposure.

``/api/states`` carries none of these, so the smart-home skill could not find "客厅的灯" or an alias set in
Home Assistant. :class:`HomeAssistantRegistry` keeps one WebSocket open (``/api/websocket``, the same
long-lived token as the REST client), reads::

    config/area_registry/list            areas: area_id, name, aliases
    config/device_registry/list          devices: id, name, name_by_user, area_id, identifiers
    config/entity_registry/list          entities: entity_id, name, area_id, device_id, platform, unique_id, ...
    config/entity_registry/get_entries   the same entities extended: aliases, device_class, original_device_class
    homeassistant/expose_entity/list     which entities the user exposed to which assistant ("conversation")
    homeassistant/expose_new_entities/get   whether new entities are exposed to Assist

and reads them again (after a short settle, since changes come in bursts) on ``area_registry_updated``,
``device_registry_updated`` and ``entity_registry_updated`` events. When Home Assistant restarts, it
reconnects with jittered backoff and keeps the last snapshot meanwhile (the registries survive restarts).
A reply it cannot read is an error with a clear message: the snapshot is dropped, and the skill falls back
to the state list until a read succeeds.

The WebSocket client is aiohttp's. homeassistant-api's WebSocket client reads one reply at a time for the
caller that waits for it, and raises from whichever call happens to read an unrelated failure, which does not
fit one connection that both subscribes to events and sends commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..config import HomeAssistantSettings
from ..errors import HomeAssistantError
from ..events import ConnectionChanged, Event
from ..house import ASSIST, Area, HaDevice, HaEntity, House
from ..ports import HouseRegistry
from ..tasks import backoff

if TYPE_CHECKING:
    import aiohttp

_LOGGER = logging.getLogger(__name__)

SERVICE = "home_assistant_registry"
"""``ConnectionChanged.service`` of the registry connection."""
EVENTS = ("area_registry_updated", "device_registry_updated", "entity_registry_updated")
"""Home Assistant events after which the house is read again."""
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""A large house's entity registry is several megabytes; aiohttp's default limit is 4 MB."""


# --- replies, as far as they are used; anything else in them is ignored ----------------------------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _AreaReply(_Reply):
    area_id: str
    name: str
    aliases: list[str] = Field(default_factory=list)


class _DeviceReply(_Reply):
    id: str
    name: str | None = None
    name_by_user: str | None = None
    area_id: str | None = None
    identifiers: list[tuple[str, str]] = Field(default_factory=list)


class _EntityReply(_Reply):
    entity_id: str
    name: str | None = None
    original_name: str | None = None
    area_id: str | None = None
    device_id: str | None = None
    platform: str = ""
    unique_id: str = ""
    disabled_by: str | None = None
    hidden_by: str | None = None
    entity_category: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    device_class: str | None = None
    original_device_class: str | None = None


class _ExposedReply(_Reply):
    exposed_entities: dict[str, dict[str, bool]]


_AREAS = TypeAdapter(list[_AreaReply])
_DEVICES = TypeAdapter(list[_DeviceReply])
_ENTITIES = TypeAdapter(list[_EntityReply])
_EXTENDED = TypeAdapter(dict[str, _EntityReply | None])


def parse_house(areas: Any, devices: Any, entities: Any, extended: Any, exposed: Any | None, expose_new: Any) -> House:
    """Build a snapshot from the raw replies; ``HomeAssistantError`` names the reply that does not fit.

    ``exposed``: the ``homeassistant/expose_entity/list`` result, or None when it could not be read (a
    token without admin rights): then each entity's own registry options say what the user chose.
    """
    try:
        area_list = _AREAS.validate_python(areas)
        device_list = _DEVICES.validate_python(devices)
        entity_list = _ENTITIES.validate_python(entities)
        extra = _EXTENDED.validate_python(extended)
        choices = _ExposedReply.model_validate(exposed).exposed_entities if exposed is not None else None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HomeAssistantError(
            f"Home Assistant's registry answer does not fit at {where or 'the top'}: {first['msg']}",
            reason="unavailable",
        ) from None
    if not isinstance(expose_new, bool):
        raise HomeAssistantError("Home Assistant's expose_new answer is not true or false", reason="unavailable")
    house_entities: dict[str, HaEntity] = {}
    exposure: dict[str, bool] = {}
    for entry in entity_list:
        more = extra.get(entry.entity_id) or entry
        house_entities[entry.entity_id] = HaEntity(
            entity_id=entry.entity_id,
            name=entry.name or entry.original_name,
            aliases=tuple(a for a in more.aliases if a),
            area_id=entry.area_id,
            device_id=entry.device_id,
            device_class=more.device_class or more.original_device_class or "",
            platform=entry.platform,
            unique_id=str(entry.unique_id),
            hidden=entry.hidden_by is not None,
            disabled=entry.disabled_by is not None,
            category=entry.entity_category,
        )
        chosen = entry.options.get(ASSIST, {})
        if choices is None and isinstance(chosen, Mapping) and isinstance(chosen.get("should_expose"), bool):
            exposure[entry.entity_id] = chosen["should_expose"]
    for entity_id, assistants in (choices or {}).items():
        if ASSIST in assistants:
            exposure[entity_id] = assistants[ASSIST]
    return House(
        areas={a.area_id: Area(a.area_id, a.name, tuple(x for x in a.aliases if x)) for a in area_list},
        devices={
            d.id: HaDevice(d.id, d.name_by_user or d.name or "", d.area_id, tuple(d.identifiers)) for d in device_list
        },
        entities=house_entities,
        exposure=exposure,
        expose_new=expose_new,
    )


# --- the connection -----------------------------------------------------------------------------


class _Closed(Exception):
    """The WebSocket closed (Home Assistant stopped or restarts)."""


class _Socket:
    """Commands and events over one authenticated WebSocket; a single reader (the registry's task)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, timeout_seconds: float, where: str) -> None:
        self._ws = ws
        self._timeout = timeout_seconds
        self._where = where
        self._next_id = 0
        self.changed = False
        """An event came since this was last cleared."""

    async def receive(self) -> dict[str, Any]:
        import aiohttp

        message = await self._ws.receive()
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            raise _Closed(f"{self._where} closed the connection")
        if message.type == aiohttp.WSMsgType.ERROR:
            raise _Closed(f"the connection to {self._where} broke: {message.data}")
        if message.type != aiohttp.WSMsgType.TEXT:
            raise HomeAssistantError(f"{self._where} sent a {message.type.name} message, not JSON text")
        try:
            data = json.loads(message.data)
        except ValueError:
            raise HomeAssistantError(f"{self._where} sent a message that is not JSON") from None
        if not isinstance(data, dict):
            raise HomeAssistantError(f"{self._where} sent a JSON {type(data).__name__}, not an object")
        return data

    async def authenticate(self, token: str) -> None:
        async with asyncio.timeout(self._timeout):
            hello = await self.receive()
            if hello.get("type") != "auth_required":
                raise HomeAssistantError(f"{self._where} did not ask for authentication: {hello.get('type')!r}")
            await self._ws.send_json({"type": "auth", "access_token": token})
            answer = await self.receive()
        if answer.get("type") == "auth_invalid":
            raise HomeAssistantError(
                f"{self._where} refused the access token: create a new long-lived token (your profile → "
                "Security) and set home_assistant.token",
                reason="auth",
            )
        if answer.get("type") != "auth_ok":
            raise HomeAssistantError(f"{self._where} answered the token with {answer.get('type')!r}")

    async def command(self, kind: str, **data: Any) -> Any:
        """Send one command and return its result; events that arrive meanwhile set :attr:`changed`."""
        self._next_id += 1
        ident = self._next_id
        await self._ws.send_json({"id": ident, "type": kind, **data})
        async with asyncio.timeout(self._timeout):
            while True:
                message = await self.receive()
                if message.get("type") == "event":
                    self.changed = True
                elif message.get("id") == ident and message.get("type") == "result":
                    break
        if not message.get("success"):
            error = message.get("error")
            error = error if isinstance(error, dict) else {}
            raise HomeAssistantError(
                f"{self._where} refused {kind}: {error.get('code', '?')}: {error.get('message', '')}",
                reason="rejected",
            )
        return message.get("result")

    async def next_event(self) -> None:
        """Wait for the next event (replies to nothing pending are ignored)."""
        while (await self.receive()).get("type") != "event":
            pass


class HomeAssistantRegistry:
    """``HouseRegistry`` over Home Assistant's WebSocket API; :meth:`run` keeps it current."""

    def __init__(
        self,
        settings: HomeAssistantSettings,
        *,
        publish: Callable[[Event], None] | None = None,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        settle_seconds: float = 0.5,
    ) -> None:
        if settings.token is None:
            raise HomeAssistantError("home_assistant.token is not set", reason="auth")
        self._settings = settings
        base = settings.url.rstrip("/")
        self._url = ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base.removeprefix("http://")) + (
            "/api/websocket"
        )
        self._where = f"Home Assistant at {base} (WebSocket)"
        self._publish = publish
        self._retry = (retry_initial_seconds, retry_max_seconds)
        self._settle_seconds = settle_seconds
        self._house: House | None = None
        self._failure = "not read yet"
        self._attempted = asyncio.Event()
        """Set once the first attempt to read the house ended, well or not."""
        self._usable: bool | None = None
        self._admin_warned = False
        self._fresh = False
        """The current connection read the house at least once."""

    async def house(self) -> House:
        """The latest snapshot; waits for the first read at most half of ``timeout_seconds``.

        Half, so a tool that asks at start-up still has time to fall back to the state list before its deadline.
        """
        if self._house is None and not self._attempted.is_set():
            try:
                async with asyncio.timeout(self._settings.timeout_seconds / 2):
                    await self._attempted.wait()
            except TimeoutError:
                pass
        if self._house is None:
            raise HomeAssistantError(f"{self._where}: the house is unknown ({self._failure})")
        return self._house

    async def run(self) -> None:
        """Connect, read, follow registry changes; reconnect with backoff. Runs until cancelled."""
        import aiohttp

        delays = backoff(*self._retry)
        async with aiohttp.ClientSession() as session:
            while True:
                self._fresh = False
                try:
                    await self._serve(session)
                except HomeAssistantError as err:
                    # A token refused, a command refused or a reply we cannot read: the skill falls back to
                    # the state list rather than trusting a snapshot that may be wrong.
                    self._house = None
                    self._report(False, str(err))
                except (_Closed, aiohttp.ClientError, OSError, TimeoutError) as err:
                    # Home Assistant stops or restarts: its registries survive, so the snapshot stays.
                    detail = str(err) or type(err).__name__
                    self._report(False, f"{self._where} is not reachable: {detail}")
                except Exception as err:
                    # A bug here must not stop the daemon: the skill falls back, and this tries again.
                    _LOGGER.exception("reading the house from %s failed", self._where)
                    self._house = None
                    self._report(False, f"{self._where}: internal error {type(err).__name__}")
                self._attempted.set()
                if self._fresh:
                    delays = backoff(*self._retry)  # it worked a while: start again from a short wait
                await asyncio.sleep(next(delays))

    async def _serve(self, session: aiohttp.ClientSession) -> None:
        assert self._settings.token is not None
        # A black-holed address would otherwise hang the first attempt, and every tool waiting for it.
        async with asyncio.timeout(self._settings.timeout_seconds):
            ws = await session.ws_connect(
                self._url, heartbeat=30, max_msg_size=_MAX_MESSAGE_BYTES, ssl=self._settings.verify_ssl
            )
        async with ws:
            socket = _Socket(ws, self._settings.timeout_seconds, self._where)
            await socket.authenticate(self._settings.token.get_secret_value())
            for event in EVENTS:
                await socket.command("subscribe_events", event_type=event)
            while True:
                socket.changed = False
                self._house = await self._read(socket)
                self._attempted.set()
                self._report(True, self._where)
                self._fresh = True
                if not socket.changed:
                    await socket.next_event()
                # One change often comes with more (a new device brings its entities): read once for all.
                await asyncio.sleep(self._settle_seconds)

    async def _read(self, socket: _Socket) -> House:
        areas = await socket.command("config/area_registry/list")
        devices = await socket.command("config/device_registry/list")
        entities = await socket.command("config/entity_registry/list")
        ids = [e.get("entity_id") for e in entities if isinstance(e, dict)] if isinstance(entities, list) else []
        extended = await socket.command("config/entity_registry/get_entries", entity_ids=ids) if ids else {}
        try:
            exposed = await socket.command("homeassistant/expose_entity/list")
            setting = await socket.command("homeassistant/expose_new_entities/get", assistant=ASSIST)
            expose_new = setting.get("expose_new") if isinstance(setting, dict) else setting
        except HomeAssistantError as err:
            if err.reason != "rejected":
                raise
            # Listing exposure needs an administrator's token; each entity's registry options hold the same.
            if not self._admin_warned:
                self._admin_warned = True
                _LOGGER.warning("%s; reading Assist exposure from the entity registry instead", err)
            exposed, expose_new = None, True
        return parse_house(areas, devices, entities, extended, exposed, expose_new)

    def _report(self, usable: bool, detail: str) -> None:
        if not usable:
            self._failure = detail
        if usable == self._usable:
            return
        was, self._usable = self._usable, usable
        if not usable:
            _LOGGER.warning("Home Assistant's areas and aliases are not readable: %s", detail)
        elif was is False:
            _LOGGER.info("%s: areas, aliases and exposure read again", self._where)
        if self._publish is not None:
            self._publish(ConnectionChanged(service=SERVICE, connected=usable, detail=detail))


def build_house_registry(
    settings: HomeAssistantSettings, publish: Callable[[Event], None] | None = None
) -> HomeAssistantRegistry:
    """The daemon's ``HouseRegistry`` from ``home_assistant`` settings; run :meth:`~HomeAssistantRegistry.run`."""
    registry = HomeAssistantRegistry(settings, publish=publish)
    _: HouseRegistry = registry  # mypy checks here that the registry fits the port
    return registry
