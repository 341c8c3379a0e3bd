"""Which device the user means: pure matching of a spoken phrase against names, aliases and areas.

"客厅的灯" or "the living room lights" is an area plus a kind of device and means every such device in that
area; "落地灯" or "floor lamp" is a name or alias; a bare "灯" means the one light in this box's room, if
there is exactly one. When a phrase fits several devices equally well, the caller asks the user which.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from assistant.errors import ToolError

# Words that name a kind of device, per Home Assistant domain (the longest are tried first).
DOMAIN_WORDS: dict[str, tuple[str, ...]] = {
    "light": ("灯光", "电灯", "灯", "lights", "light", "lamps", "lamp"),
    "switch": ("开关", "插座", "插头", "switches", "switch", "plugs", "plug", "sockets", "socket", "outlet"),
    "fan": ("电风扇", "风扇", "电扇", "fans", "fan"),
    "climate": ("空调", "暖气", "地暖", "温控器", "thermostat", "heating", "heater", "air conditioner", "aircon"),
    "cover": ("窗帘", "百叶窗", "卷帘", "curtains", "curtain", "blinds", "blind", "shades", "shade", "shutters"),
    "lock": ("门锁", "锁", "locks", "lock"),
    "media_player": ("电视机", "电视", "音箱", "tv", "television", "speaker"),
    "alarm_control_panel": ("警报器", "报警器", "警报", "安防", "alarm", "security system"),
}

_FILLERS = (
    "please",
    "in",
    "at",
    "of",
    "all the",
    "all",
    "the",
    "my",
    "every",
    "所有的",
    "所有",
    "全部的",
    "全部",
    "每个",
    "那个",
    "这个",
    "一下",
    "里面的",
    "里的",
    "的",
    "请",
    "把",
)
_ALL_WORDS = ("all ", "every ", "所有", "全部", "每个")
_PUNCT = re.compile(r"[\s\-_'’\".,!?，。！？、]+")


def normalize(text: str) -> str:
    """Lower-case, without spaces, punctuation or filler words, so phrasing differences do not matter."""
    text = f" {text.casefold()} "
    for filler in _FILLERS:
        if filler.isascii():
            text = re.sub(rf"(?<![a-z]){re.escape(filler)}(?![a-z])", " ", text)
        else:
            text = text.replace(filler, "")
    return _PUNCT.sub("", text)


@dataclass(frozen=True, slots=True)
class Device:
    """Something the user can name: a Home Assistant entity or a configured MQTT device."""

    id: str
    """Entity id (``light.kitchen``) or ``mqtt:<name>``."""
    name: str
    """Friendly name, as said back to the user."""
    domain: str
    """Home Assistant domain, or the kind given to an MQTT device."""
    area: str = ""
    """Area (room) name; empty when unknown."""
    aliases: tuple[str, ...] = ()
    """Other names the household uses."""
    device_class: str = ""
    """Home Assistant device class (``garage``, ``door``, ...)."""
    area_aliases: tuple[str, ...] = ()
    """Other names of its area, as set in Home Assistant."""
    device_name: str = ""
    """Name of the device it belongs to, if any."""

    def keys(self) -> set[str]:
        """Every normalized name it answers to."""
        object_id = self.id.split(".", 1)[-1].split(":", 1)[-1].replace("_", " ")
        keys = {normalize(n) for n in (self.name, object_id, *self.aliases, self.device_name)}
        for area in {normalize(a) for a in (self.area, *self.area_aliases) if a}:
            keys |= {area + k for k in list(keys) if k and not k.startswith(area)}
        return {k for k in keys if k}


def _domain_of_words(text: str) -> tuple[str | None, str]:
    """The domain named in ``text`` (normalized), and ``text`` without that word."""
    best: tuple[int, str, str] | None = None
    for domain, words in DOMAIN_WORDS.items():
        for word in words:
            key = normalize(word)
            if key and key in text and (best is None or len(key) > best[0]):
                best = (len(key), domain, text.replace(key, "", 1))
    return (best[1], best[2]) if best else (None, text)


def resolve(phrase: str, devices: Iterable[Device], *, room: str = "") -> list[Device]:
    """Return the devices a phrase means; raise ToolError (readable by the model) if none or unclear."""
    pool = list(devices)
    query = normalize(phrase)
    if not query:
        raise ToolError("say which device")
    wants_all = any(word in f"{phrase.casefold()} " for word in _ALL_WORDS)

    exact = [d for d in pool if query in d.keys()]
    if len(exact) == 1 or (exact and wants_all):
        return exact

    area_of_word = _area_words(pool)
    said_area = next((a for a in sorted(area_of_word, key=len, reverse=True) if a in query), "")
    area = area_of_word.get(said_area, "")
    rest = query.replace(said_area, "", 1) if said_area else query
    domain, name_part = _domain_of_words(rest)
    in_area = [d for d in pool if normalize(d.area) == area] if area else pool
    if area and not rest and len(in_area) == 1:
        return in_area  # the room alone, where the tool's kind of device has one there ("open 车库")
    if domain is not None and not name_part:
        of_kind = [d for d in in_area if d.domain == domain]
        if area or wants_all or len(of_kind) == 1:
            if of_kind:
                return of_kind
        elif room:
            here = [d for d in of_kind if normalize(d.area) == normalize(room)]
            if here:
                return here
        if len(of_kind) > 1:
            raise _ambiguous(phrase, of_kind)
        if not of_kind:
            raise _missing(phrase, in_area)

    wanted = rest if area else query
    scored = sorted(((_score(wanted, d), d) for d in in_area), key=lambda pair: pair[0], reverse=True)
    scored = [(s, d) for s, d in scored if s >= 0.7]
    if not scored:
        raise _missing(phrase, in_area)
    best = [d for s, d in scored if s >= scored[0][0] - 0.02]
    if len(best) == 1 or wants_all:
        return best
    raise _ambiguous(phrase, best)


def _area_words(devices: list[Device]) -> dict[str, str]:
    """Every normalized area name and area alias → the area's normalized name."""
    words: dict[str, str] = {}
    for device in devices:
        if device.area:
            area = normalize(device.area)
            for word in (device.area, *device.area_aliases):
                if key := normalize(word):
                    words.setdefault(key, area)
    return words


def _score(wanted: str, device: Device) -> float:
    best = 0.0
    for key in device.keys():
        if wanted == key:
            return 1.0
        if len(wanted) >= 2 and (wanted in key or key in wanted):
            best = max(best, 0.8 + 0.15 * min(len(wanted), len(key)) / max(len(wanted), len(key)))
        else:
            best = max(best, difflib.SequenceMatcher(None, wanted, key).ratio())
    return best


def _ambiguous(phrase: str, devices: list[Device]) -> ToolError:
    names = "; ".join(_label(d) for d in devices[:8])
    return ToolError(f"{phrase!r} could mean several devices: {names}. Ask the user which one")


def _missing(phrase: str, devices: list[Device]) -> ToolError:
    names = "; ".join(_label(d) for d in devices[:10])
    known = f" Devices there include: {names}." if names else ""
    return ToolError(f"no device matches {phrase!r}.{known} Ask the user to name it another way")


def _label(device: Device) -> str:
    return f"{device.name} ({device.area})" if device.area else device.name


def topic_allowed(topic: str, patterns: Iterable[str]) -> bool:
    """True when an MQTT topic matches one of the allow-list patterns (``+`` and ``#`` wildcards)."""
    return any(_topic_matches(pattern, topic) for pattern in patterns)


def _topic_matches(pattern: str, topic: str) -> bool:
    wanted, parts = pattern.split("/"), topic.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(wanted) == len(parts)
