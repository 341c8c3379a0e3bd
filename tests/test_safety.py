"""Which smart-home actions wait for the user's spoken yes: by what they do, for every way issue 16 found round it."""

from __future__ import annotations

import pytest

from skills._safety import Target, judge, sensitive_word

GARAGE_SWITCH = Target("switch.garage_opener", "switch", names=("Garage opener",))
UNLOCK_SCRIPT = Target("script.unlock_front_door", "script", names=("unlock front door",))
LOCK_BOOLEAN = Target("input_boolean.front_lock", "input_boolean", names=("前门锁",))
CURTAIN_NO_CLASS = Target("cover.bedroom_curtain", "cover", names=("卧室窗帘",), areas=("卧室",))
GARAGE_COVER = Target("cover.garage", "cover", device_class="garage", names=("Car port",))
GATE_NO_CLASS = Target("cover.yard", "cover", names=("院子大门",))
CURTAIN_IN_HALL = Target("cover.hall", "cover", device_class="curtain", names=("窗帘",), areas=("门厅",))
LAMP = Target("light.porch", "light", names=("门灯",), areas=("门口",))
KETTLE = Target("switch.kettle", "switch", names=("Kettle",), areas=("Kitchen",))
RELAY_ON_GARAGE_DEVICE = Target("switch.relay_1", "switch", names=("Relay 1", "Shelly garage"))
SWITCH_IN_GARAGE = Target("switch.plug", "switch", names=("Plug",), areas=("车库",))
SCENE_LEAVING = Target("scene.leave", "scene", names=("离家", "disarm security"))
FRONT_LOCK = Target("lock.front", "lock", names=("Front",))
PANEL = Target("alarm_control_panel.home", "alarm_control_panel", names=("Home",))
INDOOR = Target("switch.indoor_lights", "switch", names=("Indoor lights",))
CLOCK = Target("switch.clock_radio", "switch", names=("Clock radio",))
MQTT_FAN = Target("mqtt:风扇", "switch", names=("风扇",))


@pytest.mark.parametrize(
    ("domain", "service", "target", "confirm"),
    [
        # The bypasses of issue 16.
        ("switch", "turn_on", GARAGE_SWITCH, True),
        ("script", "turn_on", UNLOCK_SCRIPT, True),
        ("input_boolean", "turn_off", LOCK_BOOLEAN, True),
        ("input_boolean", "turn_on", LOCK_BOOLEAN, True),
        ("cover", "open_cover", CURTAIN_NO_CLASS, False),
        ("cover", "open_cover", GARAGE_COVER, True),
        # Always, whatever the name: unlocking and disarming.
        ("lock", "unlock", FRONT_LOCK, True),
        ("lock", "open", FRONT_LOCK, True),
        ("alarm_control_panel", "alarm_disarm", PANEL, True),
        ("lock", "lock", FRONT_LOCK, False),
        ("alarm_control_panel", "alarm_arm_away", PANEL, False),
        # Covers: closing is safe; a door-like name without a curtain class asks; a curtain class never does.
        ("cover", "close_cover", GARAGE_COVER, False),
        ("cover", "open_cover", GATE_NO_CLASS, True),
        ("cover", "set_cover_position", GARAGE_COVER, True),
        ("cover", "open_cover", CURTAIN_IN_HALL, False),
        # Switch-like targets: names, device names and areas count.
        ("switch", "turn_on", RELAY_ON_GARAGE_DEVICE, True),
        ("switch", "turn_off", SWITCH_IN_GARAGE, True),
        ("scene", "turn_on", SCENE_LEAVING, True),
        ("switch", "turn_on", KETTLE, False),
        ("switch", "turn_on", INDOOR, False),
        ("switch", "turn_on", CLOCK, False),
        ("mqtt", "turn_on", MQTT_FAN, False),
        # Lights are not switch-like: a porch light by the door switches freely.
        ("light", "turn_on", LAMP, False),
    ],
)
def test_what_needs_a_spoken_yes(domain: str, service: str, target: Target, confirm: bool) -> None:
    verdict = judge(domain, service, target)
    assert verdict.confirm is confirm, verdict
    assert bool(verdict.reason) is confirm


def test_a_cover_closed_by_position_zero_never_asks_and_opened_by_position_does() -> None:
    assert not judge("cover", "set_cover_position", GARAGE_COVER, position=0).confirm
    assert judge("cover", "set_cover_position", GARAGE_COVER, position=20).confirm


def test_the_households_own_list_covers_every_action_on_it() -> None:
    own = ("light.porch", "保险")
    assert judge("light", "turn_on", LAMP, own=own).reason == "it is on the household's sensitive list (light.porch)"
    safe_plug = Target("switch.safe", "switch", names=("保险柜插座",))
    assert judge("switch", "turn_off", safe_plug, own=own).confirm
    assert not judge("light", "turn_on", LAMP, own=("kettle",)).confirm
    assert judge("cover", "open_cover", CURTAIN_NO_CLASS, own=("cover.bedroom_curtain",)).confirm


@pytest.mark.parametrize(
    ("names", "word"),
    [
        (("门禁",), "门"),
        (("卷帘门",), "门"),
        (("开锁",), "锁"),
        (("车库灯",), "车库"),
        (("道闸",), "闸"),
        (("报警器开关",), "警"),
        (("Front Door",), "door"),
        (("Unlock",), "unlock"),
        (("Garage",), "garage"),
        (("Gateway",), ""),
        (("Outdoor plug",), ""),
        (("Floor lamp",), ""),
    ],
)
def test_sensitive_words_in_chinese_and_english(names: tuple[str, ...], word: str) -> None:
    assert sensitive_word(Target("switch.x", "switch", names=names)) == word


def test_the_object_id_counts_as_a_name() -> None:
    assert sensitive_word(Target("switch.sonoff_garage_relay", "switch", names=("Sonoff 1",))) == "garage"
