"""The box in a real Home Assistant 2024.3.3: discovery, control from HA, our REST client, availability.

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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from assistant.audio import AudioChunk, read_wav, split
from assistant.bus import Bus
from assistant.config import HomeAssistantSettings, WyomingSettings
from assistant.errors import HomeAssistantError
from assistant.integrations.homeassistant import HomeAssistantClient
from assistant.integrations.wyoming import WyomingServer
from assistant.ports import ModelText, ModelToolCall, ReplyPiece
from assistant.skills import SkillDeps, load_skills
from assistant.tasks import MonotonicClock, cancel_and_wait
from tests.home_assistant_server import HomeAssistant, home_assistant
from tests.servers import Mosquitto, eventually, free_port, mosquitto

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


async def test_killing_the_daemon_marks_its_entities_unavailable(setup: Setup) -> None:
    ha, daemon = setup.ha, setup.daemon
    await eventually(lambda: ha.state("switch.ci_box_mute") in ("on", "off"), timeout=30)
    daemon.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(daemon.process.wait)
    await eventually(lambda: ha.state("switch.ci_box_mute") == "unavailable", timeout=20)
    assert ha.state("sensor.ci_box_state") == "unavailable"
