"""MQTT commands from Home Assistant (or Node-RED, or scripts) parsed into bus request events.

Pure logic: every payload is checked, and a bad one raises ``CommandError`` with a reason for the log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..events import (
    AnnounceRequested,
    AskRequested,
    EnrolRequested,
    Event,
    ListenRequested,
    MuteRequested,
    RepeatRequested,
    SettingRequested,
    StopRequested,
    UnenrolRequested,
    VolumeRequested,
)
from .discovery import DIALECTS, ENTITY_BY_KEY, MAX_WORD_NAME_CHARS, OFF, ON, Topics

MAX_COMMAND_CHARS = 2000
"""Longest announce or ask text accepted from MQTT."""
MAX_PAYLOAD_BYTES = 16_384
"""Longest command payload read at all (a JSON-wrapped text of MAX_COMMAND_CHARS fits with room to spare)."""


class CommandError(ValueError):
    """An MQTT command payload that cannot be acted on; the message says why, for the log."""


@dataclass(frozen=True, slots=True)
class EnrolName:
    """The name typed into "Wake word to enrol": the bridge keeps it for the enrol and remove buttons."""

    name: str
    """The name, stripped; empty clears the field."""


def _text(payload: str) -> str:
    """Accept plain text or ``{"text": ...}``; Node-RED and automations send either."""
    text = payload
    if payload.lstrip().startswith("{"):
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as err:
            raise CommandError(f"payload looks like JSON but is not valid: {err.msg}") from err
        except RecursionError:
            raise CommandError("payload is JSON nested too deeply to read") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise CommandError('a JSON payload needs a string field "text"')
        text = data["text"]
    text = text.strip()
    if not text:
        raise CommandError("the text is empty")
    if len(text) > MAX_COMMAND_CHARS:
        raise CommandError(f"the text is {len(text)} characters long; at most {MAX_COMMAND_CHARS} are accepted")
    return text


def _switch(payload: str) -> bool:
    value = payload.strip().upper()
    if value in (ON, "TRUE", "1"):
        return True
    if value in (OFF, "FALSE", "0"):
        return False
    raise CommandError(f"expected ON or OFF, got {payload[:40]!r}")


def _volume(payload: str) -> float:
    try:
        percent = float(payload.strip())
    except ValueError as err:
        raise CommandError(f"expected a volume from 0 to 100, got {payload[:40]!r}") from err
    if not 0.0 <= percent <= 100.0:
        raise CommandError(f"volume {percent:g} is outside 0 to 100")
    return percent / 100.0


def _option(payload: str, options: Sequence[str]) -> str:
    value = payload.strip()
    if value not in options:
        raise CommandError(f"{value[:40]!r} is not one of {', '.join(options)}")
    return value


def _word_name(payload: str) -> str:
    name = payload.strip()
    if len(name) > MAX_WORD_NAME_CHARS:
        raise CommandError(f"a wake word's name has at most {MAX_WORD_NAME_CHARS} characters, not {len(name)}")
    return name


def parse_command(
    topics: Topics, topic: str, payload: bytes, wake_words: Sequence[str], *, enrol_name: str = ""
) -> Event | EnrolName:
    """Turn one command message into the request event it asks for; raise CommandError if it is bad.

    ``enrol_name`` is the name last typed into "Wake word to enrol", which the enrol and remove buttons act on.
    """
    prefix, _, rest = topic.partition(f"{topics.base}/")
    key = rest.removesuffix("/set")
    if prefix or not rest.endswith("/set") or key not in ENTITY_BY_KEY or not ENTITY_BY_KEY[key].command:
        raise CommandError(f"no command is handled on {topic[:100]!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"the payload is {len(payload)} bytes long; at most {MAX_PAYLOAD_BYTES} are read")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandError("the payload is not UTF-8 text") from err
    match key:
        case "mute":
            return MuteRequested(muted=_switch(text), source="mqtt")
        case "volume":
            return VolumeRequested(level=_volume(text))
        case "wake_word":
            return SettingRequested(key="wake_word", value=_option(text, wake_words), source="mqtt")
        case "dialect":
            return SettingRequested(key="dialect", value=_option(text, DIALECTS), source="mqtt")
        case "listen":
            return ListenRequested(source="mqtt")
        case "stop":
            return StopRequested(source="mqtt")
        case "repeat" | "repeat_slower":
            return RepeatRequested(slower=key == "repeat_slower", source="mqtt")
        case "announce":
            return AnnounceRequested(text=_text(text), source="mqtt")
        case "ask":
            return AskRequested(text=_text(text), source="mqtt")
        case "enrol_name":
            return EnrolName(_word_name(text))
        case "enrol":
            return EnrolRequested(name=enrol_name, source="mqtt")
        case "unenrol":
            return UnenrolRequested(name=enrol_name, source="mqtt")
    raise CommandError(f"no command is handled on {topic[:100]!r}")  # pragma: no cover - ENTITIES and match agree
