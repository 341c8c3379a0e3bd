"""The house as Home Assistant knows it: areas, devices, entities with their names and aliases, Assist exposure.

Plain data, no I/O: ``integrations/ha_registry.py`` reads it over Home Assistant's WebSocket API, fakes build
it in tests, and the smart-home skill matches spoken names against it. ``/api/states`` carries none of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ASSIST = "conversation"
"""Home Assistant's name for its own voice assistant (Assist) in the expose settings."""

# Home Assistant 2024.3's defaults for an entity nobody chose for (homeassistant/exposed_entities.py).
_DEFAULT_EXPOSED_DOMAINS = frozenset(
    {
        "climate",
        "cover",
        "fan",
        "humidifier",
        "light",
        "lock",
        "scene",
        "script",
        "switch",
        "todo",
        "vacuum",
        "water_heater",
    }
)
_DEFAULT_EXPOSED_CLASSES = {
    "binary_sensor": frozenset({"door", "garage_door", "lock", "motion", "opening", "presence", "window"}),
    "sensor": frozenset({"aqi", "carbon_monoxide", "carbon_dioxide", "humidity", "pm10", "pm25", "temperature"})
    | frozenset({"volatile_organic_compounds"}),
}


@dataclass(frozen=True, slots=True)
class Area:
    """A room or zone."""

    area_id: str
    """Home Assistant's id, e.g. ``living_room``."""
    name: str
    """Its name, e.g. 客厅."""
    aliases: tuple[str, ...] = ()
    """Other names set in Home Assistant."""


@dataclass(frozen=True, slots=True)
class HaDevice:
    """A physical device that groups entities."""

    device_id: str
    """Home Assistant's id."""
    name: str
    """The user's name for it, else the integration's."""
    area_id: str | None = None
    """Its area; its entities are in it unless they set their own."""
    identifiers: tuple[tuple[str, str], ...] = ()
    """(integration, id) pairs, e.g. ``("mqtt", "xiangyin_living_room")``."""


@dataclass(frozen=True, slots=True)
class HaEntity:
    """One entry of the entity registry."""

    entity_id: str
    """E.g. ``light.living_room``."""
    name: str | None = None
    """The user's name, else the integration's; None when it only has a device name."""
    aliases: tuple[str, ...] = ()
    """Aliases set in Home Assistant (Settings → Entities → Voice assistants)."""
    area_id: str | None = None
    """Its own area; None to use its device's."""
    device_id: str | None = None
    """The device it belongs to."""
    device_class: str = ""
    """The user's device class, else the integration's; empty when none."""
    platform: str = ""
    """Integration that provides it, e.g. ``mqtt`` or ``template``."""
    unique_id: str = ""
    """The integration's id for it (for MQTT, the discovery ``unique_id``)."""
    hidden: bool = False
    """Hidden by the user or the integration."""
    disabled: bool = False
    """Disabled: it has no state and cannot be controlled."""
    category: str | None = None
    """``config`` or ``diagnostic`` for entities that are not primary."""


@dataclass(frozen=True, slots=True)
class House:
    """Everything the registry knows, as one snapshot."""

    areas: Mapping[str, Area] = field(default_factory=dict)
    """By area id."""
    devices: Mapping[str, HaDevice] = field(default_factory=dict)
    """By device id."""
    entities: Mapping[str, HaEntity] = field(default_factory=dict)
    """By entity id."""
    exposure: Mapping[str, bool] = field(default_factory=dict)
    """Entity id → whether the user exposed it to Assist; only entities someone decided for."""
    expose_new: bool = True
    """Whether Home Assistant exposes new entities to Assist (its "expose new entities" setting)."""

    def area_of(self, entity_id: str) -> Area | None:
        """The entity's area: its own, else its device's."""
        entity = self.entities.get(entity_id)
        if entity is None:
            return None
        area_id = entity.area_id
        if area_id is None and entity.device_id is not None and entity.device_id in self.devices:
            area_id = self.devices[entity.device_id].area_id
        return self.areas.get(area_id) if area_id is not None else None

    def device_of(self, entity_id: str) -> HaDevice | None:
        """The device the entity belongs to, if any."""
        entity = self.entities.get(entity_id)
        if entity is None or entity.device_id is None:
            return None
        return self.devices.get(entity.device_id)

    def exposed(self, entity_id: str, device_class: str = "") -> bool:
        """Whether Assist may use the entity: the user's choice, else Home Assistant's default for it.

        ``device_class``: the state's, for entities outside the registry (the default depends on it).
        """
        chosen = self.exposure.get(entity_id)
        if chosen is not None:
            return chosen
        if not self.expose_new:
            return False
        entity = self.entities.get(entity_id)
        if entity is not None and (entity.category is not None or entity.hidden):
            return False
        domain = entity_id.split(".", 1)[0]
        if domain in _DEFAULT_EXPOSED_DOMAINS:
            return True
        device_class = (entity.device_class if entity is not None else "") or device_class
        return device_class in _DEFAULT_EXPOSED_CLASSES.get(domain, frozenset())
