"""Logging to stdout (journald adds the time), as text or JSON, with secrets masked."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

from .bus import Envelope
from .config import LoggingSettings, Settings
from .events import wire_name
from .redact import MASK, Redactor, basic_auth, is_secret_name, url_secrets

_LOGGER = logging.getLogger("assistant.events")


class _RedactSecrets(logging.Filter):
    """Masks any known secret that slipped into a message (an URL with a token, a traceback).

    Every spelling of it counts: URL-quoted, escaped, Basic-auth base64 (see :mod:`assistant.redact`).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._redact:
            try:
                message = record.getMessage()
            except Exception:
                # A bad log call (wrong %-arguments, a __str__ that raises) must neither reach its caller,
                # which a filter's exception would, nor print its raw arguments, as logging's fallback does.
                message = f"{record.msg} [its arguments could not be formatted]"
            record.msg, record.args = self._redact(message), None
            if record.exc_info and record.exc_text is None:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._redact(record.exc_text)
            if record.stack_info:
                record.stack_info = self._redact(record.stack_info)
        return True


class RepeatLimit(logging.Filter):
    """Lets at most ``burst`` records from one place through per ``window_seconds``; counts the rest.

    A flood (a peer sending junk thousands of times a second, a broker flapping) once wrote the same error
    558,721 times in 80 s. A place is the logging call (logger, level, file and line); for the event trace,
    which is one call for every event, the event's name. The first record let through after a suppressed
    stretch says how many were left out.
    """

    def __init__(
        self, *, burst: int = 20, window_seconds: float = 10.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._burst = burst
        self._window = window_seconds
        self._now = now
        self._places: dict[tuple[object, ...], list[float]] = {}
        """Place → [window start in seconds, records let through in it, records suppressed]."""

    def filter(self, record: logging.LogRecord) -> bool:
        """True to let the record through; a suppressed stretch is reported on the next one let through."""
        place: tuple[object, ...] = (record.name, record.levelno, record.pathname, record.lineno)
        if record.name == _LOGGER.name and isinstance(record.args, tuple) and record.args:
            place += (record.args[0],)
        now = self._now()
        state = self._places.get(place)
        if state is None or now - state[0] >= self._window:
            suppressed = int(state[2]) if state is not None else 0
            if len(self._places) > _MAX_PLACES:
                self._places.clear()  # a bound on memory: places are call sites, so this hardly ever runs
            self._places[place] = [now, 1.0, 0.0]
            if suppressed:
                record.msg = (
                    f"{record.msg} [{suppressed} more like this in the last {self._window:g} s were not logged]"
                )
            return True
        if state[1] < self._burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


_MAX_PLACES = 10_000
"""Places a :class:`RepeatLimit` remembers at most."""


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
    handler.addFilter(RepeatLimit())
    handler.addFilter(_RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)


def _shown(name: str, value: object) -> object:
    # Tool arguments named like secrets stay out of the logs (an alarm code the user said, a password).
    if name == "arguments" and isinstance(value, dict):
        return {k: MASK if is_secret_name(str(k)) else v for k, v in value.items()}
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
    """Every secret the settings hold, to be masked wherever it could show (logs, MQTT, tool results).

    SecretStr fields; plain strings under secret-looking keys (skill settings stay plain mappings until the
    skill validates them: alarm_code, api_key…); credentials inside URLs; and the Basic-auth base64 of a
    user name and password given side by side (MQTT).
    """
    found: list[str] = []

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, SecretStr):
            found.append(node.get_secret_value())
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name), name)
            user, password = getattr(node, "username", None), getattr(node, "password", None)
            if isinstance(user, str) and isinstance(password, SecretStr):
                found.extend(basic_auth(user, password.get_secret_value()))
        elif isinstance(node, dict):
            for name, value in node.items():
                walk(value, str(name))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, key)
        elif isinstance(node, str):
            if key and is_secret_name(key):
                found.append(node)
            found.extend(url_secrets(node))

    walk(settings)
    return found
