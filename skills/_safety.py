"""Which smart-home actions need the user's spoken yes: decided by what an action does, not by a tool's name.

Pure policy. Every service call the smart-home skill makes, from any of its tools, is put to :func:`judge`
first with what is known about its target. Two kinds of action need confirming:

- what lets someone in or turns protection off, whatever the target is called: ``lock.unlock`` and
  ``lock.open``, ``alarm_control_panel.alarm_disarm``, and opening a cover of the door, gate or garage class;
- switching something that *may* do so, when the target is sensitive: any service of a switch,
  ``input_boolean``, script, scene, automation, button or siren (on *and* off: a lock driven through an
  ``input_boolean`` unlocks on ``turn_off``), and opening a cover with no curtain-like class. A target is
  sensitive when its device class, a name (its own, an alias, its device's) or its area's name says so
  (lock, door, gate, garage, alarm, 门, 锁, 车库, 闸, ...).

A target on the household's own list (``skills.smart_home.sensitive``: entity ids or words) needs confirming
for every action that changes it, lights included. Reading a state never does. A false alarm costs the user
one "yes"; a miss can open the house, so the words are wide on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Chinese words are matched anywhere in a name: 门 covers 大门, 门禁, 卷帘门, 车门; 锁 covers 开锁, 门锁.
_CHINESE_WORDS = ("门", "锁", "车库", "闸", "警", "安防", "布防", "撤防", "保险柜", "保险箱")
# English words are matched at the start of a word, so "indoor" or "clock" are not doors or locks.
_ENGLISH = re.compile(
    r"(?<![a-z])(?:un)?(?:lock|locks|locked|door|doors|doorbell|gate|gates|garage|garages|alarm|alarms|disarm"
    r"|deadbolt|security|intercom|buzzer)(?![a-z])"
)
_SENSITIVE_CLASSES = frozenset({"door", "gate", "garage", "garage_door", "lock"})
"""Device classes (of covers, binary sensors behind a switch, ...) that say the target guards a way in."""
FREELY_OPENED = frozenset({"curtain", "blind", "shade", "shutter", "awning", "window", "damper"})
"""Cover classes that never let anyone in: opened without asking, whatever they are called."""
_GUARDING_COVERS = frozenset({"door", "gate", "garage"})
_SWITCH_LIKE = frozenset(
    {"switch", "input_boolean", "script", "scene", "automation", "button", "input_button", "siren"}
)
_ALWAYS = {
    ("lock", "unlock"): "it unlocks",
    ("lock", "open"): "it opens a lock",
    ("alarm_control_panel", "alarm_disarm"): "it disarms the alarm",
}
_OPENING = frozenset({"open_cover", "set_cover_position", "toggle", "open_cover_tilt", "set_cover_tilt_position"})


@dataclass(frozen=True, slots=True)
class Target:
    """What is known about the entity an action changes."""

    entity_id: str
    """E.g. ``switch.garage_opener``; for a plain MQTT device, ``mqtt:<name>``."""
    domain: str
    """Home Assistant domain (for an MQTT device, the kind it was given)."""
    device_class: str = ""
    """Device class (the user's, else the integration's); empty when none."""
    names: tuple[str, ...] = ()
    """Friendly name, aliases, its device's name: every name it goes by."""
    areas: tuple[str, ...] = ()
    """Its area's name and the area's aliases."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an action needs the user's spoken yes, and why (said in the question and the logs)."""

    confirm: bool
    """True when the user must say yes first."""
    reason: str = ""
    """Why, e.g. "it unlocks" or "switch.garage_opener is named like a door, lock or garage"."""


ALLOWED = Verdict(False)


def judge(
    domain: str, service: str, target: Target, *, position: int | None = None, own: Iterable[str] = ()
) -> Verdict:
    """Decide whether calling ``domain.service`` on ``target`` needs confirming.

    ``position``: the cover position asked for (0 closes), for ``set_cover_position``. ``own``: the
    household's sensitive list, entity ids or words.
    """
    if service == "set_cover_position" and position == 0:
        return _listed(target, own) or ALLOWED  # closing lets nobody in
    always = _ALWAYS.get((domain, service))
    if always:
        return Verdict(True, always)
    listed = _listed(target, own)
    if listed:
        return listed
    if domain == "cover" and service in _OPENING:
        if target.device_class in _GUARDING_COVERS:
            return Verdict(True, f"it opens a {target.device_class}")
        if target.device_class not in FREELY_OPENED and (word := sensitive_word(target)):
            return Verdict(True, f"it opens something named like a door or gate ({word})")
        return ALLOWED
    if target.domain in _SWITCH_LIKE or domain in _SWITCH_LIKE:
        if target.device_class in _SENSITIVE_CLASSES:
            return Verdict(True, f"its device class is {target.device_class}")
        if word := sensitive_word(target):
            return Verdict(True, f"it may work a door, lock, gate or alarm ({word})")
    return ALLOWED


def sensitive_word(target: Target) -> str:
    """The first word in the target's names or areas that says it guards a way in, or ``""``."""
    object_id = target.entity_id.split(".", 1)[-1].split(":", 1)[-1].replace("_", " ")
    for text in (*target.names, object_id, *target.areas):
        folded = text.casefold()
        for word in _CHINESE_WORDS:
            if word in folded:
                return word
        if match := _ENGLISH.search(folded):
            return match.group(0)
    return ""


def _listed(target: Target, own: Iterable[str]) -> Verdict | None:
    texts = [t.casefold() for t in (*target.names, *target.areas)]
    for entry in own:
        folded = entry.strip().casefold()
        if not folded:
            continue
        if folded == target.entity_id.casefold() or ("." not in folded and any(folded in text for text in texts)):
            return Verdict(True, f"it is on the household's sensitive list ({entry})")
    return None
