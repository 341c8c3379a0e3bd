"""The MQTT bridge when the broker dies, or only the box's own connection does; a real mosquitto throughout.

Home Assistant's side is a paho client as HA runs one: QoS 1, a persistent session, its own queue of
messages published while it is offline, subscriptions made again on every connect.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from assistant.events import (
    ConnectionChanged,
    MuteChanged,
    MuteRequested,
    VolumeRequested,
    WakeDetected,
)
from support.servers import Mosquitto, TcpProxy, eventually, mosquitto
from tests.test_mqtt_bridge import BASE, Daemon, watcher

pytestmark = pytest.mark.broker

DISCOVERY = "homeassistant/switch/test_box/mute/config"


class HomeAssistantLike:
    """A paho client in its own thread: records every message, publishes with QoS 1 even while offline."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.received: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._topics = topics
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="ha-like", clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        for topic in self._topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, _: paho.Client, __: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.setdefault(message.topic, []).append(message.payload.decode())

    def last(self, topic: str) -> str | None:
        with self._lock:
            return self.received.get(topic, [None])[-1]

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.received.get(topic, []))

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path, persistence=True) as running:
        yield running


@pytest.fixture
def home_assistant(persistent_broker: Mosquitto) -> Iterator[HomeAssistantLike]:
    ha = HomeAssistantLike(persistent_broker, "homeassistant/#", f"{BASE}/#", "home/#")
    try:
        yield ha
    finally:
        ha.close()


@pytest.fixture
async def proxy(persistent_broker: Mosquitto) -> AsyncIterator[TcpProxy]:
    running = TcpProxy(persistent_broker.port)
    await running.start()
    try:
        yield running
    finally:
        await running.aclose()


def connection_changes(daemon: Daemon) -> list[bool]:
    return [event.connected for event in daemon.of(ConnectionChanged)]  # type: ignore[attr-defined]


async def test_broker_killed_and_restarted_loses_nothing_in_either_direction(
    persistent_broker: Mosquitto, home_assistant: HomeAssistantLike, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL the broker: the box reconnects with backoff, then everything queued on both sides arrives."""
    caplog.set_level(logging.INFO, logger="assistant.integrations.mqtt")
    ha = home_assistant
    async with Daemon(persistent_broker, reconnect_max_seconds=1.0) as daemon:
        await eventually(lambda: daemon.bridge.connected)
        await eventually(lambda: ha.count(DISCOVERY) == 1 and ha.last(f"{BASE}/availability") == "online")

        persistent_broker.kill()
        await eventually(lambda: not daemon.bridge.connected)
        # While the broker is gone: the box changes state, detects a wake word and a skill publishes ...
        daemon.bus.publish(MuteChanged(muted=True))
        daemon.bus.publish(WakeDetected(turn_id="t1", wake_word="hey_jarvis", score=0.9))
        await daemon.bridge.publish("home/lamp/set", "ON")
        # ... and Home Assistant sends a command, which waits in its own client queue.
        ha.publish(f"{BASE}/volume/set", "40")
        await eventually(lambda: caplog.text.count("reconnecting to the MQTT broker") >= 3, timeout=15)
        persistent_broker.start()

        await eventually(lambda: daemon.bridge.connected, timeout=15)
        await eventually(lambda: daemon.of(VolumeRequested), timeout=15)
        await eventually(lambda: ha.last(f"{BASE}/mute/state") == "ON", timeout=15)
        await eventually(lambda: ha.last("home/lamp/set") == "ON")
        await eventually(lambda: ha.last(f"{BASE}/wake/state") is not None)
        await eventually(lambda: ha.count(DISCOVERY) >= 2, timeout=15)  # discovery re-published
        assert ha.last(f"{BASE}/availability") == "online"
        await asyncio.sleep(1.0)  # room for a wrong second delivery
        assert connection_changes(daemon) == [True, False, True], "one report per change, not per attempt"
    assert daemon.of(VolumeRequested) == [VolumeRequested(level=0.4)]
    assert "MQTT broker connection lost" in caplog.text


async def test_commands_sent_while_only_the_box_was_cut_off_arrive_once(
    persistent_broker: Mosquitto, home_assistant: HomeAssistantLike, proxy: TcpProxy
) -> None:
    """The broker stays up and queues QoS 1 commands on the box's persistent session until it is back."""
    async with Daemon(persistent_broker, port=proxy.port, reconnect_max_seconds=0.5) as daemon:
        await eventually(lambda: daemon.bridge.connected)
        proxy.cut()
        await eventually(lambda: not daemon.bridge.connected)
        await eventually(lambda: home_assistant.last(f"{BASE}/availability") == "offline")  # the will
        home_assistant.publish(f"{BASE}/mute/set", "ON")
        home_assistant.publish(f"{BASE}/volume/set", "25")
        await asyncio.sleep(1.0)  # the box retries against a dead link meanwhile
        await proxy.restore()
        await eventually(lambda: daemon.of(VolumeRequested), timeout=15)
        await eventually(lambda: home_assistant.last(f"{BASE}/availability") == "online")
        await asyncio.sleep(1.0)
    assert daemon.of(MuteRequested) == [MuteRequested(muted=True, source="mqtt")]
    assert daemon.of(VolumeRequested) == [VolumeRequested(level=0.25)]


async def test_a_command_redelivered_after_a_lost_acknowledgement_is_carried_out_once(
    persistent_broker: Mosquitto, home_assistant: HomeAssistantLike, proxy: TcpProxy
) -> None:
    """The box got a command but its PUBACK never reached the broker, which sends it again (DUP) later."""
    async with Daemon(persistent_broker, port=proxy.port, reconnect_max_seconds=0.5) as daemon:
        await eventually(lambda: daemon.bridge.connected)
        await asyncio.sleep(0.3)  # the box's own announcements are acknowledged before the hold
        proxy.hold_upstream = True
        home_assistant.publish(f"{BASE}/volume/set", "30")
        await eventually(lambda: daemon.of(VolumeRequested))
        proxy.cut()  # the held PUBACK is lost with the connection
        await eventually(lambda: not daemon.bridge.connected)
        await proxy.restore()
        await eventually(lambda: connection_changes(daemon)[-1:] == [True], timeout=15)
        await asyncio.sleep(1.5)  # the broker re-sends its unacknowledged message right after the reconnect
        assert daemon.of(VolumeRequested) == [VolumeRequested(level=0.3)], "carried out twice"
        # A different command afterwards still goes through.
        home_assistant.publish(f"{BASE}/volume/set", "30")
        await eventually(lambda: len(daemon.of(VolumeRequested)) >= 2)
        await asyncio.sleep(0.5)
    assert daemon.of(VolumeRequested) == [VolumeRequested(level=0.3), VolumeRequested(level=0.3)]


async def test_a_broker_that_forgot_everything_gets_the_retained_states_again(tmp_path: Path) -> None:
    """Without persistence a restarted broker holds no retained messages: the box re-publishes them all."""
    with mosquitto(tmp_path) as forgetful:
        async with Daemon(forgetful, reconnect_max_seconds=0.5) as daemon:
            await eventually(lambda: daemon.bridge.connected)
            daemon.bus.publish(MuteChanged(muted=True))
            forgetful.kill()
            await eventually(lambda: not daemon.bridge.connected)
            forgetful.start()
            await eventually(lambda: daemon.bridge.connected, timeout=15)
            async with watcher(forgetful, "homeassistant/#", f"{BASE}/#") as newcomer:
                await eventually(lambda: newcomer.last.get(DISCOVERY) is not None)
                await eventually(lambda: newcomer.last.get(f"{BASE}/mute/state") == "ON")
                assert newcomer.last.get(f"{BASE}/availability") == "online"
                assert newcomer.last.get(f"{BASE}/state/state") == "idle"
