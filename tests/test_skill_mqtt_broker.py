"""MQTT commands and help alerts through a real mosquitto started by the test."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skills.help import HelpSkill
from skills.smart_home import SmartHomeSkill
from tests.skill_support import FakeHomeAssistant, deps

pytestmark = pytest.mark.broker

paho = pytest.importorskip("paho.mqtt.client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=5)


class PahoPublisher:
    """MessagePublisher over paho-mqtt, as the MQTT integration would provide it."""

    def __init__(self, port: int) -> None:
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="xiangyin-test-pub")
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    async def publish(self, topic: str, payload: str, *, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class Listener:
    """Subscribes to ``#`` and keeps every message that arrives."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[str, str, bool]] = []
        self._subscribed = threading.Event()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="xiangyin-test-sub")
        self._client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload.decode(), m.retain))
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(5)

    def wait_for(self, count: int) -> list[tuple[str, str, bool]]:
        deadline = time.monotonic() + 5
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def mqtt(broker: int) -> Iterator[tuple[PahoPublisher, Listener]]:
    listener = Listener(broker)
    publisher = PahoPublisher(broker)
    yield publisher, listener
    publisher.close()
    listener.close()


async def test_allowed_device_is_switched_through_the_broker(mqtt: tuple[PahoPublisher, Listener]) -> None:
    publisher, listener = mqtt
    devices: Any = [
        {"name": "阳台灯", "topic": "home/balcony/light/set", "kind": "light"},
        {"name": "水泵", "aliases": ["garden pump"], "topic": "home/garden/pump/set", "payload_on": "start"},
    ]
    skill_deps, _ = deps(home_assistant=FakeHomeAssistant([]), mqtt=publisher, mqtt_command_topics=("home/+/+/set",))
    home = SmartHomeSkill(SmartHomeSkill.Config.model_validate({"mqtt_devices": devices}), skill_deps)
    await home.turn_on("阳台灯")
    await home.turn_on("garden pump")
    await home.turn_off("阳台灯")
    received = await asyncio.to_thread(listener.wait_for, 3)
    assert received == [
        ("home/balcony/light/set", "ON", False),
        ("home/garden/pump/set", "start", False),
        ("home/balcony/light/set", "OFF", False),
    ]


async def test_help_alert_reaches_a_family_topic(mqtt: tuple[PahoPublisher, Listener]) -> None:
    publisher, listener = mqtt
    config = HelpSkill.Config.model_validate({"contacts": [{"name": "儿子", "mqtt_topic": "family/son/alert"}]})
    help_skill = HelpSkill(config, deps(mqtt=publisher)[0])
    assert await help_skill.call_for_help("胸口疼") == {"alerted": ["儿子"], "not_reached": []}
    received = await asyncio.to_thread(listener.wait_for, 1)
    assert received[0][0] == "family/son/alert" and "胸口疼" in received[0][1]
