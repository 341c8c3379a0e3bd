"""Home Assistant MQTT discovery for the box: topics, entity configs and state payloads.

Pure logic, no I/O: ``mqtt.py`` moves these messages over the wire, ``commands.py`` parses what comes
back. Two discovery styles are produced from one table of entities: one retained config per entity (every
HA version) and one retained config per device (``homeassistant/device/<id>/config``, newer HA, e.g.
2026.2; 2024.3 rejects it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..config import Dialect, MqttSettings

ONLINE, OFFLINE = "online", "offline"
ON, OFF = "ON", "OFF"
STATES = ("idle", "listening", "thinking", "speaking", "muted", "error")
DIALECTS: tuple[str, ...] = get_args(Dialect)
MAX_STATE_CHARS = 255
"""HA refuses sensor states longer than this; the full text goes to the entity's attributes."""
MAX_WORD_NAME_CHARS = 64
"""Longest name of an enrolled wake word (one folder name)."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one box, derived from the settings."""

    base: str
    """Prefix of the box's own topics, ``<base_topic>/<device_id>``."""
    discovery_prefix: str
    """HA's discovery prefix, usually ``homeassistant``."""
    device_id: str
    """Unique id of the box."""

    @classmethod
    def from_settings(cls, settings: MqttSettings) -> Topics:
        """Derive the topics from the ``mqtt`` settings."""
        return cls(
            base=f"{settings.base_topic.strip('/')}/{settings.device_id}",
            discovery_prefix=settings.discovery_prefix.strip("/"),
            device_id=settings.device_id,
        )

    @property
    def availability(self) -> str:
        """Retained ``online``/``offline``; the MQTT last will sets ``offline``."""
        return f"{self.base}/availability"

    @property
    def ha_status(self) -> str:
        """HA's birth and last-will topic."""
        return f"{self.discovery_prefix}/status"

    @property
    def commands(self) -> tuple[str, ...]:
        """Every command topic of the box, spelled out: the bridge subscribes to these and nothing wider."""
        return tuple(self.command(entity.key) for entity in ENTITIES if entity.command)

    def state(self, key: str) -> str:
        """State topic of one entity."""
        return f"{self.base}/{key}/state"

    def attributes(self, key: str) -> str:
        """JSON attributes topic of one entity."""
        return f"{self.base}/{key}/attributes"

    def command(self, key: str) -> str:
        """Command topic of one entity."""
        return f"{self.base}/{key}/set"

    def entity_config(self, component: str, key: str) -> str:
        """Per-entity discovery topic."""
        return f"{self.discovery_prefix}/{component}/{self.device_id}/{key}/config"

    @property
    def device_config(self) -> str:
        """Device discovery topic."""
        return f"{self.discovery_prefix}/device/{self.device_id}/config"


Component = Literal["sensor", "binary_sensor", "switch", "number", "select", "button", "event", "text"]


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity of the box in HA."""

    key: str
    """Short id, unique within the box; part of topics, unique_id and entity_id."""
    component: Component
    """HA platform."""
    name: str
    """Name shown in HA (after the device name)."""
    icon: str
    """Material Design icon."""
    state: bool = True
    """True when the entity has a state topic."""
    command: bool = False
    """True when HA may send commands to it."""
    attributes: bool = False
    """True when it has a JSON attributes topic."""
    category: Literal["config", "diagnostic"] | None = None
    """HA entity category, or None for a primary entity."""


ENTITIES: tuple[Entity, ...] = (
    Entity("state", "sensor", "State", "mdi:account-voice"),
    Entity("transcript", "sensor", "Last transcript", "mdi:account-voice", attributes=True),
    Entity("answer", "sensor", "Last answer", "mdi:message-reply-text", attributes=True),
    Entity("listening", "binary_sensor", "Listening", "mdi:ear-hearing"),
    Entity("mute", "switch", "Mute", "mdi:microphone-off", command=True),
    Entity("volume", "number", "Volume", "mdi:volume-high", command=True),
    Entity("wake_word", "select", "Wake word", "mdi:bullhorn", command=True, category="config"),
    Entity("dialect", "select", "Dialect", "mdi:translate", command=True, category="config"),
    Entity("listen", "button", "Start listening", "mdi:microphone", state=False, command=True),
    Entity("stop", "button", "Stop", "mdi:stop", state=False, command=True),
    Entity("repeat", "button", "Say that again", "mdi:repeat", state=False, command=True),
    Entity("repeat_slower", "button", "Say it again slower", "mdi:tortoise", state=False, command=True),
    Entity("wake", "event", "Wake word detected", "mdi:bell-ring"),
    Entity("announce", "text", "Announce", "mdi:bullhorn-variant", state=False, command=True),
    Entity("ask", "text", "Ask", "mdi:chat-question", state=False, command=True),
    Entity("enrol_name", "text", "Wake word to enrol", "mdi:form-textbox", command=True, category="config"),
    Entity("enrol", "button", "Enrol wake word", "mdi:microphone-plus", state=False, command=True, category="config"),
    Entity(
        "unenrol", "button", "Remove wake word", "mdi:microphone-minus", state=False, command=True, category="config"
    ),
    Entity("enrolment", "sensor", "Enrolment", "mdi:list-status", attributes=True),
    Entity("enrolled_words", "sensor", "Enrolled wake words", "mdi:format-list-bulleted", attributes=True),
)
ENTITY_BY_KEY = {entity.key: entity for entity in ENTITIES}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The device block HA groups the entities under."""

    name: str
    """Device name shown in HA."""
    version: str
    """Daemon version (``sw_version``)."""
    wake_words: Sequence[str]
    """Options of the wake-word select."""
    model: str = "Xiangyin voice assistant"
    """Model shown in HA."""
    manufacturer: str = "Xiangyin"
    """Manufacturer shown in HA."""


def _device_block(topics: Topics, info: DeviceInfo) -> dict[str, Any]:
    return {
        "identifiers": [topics.device_id],
        "name": info.name,
        "model": info.model,
        "manufacturer": info.manufacturer,
        "sw_version": info.version,
    }


def _entity_body(entity: Entity, topics: Topics, info: DeviceInfo) -> dict[str, Any]:
    """Platform-specific keys of one entity, shared by both discovery styles."""
    body: dict[str, Any] = {
        "name": entity.name,
        "unique_id": f"{topics.device_id}_{entity.key}",
        # object_id makes the entity id predictable (switch.<device_id>_mute) on HA before 2026.4;
        # newer HA builds it from device and entity names.
        "object_id": f"{topics.device_id}_{entity.key}",
        "icon": entity.icon,
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    if entity.category:
        body["entity_category"] = entity.category
    if entity.state:
        body["state_topic"] = topics.state(entity.key)
    if entity.command:
        body["command_topic"] = topics.command(entity.key)
        body["qos"] = 1
    if entity.attributes:
        body["json_attributes_topic"] = topics.attributes(entity.key)
    match entity.component:
        case "sensor" if entity.key == "state":
            body |= {"device_class": "enum", "options": list(STATES)}
        case "binary_sensor" | "switch":
            body |= {"payload_on": ON, "payload_off": OFF}
            if entity.component == "switch":
                body |= {"state_on": ON, "state_off": OFF}
        case "number":
            body |= {"min": 0, "max": 100, "step": 1, "unit_of_measurement": "%", "mode": "slider"}
        case "select":
            body["options"] = list(info.wake_words if entity.key == "wake_word" else DIALECTS)
        case "button":
            body["payload_press"] = "PRESS"
        case "event":
            body["event_types"] = ["detected"]
        case "text" if entity.key == "enrol_name":
            # The box clears the field after a restart, so an empty state must be valid.
            body |= {"min": 0, "max": MAX_WORD_NAME_CHARS, "mode": "text"}
        case "text":
            body |= {"min": 1, "max": MAX_STATE_CHARS, "mode": "text"}
    return body


def entities(info: DeviceInfo) -> tuple[Entity, ...]:
    """The entities this box offers: the wake-word select only when there is something to select."""
    return tuple(e for e in ENTITIES if e.key != "wake_word" or info.wake_words)


def entity_configs(topics: Topics, info: DeviceInfo) -> dict[str, str]:
    """Per-entity discovery: config topic → retained JSON payload."""
    device = _device_block(topics, info)
    return {
        topics.entity_config(entity.component, entity.key): json.dumps(
            {**_entity_body(entity, topics, info), "device": device}, ensure_ascii=False
        )
        for entity in entities(info)
    }


def device_config(topics: Topics, info: DeviceInfo) -> dict[str, str]:
    """Device discovery: one config topic → retained JSON payload with every component."""
    components = {
        f"{topics.device_id}_{entity.key}": {"platform": entity.component, **_entity_body(entity, topics, info)}
        for entity in entities(info)
    }
    payload = {
        "device": _device_block(topics, info),
        "origin": {"name": "xiangyin", "sw_version": info.version},
        "components": components,
        "qos": 1,
    }
    return {topics.device_config: json.dumps(payload, ensure_ascii=False)}


def discovery_messages(topics: Topics, info: DeviceInfo, style: Literal["entity", "device"]) -> dict[str, str]:
    """Configs to publish for ``style``, plus empty payloads that remove the other style's configs.

    An empty retained payload deletes a discovered entity, so switching style never leaves duplicates.
    """
    wanted = entity_configs(topics, info) if style == "entity" else device_config(topics, info)
    every = DeviceInfo(info.name, info.version, wake_words=info.wake_words or ("-",))
    # Clear the other style, and any entity this configuration no longer offers.
    stale = {**entity_configs(topics, every), **device_config(topics, every)}
    return {**dict.fromkeys(stale, ""), **wanted}


# --- states -------------------------------------------------------------------------------------


def text_state(topics: Topics, key: str, text: str) -> dict[str, str]:
    """State (cut to HA's limit) and attributes (the full text) of a text sensor."""
    short = text if len(text) <= MAX_STATE_CHARS else text[: MAX_STATE_CHARS - 1] + "…"
    return {topics.state(key): short, topics.attributes(key): json.dumps({"text": text}, ensure_ascii=False)}


def cut_state(text: str) -> str:
    """``text`` cut to the longest sensor state HA accepts."""
    return text if len(text) <= MAX_STATE_CHARS else text[: MAX_STATE_CHARS - 1] + "…"


def volume_percent(level: float) -> str:
    """The number entity's state for a linear gain."""
    return str(round(min(1.0, max(0.0, level)) * 100))


def wake_event(wake_word: str, score: float) -> str:
    """Payload of the wake event entity."""
    return json.dumps({"event_type": "detected", "wake_word": wake_word, "score": round(score, 3)})
