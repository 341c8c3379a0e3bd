"""The house from Home Assistant's WebSocket API: read, kept current on registry events, through restarts,
and a clear error (so the skill falls back) when a reply cannot be read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from assistant.config import HomeAssistantSettings
from assistant.errors import HomeAssistantError
from assistant.events import ConnectionChanged, Event
from assistant.house import House
from assistant.integrations.ha_registry import HomeAssistantRegistry, parse_house
from assistant.tasks import cancel_and_wait
from support.fake_ha_websocket import TOKEN, FakeHaWebSocket
from support.servers import eventually, free_port


def entity(entity_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "entity_id": entity_id,
        "name": None,
        "original_name": None,
        "area_id": None,
        "device_id": None,
        "platform": "template",
        "unique_id": entity_id,
        "disabled_by": None,
        "hidden_by": None,
        "entity_category": None,
        "options": {},
        "aliases": [],
        "device_class": None,
        "original_device_class": None,
    }
    return base | fields


def fake_house() -> FakeHaWebSocket:
    return FakeHaWebSocket(
        areas=[{"area_id": "living_room", "name": "客厅", "aliases": ["起居室"], "icon": None, "picture": None}],
        devices=[
            {
                "id": "dev1",
                "name": "Lamp hub",
                "name_by_user": "落地灯座",
                "area_id": "living_room",
                "identifiers": [["hue", "1"]],
            }
        ],
        entities=[
            entity("light.ceiling", area_id="living_room", aliases=["大灯"]),
            entity("light.floor", device_id="dev1", original_name="Floor"),
            entity("cover.gate", original_device_class="gate", name="Yard gate"),
            entity("switch.hidden", hidden_by="user"),
        ],
        exposed={"light.ceiling": {"conversation": True, "cloud.alexa": False}, "cover.gate": {"conversation": False}},
    )


def settings(url: str, token: str = TOKEN) -> HomeAssistantSettings:
    return HomeAssistantSettings(enabled=True, url=url, token=token, timeout_seconds=5)  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[FakeHaWebSocket]:
    fake = fake_house()
    await fake.start()
    yield fake
    await fake.aclose()


async def running(url: str, token: str = TOKEN) -> tuple[HomeAssistantRegistry, list[Event], asyncio.Task[None]]:
    events: list[Event] = []
    registry = HomeAssistantRegistry(
        settings(url, token),
        publish=events.append,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.2,
        settle_seconds=0.05,
    )
    return registry, events, asyncio.create_task(registry.run())


async def test_areas_devices_aliases_and_exposure_are_read(server: FakeHaWebSocket) -> None:
    registry, events, task = await running(server.url)
    try:
        house = await registry.house()
    finally:
        await cancel_and_wait(task)
    ceiling, floor, gate = (house.entities[e] for e in ("light.ceiling", "light.floor", "cover.gate"))
    assert ceiling.aliases == ("大灯",)
    assert house.area_of("light.ceiling") == house.area_of("light.floor")  # its own area, and its device's
    assert house.area_of("light.floor") is not None and house.area_of("light.floor").aliases == ("起居室",)  # type: ignore[union-attr]
    assert house.device_of("light.floor") is not None and house.device_of("light.floor").name == "落地灯座"  # type: ignore[union-attr]
    assert floor.name == "Floor" and gate.name == "Yard gate" and gate.device_class == "gate"
    assert house.exposed("light.ceiling") and not house.exposed("cover.gate")
    assert house.exposed("light.floor")  # nobody chose: lights are exposed by default
    assert not house.exposed("switch.hidden")  # hidden entities are not
    assert not house.exposed("sensor.power", "power") and house.exposed("sensor.t", "temperature")
    assert ConnectionChanged(service="home_assistant_registry", connected=True, detail=registry._where) in events


async def test_a_registry_change_is_read_again_once_for_a_burst(server: FakeHaWebSocket) -> None:
    registry, _, task = await running(server.url)
    try:
        await registry.house()
        reads = server.commands.count("config/area_registry/list")
        server.entities[1]["aliases"] = ["阅读灯"]
        for _ in range(5):
            await server.fire("entity_registry_updated")
        await eventually(
            lambda: registry._house is not None and registry._house.entities["light.floor"].aliases == ("阅读灯",)
        )
        server.areas.append({"area_id": "bedroom", "name": "卧室", "aliases": []})
        await server.fire("area_registry_updated")
        await eventually(lambda: registry._house is not None and "bedroom" in registry._house.areas)
    finally:
        await cancel_and_wait(task)
    assert server.commands.count("config/area_registry/list") - reads <= 4, "a burst of events is read once or twice"


async def test_home_assistant_restarting_keeps_the_house_and_reconnects(server: FakeHaWebSocket) -> None:
    registry, events, task = await running(server.url)
    try:
        before = await registry.house()
        await server.drop()
        await eventually(lambda: any(isinstance(e, ConnectionChanged) and not e.connected for e in events))
        assert await registry.house() == before  # the registries survive a restart (re-read or not yet)
        await eventually(lambda: server.connections >= 2)
        server.entities[0]["aliases"] = ["主灯"]
        await eventually(lambda: server._sockets and "entity_registry_updated" in next(iter(server._sockets.values())))
        await server.fire("entity_registry_updated")
        await eventually(
            lambda: registry._house is not None and registry._house.entities["light.ceiling"].aliases == ("主灯",)
        )
    finally:
        await cancel_and_wait(task)
    assert [e.connected for e in events if isinstance(e, ConnectionChanged)] == [True, False, True]


@pytest.mark.parametrize(
    ("command", "reply", "message"),
    [
        ("config/entity_registry/list", {"not": "a list"}, "does not fit at the top: Input should be a valid list"),
        ("config/area_registry/list", [{"name": "客厅"}], "does not fit at 0.area_id: Field required"),
        ("homeassistant/expose_new_entities/get", {"expose_new": "yes"}, "expose_new answer is not true or false"),
        ("homeassistant/expose_new_entities/get", [True], "expose_new answer is not true or false"),
        (
            "homeassistant/expose_entity/list",
            {"exposed_entities": {"light.x": {"conversation": "maybe"}}},
            "does not fit",
        ),
    ],
)
async def test_a_reply_that_does_not_fit_is_a_clear_error_and_the_house_unknown(
    server: FakeHaWebSocket, command: str, reply: Any, message: str
) -> None:
    server.broken[command] = reply
    registry, events, task = await running(server.url)
    try:
        with pytest.raises(HomeAssistantError, match=message):
            await registry.house()
        assert not task.done()  # it keeps trying, and the daemon keeps running
        assert any(isinstance(e, ConnectionChanged) and message in e.detail for e in events)
        del server.broken[command]
        await eventually(lambda: registry._house is not None)
    finally:
        await cancel_and_wait(task)


async def test_a_wrong_token_is_reported_without_the_token(server: FakeHaWebSocket) -> None:
    registry, events, task = await running(server.url, token="wrong-token-xyz")
    try:
        with pytest.raises(HomeAssistantError, match="refused the access token") as refused:
            await registry.house()
    finally:
        await cancel_and_wait(task)
    assert "wrong-token-xyz" not in str(refused.value)
    assert all("wrong-token-xyz" not in e.detail for e in events if isinstance(e, ConnectionChanged))


async def test_nothing_listening_makes_the_house_unknown_at_once() -> None:
    registry, _, task = await running(f"http://127.0.0.1:{free_port()}")
    try:
        await eventually(lambda: registry._attempted.is_set())
        with pytest.raises(HomeAssistantError, match="is not reachable"):
            await registry.house()
    finally:
        await cancel_and_wait(task)


async def test_without_admin_rights_exposure_comes_from_the_entity_registry(server: FakeHaWebSocket) -> None:
    server.admin = False
    server.entities[0]["options"] = {"conversation": {"should_expose": False}}
    registry, _, task = await running(server.url)
    try:
        house = await registry.house()
    finally:
        await cancel_and_wait(task)
    assert not house.exposed("light.ceiling") and house.exposed("light.floor")


def test_parse_house_keeps_what_home_assistant_2024_3_sends() -> None:
    house = parse_house(
        [{"area_id": "a", "name": "A", "aliases": [], "icon": None, "picture": None}],
        [{"id": "d", "name": None, "name_by_user": None, "area_id": "a", "identifiers": [["mqtt", "box"]]}],
        [entity("switch.x", device_id="d", platform="mqtt", unique_id="box_mute")],
        {"switch.x": None},
        {"exposed_entities": {}},
        False,
    )
    assert house == House(
        areas=house.areas, devices=house.devices, entities=house.entities, exposure={}, expose_new=False
    )
    assert house.devices["d"].identifiers == (("mqtt", "box"),) and house.area_of("switch.x").name == "A"  # type: ignore[union-attr]
    assert not house.exposed("switch.x")  # expose_new is off and nobody chose
