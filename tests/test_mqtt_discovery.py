"""Discovery payloads and command parsing, without a broker."""

from __future__ import annotations

import json

import pytest

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
from assistant.integrations import discovery
from assistant.integrations.commands import CommandError, EnrolName, parse_command
from assistant.integrations.discovery import DeviceInfo, Topics

TOPICS = Topics.from_settings(MqttSettings(device_id="kitchen_box"))
INFO = DeviceInfo(name="Kitchen voice", version="1.2.3", wake_words=("hey_jarvis", "alexa"))
WAKE = ("hey_jarvis", "alexa")


def command(key: str, payload: str | bytes) -> object:
    data = payload.encode() if isinstance(payload, str) else payload
    return parse_command(TOPICS, f"xiangyin/kitchen_box/{key}/set", data, WAKE)


def test_every_entity_config_names_the_device_and_availability() -> None:
    configs = {topic: json.loads(payload) for topic, payload in discovery.entity_configs(TOPICS, INFO).items()}
    assert len(configs) == len(discovery.ENTITIES) == 20
    for topic, config in configs.items():
        assert topic.startswith("homeassistant/") and topic.endswith("/config")
        assert config["device"] == {
            "identifiers": ["kitchen_box"],
            "name": "Kitchen voice",
            "model": "Xiangyin voice assistant",
            "manufacturer": "Xiangyin",
            "sw_version": "1.2.3",
        }
        assert config["availability_topic"] == "xiangyin/kitchen_box/availability"
        assert config["unique_id"].startswith("kitchen_box_")
        if "command_topic" in config:
            assert config["qos"] == 1


def test_entity_configs_cover_the_platforms_home_assistant_users_expect() -> None:
    configs = discovery.entity_configs(TOPICS, INFO)
    mute = json.loads(configs["homeassistant/switch/kitchen_box/mute/config"])
    assert mute["command_topic"] == "xiangyin/kitchen_box/mute/set"
    assert mute["state_topic"] == "xiangyin/kitchen_box/mute/state"
    wake = json.loads(configs["homeassistant/select/kitchen_box/wake_word/config"])
    assert wake["options"] == ["hey_jarvis", "alexa"]
    dialect = json.loads(configs["homeassistant/select/kitchen_box/dialect/config"])
    assert "cantonese" in dialect["options"] and "sichuanese" in dialect["options"]
    assert json.loads(configs["homeassistant/event/kitchen_box/wake/config"])["event_types"] == ["detected"]
    assert json.loads(configs["homeassistant/number/kitchen_box/volume/config"])["max"] == 100
    assert "homeassistant/button/kitchen_box/listen/config" in configs
    assert "homeassistant/text/kitchen_box/announce/config" in configs
    assert "homeassistant/text/kitchen_box/ask/config" in configs


def test_device_discovery_carries_every_component_in_one_message() -> None:
    ((topic, payload),) = discovery.device_config(TOPICS, INFO).items()
    assert topic == "homeassistant/device/kitchen_box/config"
    config = json.loads(payload)
    assert config["device"]["identifiers"] == ["kitchen_box"]
    assert config["origin"]["name"] == "xiangyin"
    assert {c["platform"] for c in config["components"].values()} >= {"switch", "select", "event", "text"}
    assert "device" not in config["components"]["kitchen_box_mute"]


@pytest.mark.parametrize("style", ["entity", "device"])
def test_switching_style_removes_the_other_styles_configs(style: str) -> None:
    messages = discovery.discovery_messages(TOPICS, INFO, style)  # type: ignore[arg-type]
    device_topic = "homeassistant/device/kitchen_box/config"
    if style == "entity":
        assert messages[device_topic] == ""
        assert json.loads(messages["homeassistant/switch/kitchen_box/mute/config"])
    else:
        assert json.loads(messages[device_topic])
        assert messages["homeassistant/switch/kitchen_box/mute/config"] == ""


def test_long_texts_are_cut_for_the_state_but_kept_whole_in_attributes() -> None:
    text = "很" * 400
    state = discovery.text_state(TOPICS, "answer", text)
    assert len(state["xiangyin/kitchen_box/answer/state"]) == 255
    assert json.loads(state["xiangyin/kitchen_box/answer/attributes"]) == {"text": text}


def test_commands_become_request_events() -> None:
    assert command("mute", "ON") == MuteRequested(muted=True, source="mqtt")
    assert command("mute", "off") == MuteRequested(muted=False, source="mqtt")
    assert command("volume", "35") == VolumeRequested(level=0.35)
    assert command("wake_word", "alexa") == SettingRequested(key="wake_word", value="alexa", source="mqtt")
    assert command("dialect", "cantonese") == SettingRequested(key="dialect", value="cantonese", source="mqtt")
    assert command("listen", "PRESS") == ListenRequested(source="mqtt")
    assert command("stop", "PRESS") == StopRequested(source="mqtt")
    assert command("repeat", "PRESS") == RepeatRequested(slower=False, source="mqtt")
    assert command("repeat_slower", "PRESS") == RepeatRequested(slower=True, source="mqtt")
    assert command("announce", "饭好了") == AnnounceRequested(text="饭好了", source="mqtt")
    assert command("ask", '{"text": "明天会下雨吗？"}') == AskRequested(text="明天会下雨吗？", source="mqtt")


@pytest.mark.parametrize(
    ("key", "payload", "reason"),
    [
        ("mute", "maybe", "expected ON or OFF"),
        ("volume", "loud", "expected a volume"),
        ("volume", "250", "outside 0 to 100"),
        ("wake_word", "ok_google", "is not one of"),
        ("dialect", "klingon", "is not one of"),
        ("announce", "   ", "empty"),
        ("announce", '{"text": 5}', 'string field "text"'),
        ("ask", "{not json", "not valid"),
        ("ask", "x" * 5000, "at most"),
        ("announce", b"\xff\xfe", "not UTF-8"),
        ("state", "idle", "no command"),
        ("nonsense", "1", "no command"),
    ],
)
def test_bad_commands_are_refused_with_a_reason(key: str, payload: str | bytes, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        command(key, payload)


def test_commands_for_another_box_are_refused() -> None:
    with pytest.raises(CommandError):
        parse_command(TOPICS, "xiangyin/other_box/mute/set", b"ON", WAKE)


def test_without_wake_words_there_is_no_empty_select_and_an_old_one_is_removed() -> None:
    bare = DeviceInfo(name="Kitchen voice", version="1.2.3", wake_words=())
    messages = discovery.discovery_messages(TOPICS, bare, "entity")
    assert messages["homeassistant/select/kitchen_box/wake_word/config"] == ""
    assert json.loads(messages["homeassistant/select/kitchen_box/dialect/config"])["options"]


def test_json_nested_too_deeply_is_refused_not_raised() -> None:
    """A hostile client must not be able to crash the bridge with one message."""
    with pytest.raises(CommandError, match="nested too deeply"):
        command("ask", '{"a":' * 2500 + "1" + "}" * 2500)  # deeper than Python recurses, under the size cap


def test_enrolment_entities_are_a_name_field_two_buttons_and_two_sensors() -> None:
    """The name field may be empty (the box clears it) and holds a word's name; the sensors carry attributes."""
    configs = {topic: json.loads(payload) for topic, payload in discovery.entity_configs(TOPICS, INFO).items()}
    name = configs["homeassistant/text/kitchen_box/enrol_name/config"]
    assert (name["min"], name["max"], name["state_topic"]) == (0, 64, "xiangyin/kitchen_box/enrol_name/state")
    assert name["command_topic"] == "xiangyin/kitchen_box/enrol_name/set"
    assert configs["homeassistant/button/kitchen_box/enrol/config"]["command_topic"] == "xiangyin/kitchen_box/enrol/set"
    assert "homeassistant/button/kitchen_box/unenrol/config" in configs
    for key in ("enrolment", "enrolled_words"):
        sensor = configs[f"homeassistant/sensor/kitchen_box/{key}/config"]
        assert sensor["json_attributes_topic"] == f"xiangyin/kitchen_box/{key}/attributes"


def test_the_enrol_buttons_act_on_the_name_typed_before() -> None:
    """The text command only sets the name; the buttons ask for an enrolment or a removal of it."""
    assert command("enrol_name", "  小乡小乡 \n") == EnrolName("小乡小乡")
    assert command("enrol_name", "") == EnrolName("")
    topic = "xiangyin/kitchen_box/{}/set"
    enrol = parse_command(TOPICS, topic.format("enrol"), b"PRESS", WAKE, enrol_name="小乡小乡")
    assert enrol == EnrolRequested(name="小乡小乡", source="mqtt")
    remove = parse_command(TOPICS, topic.format("unenrol"), b"PRESS", WAKE, enrol_name="小乡小乡")
    assert remove == UnenrolRequested(name="小乡小乡", source="mqtt")
    with pytest.raises(CommandError, match="at most 64 characters"):
        command("enrol_name", "乡" * 65)
