"""Which Home Assistant entities the smart-home skill may act on, and under which names: pure.

An entity from the state list becomes a :class:`~skills._entities.Device` the user can name, with the
names, aliases, area (and the area's aliases), device name and device class Home Assistant's registries
give it, plus the household's extra aliases and areas from ``skills.smart_home``. It is left out when it
is excluded, disabled, not exposed to Assist (unless configured otherwise), or one of the box's own.
Without the registry (``house`` is None) only the state list and the configured extras are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from assistant.house import House
from assistant.ports import EntityState

from ._entities import Device


@dataclass(frozen=True, slots=True)
class Reach:
    """What the household configured about which entities the assistant may use."""

    expose: Literal["assist", "all"] = "assist"
    """``assist``: only entities exposed to Assist in Home Assistant; ``all``: every entity."""
    include: frozenset[str] = frozenset()
    """Entity ids used even though they are not exposed."""
    exclude: frozenset[str] = frozenset()
    """Entity ids never used."""
    box_device_id: str = ""
    """This box's MQTT device id: its own entities are never used."""
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Entity id → extra names."""
    areas: Mapping[str, str] = field(default_factory=dict)
    """Entity id → area name, for entities Home Assistant has in no area."""


def target(state: EntityState, house: House | None, reach: Reach) -> Device | None:
    """The entity as a device the user can name, or None when the assistant may not use it."""
    entity_id = state.entity_id
    attributes = state.attributes
    if entity_id in reach.exclude or is_box(entity_id, house, reach.box_device_id):
        return None
    area = reach.areas.get(entity_id, "")
    area_aliases: tuple[str, ...] = ()
    aliases = reach.aliases.get(entity_id, ())
    device_class = str(attributes.get("device_class") or "")
    device_name = ""
    if house is not None:
        entity = house.entities.get(entity_id)
        if entity is not None and entity.disabled:
            return None
        if reach.expose == "assist" and entity_id not in reach.include and not house.exposed(entity_id, device_class):
            return None
        known_area = house.area_of(entity_id)
        if known_area is not None and not area:
            area, area_aliases = known_area.name, known_area.aliases
        device = house.device_of(entity_id)
        device_name = device.name if device is not None else ""
        if entity is not None:
            aliases += entity.aliases
            device_class = entity.device_class or device_class
    return Device(
        id=entity_id,
        name=str(attributes.get("friendly_name") or entity_id),
        domain=entity_id.split(".", 1)[0],
        area=area,
        aliases=aliases,
        device_class=device_class,
        area_aliases=area_aliases,
        device_name=device_name,
    )


def is_box(entity_id: str, house: House | None, box: str) -> bool:
    """Whether the entity is one of this box's own (its MQTT discovery entities)."""
    if not box:
        return False
    if house is not None and (entity := house.entities.get(entity_id)) is not None:
        if entity.platform == "mqtt" and entity.unique_id.startswith(f"{box}_"):
            return True
        device = house.device_of(entity_id)
        if device is not None and ("mqtt", box) in device.identifiers:
            return True
    # Without the registry (or for a renamed entity id), the object id the box's discovery asks for.
    return entity_id.split(".", 1)[-1].startswith(f"{box}_")
