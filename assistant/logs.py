"""Logging to stdout (journald adds the time), as text or JSON, with secrets masked."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

from .bus import Envelope
from .config import LoggingSettings, Settings
from .events import wire_name

_LOGGER = logging.getLogger("assistant.events")
_MASK = "***"


class _RedactSecrets(logging.Filter):
    """Replaces any known secret value that slipped into a message (an URL with a token, a traceback)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            for secret in self._secrets:
                message = message.replace(secret, _MASK)
            record.msg, record.args = message, None
            if record.exc_info and record.exc_text is None:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                for secret in self._secrets:
                    record.exc_text = record.exc_text.replace(secret, _MASK)
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(settings: LoggingSettings, secrets: Iterable[str] = ()) -> None:
    """Send every record to stdout in the configured format, masking the given secret values."""
    handler = logging.StreamHandler(sys.stdout)
    if settings.format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)


_SECRET_ARGUMENT = re.compile(r"code|pin|pass|secret|token|key", re.IGNORECASE)
"""Tool arguments whose values stay out of the logs (an alarm code the user said, a password)."""


def _shown(name: str, value: object) -> object:
    if name == "arguments" and isinstance(value, dict):
        return {k: _MASK if _SECRET_ARGUMENT.search(str(k)) else v for k, v in value.items()}
    return value


def log_event(envelope: Envelope) -> None:
    """Write one bus event as a single trace line: its wire name and fields (secret arguments masked)."""
    event = envelope.event
    fields = " ".join(
        f"{f.name}={_shown(f.name, getattr(event, f.name))!r}"
        for f in dataclasses.fields(event)
        if getattr(event, f.name) is not None
    )
    _LOGGER.info("%s %s", wire_name(type(event)), fields)


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, to be masked wherever it appears in a log line."""
    found: list[str] = []

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, SecretStr):
            found.append(node.get_secret_value())
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name), name)
        elif isinstance(node, dict):
            for name, value in node.items():
                walk(value, str(name))
        elif isinstance(node, str) and key and _SECRET_ARGUMENT.search(key):
            # Skill settings are plain mappings until the skill validates them (alarm_code, api_key…).
            found.append(node)

    walk(settings)
    return found
