"""Which device the user means, from names, aliases and areas in Chinese and English."""

from __future__ import annotations

import pytest

from assistant.errors import ToolError
from skills._entities import Device, normalize, resolve, topic_allowed

ALL_LIGHTS = ["light.bedroom", "light.kitchen", "light.living_room_ceiling", "light.living_room_floor_lamp"]
HOME = [
    Device("light.living_room_ceiling", "客厅吊灯", "light", "客厅", ("大灯",)),
    Device("light.living_room_floor_lamp", "落地灯", "light", "客厅"),
    Device("light.bedroom", "卧室灯", "light", "卧室"),
    Device("light.kitchen", "Kitchen Light", "light", "Kitchen"),
    Device("switch.kettle", "Kettle", "switch", "Kitchen", ("电水壶",)),
    Device("fan.bedroom", "Bedroom Fan", "fan", "卧室"),
    Device("climate.living_room_ac", "客厅空调", "climate", "客厅"),
]


def ids(devices: list[Device]) -> list[str]:
    return sorted(d.id for d in devices)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("落地灯", ["light.living_room_floor_lamp"]),
        ("客厅吊灯", ["light.living_room_ceiling"]),
        ("大灯", ["light.living_room_ceiling"]),
        ("the kettle", ["switch.kettle"]),
        ("电水壶", ["switch.kettle"]),
        ("kitchen light", ["light.kitchen"]),
        ("Kitchen Lights", ["light.kitchen"]),
        ("客厅的灯", ["light.living_room_ceiling", "light.living_room_floor_lamp"]),
        ("卧室的风扇", ["fan.bedroom"]),
        ("空调", ["climate.living_room_ac"]),
        ("all the lights", ALL_LIGHTS),
        ("所有的灯", ALL_LIGHTS),
        ("bedroom fan", ["fan.bedroom"]),
        ("living_room_floor_lamp", ["light.living_room_floor_lamp"]),
    ],
)
def test_phrases_resolve_to_the_devices_meant(said: str, expected: list[str]) -> None:
    assert ids(resolve(said, HOME)) == expected


def test_a_bare_kind_means_the_one_in_this_room() -> None:
    assert ids(resolve("灯", HOME, room="卧室")) == ["light.bedroom"]
    assert ids(resolve("light", HOME, room="Kitchen")) == ["light.kitchen"]


def test_a_bare_kind_without_a_room_asks_which() -> None:
    with pytest.raises(ToolError, match="could mean several devices: .*Ask the user which one"):
        resolve("灯", HOME)


def test_unknown_devices_list_what_exists() -> None:
    with pytest.raises(ToolError, match="no device matches '车库门'"):
        resolve("车库门", HOME)
    with pytest.raises(ToolError, match="Devices there include: 卧室灯"):
        resolve("卧室的电视", HOME)


def test_normalize_drops_fillers_but_not_words_containing_them() -> None:
    assert normalize("请把 客厅的 灯") == "客厅灯"
    assert normalize("the Hall light") == "halllight"
    assert normalize("Theater") == "theater"


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [
        ("home/balcony/light/set", True),
        ("home/garden/pump/set", True),
        ("home/balcony/light", False),
        ("zigbee2mqtt/bridge/request/restart", False),
        ("tasmota/cmnd/plug1/POWER", True),
    ],
)
def test_topic_allow_list_with_wildcards(topic: str, allowed: bool) -> None:
    assert topic_allowed(topic, ["home/+/+/set", "tasmota/cmnd/#"]) is allowed
