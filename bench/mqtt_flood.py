"""An MQTT command flood against the bridge on a local mosquitto: is the command after it answered at once?

Run: .venv/bin/python -m bench.mqtt_flood [--commands 20000] [--seconds 10]

A client of its own publishes ``--commands`` volume commands (one in ten at QoS 1) spread over
``--seconds``, then Home Assistant's side sets the volume once more and times the round trip to the state
topic (bridge → bus → a stand-in supervisor → VolumeChanged → bridge → broker). Printed: that round trip,
how many flood commands reached the bus, whether the broker link dropped, and the process's RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

import aiomqtt

from assistant.bus import Bus
from assistant.config import MqttSettings
from assistant.events import ConnectionChanged, VolumeChanged, VolumeRequested
from assistant.integrations.mqtt import MqttBridge
from assistant.tasks import MonotonicClock, cancel_and_wait
from support.servers import mosquitto


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 1e6


async def supervisor(bus: Bus, carried_out: list[float]) -> None:
    async for envelope in bus.subscribe("bench-supervisor", VolumeRequested):
        assert isinstance(envelope.event, VolumeRequested)
        carried_out.append(envelope.event.level)
        bus.publish(VolumeChanged(level=envelope.event.level))


async def flood(host: str, port: int, topic: str, commands: int, seconds: float) -> float:
    """Publish the flood; return the seconds it took."""
    started = time.perf_counter()
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    async with aiomqtt.Client(host, port, identifier="bench-flooder", socket_options=nodelay) as flooder:
        for n in range(commands):
            await flooder.publish(topic, str(n % 90 + 5), qos=1 if n % 10 == 0 else 0)
            behind = started + seconds * (n + 1) / commands - time.perf_counter()
            if behind > 0:
                await asyncio.sleep(behind)
    return time.perf_counter() - started


async def bench(commands: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as workdir, mosquitto(Path(workdir)) as broker:
        bus = Bus(MonotonicClock())
        settings = MqttSettings(enabled=True, host=broker.host, port=broker.port, device_id="bench_box")
        bridge = MqttBridge(settings, bus, "bench")
        drops: list[ConnectionChanged] = []
        connected = asyncio.Event()

        def watch(envelope: object) -> None:
            event = getattr(envelope, "event", None)
            if isinstance(event, ConnectionChanged):
                (connected.set if event.connected else lambda: drops.append(event))()

        bus.tap(watch)
        carried_out: list[float] = []
        tasks = [asyncio.create_task(bridge.run()), asyncio.create_task(supervisor(bus, carried_out))]
        await connected.wait()
        base = bridge.topics.base
        before = rss_mb()
        async with aiomqtt.Client(broker.host, broker.port, identifier="bench-ha") as ha:
            await ha.subscribe(f"{base}/volume/state", qos=1)
            took = await flood(broker.host, broker.port, f"{base}/volume/set", commands, seconds)
            sent = time.perf_counter()
            await ha.publish(f"{base}/volume/set", "1", qos=1)  # 1 %: a value the flood never sets
            async for message in ha.messages:
                if message.payload == b"1":
                    break
            round_trip = time.perf_counter() - sent
        after = rss_mb()
        dropped = len(drops)  # before the stop, which closes the link on purpose
        for task in tasks:
            await cancel_and_wait(task, 5)
    print(f"flood: {commands} commands in {took:.1f} s ({commands / took:.0f}/s)")
    print(f"flood commands that reached the bus: {len(carried_out) - 1} (the rest dropped by the inbox or broker)")
    print(f"command after the flood, HA → box → HA state: {1000 * round_trip:.0f} ms (target: under 1000 ms)")
    print(f"broker link dropped during the flood: {dropped} times")
    print(f"RSS {before:.1f} → {after:.1f} MB ({after - before:+.1f} MB)")


def main() -> None:
    """Parse the arguments and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(bench(args.commands, args.seconds))


if __name__ == "__main__":
    main()
