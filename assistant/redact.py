"""Secret values, and every obvious spelling of them, masked out of text that leaves the daemon.

The log, the MQTT transcript and answer, and tool results (which the model may read aloud or send to a
vLLM server) pass through a :class:`Redactor` built from the settings' secrets. A secret is masked as
written, URL-quoted, JSON- or repr-escaped, and as the base64 of ``user:password`` for Basic
authentication: that is how HTTP libraries and hostile servers' error messages echo them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

MASK = "***"

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORDS = frozenset({"pin", "pwd", "otp", "appid", "ak", "sk"})
_SECRET_ENDINGS = ("code", "key", "token", "secret", "password", "passwd", "pass", "passphrase")
_NOT_SECRET = frozenset({"decode", "encode", "unicode", "opcode", "monkey", "turkey", "hockey", "donkey", "bypass"})


def is_secret_name(name: str) -> bool:
    """True for names of settings, tool arguments and URL parameters whose values are secret.

    Word by word (snake_case, kebab-case, camelCase, plurals): ``alarm_code``, ``pincode``, ``apiToken``,
    ``x-api-key``, ``appid``; not ``decode`` or ``mapping``.
    """
    for word in _WORD.findall(name):
        word = word.lower()
        singular = word[:-1] if word.endswith("s") and len(word) > 3 else word
        if word in _SECRET_WORDS or singular in _SECRET_WORDS:
            return True
        if singular.endswith(_SECRET_ENDINGS) and singular not in _NOT_SECRET and word not in _NOT_SECRET:
            return True
    return False


_MIN_CHARS = 4
"""Shorter values would mask ordinary words and numbers everywhere."""

OUTWARD_MIN_CHARS = 6
"""Shortest secret masked in what leaves for the model or MQTT. A 4- or 5-digit alarm code is masked in the
logs only: masking it there would garble ordinary numbers (a year in a date) and, since the mask shows,
let a client that can ask questions find the code by asking the assistant to repeat numbers."""


def spellings(secret: str) -> set[str]:
    """The secret as written, URL-quoted, and JSON- or repr-escaped."""
    forms = {
        secret,
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    return {form for form in forms if len(form) >= _MIN_CHARS}


def basic_auth(user: str, password: str) -> list[str]:
    """The base64 an HTTP Basic ``Authorization`` header carries for these credentials."""
    pair = f"{user}:{password}".encode()
    return [base64.b64encode(pair).decode(), base64.urlsafe_b64encode(pair).decode()]


def url_secrets(text: str) -> list[str]:
    """Credentials inside a URL.

    The password of ``user:password@host`` (and its Basic base64), and the values of query parameters
    named like keys or tokens (``?apikey=...``).
    """
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc:
        return []
    found: list[str] = []
    if password:
        found += [unquote(password), password, *basic_auth(unquote(parts.username or ""), unquote(password))]
    found += [value for name, value in parse_qsl(parts.query) if value and is_secret_name(name)]
    return found


class Redactor:
    """Replaces every spelling of the given secrets with ``***``; an empty one changes nothing."""

    def __init__(self, secrets: Iterable[str] = (), *, min_chars: int = _MIN_CHARS) -> None:
        forms = {form for secret in secrets if len(secret) >= min_chars for form in spellings(secret)}
        # Longest first, so a secret that contains another one is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def data(self, value: Any) -> Any:
        """Mask every string inside JSON-like data (dicts, lists, strings); keys included."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value
