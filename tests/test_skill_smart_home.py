"""The smart-home skill: Home Assistant entities by the names people use, MQTT devices on an allow-list,
and confirmation before unlocking or opening the garage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from assistant.bus import Envelope
from assistant.errors import ConfigError, ConfirmationRequired, HomeAssistantError, ToolError
from assistant.events import SpeechEnded, ToolCallFinished, ToolCallRequested
from assistant.ports import ModelDone, ModelSpeech, ModelText, ModelToolCall
from assistant.skills import SkillDeps, validate_config
from assistant.tools import ToolRegistry, tools_of
from skills.smart_home import SmartHomeSkill
from support.fakes import FakeClock, after, silence, speech, timeline, wake_word
from support.rig import Rig, settings
from tests.skill_support import FakeHomeAssistant, RecordingPublisher, ReplayServer, deps, fixture

AREAS = {
    "客厅": ("light.living_room_ceiling", "light.living_room_floor_lamp", "climate.living_room_ac"),
    "卧室": ("light.bedroom",),
}


def skill(ha: Any = None, **config: Any) -> tuple[SmartHomeSkill, SkillDeps]:
    options: dict[str, Any] = {"areas": AREAS, "aliases": {"大灯": "light.living_room_ceiling"}} | config
    skill_deps = deps(
        home_assistant=ha if ha is not None else FakeHomeAssistant(),
        mqtt=RecordingPublisher(),
        mqtt_command_topics=("home/+/+/set",),
    )[0]
    return SmartHomeSkill(SmartHomeSkill.Config.model_validate(options), skill_deps), skill_deps


async def test_turning_off_the_living_room_lights_calls_home_assistant_once_for_both() -> None:
    ha = FakeHomeAssistant()
    home, _ = skill(ha)
    result = await home.turn_off("客厅的灯")
    both = ["light.living_room_ceiling", "light.living_room_floor_lamp"]
    assert ha.calls == [("light", "turn_off", {"entity_id": both})]
    assert result == {"done": "off", "devices": ["客厅吊灯", "落地灯"]}


async def test_brightness_temperature_and_curtains_use_the_right_services() -> None:
    ha = FakeHomeAssistant()
    home, _ = skill(ha)
    await home.set_brightness("大灯", 40)
    await home.set_brightness("落地灯", 0)
    await home.set_temperature("空调", 26)
    await home.set_cover_position("客厅窗帘", 50)
    await home.set_cover_position("客厅窗帘", 100)
    assert ha.calls == [
        ("light", "turn_on", {"entity_id": ["light.living_room_ceiling"], "brightness_pct": 40}),
        ("light", "turn_off", {"entity_id": ["light.living_room_floor_lamp"]}),
        ("climate", "set_temperature", {"entity_id": ["climate.living_room_ac"], "temperature": 26}),
        ("cover", "set_cover_position", {"entity_id": ["cover.living_room_curtain"], "position": 50}),
        ("cover", "open_cover", {"entity_id": ["cover.living_room_curtain"]}),
    ]


async def test_reading_states_reports_useful_attributes() -> None:
    home, _ = skill()
    result = await home.get_state("落地灯")
    assert result == {"states": [{"device": "落地灯", "state": "on", "brightness_percent": 50}]}
    temperature = await home.get_state("客厅温度")
    assert temperature == {"states": [{"device": "客厅温度", "state": "27.5", "unit_of_measurement": "°C"}]}


async def test_a_garage_door_waits_for_a_yes_and_a_curtain_opens_at_once() -> None:
    ha = FakeHomeAssistant()
    home, _ = skill(ha)
    for opening in (
        home.set_cover_position("车库门", 100),
        home.open_cover("车库门"),
        home.set_cover_position("车库门", 30),
    ):
        with pytest.raises(ConfirmationRequired, match="Do you want me to open"):
            await opening
    assert ha.calls == []
    await home.open_cover("客厅窗帘")
    await home.close_cover("车库门")  # closing lets nobody in
    assert ha.calls == [
        ("cover", "open_cover", {"entity_id": ["cover.living_room_curtain"]}),
        ("cover", "close_cover", {"entity_id": ["cover.garage_door"]}),
    ]


async def test_a_cover_with_no_class_opens_unless_its_name_says_door() -> None:
    """Most curtain integrations report no device class; a gate that reports none is still named like one."""
    states = [
        {"entity_id": "cover.bedroom_curtain", "state": "closed", "attributes": {"friendly_name": "卧室窗帘"}},
        {"entity_id": "cover.back_gate", "state": "closed", "attributes": {"friendly_name": "后门"}},
        {
            "entity_id": "cover.side",
            "state": "closed",
            "attributes": {"friendly_name": "Side", "device_class": "door"},
        },
    ]
    ha = FakeHomeAssistant(states)
    home, _ = skill(ha, areas={}, aliases={})
    await home.open_cover("卧室的窗帘")
    assert ha.calls == [("cover", "open_cover", {"entity_id": ["cover.bedroom_curtain"]})]
    for name in ("后门", "Side"):
        with pytest.raises(ConfirmationRequired) as asked:
            await home.set_cover_position(name, 100)
        assert asked.value.action.startswith("cover.open_cover(")
    await home.set_cover_position("后门", 0)  # closing never needs asking
    assert ha.calls[1:] == [("cover", "close_cover", {"entity_id": ["cover.back_gate"]})]


async def test_locks_and_alarms_are_out_of_reach_of_turn_on() -> None:
    home, _ = skill()
    with pytest.raises(ToolError, match="no device matches"):
        await home.turn_on("front door")


async def test_home_assistant_failures_become_readable_errors() -> None:
    home, _ = skill(FakeHomeAssistant(fail=HomeAssistantError("401", reason="auth")))
    with pytest.raises(ToolError, match="refused the assistant's token"):
        await home.turn_on("落地灯")
    home, _ = skill(FakeHomeAssistant(fail=HomeAssistantError("timeout", reason="unavailable")))
    with pytest.raises(ToolError, match="cannot be reached"):
        await home.get_state("落地灯")


async def test_mqtt_device_gets_its_configured_payload() -> None:
    device = {"name": "阳台灯", "topic": "home/balcony/light/set", "payload_on": "1", "payload_off": "0"}
    device["kind"] = "light"
    home, skill_deps = skill(mqtt_devices=[device])
    await home.turn_on("阳台灯")
    await home.turn_off("阳台的灯")
    publisher = skill_deps.mqtt
    assert isinstance(publisher, RecordingPublisher)
    assert publisher.sent == [("home/balcony/light/set", "1", 1, False), ("home/balcony/light/set", "0", 1, False)]


def test_mqtt_device_outside_the_allow_list_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="topics not in mqtt.command_topics: zigbee2mqtt/bridge/request/restart"):
        skill(mqtt_devices=[{"name": "bridge", "topic": "zigbee2mqtt/bridge/request/restart"}])


def test_config_typos_name_the_skill_key() -> None:
    with pytest.raises(ConfigError, match=r"skills\.smart_home\.alias: unknown key \(did you mean 'aliases'\?\)"):
        validate_config(SmartHomeSkill, {"alias": {}})
    with pytest.raises(ConfigError, match=r"skills\.smart_home\.mqtt_devices\.0\.topic: Field required"):
        validate_config(SmartHomeSkill, {"mqtt_devices": [{"name": "x"}]})


async def test_unlocking_needs_the_users_yes_in_a_later_turn() -> None:
    ha = FakeHomeAssistant()
    home, _ = skill(ha)
    tools = ToolRegistry(FakeClock())
    tools.add_all(tools_of(home, owner="smart_home"))

    def ask(turn: str, call_id: str, name: str, **arguments: Any) -> ModelToolCall:
        tools.observe(Envelope(0.0, ToolCallRequested(turn_id=turn, call_id=call_id, tool=name, arguments=arguments)))
        return ModelToolCall(call_id, name, arguments)

    tools.observe(Envelope(0.0, SpeechEnded(turn_id="t1", speech_seconds=1.2)))  # the user asks aloud
    question = await tools.call(ask("t1", "c1", "unlock_door", target="front door"))
    assert question.content["say"] == "Do you want me to unlock Front Door?"
    assert ha.calls == []
    tools.observe(Envelope(0.0, SpeechEnded(turn_id="t2", speech_seconds=0.8)))  # the user's spoken yes
    done = await tools.call(ask("t2", "c2", "confirm_action", confirm_token=question.content["confirm_token"]))
    assert done.content == {"ok": True, "done": "unlocked", "devices": ["Front Door"], "action": "unlock_door"}
    assert ha.calls == [("lock", "unlock", {"entity_id": ["lock.front_door"]})]


async def test_disarming_uses_the_configured_code_without_logging_it(caplog: pytest.LogCaptureFixture) -> None:
    ha = FakeHomeAssistant()
    home, _ = skill(ha, alarm_code="4321")
    tools = ToolRegistry(FakeClock())
    tools.add_all(tools_of(home, owner="smart_home"))
    tools.observe(Envelope(0.0, SpeechEnded(turn_id="t1", speech_seconds=1.2)))
    tools.observe(Envelope(0.0, ToolCallRequested(turn_id="t1", call_id="c1", tool="disarm_alarm", arguments={})))
    question = await tools.call(ModelToolCall("c1", "disarm_alarm", {"target": "家庭警报"}))
    assert question.content["say"] == "Do you want me to disarm 家庭警报?" and ha.calls == []
    tools.observe(Envelope(0.0, SpeechEnded(turn_id="t2", speech_seconds=0.5)))
    tools.observe(Envelope(0.0, ToolCallRequested(turn_id="t2", call_id="c2", tool="confirm_action", arguments={})))
    done = await tools.call(ModelToolCall("c2", "confirm_action", {"confirm_token": question.content["confirm_token"]}))
    assert done.ok, done.content
    panel = ["alarm_control_panel.home_alarm"]
    assert ha.calls == [("alarm_control_panel", "alarm_disarm", {"entity_id": panel, "code": "4321"})]
    assert "4321" not in caplog.text
    assert "4321" not in repr(home.settings)


# --- through homeassistant-api against a server that speaks HA's REST API ---------------------------

TOKEN = "test-token-abc"


@pytest.fixture
async def ha_server() -> AsyncIterator[tuple[ReplayServer, list[tuple[str, dict[str, Any]]]]]:
    states = {s["entity_id"]: s for s in fixture("ha_states.json")}
    services: list[tuple[str, dict[str, Any]]] = []
    server = ReplayServer()

    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def api(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        return web.json_response({"message": "API running."})

    async def all_states(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        return web.json_response(list(states.values()))

    async def one_state(request: web.Request) -> web.Response:
        entity = states.get(request.match_info["entity_id"])
        if entity is None:
            return web.json_response({"message": "Entity not found."}, status=404)
        return web.json_response(entity)

    async def service(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        data = await request.json()
        name = f"{request.match_info['domain']}.{request.match_info['service']}"
        services.append((name, data))
        changed = []
        for entity_id in data.get("entity_id", []):
            if name.endswith("turn_on") and entity_id in states:
                states[entity_id] = states[entity_id] | {"state": "on"}
                changed.append(states[entity_id])
        return web.json_response(changed)

    server.raw("GET", "/api/", api)
    server.raw("GET", "/api/states", all_states)
    server.raw("GET", "/api/states/{entity_id}", one_state)
    server.raw("POST", "/api/services/{domain}/{service}", service)
    await server.start()
    yield server, services
    await server.aclose()


def rest_client(url: str, token: str) -> Any:
    pytest.importorskip("homeassistant_api")
    from tests.ha_rest_adapter import RestHomeAssistant

    return RestHomeAssistant(url, token)


async def test_through_homeassistant_api_over_rest(ha_server: tuple[ReplayServer, list[Any]]) -> None:
    server, services = ha_server
    ha = rest_client(server.url, TOKEN)
    home, _ = skill(ha)
    try:
        assert await home.turn_on("卧室灯") == {"done": "on", "devices": ["卧室灯"]}
        state = await home.get_state("卧室灯")
    finally:
        await ha.aclose()
    assert services == [("light.turn_on", {"entity_id": ["light.bedroom"]})]
    assert state == {"states": [{"device": "卧室灯", "state": "on"}]}


async def test_a_bad_token_is_reported_as_such(ha_server: tuple[ReplayServer, list[Any]]) -> None:
    server, services = ha_server
    ha = rest_client(server.url, "wrong")
    home, _ = skill(ha)
    try:
        with pytest.raises(ToolError, match="refused the assistant's token"):
            await home.turn_on("卧室灯")
    finally:
        await ha.aclose()
    assert services == []


# --- a whole conversation through the supervisor and turn -------------------------------------------

QUESTION = timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0))


def spoken(text: str) -> list[Any]:
    return [after(0.2, ModelText(text)), after(0.1, ModelSpeech(tuple(range(25)))), after(0.0, ModelDone())]


def registry_for(rig: Rig, ha: FakeHomeAssistant) -> ToolRegistry:
    tools = ToolRegistry(rig.clock, new_token=lambda: "tok123")
    tools.add_all(tools_of(skill(ha)[0], owner="smart_home"))
    rig.bus.tap(tools.observe)
    return tools


async def test_unlock_is_asked_in_one_turn_and_done_after_yes_in_the_follow_up() -> None:
    ha = FakeHomeAssistant()
    rig = Rig(
        settings=settings(conversation={"follow_up_seconds": 4.0}),
        rounds=[
            [after(0.3, ModelToolCall("c1", "unlock_door", {"target": "front door"})), after(0.0, ModelDone())],
            spoken("要我打开大门吗？"),
            [after(0.3, ModelToolCall("c2", "confirm_action", {"confirm_token": "tok123"})), after(0.0, ModelDone())],
            spoken("大门开了"),
        ],
    )
    rig.tools = registry_for(rig, ha)  # type: ignore[assignment]
    mic = timeline(QUESTION[:-10], silence(4.0), speech(0.6), silence(8.0))
    events = await rig.run(mic, turns=2)
    finished = [(e.tool, e.ok, e.turn_id) for e in events if isinstance(e, ToolCallFinished)]
    assert [(tool, ok) for tool, ok, _ in finished] == [("unlock_door", False), ("confirm_action", True)]
    assert finished[0][2] != finished[1][2]
    assert ha.calls == [("lock", "unlock", {"entity_id": ["lock.front_door"]})]
    assert rig.model.requests[1].tool_results[0].content["say"] == "Do you want me to unlock Front Door?"


async def test_the_model_answering_its_own_question_unlocks_nothing() -> None:
    ha = FakeHomeAssistant()
    rig = Rig(
        rounds=[
            [after(0.3, ModelToolCall("c1", "unlock_door", {"target": "front door"})), after(0.0, ModelDone())],
            [after(0.3, ModelToolCall("c2", "confirm_action", {"confirm_token": "tok123"})), after(0.0, ModelDone())],
            spoken("请先确认"),
        ],
    )
    rig.tools = registry_for(rig, ha)  # type: ignore[assignment]
    events = await rig.run(QUESTION)
    assert [e.ok for e in events if isinstance(e, ToolCallFinished)] == [False, False]
    assert ha.calls == []


async def test_an_unclear_or_wrong_device_is_caught_before_the_user_is_asked() -> None:
    tools = ToolRegistry(FakeClock())
    tools.add_all(tools_of(skill()[0], owner="smart_home"))
    tools.observe(Envelope(0.0, SpeechEnded(turn_id="t1", speech_seconds=1.2)))  # the user asks aloud
    for call_id in ("c1", "c2"):
        tools.observe(Envelope(0.0, ToolCallRequested(turn_id="t1", call_id=call_id, tool="open_cover", arguments={})))
    missing = await tools.call(ModelToolCall("c1", "open_cover", {"target": "阁楼天窗"}))
    assert "needs_confirmation" not in missing.content
    assert "no device matches" in missing.content["error"]
    garage = await tools.call(ModelToolCall("c2", "open_cover", {"target": "车库门"}))
    assert garage.content["say"] == "Do you want me to open 车库门?"
    assert garage.content["why"] == "车库门: it opens a garage"
