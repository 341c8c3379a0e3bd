"""Smart home: Home Assistant entities and plain MQTT devices, named the way the household names them.

Devices are found from what the user said (friendly names, areas, aliases in Chinese or English, see
:mod:`skills._entities`). Home Assistant is reached through the ``HomeAssistantApi`` port; MQTT devices are
configured here and may only publish to topics on the MQTT allow-list (``mqtt.command_topics``).
Unlocking, disarming and opening a garage are sensitive: the user confirms them by voice first.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr

from assistant.errors import ConfigError, HomeAssistantError, ToolError
from assistant.ports import EntityState
from assistant.skills import Skill, SkillConfig, SkillDeps
from assistant.tools import tool

from ._entities import Device, resolve, topic_allowed

_LOGGER = logging.getLogger(__name__)

_SECONDS = 15
"""Tool deadline, past home_assistant.timeout_seconds' default of 10 s: HA's own clearer error comes first."""

Target = Annotated[str, Field(min_length=1, description="The device or room as the user said it, e.g. 客厅的灯")]
Percent = Annotated[int, Field(ge=0, le=100)]

_SWITCHABLE = frozenset(
    {"light", "switch", "fan", "input_boolean", "media_player", "climate", "humidifier", "automation", "siren"}
)
_ONLY_ON = frozenset({"scene", "script"})
_FREELY_OPENED = frozenset({"curtain", "blind", "shade", "shutter", "awning", "window"})
"""Cover classes opened without asking; any other cover (a garage, gate, door, or one of unknown class)
may let someone in, so opening it goes through open_garage_door's confirmation."""
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
        """Entity ids the assistant never controls or reads."""
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
        self._area_of = {entity: area for area, ids in config.areas.items() for entity in ids}
        self._aliases: dict[str, list[str]] = {}
        for alias, entity_id in config.aliases.items():
            self._aliases.setdefault(entity_id, []).append(alias)
        self._cache: tuple[float, list[Device]] | None = None

    # --- tools ------------------------------------------------------------------------------------

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def turn_on(self, target: Target) -> dict[str, object]:
        """Turn on lights, switches, fans, the TV, the air conditioner or a scene, by name or by room."""
        return await self._switch(target, on=True)

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def turn_off(self, target: Target) -> dict[str, object]:
        """Turn off lights, switches, fans, the TV or the air conditioner, by name or by room."""
        return await self._switch(target, on=False)

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def set_brightness(
        self, target: Target, percent: Annotated[Percent, Field(description="Brightness, 0 to 100")]
    ) -> dict[str, object]:
        """Set the brightness of lights in percent; 0 turns them off."""
        devices = await self._find(target, {"light"})
        if percent == 0:
            await self._call("light", "turn_off", devices)
        else:
            await self._call("light", "turn_on", devices, brightness_pct=percent)
        return {"done": f"brightness {percent}%", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def set_temperature(
        self,
        target: Target,
        degrees: Annotated[float, Field(ge=5, le=35, description="Target temperature in degrees Celsius")],
    ) -> dict[str, object]:
        """Set the target temperature of the air conditioner, heating or a thermostat."""
        devices = await self._find(target, {"climate"})
        await self._call("climate", "set_temperature", devices, temperature=degrees)
        return {"done": f"target temperature {degrees:g}°C", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def set_cover_position(
        self, target: Target, percent: Annotated[Percent, Field(description="0 is closed, 100 fully open")]
    ) -> dict[str, object]:
        """Open, close or half-open curtains, blinds or shutters (not garage doors or gates)."""
        devices = await self._find(target, {"cover"})
        guarded = [d for d in devices if d.device_class not in _FREELY_OPENED]
        if guarded and percent > 0:
            raise ToolError(f"{_names(guarded)[0]} may be a door or gate: use open_garage_door, which asks the user")
        if percent in (0, 100):
            await self._call("cover", "open_cover" if percent else "close_cover", devices)
        else:
            await self._call("cover", "set_cover_position", devices, position=percent)
        return {"done": f"position {percent}%", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, untrusted_output=True)
    async def get_state(self, target: Target) -> dict[str, object]:
        """Read the state of devices or sensors: on or off, brightness, temperature, humidity, locked, open."""
        devices = await self._find(target, None)
        states: list[dict[str, object]] = []
        for device in devices[:8]:
            if device.domain == "mqtt":
                states.append({"device": device.name, "state": "unknown (MQTT devices do not report)"})
                continue
            state = await self._read(device.id)
            states.append(_describe(device, state))
        return {"states": states}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def lock_door(self, target: Target) -> dict[str, object]:
        """Lock a door lock."""
        devices = await self._find(target, {"lock"})
        await self._call("lock", "lock", devices)
        return {"done": "locked", "devices": _names(devices)}

    @tool(
        timeout_seconds=_SECONDS,
        cancel_on_interrupt=False,
        confirm="Do you want me to unlock {devices}?",
        prepare="_locks_meant",
    )
    async def unlock_door(self, target: Target) -> dict[str, object]:
        """Unlock a door lock. The user is asked to confirm first."""
        devices = await self._find(target, {"lock"})
        await self._call("lock", "unlock", devices)
        return {"done": "unlocked", "devices": _names(devices)}

    @tool(
        timeout_seconds=_SECONDS,
        cancel_on_interrupt=False,
        confirm="Do you want me to open {devices}?",
        prepare="_gates_meant",
    )
    async def open_garage_door(self, target: Target) -> dict[str, object]:
        """Open a garage door or gate. The user is asked to confirm first."""
        devices = await self._gates(target)
        await self._call("cover", "open_cover", devices)
        return {"done": "opening", "devices": _names(devices)}

    @tool(timeout_seconds=_SECONDS, cancel_on_interrupt=False)
    async def arm_alarm(
        self,
        target: Annotated[str, Field(description="The alarm panel as the user said it")] = "alarm",
        mode: Annotated[Literal["away", "home", "night"], Field(description="Arming mode")] = "away",
    ) -> dict[str, object]:
        """Arm the security alarm."""
        devices = await self._find(target, {"alarm_control_panel"})
        await self._call("alarm_control_panel", f"alarm_arm_{mode}", devices, **self._code(""))
        return {"done": f"armed ({mode})", "devices": _names(devices)}

    @tool(
        timeout_seconds=_SECONDS,
        cancel_on_interrupt=False,
        confirm="Do you want me to disarm {devices}?",
        prepare="_alarms_meant",
    )
    async def disarm_alarm(
        self,
        target: Annotated[str, Field(description="The alarm panel as the user said it")] = "alarm",
        code: Annotated[str, Field(description="Alarm code, only if the user said one")] = "",
    ) -> dict[str, object]:
        """Disarm the security alarm. The user is asked to confirm first."""
        devices = await self._find(target, {"alarm_control_panel"})
        await self._call("alarm_control_panel", "alarm_disarm", devices, **self._code(code))
        return {"done": "disarmed", "devices": _names(devices)}

    # --- what a confirmation question names (checked before the user is asked) ---------------------

    async def _locks_meant(self, target: str) -> dict[str, object]:
        return {"devices": _spoken(await self._find(target, {"lock"}))}

    async def _gates_meant(self, target: str) -> dict[str, object]:
        return {"devices": _spoken(await self._gates(target))}

    async def _alarms_meant(self, target: str, code: str) -> dict[str, object]:
        return {"devices": _spoken(await self._find(target, {"alarm_control_panel"}))}

    # --- helpers ----------------------------------------------------------------------------------

    async def _gates(self, target: str) -> list[Device]:
        devices = await self._find(target, {"cover"})
        curtains = [d for d in devices if d.device_class in _FREELY_OPENED]
        if curtains:
            raise ToolError(
                f"{_names(curtains)[0]} is a curtain or blind, not a garage door or gate; use set_cover_position"
            )
        return devices

    async def _switch(self, target: str, *, on: bool) -> dict[str, object]:
        domains = _SWITCHABLE | _ONLY_ON if on else _SWITCHABLE
        devices = await self._find(target, domains | {"mqtt"})
        service = "turn_on" if on else "turn_off"
        for device in [d for d in devices if d.id.startswith("mqtt:")]:
            await self._publish(device, on=on)
        ha = [d for d in devices if not d.id.startswith("mqtt:")]
        for domain in sorted({d.domain for d in ha}):
            await self._call(domain, service, [d for d in ha if d.domain == domain])
        return {"done": "on" if on else "off", "devices": _names(devices)}

    def _code(self, said: str) -> dict[str, str]:
        if said:
            return {"code": said}
        if self.settings.alarm_code is not None:
            return {"code": self.settings.alarm_code.get_secret_value()}
        return {}

    async def _find(self, target: str, domains: set[str] | frozenset[str] | None) -> list[Device]:
        devices = await self._devices()
        pool = [d for d in devices if _fits(d, domains)]
        if not pool:
            raise ToolError("there is no device of that kind")
        return resolve(target, pool, room=self.settings.room)

    async def _devices(self) -> list[Device]:
        now = self.deps.clock.now()
        if self._cache is not None and now - self._cache[0] <= self.settings.states_cache_seconds:
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
            devices.extend(self._device(s) for s in states if s.entity_id not in self.settings.exclude)
        elif not devices:
            raise ToolError("Home Assistant is not set up for this assistant")
        self._cache = (now, devices)
        return devices

    def _device(self, state: EntityState) -> Device:
        attributes = state.attributes
        area = self._area_of.get(state.entity_id) or str(attributes.get("area") or attributes.get("area_name") or "")
        aliases = tuple(self._aliases.get(state.entity_id, ())) + tuple(
            str(a) for a in attributes.get("aliases", ()) or () if isinstance(a, str)
        )
        return Device(
            id=state.entity_id,
            name=str(attributes.get("friendly_name") or state.entity_id),
            domain=state.entity_id.split(".", 1)[0],
            area=area,
            aliases=aliases,
            device_class=str(attributes.get("device_class") or ""),
        )

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
