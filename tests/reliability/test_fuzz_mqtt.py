"""Bad MQTT commands, fuzzed: any payload on any command topic is one valid request or a logged refusal.

The topics come from the entity table (every entity with a command), so a new command is fuzzed too. The
property runs on the pure parser; a handful of the nastiest payloads then go through the real bridge and a
real mosquitto, which must log a warning for each, put nothing on the bus for them, and keep serving.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from assistant.config import MqttSettings
from assistant.events import (
    AnnounceRequested,
    AskRequested,
    EnrolRequested,
    ListenRequested,
    MuteRequested,
    RepeatRequested,
    SettingRequested,
    StopRequested,
    UnenrolRequested,
    VolumeRequested,
)
from assistant.integrations.commands import MAX_COMMAND_CHARS, CommandError, EnrolName, parse_command
from assistant.integrations.discovery import DIALECTS, ENTITIES, MAX_WORD_NAME_CHARS, Topics
from support.servers import eventually, mosquitto
from tests.reliability.fuzzing import FUZZ, junk
from tests.test_mqtt_bridge import Daemon, watcher

TOPICS = Topics.from_settings(MqttSettings(device_id="test_box"))
COMMAND_TOPICS = [TOPICS.command(entity.key) for entity in ENTITIES if entity.command]
OTHER_TOPICS = [TOPICS.state("mute"), TOPICS.availability, f"{TOPICS.base}/nope/set", f"{TOPICS.base}/mute/set/set",
                f"other/{TOPICS.base}/mute/set", "xiangyin/other_box/mute/set", f"{TOPICS.base}/+/set", ""]  # fmt: skip
WAKE_WORDS = ("hey_jarvis", "小音小音")

payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    junk(10).map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    st.sampled_from(
        [
            "ON",
            "off",
            " 1 ",
            "50",
            "100.0",
            "nan",
            "inf",
            "-1",
            "1e999",
            "101",
            '{"text": 5}',
            '{"text": "  "}',
            '{"text": "饭好了"}',
            "hey_jarvis",
            "cantonese",
            "{",
            '{"text": ' * 50,
            "\x00",
            "ＯＮ",
            "Ⅷ",
        ]
    ).map(str.encode),  # fmt: skip
)
HUGE = [b"{" * 100_000, b"[" * 100_000, b'{"text": "' + "话".encode() * 1_000_000 + b'"}', b"\xff" * 100_000]


def _check(topic: str, payload: bytes) -> None:
    try:
        event = parse_command(TOPICS, topic, payload, WAKE_WORDS)
    except CommandError as err:
        message = str(err)
        assert message and "\n" not in message and len(message) < 300, message
        return
    assert topic in COMMAND_TOPICS, f"{topic} is not a command topic but gave {event}"
    match event:
        case VolumeRequested(level=level):
            assert math.isfinite(level) and 0.0 <= level <= 1.0
        case AnnounceRequested(text=text) | AskRequested(text=text):
            assert text and text == text.strip() and len(text) <= MAX_COMMAND_CHARS
        case SettingRequested(key=key, value=value):
            assert value in (WAKE_WORDS if key == "wake_word" else DIALECTS)
        case EnrolName(name=name):
            assert name == name.strip() and len(name) <= MAX_WORD_NAME_CHARS
        case MuteRequested() | ListenRequested() | StopRequested() | RepeatRequested():
            pass
        case EnrolRequested() | UnenrolRequested():
            pass
        case _:
            raise AssertionError(f"unexpected event {event!r}")


@FUZZ
@given(topic=st.sampled_from(COMMAND_TOPICS + OTHER_TOPICS) | st.text(max_size=40), payload=payloads)
@example(topic=TOPICS.command("volume"), payload=b"nan")
@example(topic=TOPICS.command("announce"), payload=b"{" * 100_000)
@example(topic=TOPICS.command("ask"), payload=HUGE[2])
def test_any_payload_on_any_topic_is_one_valid_request_or_a_clear_refusal(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@pytest.mark.parametrize("payload", HUGE, ids=["open-braces", "open-brackets", "3-MB-text", "invalid-utf8"])
def test_huge_payloads_are_refused_on_every_command_topic(payload: bytes) -> None:
    for topic in COMMAND_TOPICS:
        with pytest.raises(CommandError):
            parse_command(TOPICS, topic, payload, WAKE_WORDS)


BAD = [b"\xff\xfe", b"{" * 5000, b'{"text": ["not", "text"]}', b"x" * 100_000, b"", b" \t "]


@pytest.mark.broker
async def test_the_bridge_logs_bad_commands_publishes_nothing_for_them_and_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="assistant.integrations.mqtt")
    with mosquitto(tmp_path) as broker:
        async with Daemon(broker) as daemon, watcher(broker) as ha:
            await eventually(lambda: daemon.bridge.connected)
            before = len(daemon.events)
            sent = 0
            for topic in COMMAND_TOPICS:
                for payload in BAD:
                    if topic.endswith(("/listen/set", "/stop/set", "/repeat/set", "/repeat_slower/set", "enrol/set")):
                        continue  # buttons take any payload: pressing is the command
                    if topic.endswith("/enrol_name/set") and len(payload.strip()) <= MAX_WORD_NAME_CHARS:
                        continue  # a name field: short text is a name (empty clears it); only junk is refused
                    await ha.client.publish(topic, payload, qos=1)
                    sent += 1
            await ha.client.publish(TOPICS.command("volume"), b"40", qos=1)
            await eventually(lambda: daemon.of(VolumeRequested))
            assert daemon.bridge.connected
    arrived = daemon.events[before:]
    requests = [e for e in arrived if type(e).__name__.endswith("Requested")]
    assert requests == [VolumeRequested(level=0.4)]
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignoring MQTT command")]
    assert len(warnings) == sent
