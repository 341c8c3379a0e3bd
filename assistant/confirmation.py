"""Spoken confirmation of sensitive tools, as data the model reads.

The first call of a sensitive tool does nothing. It returns::

    {"ok": false, "needs_confirmation": true, "confirm_token": "k3f9q2",
     "say": "Do you want me to unlock the front door?",
     "next": "Ask the user exactly this. Only if they clearly say yes, call confirm_action ..."}

The model asks the question and the turn ends. When the user answers yes (in the follow-up window or a
new turn), the model calls ``confirm_action(confirm_token=...)`` and the original call runs with the
arguments validated the first time. A token is single-use, expires after ``confirm_seconds``, and is
refused in the same turn that produced it (when the registry sees the bus), so the model cannot answer
its own question.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .ports import Clock, ToolSpec

CONFIRM_TOOL = "confirm_action"

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A sensitive call waiting for the user's yes."""

    tool: str
    """Tool to run once confirmed."""
    arguments: BaseModel
    """Its already validated arguments."""
    expires_at: float
    """Clock seconds after which the token is refused."""
    turn_id: str | None
    """Turn that asked; the confirmation must come from another one."""


class Confirmations:
    """Issues and redeems confirmation tokens on the injected clock."""

    def __init__(self, clock: Clock, confirm_seconds: float, new_token: Callable[[], str] | None = None) -> None:
        if confirm_seconds <= 0:
            raise ValueError("confirm_seconds must be positive")
        self._clock = clock
        self._new_token = new_token or _random_token
        self._seconds = confirm_seconds
        self._pending: dict[str, PendingCall] = {}
        self.spec = ToolSpec(
            name=CONFIRM_TOOL,
            description=(
                "Carry out an action that needed the user's confirmation. Call it only after the user "
                "clearly said yes to the question you asked, with the confirm_token that came with it."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "confirm_token": {"type": "string", "description": "The confirm_token of the pending action"}
                },
                "required": ["confirm_token"],
                "additionalProperties": False,
            },
        )

    def ask(self, tool: str, arguments: BaseModel, question: str, turn_id: str | None) -> dict[str, Any]:
        """Hold a call and return the result that asks the model to get the user's yes."""
        self._expire()
        token = self._new_token()
        self._pending[token] = PendingCall(tool, arguments, self._clock.now() + self._seconds, turn_id)
        return {
            "ok": False,
            "needs_confirmation": True,
            "confirm_token": token,
            "say": question,
            "next": (
                f"Nothing was done yet. Ask the user this question in their language and stop. Only if they "
                f"clearly say yes, call {CONFIRM_TOOL} with this confirm_token (valid {self._seconds:g} seconds)."
            ),
        }

    def take(self, token: str, turn_id: str | None) -> PendingCall | str:
        """Redeem a token: the held call, or why it cannot run."""
        self._expire()
        pending = self._pending.get(token)
        if pending is None:
            return "no action is waiting for that confirm_token (it expired or was used); ask the user again"
        if turn_id is not None and pending.turn_id == turn_id:
            return "the user has not answered yet: ask the question and wait for their yes"
        del self._pending[token]
        return pending

    def _expire(self) -> None:
        now = self._clock.now()
        for token in [t for t, p in self._pending.items() if p.expires_at < now]:
            del self._pending[token]


def _random_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(6))
