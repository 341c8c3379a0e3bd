"""The box in a real Home Assistant 2024.3.3: discovery, control from HA, our REST client, availability, and the
smart-home skill with HA's areas, aliases and Assist exposure and confirmation by effect (issue 16).

One HA, one mosquitto and one stand-in daemon process (the real MqttBridge on a real Bus, see
tests/mqtt_daemon.py) serve every test in this module; the last test kills the daemon.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import tempfile
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from assistant.audio import AudioChunk, read_wav, split
from assistant.bus import Bus, Envelope
from assistant.config import HomeAssistantSettings, WyomingSettings
from assistant.errors import HomeAssistantError
from assistant.events import AskRequested, SpeechEnded, ToolCallRequested
from assistant.integrations.announce import HomeAnnouncer
from assistant.integrations.ha_registry import HomeAssistantRegistry
from assistant.integrations.homeassistant import HomeAssistantClient
from assistant.integrations.wyoming import WyomingServer
from assistant.ports import ModelText, ModelToolCall, ReplyPiece
from assistant.skills import SkillDeps, load_skills
from assistant.tasks import MonotonicClock, cancel_and_wait
from assistant.tools import ToolRegistry
from support.servers import Mosquitto, eventually, free_port, mosquitto
from tests.home_assistant_server import HomeAssistant, home_assistant

pytestmark = [pytest.mark.homeassistant, pytest.mark.broker]

DEVICE = "ci_box"


@dataclass
class DaemonProcess:
    """The stand-in daemon; ``events`` are the request events it received, as (name, fields)."""

    process: subprocess.Popen[str]
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("EVENT "):
                _, name, fields = line.rstrip("\n").split(" ", 2)
                self.events.append((name, json.loads(fields)))

    def received(self, name: str) -> list[dict[str, object]]:
        return [fields for event, fields in self.events if event == name]


@dataclass
class Setup:
    ha: HomeAssistant
    broker: Mosquitto
    daemon: DaemonProcess
    furnished: bool = False


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("ha")
    with mosquitto(workdir) as broker, home_assistant(workdir) as ha:
        ha.add_mqtt(broker.host, broker.port)
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.mqtt_daemon", broker.host, str(broker.port), DEVICE],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        daemon = DaemonProcess(process)
        threading.Thread(target=daemon.read, daemon=True).start()
        try:
            yield Setup(ha, broker, daemon)
        finally:
            process.kill()
            process.wait()


async def test_discovered_entities_appear_under_one_device(setup: Setup) -> None:
    ha = setup.ha
    entities = [
        "sensor.ci_box_state",
        "sensor.ci_box_transcript",
        "sensor.ci_box_answer",
        "binary_sensor.ci_box_listening",
        "switch.ci_box_mute",
        "number.ci_box_volume",
        "select.ci_box_wake_word",
        "select.ci_box_dialect",
        "button.ci_box_listen",
        "button.ci_box_stop",
        "event.ci_box_wake",
        "text.ci_box_announce",
        "text.ci_box_ask",
    ]
    await eventually(lambda: all(ha.state(e) not in (None, "unavailable") for e in entities), timeout=30)
    assert ha.state("sensor.ci_box_state") == "idle"
    assert ha.state("switch.ci_box_mute") == "off"
    assert ha.state("select.ci_box_wake_word") == "hey_jarvis"
    registry = ha.request("GET", "/api/states/switch.ci_box_mute")
    assert registry["attributes"]["friendly_name"] == "Xiangyin Mute"


async def test_a_wake_word_is_enrolled_from_home_assistants_entities(setup: Setup) -> None:
    """Type the name, press the button: the daemon gets the request; HA shows the progress and the word list."""
    ha, daemon = setup.ha, setup.daemon
    await eventually(lambda: ha.state("button.ci_box_enrol") not in (None, "unavailable"), timeout=30)
    # Cleared by the box at start (an empty retained message): empty, or unknown to an HA that came up after.
    assert ha.state("text.ci_box_enrol_name") in ("", "unknown")
    ha.request("POST", "/api/services/text/set_value", {"entity_id": "text.ci_box_enrol_name", "value": "小乡小乡"})
    await eventually(lambda: ha.state("text.ci_box_enrol_name") == "小乡小乡")
    ha.request("POST", "/api/services/button/press", {"entity_id": "button.ci_box_enrol"})
    await eventually(lambda: daemon.received("EnrolRequested"))
    assert daemon.received("EnrolRequested") == [{"turn_id": None, "name": "小乡小乡", "source": "mqtt"}]
    await eventually(lambda: ha.state("sensor.ci_box_enrolment") == "say it again: take 2 of 4")
    await eventually(lambda: ha.state("sensor.ci_box_enrolled_words") == "小乡小乡")
    words = ha.request("GET", "/api/states/sensor.ci_box_enrolled_words")["attributes"]
    assert words["words"] == ["小乡小乡"]
    select = lambda: ha.request("GET", "/api/states/select.ci_box_wake_word")["attributes"]["options"]  # noqa: E731
    await eventually(lambda: "小乡小乡" in select())  # rediscovered: the select offers the enrolled word
    progress = ha.request("GET", "/api/states/sensor.ci_box_enrolment")["attributes"]
    assert (progress["stage"], progress["take"], progress["takes"]) == ("recording", 2, 0)
    ha.request("POST", "/api/services/button/press", {"entity_id": "button.ci_box_unenrol"})
    await eventually(lambda: daemon.received("UnenrolRequested"))
    assert daemon.received("UnenrolRequested") == [{"turn_id": None, "name": "小乡小乡", "source": "mqtt"}]


async def test_toggling_mute_in_home_assistant_mutes_the_daemon(setup: Setup) -> None:
    ha, daemon = setup.ha, setup.daemon
    await eventually(lambda: ha.state("switch.ci_box_mute") == "off", timeout=30)
    ha.request("POST", "/api/services/switch/turn_on", {"entity_id": "switch.ci_box_mute"})
    await eventually(lambda: daemon.received("MuteRequested"))
    assert daemon.received("MuteRequested")[0] == {"turn_id": None, "muted": True, "source": "mqtt"}
    # The daemon answered with MuteChanged; HA shows the state the daemon reported, not an optimistic one.
    await eventually(lambda: ha.state("switch.ci_box_mute") == "on")
    ha.request("POST", "/api/services/switch/turn_off", {"entity_id": "switch.ci_box_mute"})
    await eventually(lambda: ha.state("switch.ci_box_mute") == "off")


async def test_volume_button_select_and_announce_from_home_assistant(setup: Setup) -> None:
    ha, daemon = setup.ha, setup.daemon
    await eventually(lambda: ha.state("number.ci_box_volume") not in (None, "unavailable"), timeout=30)
    ha.request("POST", "/api/services/number/set_value", {"entity_id": "number.ci_box_volume", "value": 35})
    ha.request("POST", "/api/services/button/press", {"entity_id": "button.ci_box_listen"})
    ha.request(
        "POST", "/api/services/select/select_option", {"entity_id": "select.ci_box_dialect", "option": "cantonese"}
    )
    ha.request("POST", "/api/services/text/set_value", {"entity_id": "text.ci_box_announce", "value": "饭好了"})
    await eventually(lambda: daemon.received("AnnounceRequested"))
    await eventually(lambda: float(ha.state("number.ci_box_volume") or "nan") == 35)
    assert daemon.received("VolumeRequested") == [{"turn_id": None, "level": 0.35}]
    assert daemon.received("ListenRequested") == [{"turn_id": None, "source": "mqtt"}]
    assert daemon.received("SettingRequested") == [
        {"turn_id": None, "key": "dialect", "value": "cantonese", "source": "mqtt"}
    ]
    announced = {"turn_id": None, "text": "饭好了", "source": "mqtt", "reminder_id": None}
    assert daemon.received("AnnounceRequested") == [announced]


async def test_our_client_turns_a_home_assistant_light_on(setup: Setup) -> None:
    ha = setup.ha
    api = HomeAssistantClient(HomeAssistantSettings(enabled=True, url=ha.url, token=ha.token))  # type: ignore[arg-type]
    try:
        assert (await api.get_state("light.test_lamp")).state == "off"
        await api.call_service("light", "turn_on", {"entity_id": "light.test_lamp"})
        assert ha.state("light.test_lamp") == "on"
        assert (await api.get_state("light.test_lamp")).state == "on"
        assert "light.test_lamp" in {s.entity_id for s in await api.get_states()}
    finally:
        await api.close()


async def test_the_smart_home_skill_turns_the_lamp_on_when_the_model_asks(setup: Setup) -> None:
    """The model's tool call goes through the real registry, skill and client, and HA shows the lamp on."""
    ha = setup.ha
    api = HomeAssistantClient(HomeAssistantSettings(enabled=True, url=ha.url, token=ha.token))  # type: ignore[arg-type]
    deps = SkillDeps(publish=lambda _: None, clock=MonotonicClock(), home_assistant=api)
    registry = await load_skills({"smart_home": {"aliases": {"台灯": "light.test_lamp"}}}, deps)
    try:
        await api.call_service("light", "turn_off", {"entity_id": "light.test_lamp"})
        result = await registry.call(ModelToolCall("c1", "turn_on", {"target": "Test lamp"}))
        assert result.ok, result.content
        assert ha.state("light.test_lamp") == "on"
        result = await registry.call(ModelToolCall("c2", "turn_off", {"target": "台灯"}))
        assert result.ok, result.content
        assert ha.state("light.test_lamp") == "off"
    finally:
        await registry.aclose()
        await api.close()


async def test_home_assistant_assist_understands_a_sentence_from_our_client(setup: Setup) -> None:
    ha = setup.ha
    api = HomeAssistantClient(HomeAssistantSettings(enabled=True, url=ha.url, token=ha.token))  # type: ignore[arg-type]
    try:
        await api.call_service("light", "turn_off", {"entity_id": "light.test_lamp"})
        reply = await api.converse("turn on the test lamp", language="en")
    finally:
        await api.close()
    assert reply == "Turned on the light"
    assert ha.state("light.test_lamp") == "on"


async def test_wrong_token_and_unknown_entity_against_real_home_assistant(setup: Setup) -> None:
    ha = setup.ha
    bad = HomeAssistantClient(HomeAssistantSettings(enabled=True, url=ha.url, token="not-a-token"))  # type: ignore[arg-type]
    good = HomeAssistantClient(HomeAssistantSettings(enabled=True, url=ha.url, token=ha.token))  # type: ignore[arg-type]
    try:
        with pytest.raises(HomeAssistantError) as auth:
            await bad.check()
        with pytest.raises(HomeAssistantError) as missing:
            await good.get_state("light.does_not_exist")
    finally:
        await bad.close()
        await good.close()
    assert auth.value.reason == "auth" and "not-a-token" not in str(auth.value)
    assert missing.value.reason == "rejected"


# --- the house as Home Assistant knows it (issue 16) -------------------------------------------------

SWITCHES = {
    "switch.garage_opener": "input_boolean.garage_relay",
    "script.unlock_front_door": "input_boolean.front_lock",
    "input_boolean.front_lock": "input_boolean.front_lock",
    "cover.garage_door": "input_boolean.garage_open",
    "lock.front_door": "input_boolean.door_locked",
}
"""Each sensitive target, and the input_boolean that shows whether it acted."""


async def furnish(setup: Setup) -> None:
    """Areas, aliases and Assist exposure set in Home Assistant over its WebSocket API, as a user would (once)."""
    if setup.furnished:
        return
    ha = setup.ha
    areas = await ha.websocket(
        {"type": "config/area_registry/create", "name": "客厅", "aliases": ["起居室", "Living room"]},
        {"type": "config/area_registry/create", "name": "卧室", "aliases": ["Bedroom"]},
        {"type": "config/area_registry/create", "name": "车库"},
    )
    living, bedroom, garage = (area["area_id"] for area in areas)
    update = "config/entity_registry/update"
    await ha.websocket(
        {"type": update, "entity_id": "light.living_lamp", "area_id": living},
        {"type": update, "entity_id": "light.bedroom_lamp", "area_id": bedroom, "aliases": ["床头灯", "bedside lamp"]},
        {"type": update, "entity_id": "cover.bedroom_curtain", "area_id": bedroom},
        {"type": update, "entity_id": "switch.garage_opener", "area_id": garage},
        {
            "type": "homeassistant/expose_entity",
            "assistants": ["conversation"],
            "entity_ids": ["input_boolean.front_lock", f"switch.{DEVICE}_mute"],
            "should_expose": True,
        },
        {
            "type": "homeassistant/expose_entity",
            "assistants": ["conversation"],
            "entity_ids": ["light.attic_lamp"],
            "should_expose": False,
        },
    )
    setup.furnished = True


@asynccontextmanager
async def house_skill(setup: Setup) -> AsyncIterator[ToolRegistry]:
    """The real client, the real WebSocket registry and the real skill and tool registry, as the daemon wires them."""
    await furnish(setup)
    settings = HomeAssistantSettings(enabled=True, url=setup.ha.url, token=setup.ha.token)  # type: ignore[arg-type]
    api = HomeAssistantClient(settings)
    house = HomeAssistantRegistry(settings, settle_seconds=0.1)
    task = asyncio.create_task(house.run())
    deps = SkillDeps(
        publish=lambda _: None, clock=MonotonicClock(), home_assistant=api, house=house, box_device_id=DEVICE
    )
    registry = await load_skills({"smart_home": {"states_cache_seconds": 0}}, deps, confirm_seconds=300)
    try:
        await house.house()
        yield registry
    finally:
        await registry.aclose()
        await cancel_and_wait(task)
        await api.close()


class Turns:
    """Drives the tool registry as the turn does: the bus events that say who spoke, then the call."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry
        self.count = 0

    async def call(self, turn: str, name: str, *, spoken: bool, **arguments: Any) -> dict[str, Any]:
        self.count += 1
        call_id = f"c{self.count}"
        if not spoken:
            self.registry.observe(Envelope(0.0, AskRequested(text="typed", source="mqtt")))
        else:
            self.registry.observe(Envelope(0.0, SpeechEnded(turn_id=turn, speech_seconds=1.0)))
        self.registry.observe(
            Envelope(0.0, ToolCallRequested(turn_id=turn, call_id=call_id, tool=name, arguments=arguments))
        )
        return dict((await self.registry.call(ModelToolCall(call_id, name, arguments))).content)


async def test_areas_and_aliases_set_in_home_assistant_are_found_and_curtains_open(setup: Setup) -> None:
    ha = setup.ha
    async with house_skill(setup) as registry:
        turns = Turns(registry)
        for said, light in [("客厅的灯", "light.living_lamp"), ("bedside lamp", "light.bedroom_lamp")]:
            result = await turns.call(said, "turn_on", spoken=False, target=said)
            assert result["ok"], result
            assert await asyncio.to_thread(ha.state, light) == "on"
        assert (await turns.call("t", "turn_off", spoken=False, target="起居室的灯"))["ok"]
        assert await asyncio.to_thread(ha.state, "light.living_lamp") == "off"
        opened = await turns.call("t", "open_cover", spoken=False, target="卧室的窗帘")  # no device class
        assert opened == {"ok": True, "done": "opening", "devices": ["卧室窗帘"]}
        assert await asyncio.to_thread(ha.state, "cover.bedroom_curtain") == "open"
        hidden = await turns.call("t", "turn_on", spoken=False, target="阁楼灯")  # not exposed to Assist
        assert "no device matches" in hidden["error"]
        assert await asyncio.to_thread(ha.state, "light.attic_lamp") == "off"


async def test_an_alias_added_or_exposure_withdrawn_in_home_assistant_applies_without_a_restart(setup: Setup) -> None:
    ha = setup.ha
    async with house_skill(setup) as registry:
        turns = Turns(registry)
        assert "no device matches" in (await turns.call("t", "turn_on", spoken=False, target="夜灯"))["error"]
        update = {"type": "config/entity_registry/update", "entity_id": "light.living_lamp", "aliases": ["夜灯"]}
        await ha.websocket(update)

        async def found() -> bool:
            return bool((await turns.call("t", "turn_on", spoken=False, target="夜灯"))["ok"])

        await eventually(found, timeout=20)
        assert await asyncio.to_thread(ha.state, "light.living_lamp") == "on"

        def expose(exposed: bool) -> dict[str, Any]:
            entities = {"entity_ids": ["light.living_lamp"], "should_expose": exposed}
            return {"type": "homeassistant/expose_entity", "assistants": ["conversation"], **entities}

        async def gone() -> bool:
            return "no device matches" in str(
                (await turns.call("t", "get_state", spoken=False, target="夜灯")).get("error")
            )

        await ha.websocket(expose(False))  # taken away from Assist: out of reach at once, no restart
        try:
            await eventually(gone, timeout=20)
            refused = await turns.call("t", "turn_off", spoken=False, target="夜灯")
            assert "no device matches" in refused["error"]
            assert await asyncio.to_thread(ha.state, "light.living_lamp") == "on"
        finally:
            await ha.websocket(expose(True))


@pytest.mark.parametrize(
    ("tool", "said", "acted"),
    [
        ("turn_on", "Relay 1", "on"),  # a garage opener wired as a switch, in the 车库 area
        ("turn_on", "unlock front door", "off"),  # a script
        ("turn_off", "前门锁", "off"),  # a lock driven through an input_boolean
        ("open_cover", "Car port", "on"),  # a garage cover
        ("unlock_door", "Front door", "off"),
    ],
)
async def test_each_bypass_needs_a_spoken_yes_against_real_home_assistant(
    setup: Setup, tool: str, said: str, acted: str
) -> None:
    ha = setup.ha
    async with house_skill(setup) as registry:
        turns = Turns(registry)
        entity = next(e for e, name in ENTITY_NAMES.items() if name == said)
        shows = SWITCHES[entity]
        before = "off" if acted == "on" else "on"
        await asyncio.to_thread(ha.request, "POST", f"/api/services/input_boolean/turn_{before}", {"entity_id": shows})
        typed = await turns.call("typed", tool, spoken=False, target=said)
        assert "can only be asked for by voice" in typed["error"], typed
        asked = await turns.call("spoken", tool, spoken=True, target=said)
        assert asked.get("needs_confirmation") is True, asked
        assert await asyncio.to_thread(ha.state, shows) == before
        done = await turns.call("yes", "confirm_action", spoken=True, confirm_token=asked["confirm_token"])
        assert done["ok"], done
        await eventually(lambda: asyncio.to_thread(lambda: ha.state(shows) == acted), timeout=10)


async def test_the_model_cannot_mute_the_box_through_home_assistant(setup: Setup) -> None:
    ha = setup.ha
    await eventually(lambda: asyncio.to_thread(lambda: ha.state(f"switch.{DEVICE}_mute") in ("on", "off")), timeout=30)
    before = await asyncio.to_thread(ha.state, f"switch.{DEVICE}_mute")
    async with house_skill(setup) as registry:
        turns = Turns(registry)
        for said in ("Xiangyin Mute", "mute", f"{DEVICE}_mute"):
            refused = await turns.call("spoken", "turn_on", spoken=True, target=said)
            assert not refused["ok"] and "needs_confirmation" not in refused, refused
    assert await asyncio.to_thread(ha.state, f"switch.{DEVICE}_mute") == before


ENTITY_NAMES = {
    "switch.garage_opener": "Relay 1",
    "script.unlock_front_door": "unlock front door",
    "input_boolean.front_lock": "前门锁",
    "cover.garage_door": "Car port",
    "lock.front_door": "Front door",
}


class EspeakVoice:
    """A small real voice for this test: espeak-ng's Mandarin, as the daemon's TTS fallback would speak."""

    async def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        async for piece in pieces:
            if not isinstance(piece, ModelText):
                continue
            with tempfile.TemporaryDirectory() as workdir:
                wav = Path(workdir) / "speech.wav"
                process = await asyncio.create_subprocess_exec("espeak-ng", "-v", "cmn", "-w", str(wav), piece.text)
                assert await process.wait() == 0
                for chunk in split(read_wav(wav), 0.1):
                    yield chunk


async def test_home_assistant_speaks_with_the_box_voice_over_wyoming(setup: Setup) -> None:
    ha = setup.ha
    settings = WyomingSettings(enabled=True, host="127.0.0.1", port=free_port())
    server = WyomingServer(settings, Bus(MonotonicClock()), "1.0", voice=EspeakVoice())
    task = asyncio.create_task(server.run())
    try:
        port = await server.started()
        flow = await asyncio.to_thread(ha.request, "POST", "/api/config/config_entries/flow", {"handler": "wyoming"})
        answer = {"host": "127.0.0.1", "port": port}
        entry = await asyncio.to_thread(
            ha.request, "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer
        )
        assert entry.get("type") == "create_entry", entry
        await eventually(lambda: asyncio.to_thread(ha.state, "tts.xiangyin_voice"), timeout=20)
        request = {"engine_id": "tts.xiangyin_voice", "message": "晚饭好了", "options": {"preferred_format": "wav"}}
        url = (await asyncio.to_thread(ha.request, "POST", "/api/tts_get_url", request))["url"]
        wav = await asyncio.to_thread(ha.fetch, url)
    finally:
        await cancel_and_wait(task)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    with wave.open(io.BytesIO(wav)) as audio:
        assert audio.getnframes() / audio.getframerate() > 0.5, "espeak-ng says four syllables in well over 0.5 s"


async def test_an_announcement_plays_on_a_home_assistant_speaker_through_tts_speak(setup: Setup) -> None:
    """Our tts.speak call, with the box's own Wyoming voice as the TTS entity, reaches a media player in HA
    (a universal player that records what it was asked to play); a call missing the players is refused, so HA
    did check the shape."""
    ha = setup.ha
    settings = WyomingSettings(enabled=True, host="127.0.0.1", port=free_port())
    server = WyomingServer(settings, Bus(MonotonicClock()), "1.0", voice=EspeakVoice())
    task = asyncio.create_task(server.run())
    try:
        port = await server.started()
        flow = await asyncio.to_thread(ha.request, "POST", "/api/config/config_entries/flow", {"handler": "wyoming"})
        answer = {"host": "127.0.0.1", "port": port}
        entry = await asyncio.to_thread(
            ha.request, "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer
        )
        assert entry.get("type") == "create_entry", entry

        async def tts_entity() -> str | None:
            states = await asyncio.to_thread(ha.request, "GET", "/api/states")
            return next((s["entity_id"] for s in states if s["entity_id"].startswith("tts.xiangyin")), None)

        await eventually(tts_entity, timeout=20)
        engine = await tts_entity()
        assert engine is not None
        players = ("media_player.kitchen_speaker",)
        client = HomeAssistantClient(
            HomeAssistantSettings(
                enabled=True,
                url=ha.url,
                token=ha.token,  # type: ignore[arg-type]
                tts_entity=engine,
                media_players=players,
            )
        )
        try:
            assert await HomeAnnouncer(Bus(MonotonicClock()), client.announce, players).announce("Dinner is ready")
            with pytest.raises(HomeAssistantError) as refused:
                await client.call_service("tts", "speak", {"entity_id": engine, "message": "Dinner is ready"})
        finally:
            await client.close()
    finally:
        await cancel_and_wait(task)
    played = ha.state("input_text.kitchen_played") or ""
    assert played.startswith(f"media-source://tts/{engine}?message=Dinner+is+ready"), played
    assert refused.value.reason == "rejected"


async def test_killing_the_daemon_marks_its_entities_unavailable(setup: Setup) -> None:
    ha, daemon = setup.ha, setup.daemon
    await eventually(lambda: ha.state("switch.ci_box_mute") in ("on", "off"), timeout=30)
    daemon.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(daemon.process.wait)
    await eventually(lambda: ha.state("switch.ci_box_mute") == "unavailable", timeout=20)
    assert ha.state("sensor.ci_box_state") == "unavailable"
