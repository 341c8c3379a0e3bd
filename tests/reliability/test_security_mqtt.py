"""MQTT commands count only on the box's own command topics, sent live: not on look-alike topics, not
on other boxes' topics, not from retained junk, and no wildcard in the settings can widen what it hears.
Against a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from assistant.config import parse_config
from assistant.errors import ConfigError
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    ListenRequested,
    MuteRequested,
    RepeatRequested,
    SettingRequested,
    StopRequested,
    VolumeRequested,
)
from support.servers import Mosquitto, eventually
from tests.test_mqtt_bridge import BASE, Daemon, broker, watcher

__all__ = ["broker"]  # the fixture, shared with the bridge's own tests

REQUESTS = (
    AnnounceRequested,
    AskRequested,
    ListenRequested,
    MuteRequested,
    RepeatRequested,
    SettingRequested,
    StopRequested,
    VolumeRequested,
)

FOREIGN = {
    "xiangyin/test_box_2/mute/set": "ON",  # another box whose id starts like ours
    "xiangyin/test_boxx/ask/set": "开门",
    "xiangyin/other/listen/set": "PRESS",
    "other/xiangyin/test_box/mute/set": "ON",  # our topic under someone else's prefix
    f"{BASE}/unlock/set": "ON",  # under our prefix, but no such command
    f"{BASE}/mute/set/extra": "ON",  # one level too deep
    f"{BASE}/mute": "ON",
    f"{BASE}/mute/state": "ON",  # our own state topic
    f"{BASE}/ask": "unlock the door",
    "homeassistant/status/x": "online",
}


@pytest.mark.broker
async def test_only_the_boxs_own_live_commands_reach_the_bus(
    broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with watcher(broker) as junk:
        # Retained before the box connects: would run again at every reconnect if acted on.
        await junk.client.publish(f"{BASE}/mute/set", "ON", qos=1, retain=True)
        await junk.client.publish(f"{BASE}/ask/set", "unlock the front door", qos=1, retain=True)
        await junk.client.publish(f"{BASE}/listen/set", "PRESS", qos=1, retain=True)
    async with Daemon(broker) as daemon, watcher(broker) as other:
        await eventually(lambda: daemon.bridge.connected)
        await eventually(lambda: caplog.text.count("ignoring a retained MQTT command") == 3)
        for topic, payload in FOREIGN.items():
            await other.client.publish(topic, payload, qos=1)
            await other.client.publish(topic, payload, qos=1, retain=True)
        await other.client.publish(f"{BASE}/volume/set", "40", qos=1)  # the one real command, sent last
        await eventually(lambda: daemon.of(VolumeRequested))
        await asyncio.sleep(0.3)  # anything the broker still had for us arrives by now
    assert [e for e in daemon.events if isinstance(e, REQUESTS)] == [VolumeRequested(level=0.4)]
    words = {w.strip(";:,") for r in caplog.records if r.name.startswith("assistant") for w in r.getMessage().split()}
    assert not words & set(FOREIGN), "foreign topics never reach the bridge"


@pytest.mark.broker
async def test_a_live_command_on_a_topic_with_retained_junk_still_works(broker: Mosquitto) -> None:
    async with watcher(broker) as junk:
        await junk.client.publish(f"{BASE}/mute/set", "ON", qos=1, retain=True)
    async with Daemon(broker) as daemon, watcher(broker) as ha:
        await eventually(lambda: daemon.bridge.connected)
        await ha.client.publish(f"{BASE}/mute/set", "OFF", qos=1)
        await eventually(lambda: daemon.of(MuteRequested))
    assert daemon.of(MuteRequested) == [MuteRequested(muted=False, source="mqtt")]


@pytest.mark.parametrize("key", ["base_topic", "discovery_prefix"])
@pytest.mark.parametrize("prefix", ["#", "xiangyin/#", "+", "+/x", "a//b", "$SYS", ""])
def test_a_wildcard_or_broken_topic_prefix_is_a_config_error(key: str, prefix: str) -> None:
    with pytest.raises(ConfigError, match=rf"mqtt\.{key}: .*is not a plain topic prefix"):
        parse_config({"mqtt": {key: prefix}}, Path("config.yaml"))
