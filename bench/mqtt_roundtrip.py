"""MQTT bridge figures against a local mosquitto: command round trip, publish throughput, reconnect.

Run: .venv/bin/python -m bench.mqtt_roundtrip [--rounds 200] [--burst 1000]

Round trip = Home Assistant's side publishes ``mute/set`` → the bridge puts MuteRequested on the bus → a
stand-in supervisor answers MuteChanged → the bridge publishes ``mute/state`` → HA's side receives it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import aiomqtt

from assistant.bus import Bus
from assistant.config import MqttSettings
from assistant.events import ConnectionChanged, MuteChanged, MuteRequested
from assistant.integrations.mqtt import MqttBridge
from assistant.tasks import MonotonicClock, cancel_and_wait
from support.servers import mosquitto


async def supervisor(bus: Bus) -> None:
    async for envelope in bus.subscribe("bench-supervisor", MuteRequested):
        assert isinstance(envelope.event, MuteRequested)
        bus.publish(MuteChanged(muted=envelope.event.muted))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench(rounds: int, burst: int, nodelay: bool) -> None:
    print(f"--- mosquitto {'with' if nodelay else 'without'} set_tcp_nodelay")
    with tempfile.TemporaryDirectory() as workdir, mosquitto(Path(workdir), nodelay=nodelay) as broker:
        bus = Bus(MonotonicClock())
        settings = MqttSettings(enabled=True, host=broker.host, port=broker.port, device_id="bench_box")
        bridge = MqttBridge(settings, bus, "bench", wake_words=("hey_jarvis",))
        connected = asyncio.Event()
        bus.tap(lambda e: connected.set() if isinstance(e.event, ConnectionChanged) and e.event.connected else None)
        started = time.perf_counter()
        tasks = [asyncio.create_task(bridge.run()), asyncio.create_task(supervisor(bus))]
        await connected.wait()
        print(f"connect + subscribe + discovery queued: {1000 * (time.perf_counter() - started):.1f} ms")
        base = bridge.topics.base
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        async with aiomqtt.Client(broker.host, broker.port, identifier="bench-ha", socket_options=nodelay) as ha:
            await ha.subscribe(f"{base}/mute/state", qos=1)
            await ha.subscribe("bench/#", qos=1)
            messages = ha.messages
            await anext(messages)  # the retained current state
            times: list[float] = []
            for i in range(rounds):
                want = "ON" if i % 2 == 0 else "OFF"
                sent = time.perf_counter()
                await ha.publish(f"{base}/mute/set", want, qos=1)
                while (message := await anext(messages)).payload != want.encode():
                    pass
                times.append(1000 * (time.perf_counter() - sent))
            print(
                f"command round trip over {rounds} rounds: median {statistics.median(times):.2f} ms, "
                f"p95 {percentile(times, 0.95):.2f} ms, max {max(times):.2f} ms"
            )

            sent = time.perf_counter()
            for i in range(burst):
                await bridge.publish(f"bench/skill/{i % 10}", str(i), qos=1)
            received = 0
            while received < burst:
                message = await anext(messages)
                received += message.topic.matches("bench/#")
            seconds = time.perf_counter() - sent
            print(f"skill publishes, QoS 1: {burst} messages in {seconds * 1000:.0f} ms = {burst / seconds:.0f} msg/s")

        broker.stop()
        await asyncio.sleep(0.5)
        connected.clear()
        restarted = time.perf_counter()
        broker.start()
        await connected.wait()
        print(f"reconnect after the broker came back: {1000 * (time.perf_counter() - restarted):.0f} ms (backoff)")
        for task in tasks:
            await cancel_and_wait(task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    for nodelay in (False, True):
        asyncio.run(bench(args.rounds, args.burst, nodelay))


if __name__ == "__main__":
    main()
