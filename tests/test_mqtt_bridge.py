"""The MQTT bridge against a real mosquitto on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from assistant.bus import Bus
from assistant.config import MqttSettings
from assistant.events import (
    ConnectionChanged,
    Event,
    MuteChanged,
    MuteRequested,
    ReplyText,
    TurnEnded,
    UserTranscript,
    VolumeRequested,
    WakeDetected,
)
from assistant.integrations.mqtt import INBOX_LIMIT, MqttBridge
from assistant.tasks import MonotonicClock, cancel_and_wait
from support.servers import Mosquitto, eventually, mosquitto

pytestmark = pytest.mark.broker

BASE = "xiangyin/test_box"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path) as running:
        yield running


class Watcher:
    """Plays Home Assistant's side: records the last message on every topic it subscribed to."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.last: dict[str, str] = {}
        self.count: dict[str, int] = {}

    async def listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload.decode() if isinstance(message.payload, bytes) else str(message.payload)
            self.last[message.topic.value] = payload
            self.count[message.topic.value] = self.count.get(message.topic.value, 0) + 1


@contextlib.asynccontextmanager
async def watcher(broker: Mosquitto, *topics: str) -> AsyncIterator[Watcher]:
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-watcher") as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        seen = Watcher(client)
        task = asyncio.create_task(seen.listen())
        try:
            yield seen
        finally:
            await cancel_and_wait(task)


class Daemon:
    """A bridge on a real bus in this process; ``events`` is everything published on the bus."""

    def __init__(self, broker: Mosquitto, **overrides: object) -> None:
        self.bus = Bus(MonotonicClock())
        self.events: list[Event] = []
        self.bus.tap(lambda envelope: self.events.append(envelope.event))
        fields: dict[str, object] = {"host": broker.host, "port": broker.port, "device_id": "test_box"}
        self.settings = MqttSettings(enabled=True, **{**fields, **overrides})  # type: ignore[arg-type]
        self.bridge = MqttBridge(self.settings, self.bus, "9.9.9", wake_words=("hey_jarvis",), wake_word="hey_jarvis")
        self.task: asyncio.Task[None] | None = None

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    async def __aenter__(self) -> Daemon:
        self.task = asyncio.create_task(self.bridge.run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        await cancel_and_wait(self.task, 5)


async def test_discovery_configs_availability_and_states_are_retained(broker: Mosquitto) -> None:
    async with Daemon(broker) as daemon:
        await eventually(lambda: daemon.bridge.connected)
        await eventually(lambda: daemon.of(ConnectionChanged))
        async with watcher(broker, "homeassistant/#", f"{BASE}/#") as ha:
            await eventually(lambda: len([t for t in ha.last if t.startswith("homeassistant/")]) >= 15)
            config = json.loads(ha.last["homeassistant/switch/test_box/mute/config"])
            assert config["device"]["sw_version"] == "9.9.9"
            await eventually(lambda: ha.last.get(f"{BASE}/availability") == "online")
            assert ha.last[f"{BASE}/state/state"] == "idle"
            assert ha.last[f"{BASE}/mute/state"] == "OFF"
            assert ha.last[f"{BASE}/wake_word/state"] == "hey_jarvis"
    assert daemon.of(ConnectionChanged)[0] == ConnectionChanged(
        service="mqtt", connected=True, detail=f"{broker.host}:{broker.port}"
    )


async def test_commands_reach_the_bus_and_bad_payloads_change_nothing(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    async with Daemon(broker) as daemon, watcher(broker) as ha:
        await eventually(lambda: daemon.bridge.connected)
        for payload in ("maybe", "{}"):
            await ha.client.publish(f"{BASE}/mute/set", payload, qos=1)
        await ha.client.publish(f"{BASE}/volume/set", "loud", qos=1)
        await ha.client.publish(f"{BASE}/mute/set", "ON", qos=1)
        await ha.client.publish(f"{BASE}/volume/set", "40", qos=1)
        await eventually(lambda: daemon.of(VolumeRequested))
    assert daemon.of(MuteRequested) == [MuteRequested(muted=True, source="mqtt")]
    assert daemon.of(VolumeRequested) == [VolumeRequested(level=0.4)]
    refused = [r.getMessage() for r in caplog.records if "ignoring MQTT command" in r.getMessage()]
    assert len(refused) == 3
    assert "expected ON or OFF" in refused[0]


async def test_bus_facts_become_states_and_the_answer_is_assembled_per_turn(broker: Mosquitto) -> None:
    async with Daemon(broker) as daemon, watcher(broker, f"{BASE}/#") as ha:
        await eventually(lambda: ha.last.get(f"{BASE}/availability") == "online")
        daemon.bus.publish(MuteChanged(muted=True))
        daemon.bus.publish(UserTranscript(turn_id="t1", text="今天天气怎么样"))
        for piece in ("今天", "晴，", "二十五度。"):
            daemon.bus.publish(ReplyText(turn_id="t1", text=piece))
        daemon.bus.publish(ReplyText(turn_id="t2", text="other turn"))
        daemon.bus.publish(TurnEnded(turn_id="t1", outcome="completed"))
        daemon.bus.publish(WakeDetected(turn_id="t3", wake_word="hey_jarvis", score=0.91))
        await eventually(lambda: f"{BASE}/wake/state" in ha.last and f"{BASE}/answer/state" in ha.last)
        await eventually(lambda: ha.last.get(f"{BASE}/mute/state") == "ON")
        assert ha.last[f"{BASE}/transcript/state"] == "今天天气怎么样"
        assert ha.last[f"{BASE}/answer/state"] == "今天晴，二十五度。"
        assert json.loads(ha.last[f"{BASE}/wake/state"]) == {
            "event_type": "detected",
            "wake_word": "hey_jarvis",
            "score": 0.91,
        }


async def test_home_assistant_birth_message_makes_the_box_announce_itself_again(broker: Mosquitto) -> None:
    async with Daemon(broker) as daemon, watcher(broker, "homeassistant/switch/#") as ha:
        topic = "homeassistant/switch/test_box/mute/config"
        await eventually(lambda: ha.count.get(topic) == 1)
        assert daemon.bridge.connected
        await ha.client.publish("homeassistant/status", "online", qos=1)
        await eventually(lambda: ha.count.get(topic) == 2)


async def test_commands_sent_while_the_daemon_was_down_arrive_when_it_is_back(broker: Mosquitto) -> None:
    async with Daemon(broker) as first:
        await eventually(lambda: first.bridge.connected)
    async with watcher(broker, f"{BASE}/availability") as ha:
        await eventually(lambda: ha.last.get(f"{BASE}/availability") == "offline")
        await ha.client.publish(f"{BASE}/mute/set", "ON", qos=1)
    async with Daemon(broker) as second:
        await eventually(lambda: second.of(MuteRequested))
    assert second.of(MuteRequested) == [MuteRequested(muted=True, source="mqtt")]


async def test_messages_published_while_the_broker_is_down_are_sent_after_it_returns(broker: Mosquitto) -> None:
    async with Daemon(broker, reconnect_max_seconds=0.5) as daemon:
        await eventually(lambda: daemon.bridge.connected)
        broker.stop()
        await eventually(lambda: not daemon.bridge.connected)
        await daemon.bridge.publish("home/lamp/set", "ON", retain=True)
        daemon.bus.publish(MuteChanged(muted=True))
        broker.start()
        await eventually(lambda: daemon.bridge.connected)
        async with watcher(broker, "home/#", f"{BASE}/mute/state") as ha:
            await eventually(lambda: ha.last.get("home/lamp/set") == "ON")
            await eventually(lambda: ha.last.get(f"{BASE}/mute/state") == "ON")
    changes = [(e.connected) for e in daemon.of(ConnectionChanged)]  # type: ignore[attr-defined]
    assert changes[:3] == [True, False, True]


async def test_wrong_password_is_reported_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with mosquitto(tmp_path, users={"box": "right-secret"}) as secured:
        async with Daemon(secured, username="box", password="wrong-secret", reconnect_max_seconds=0.2) as bad:
            await eventually(lambda: "check mqtt.username and mqtt.password" in caplog.text)
            assert not bad.bridge.connected
            down = bad.of(ConnectionChanged)
            assert len(down) == 1 and not down[0].connected  # type: ignore[attr-defined]
        async with Daemon(secured, username="box", password="right-secret") as good:
            await eventually(lambda: good.bridge.connected)
    assert "wrong-secret" not in caplog.text and "right-secret" not in caplog.text


def test_killed_daemon_is_marked_offline_by_its_last_will(broker: Mosquitto) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mqtt_daemon", broker.host, str(broker.port), "test_box"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )

    async def check() -> None:
        async with watcher(broker, f"{BASE}/availability") as ha:
            await eventually(lambda: ha.last.get(f"{BASE}/availability") == "online", timeout=20)
            process.send_signal(signal.SIGKILL)
            # keepalive 5 s: the broker notices the dead socket at once on SIGKILL (the kernel closes it).
            await eventually(lambda: ha.last.get(f"{BASE}/availability") == "offline", timeout=15)

    try:
        asyncio.run(check())
    finally:
        process.kill()
        process.wait()


async def test_tls_with_username_and_password(tmp_path: Path) -> None:
    with mosquitto(tmp_path, users={"box": "s3cret"}, tls=True) as secured:
        async with Daemon(secured, username="box", password="s3cret", tls=True, ca_file=str(secured.ca_file)) as box:
            await eventually(lambda: box.bridge.connected)
        # Without our CA the broker's certificate must not be trusted.
        async with Daemon(secured, username="box", password="s3cret", tls=True) as untrusting:
            await asyncio.sleep(1.0)
            assert not untrusting.bridge.connected


async def test_a_stop_that_aiomqtt_swallows_while_the_broker_is_down_still_ends_the_bridge() -> None:
    """aiomqtt waits for the disconnect with 3.11's ``wait_for``, which drops a cancel landing in the same step.

    The bridge must notice the pending cancel itself; before, it went on reconnecting to a dead broker and
    the daemon stopped only when systemd killed it.
    """
    import types

    connects = 0
    bridge_task: asyncio.Task[None] | None = None

    class BrokerGoingDown:
        """What the bridge uses of ``aiomqtt.Client``: publishing times out, then every connect is refused."""

        def __init__(self) -> None:
            self._client = types.SimpleNamespace(on_message=lambda *message: None)
            self.messages = self._nothing()

        @staticmethod
        async def _nothing() -> AsyncIterator[aiomqtt.Message]:
            await asyncio.Event().wait()
            yield  # type: ignore[misc]  # pragma: no cover

        async def __aenter__(self) -> BrokerGoingDown:
            nonlocal connects
            connects += 1
            if connects > 1:
                raise aiomqtt.MqttError("[Errno 111] Connection refused")
            return self

        async def subscribe(self, topics: object) -> None:
            return None

        async def publish(self, *args: object, **kwargs: object) -> None:
            raise aiomqtt.MqttError("Operation timed out")

        async def __aexit__(self, *exc: object) -> None:
            disconnected = asyncio.get_running_loop().create_future()

            def disconnect_acked_as_the_daemon_stops() -> None:
                disconnected.set_result(None)
                assert bridge_task is not None
                bridge_task.cancel()

            asyncio.get_running_loop().call_soon(disconnect_acked_as_the_daemon_stops)
            await asyncio.wait_for(disconnected, 10)  # as aiomqtt does

    bus = Bus(MonotonicClock())
    bridge = MqttBridge(MqttSettings(enabled=True, reconnect_max_seconds=0.2), bus, "9.9.9")
    bridge._client = BrokerGoingDown  # type: ignore[assignment,method-assign]
    bridge_task = asyncio.create_task(bridge.run())
    done, _ = await asyncio.wait({bridge_task}, timeout=3)
    if not done:
        await cancel_and_wait(bridge_task)
    assert done, f"the bridge ignored the stop and tried {connects} connects"
    assert bridge_task.cancelled()


async def _flood(broker: Mosquitto, topic: str, payloads: list[str]) -> None:
    """Publish as fast as the broker takes them, from a client of its own (QoS 0: nothing waits).

    Returns once the broker has routed all of them: it handles one client's packets in order, so the
    acknowledgement of a QoS 1 message sent last comes after every one before it. Without that wait, a
    message from another client can overtake the tail of the flood still in the broker's socket buffer.
    """
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-flooder") as flooder:
        for payload in payloads:
            await flooder.publish(topic, payload, qos=0)
        await flooder.publish("test/flood-sent", b"", qos=1, timeout=120)


async def test_a_flood_of_commands_is_cut_to_the_newest_and_the_command_after_it_is_carried_out(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    async with Daemon(broker) as daemon, watcher(broker) as ha:
        await eventually(lambda: daemon.bridge.connected)
        await _flood(broker, f"{BASE}/volume/set", [str(n % 100) for n in range(20_000)])
        await ha.client.publish(f"{BASE}/volume/set", "37", qos=1)
        await eventually(lambda: daemon.of(VolumeRequested)[-1:] == [VolumeRequested(level=0.37)], timeout=60)
        assert daemon.bridge.connected
    assert [e for e in daemon.of(ConnectionChanged) if not e.connected][:1] == [
        ConnectionChanged(service="mqtt", connected=False, detail="stopped")
    ], "the connection held through the flood; it closed only at the stop"
    # How many of the flood arrive depends on the machine (the broker itself drops QoS 0 to a slow reader);
    # what the bridge does with more than it can carry out is checked below, without a broker.


async def test_commands_beyond_the_inbox_drop_the_oldest_and_the_newest_are_carried_out_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = Bus(MonotonicClock())
    volumes: list[float] = []
    bus.tap(lambda envelope: isinstance(envelope.event, VolumeRequested) and volumes.append(envelope.event.level))
    bridge = MqttBridge(MqttSettings(enabled=True, device_id="test_box"), bus, "9.9.9")
    for n in range(200):  # all arrive before the worker runs once, as in a flood
        bridge._receive_one(f"{BASE}/volume/set", str(n % 100).encode(), False)
    worker = asyncio.create_task(bridge._carry_out())
    try:
        await eventually(lambda: len(volumes) == INBOX_LIMIT and "of the oldest were dropped" in caplog.text)
    finally:
        await cancel_and_wait(worker)
    assert volumes == [(n % 100) / 100 for n in range(200 - INBOX_LIMIT, 200)]
    assert f"{200 - INBOX_LIMIT} of the oldest were dropped" in caplog.text


async def test_a_clean_stop_is_not_reported_as_a_lost_connection(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    async with Daemon(broker) as daemon:
        await eventually(lambda: daemon.bridge.connected)
    assert "connection lost" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("assistant")]


async def test_a_worker_that_fails_while_being_stopped_leaves_no_unretrieved_exception() -> None:
    unhandled: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unhandled.append(context))

    async def fails_when_stopped() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise aiomqtt.MqttError("Disconnected during message iteration") from None

    worker = asyncio.create_task(fails_when_stopped())
    await asyncio.sleep(0)
    await MqttBridge._stop({worker})
    del worker
    gc.collect()
    assert unhandled == []
