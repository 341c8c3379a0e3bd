"""Smart home: Home Assistant entities and plain MQTT devices, named the way the household names them.

Devices are found from what the user said (friendly names, areas, aliases in Chinese or English, see
:mod:`skills._entities`), with the names, aliases and areas set in Home Assistant (the ``HouseRegistry``
port) and only among the entities exposed to Assist, unless configured otherwise. Home Assistant is reached
through the ``HomeAssistantApi`` port; MQTT devices are configured here and may only publish to topics on
the MQTT allow-list (``mqtt.command_topics``). The box's own entities in Home Assistant are never a target.

Every service call, from any tool, is judged by what it does (:mod:`skills._safety`): unlocking, disarming,
opening a door, gate or garage, and switching anything that may work one, wait for the user's spoken yes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr

from assistant.errors import ConfigError, HomeAssistantError, ToolError
from assistant.house import House
from assistant.ports import EntityState
from assistant.skills import Skill, SkillConfig, SkillDeps
from assistant.tools import ask_first, tool

from ._entities import Device, resolve, topic_allowed
from ._safety import Target, judge
from ._targets import Reach, target

_LOGGER = logging.getLogger(__name__)

_SECONDS = 15
"""Tool deadline, past home_assistant.timeout_seconds' default of 10 s: HA's own clearer error comes first."""

Said = Annotated[str, Field(min_length=1, description="The device or room as the user said it, e.g. 客厅的灯")]
Percent = Annotated[int, Field(ge=0, le=100)]

_SWITCHABLE = frozenset(
    {"light", "switch", "fan", "input_boolean", "media_player", "climate", "humidifier", "automation", "siren"}
)
_ONLY_ON = frozenset({"scene", "script"})
_STATE_ATTRIBUTES = (
    "brightness",
    "temperature",
    "current_temperature",
    "current_position",
    "unit_of_measurement",
    "hvac_action",
)


class MqttDevice(SkillConfig):
    """A device switched by plain MQTT messages."""

    name: Annotated[str, Field(min_length=1)]
    """What the household calls it."""
    topic: Annotated[str, Field(min_length=1)]
    """Command topic; must be allowed by mqtt.command_topics."""
    payload_on: str = "ON"
    """Payload that switches it on."""
    payload_off: str = "OFF"
    """Payload that switches it off."""
    kind: str = "switch"
    """Kind of device (light, switch, fan, ...), so "the fan" finds it."""
    area: str = ""
    """Room it is in."""
    aliases: tuple[str, ...] = ()
    """Other names for it."""
    retain: bool = False
    """Publish retained, for devices that read their state on reconnect."""


class SmartHomeSkill(Skill):
    """Controls lights, switches, climate, covers, locks and alarms."""

    name = "smart_home"

    class Config(SkillConfig):
        """Settings of the smart-home skill."""

        room: str = ""
        """Area this box stands in: "turn on the light" with no room means a light here."""
        aliases: dict[str, str] = {}
        """Extra names → entity id, e.g. {"大灯": "light.living_room_ceiling"}."""
        areas: dict[str, tuple[str, ...]] = {}
        """Area → entity ids, for entities whose area Home Assistant does not report."""
        exclude: tuple[str, ...] = ()
        """Entity ids the assistant never controls or reads, even when exposed to Assist."""
        expose: Literal["assist", "all"] = "assist"
        """Which Home Assistant entities the assistant may control and read: ``assist``, those exposed to
        Assist (Settings → Voice assistants → Expose); ``all``, every entity."""
        include: tuple[str, ...] = ()
        """Entity ids controlled and read even though they are not exposed to Assist."""
        sensitive: tuple[str, ...] = ()
        """Entity ids, or words in a name or area, whose every change waits for the user's spoken yes."""
        mqtt_devices: tuple[MqttDevice, ...] = ()
        """Devices switched by plain MQTT messages."""
        alarm_code: SecretStr | None = None
        """Code for arming and disarming the alarm panel, from ${ENV}; a code the user says wins."""
        states_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
        """Seconds a fetched list of entities is reused for matching names."""

    def __init__(self, config: Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        self.settings = config
        refused = [d.topic for d in config.mqtt_devices if not topic_allowed(d.topic, deps.mqtt_command_topics)]
        if refused:
            raise ConfigError(
                f"skills.smart_home.mqtt_devices: topics not in mqtt.command_topics: {', '.join(refused)}"
            )
        aliases: dict[str, tuple[str, ...]] = {}
        for alias, entity_id in config.aliases.items():
            aliases[entity_id] = (*aliases.get(entity_id, ()), alias)
        self._reach = Reach(
            expose=config.expose,
            include=frozenset(config.include),
            exclude=frozenset(config.exclude),
            box_device_id=deps.box_device_id,
            aliases=aliases,
            areas={entity: area for area, ids in config.areas.items() for entity in ids},
        )
        self._cache: tuple[float, list[Device]] | None = None
        self._registry_missing = False
        """True while the house registry is unavailable (logged once, then again when it is back)."""

    # --- tools ------------------------------------------------------------------------------------

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def turn_on(self, target: Said) -> dict[str, object]:
        """Turn on lights, switches, fans, the TV or the air conditioner, or run a scene or script, by name or room.

        Anything that may open a door, lock, gate or garage asks the user first.
        """
        return await self._switch(target, on=True)

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def turn_off(self, target: Said) -> dict[str, object]:
        """Turn off lights, switches, fans, the TV or the air conditioner, by name or by room."""
        return await self._switch(target, on=False)

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def set_brightness(
        self, target: Said, percent: Annotated[Percent, Field(description="Brightness, 0 to 100")]
    ) -> dict[str, object]:
        """Set the brightness of lights in percent; 0 turns them off."""
        devices = await self._find(target, {"light"})
        if percent == 0:
            await self._perform("turn off", [_Action("light", "turn_off", devices)])
        else:
            action = _Action("light", "turn_on", devices, {"brightness_pct": percent})
            await self._perform(f"set to {percent}% brightness", [action])
        return {"done": f"brightness {percent}%", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def set_temperature(
        self,
        target: Said,
        degrees: Annotated[float, Field(ge=5, le=35, description="Target temperature in degrees Celsius")],
    ) -> dict[str, object]:
        """Set the target temperature of the air conditioner, heating or a thermostat."""
        devices = await self._find(target, {"climate"})
        action = _Action("climate", "set_temperature", devices, {"temperature": degrees})
        await self._perform(f"set to {degrees:g}°C", [action])
        return {"done": f"target temperature {degrees:g}°C", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def open_cover(self, target: Said) -> dict[str, object]:
        """Open curtains, blinds, shades or shutters (打开窗帘), or a garage door or gate (the user is asked first)."""
        devices = await self._find(target, {"cover"})
        await self._perform("open", [_Action("cover", "open_cover", devices)])
        return {"done": "opening", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def close_cover(self, target: Said) -> dict[str, object]:
        """Close curtains, blinds, shades, shutters, a garage door or a gate."""
        devices = await self._find(target, {"cover"})
        await self._perform("close", [_Action("cover", "close_cover", devices)])
        return {"done": "closing", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def set_cover_position(
        self, target: Said, percent: Annotated[Percent, Field(description="0 is closed, 100 fully open")]
    ) -> dict[str, object]:
        """Half-open curtains, blinds or shutters: set how far open they are, in percent."""
        devices = await self._find(target, {"cover"})
        if percent == 0:
            await self._perform("close", [_Action("cover", "close_cover", devices)])
        elif percent == 100:
            await self._perform("open", [_Action("cover", "open_cover", devices)])
        else:
            action = _Action("cover", "set_cover_position", devices, {"position": percent})
            await self._perform(f"open to {percent}%", [action])
        return {"done": f"position {percent}%", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, untrusted_output=True)
    async def get_state(self, target: Said) -> dict[str, object]:
        """Read the state of devices or sensors: on or off, brightness, temperature, humidity, locked, open."""
        devices = await self._find(target, None)
        states: list[dict[str, object]] = []
        for device in devices[:8]:
            if device.domain == "mqtt" or device.id.startswith("mqtt:"):
                states.append({"device": device.name, "state": "unknown (MQTT devices do not report)"})
                continue
            state = await self._read(device.id)
            states.append(_describe(device, state))
        return {"states": states}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def lock_door(self, target: Said) -> dict[str, object]:
        """Lock a door lock."""
        devices = await self._find(target, {"lock"})
        await self._perform("lock", [_Action("lock", "lock", devices)])
        return {"done": "locked", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def unlock_door(self, target: Said) -> dict[str, object]:
        """Unlock a door lock. The user is asked to confirm first."""
        devices = await self._find(target, {"lock"})
        await self._perform("unlock", [_Action("lock", "unlock", devices)])
        return {"done": "unlocked", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def arm_alarm(
        self,
        target: Annotated[str, Field(description="The alarm panel as the user said it")] = "alarm",
        mode: Annotated[Literal["away", "home", "night"], Field(description="Arming mode")] = "away",
    ) -> dict[str, object]:
        """Arm the security alarm."""
        devices = await self._find(target, {"alarm_control_panel"})
        await self._perform("arm", [_Action("alarm_control_panel", f"alarm_arm_{mode}", devices, self._code(""))])
        return {"done": f"armed ({mode})", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False, confirm_by_effect=True)
    async def disarm_alarm(
        self,
        target: Annotated[str, Field(description="The alarm panel as the user said it")] = "alarm",
        code: Annotated[str, Field(description="Alarm code, only if the user said one")] = "",
    ) -> dict[str, object]:
        """Disarm the security alarm. The user is asked to confirm first."""
        devices = await self._find(target, {"alarm_control_panel"})
        await self._perform("disarm", [_Action("alarm_control_panel", "alarm_disarm", devices, self._code(code))])
        return {"done": "disarmed", "devices": _names(devices)}

    # --- acting -----------------------------------------------------------------------------------

    async def _switch(self, target: str, *, on: bool) -> dict[str, object]:
        domains = _SWITCHABLE | _ONLY_ON if on else _SWITCHABLE
        devices = await self._find(target, domains | {"mqtt"})
        service = "turn_on" if on else "turn_off"
        actions = [_Action("mqtt", service, [d]) for d in devices if d.id.startswith("mqtt:")]
        ha = [d for d in devices if not d.id.startswith("mqtt:")]
        actions += [
            _Action(domain, service, [d for d in ha if d.domain == domain]) for domain in sorted({d.domain for d in ha})
        ]
        await self._perform("turn on" if on else "turn off", actions)
        return {"done": "on" if on else "off", "devices": _names(devices)}

    async def _perform(self, verb: str, actions: list[_Action]) -> None:
        """Judge every action first; if one needs the user's yes, ask (nothing is done); else do them all."""
        reasons: list[str] = []
        for action in actions:
            for device in action.devices:
                position = action.data.get("position")
                verdict = judge(
                    action.domain,
                    action.service,
                    _target(device),
                    position=position if isinstance(position, int) else None,
                    own=self.settings.sensitive,
                )
                if verdict.confirm:
                    reasons.append(f"{device.name}: {verdict.reason}")
        if reasons:
            _LOGGER.info("%s is sensitive: %s", " + ".join(map(str, actions)), "; ".join(reasons))
            devices = [d for action in actions for d in action.devices]
            question = f"Do you want me to {verb} {_spoken(devices)}?"
            ask_first(question, action=" + ".join(map(str, actions)), reason="; ".join(reasons))
        for action in actions:
            if action.domain == "mqtt":
                for device in action.devices:
                    await self._publish(device, on=action.service == "turn_on")
            else:
                await self._call(action.domain, action.service, action.devices, **action.data)

    def _code(self, said: str) -> dict[str, str]:
        if said:
            return {"code": said}
        if self.settings.alarm_code is not None:
            return {"code": self.settings.alarm_code.get_secret_value()}
        return {}

    # --- finding devices --------------------------------------------------------------------------

    async def _find(self, target: str, domains: set[str] | frozenset[str] | None) -> list[Device]:
        devices = await self._devices()
        pool = [d for d in devices if _fits(d, domains)]
        if not pool:
            raise ToolError("there is no device of that kind")
        return resolve(target, pool, room=self.settings.room)

    async def _devices(self) -> list[Device]:
        now = self.deps.clock.now()
        if self._cache is not None and now - self._cache[0] < self.settings.states_cache_seconds:
            return self._cache[1]
        devices: list[Device] = [
            Device(f"mqtt:{d.name}", d.name, d.kind, d.area, d.aliases) for d in self.settings.mqtt_devices
        ]
        api = self.deps.home_assistant
        if api is not None:
            try:
                states = await api.get_states()
            except HomeAssistantError as err:
                raise _tool_error(err) from None
            house = await self._house()
            devices.extend(d for d in (target(s, house, self._reach) for s in states) if d is not None)
        elif not devices:
            raise ToolError("Home Assistant is not set up for this assistant")
        self._cache = (now, devices)
        return devices

    async def _house(self) -> House | None:
        """The registry's snapshot, or None (the state list alone is used; logged once) when unavailable."""
        registry = self.deps.house
        if registry is None:
            return None
        try:
            house = await registry.house()
        except HomeAssistantError as err:
            if not self._registry_missing:
                self._registry_missing = True
                _LOGGER.warning(
                    "Home Assistant's areas, aliases and Assist exposure are unknown (%s): matching names in "
                    "its state list, every entity but skills.smart_home.exclude, until they can be read",
                    err,
                )
            return None
        if self._registry_missing:
            self._registry_missing = False
            _LOGGER.info("Home Assistant's areas, aliases and Assist exposure are known again")
        return house

    # --- Home Assistant and MQTT ------------------------------------------------------------------

    async def _call(self, domain: str, service: str, devices: list[Device], **data: Any) -> None:
        api = self.deps.home_assistant
        if api is None:
            raise ToolError("Home Assistant is not set up for this assistant")
        try:
            await api.call_service(domain, service, {"entity_id": [d.id for d in devices], **data})
        except HomeAssistantError as err:
            raise _tool_error(err) from None
        self._cache = None  # states changed; the next lookup should see them

    async def _read(self, entity_id: str) -> EntityState:
        api = self.deps.home_assistant
        if api is None:
            raise ToolError("Home Assistant is not set up for this assistant")
        try:
            return await api.get_state(entity_id)
        except HomeAssistantError as err:
            raise _tool_error(err) from None

    async def _publish(self, device: Device, *, on: bool) -> None:
        config = next(d for d in self.settings.mqtt_devices if f"mqtt:{d.name}" == device.id)
        # Checked at start-up too; checked again so no code path can publish outside the allow-list.
        if not topic_allowed(config.topic, self.deps.mqtt_command_topics):
            raise ToolError(f"{device.name} may not be controlled over MQTT")
        if self.deps.mqtt is None:
            raise ToolError("MQTT is not set up for this assistant")
        payload = config.payload_on if on else config.payload_off
        await self.deps.mqtt.publish(config.topic, payload, qos=1, retain=config.retain)


@dataclass(frozen=True, slots=True)
class _Action:
    """One service call a tool is about to make."""

    domain: str
    """Service domain (``mqtt`` for a plain MQTT device)."""
    service: str
    """Service, e.g. ``turn_on``."""
    devices: list[Device]
    """Its targets."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Service data besides the targets."""

    def __str__(self) -> str:
        # What a yes approves: services, entity ids and data, never a secret (the alarm code).
        shown = {k: v for k, v in self.data.items() if k != "code"}
        ids = ",".join(sorted(d.id for d in self.devices))
        return f"{self.domain}.{self.service}({ids}){json.dumps(shown, sort_keys=True) if shown else ''}"


def _target(device: Device) -> Target:
    names = tuple(n for n in (device.name, *device.aliases, device.device_name) if n)
    return Target(
        device.id, device.domain, device.device_class, names, tuple(a for a in (device.area, *device.area_aliases) if a)
    )


def _fits(device: Device, domains: set[str] | frozenset[str] | None) -> bool:
    if domains is None:
        return True
    if device.id.startswith("mqtt:"):
        return "mqtt" in domains  # plain MQTT devices only switch on and off
    return device.domain in domains


def _names(devices: list[Device]) -> list[str]:
    return [d.name for d in devices]


def _spoken(devices: list[Device]) -> str:
    names = _names(devices)
    if any(not name.isascii() for name in names):
        return "和".join(names)
    return " and ".join(names)


def _describe(device: Device, state: EntityState) -> dict[str, object]:
    described: dict[str, object] = {"device": device.name, "state": state.state}
    for key in _STATE_ATTRIBUTES:
        value = state.attributes.get(key)
        if value is None:
            continue
        if key == "brightness" and isinstance(value, int | float):
            described["brightness_percent"] = round(value * 100 / 255)
        else:
            described[key] = value
    return described


def _tool_error(err: HomeAssistantError) -> ToolError:
    match err.reason:
        case "auth":
            return ToolError("Home Assistant refused the assistant's token; the owner must fix the setup")
        case "rejected":
            return ToolError(f"Home Assistant refused: {err}")
        case _:
            return ToolError("Home Assistant cannot be reached right now")
