"""docs/home-assistant.md lists exactly what discovery publishes, so the guide cannot drift from the box."""

from __future__ import annotations

import json
import re
from pathlib import Path

from assistant.config import MqttSettings
from assistant.integrations.commands import MAX_COMMAND_CHARS
from assistant.integrations.discovery import (
    ENTITIES,
    MAX_STATE_CHARS,
    DeviceInfo,
    Topics,
    entities,
    entity_configs,
)

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "home-assistant.md").read_text(encoding="utf-8")
DEVICE_ID = MqttSettings().device_id
INFO = DeviceInfo(name="Xiangyin", version="1.0", wake_words=("hey_jarvis",))


def test_the_entity_table_names_every_entity_discovery_publishes_and_no_other() -> None:
    published = {f"{entity.component}.{DEVICE_ID}_{entity.key}" for entity in entities(INFO)}
    rows = set(re.findall(rf"^\| `([a-z_]+\.{DEVICE_ID}_[a-z_]+)` \|", GUIDE, re.MULTILINE))
    assert rows == published


def test_the_guide_and_the_readme_count_the_entities_right() -> None:
    count = len(entities(INFO))
    assert count == len(ENTITIES)
    assert f'A "Xiangyin" device with {count} entities' in GUIDE
    assert f"MQTT discovery ({count} entities" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_topic_table_names_every_command_topic() -> None:
    base = Topics.from_settings(MqttSettings())
    documented = set(re.findall(r"`<base>/([a-z_]+)/set`", GUIDE))
    assert documented == {topic.removeprefix(f"{base.base}/").removesuffix("/set") for topic in base.commands}


def test_text_entities_tell_home_assistant_their_255_character_limit_and_the_guide_says_so() -> None:
    topics = Topics.from_settings(MqttSettings())
    configs = entity_configs(topics, INFO)
    for key in ("announce", "ask"):
        config = json.loads(configs[topics.entity_config("text", key)])
        assert (config["min"], config["max"]) == (1, MAX_STATE_CHARS) == (1, 255)
    assert f"at most {MAX_STATE_CHARS} characters" in GUIDE and f"up to {MAX_COMMAND_CHARS}" in GUIDE


def test_the_wake_word_automation_does_not_fire_when_the_box_comes_back() -> None:
    trigger = GUIDE[GUIDE.index(f"entity_id: event.{DEVICE_ID}_wake") :]
    assert trigger.splitlines()[1].strip() == "not_from: [unavailable, unknown]"


def test_the_unavailability_delay_follows_from_the_keepalive() -> None:
    keepalive = MqttSettings().keepalive_seconds
    assert f"**about {round(keepalive * 1.5)} s**" in GUIDE
    assert "within about a second" not in GUIDE


def test_secret_files_are_made_readable_by_the_service_user() -> None:
    unit = (ROOT / "systemd" / "xiangyin.service").read_text(encoding="utf-8")
    assert "User=xiangyin" in unit
    for name in ("mqtt_password", "ha_token"):
        assert f"install -m 0640 -o root -g xiangyin /dev/stdin /etc/xiangyin/{name}" in GUIDE
    assert "chmod 600" not in GUIDE
