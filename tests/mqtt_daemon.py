"""A stand-in daemon process for tests that kill it: the real MqttBridge on a real Bus.

A tiny handler plays the supervisor's part for the requests the tests need (mute, volume, enrol); every
request event is printed as one line ``EVENT <name> <fields>`` so the test can read what arrived.

Run: python -m tests.mqtt_daemon HOST PORT DEVICE_ID
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys

from assistant.bus import Bus
from assistant.config import MqttSettings
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    EnrolledWordsChanged,
    EnrolmentProgress,
    EnrolRequested,
    ListenRequested,
    MuteChanged,
    MuteRequested,
    SettingRequested,
    StopRequested,
    UnenrolRequested,
    VolumeChanged,
    VolumeRequested,
)
from assistant.integrations.mqtt import MqttBridge
from assistant.tasks import MonotonicClock

REQUESTS = (
    MuteRequested,
    VolumeRequested,
    ListenRequested,
    StopRequested,
    AnnounceRequested,
    AskRequested,
    SettingRequested,
    EnrolRequested,
    UnenrolRequested,
)


async def answer_requests(bus: Bus) -> None:
    """Act on requests like the supervisor would, and report each on stdout."""
    async for envelope in bus.subscribe("fake-supervisor", *REQUESTS):
        event = envelope.event
        print("EVENT", type(event).__name__, json.dumps(dataclasses.asdict(event)), flush=True)
        match event:
            case MuteRequested(muted=muted):
                bus.publish(MuteChanged(muted=muted))
            case VolumeRequested(level=level):
                bus.publish(VolumeChanged(level=level))
            case EnrolRequested(name=name):
                bus.publish(
                    EnrolmentProgress(name=name, stage="recording", message="say it again: take 2 of 4", take=2)
                )
                bus.publish(EnrolledWordsChanged(words=(name,), listening=(name,)))


async def main(host: str, port: int, device_id: str) -> None:
    bus = Bus(MonotonicClock())
    settings = MqttSettings(enabled=True, host=host, port=port, device_id=device_id, keepalive_seconds=5)
    bridge = MqttBridge(settings, bus, "0.1.0-test", wake_words=("hey_jarvis", "alexa"), wake_word="hey_jarvis")
    bus.tap(lambda envelope: print("BUS", type(envelope.event).__name__, flush=True))
    async with asyncio.TaskGroup() as group:
        group.create_task(answer_requests(bus))
        group.create_task(bridge.run())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
