"""Spoken confirmation of sensitive tools, as data the model reads.

The first call of a sensitive tool does nothing. It returns::

    {"ok": false, "needs_confirmation": true, "confirm_token": "k3f9q2",
     "say": "Do you want me to unlock the front door?",
     "next": "Ask the user exactly this. Only if they clearly say yes, call confirm_action ..."}

The model asks the question and the turn ends. When the user answers yes, the model calls
``confirm_action(confirm_token=...)`` and the original call runs with the arguments validated the first
time. Only a person in the room may say that yes, so a token is redeemed only by **the first turn after
the question in which the microphone heard the user speak** (the follow-up window, or the next wake word),
and only before that turn ran any other tool. Everything else is refused:

- the turn that asked (the model cannot answer its own question, e.g. on a web page's orders);
- a typed turn (an MQTT or Home Assistant ``ask``, a Wyoming transcript) and an announcement or reminder,
  which carry text anyone on the network or the web may have written;
- a later spoken turn, once the user said something else in between;
- the answering turn after another tool ran in it: that tool's result (a web page, a reminder's text)
  could itself be the voice asking for the confirmation;
- a used token, or one older than ``confirm_seconds``.

The registry learns which turn heard speech, and which turn made each call, from the bus
(:meth:`assistant.tools.ToolRegistry.observe`).
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


@dataclass(slots=True)
class _Waiting:
    call: PendingCall
    answer_turn: str | None = None
    """The first turn after the question that heard the user speak: the only one that may confirm."""
    spoiled: bool = False
    """The answer turn ran another tool first, so its context may hold someone else's words."""


class Confirmations:
    """Issues and redeems confirmation tokens on the injected clock."""

    def __init__(self, clock: Clock, confirm_seconds: float, new_token: Callable[[], str] | None = None) -> None:
        if confirm_seconds <= 0:
            raise ValueError("confirm_seconds must be positive")
        self._clock = clock
        self._new_token = new_token or _random_token
        self._seconds = confirm_seconds
        self._pending: dict[str, _Waiting] = {}
        self.spec = ToolSpec(
            name=CONFIRM_TOOL,
            description=(
                "Carry out an action that needed the user's confirmation. Call it only after the user "
                "clearly said yes to the question you asked, with the confirm_token that came with it, "
                "before calling any other tool."
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
        self._pending[token] = _Waiting(PendingCall(tool, arguments, self._clock.now() + self._seconds, turn_id))
        return {
            "ok": False,
            "needs_confirmation": True,
            "confirm_token": token,
            "say": question,
            "next": (
                f"Nothing was done yet. Ask the user this question aloud in their language and stop. Only if "
                f"they clearly say yes, call {CONFIRM_TOOL} with this confirm_token (valid {self._seconds:g} "
                "seconds) before any other tool. Only the user's spoken answer can confirm it."
            ),
        }

    def heard_speech(self, turn_id: str) -> None:
        """The microphone heard the user in ``turn_id``: it is the answer to every question still unanswered."""
        for waiting in self._pending.values():
            if waiting.answer_turn is None and waiting.call.turn_id != turn_id:
                waiting.answer_turn = turn_id

    def tool_called(self, turn_id: str) -> None:
        """A tool other than the confirmation ran in ``turn_id``: that turn can no longer confirm."""
        for waiting in self._pending.values():
            if waiting.answer_turn == turn_id:
                waiting.spoiled = True

    def take(self, token: str, turn_id: str | None) -> PendingCall | str:
        """Redeem a token: the held call, or why it cannot run (said to the model)."""
        self._expire()
        waiting = self._pending.get(token)
        if waiting is None:
            return "no action is waiting for that confirm_token (it expired or was used); ask the user again"
        if turn_id is None or waiting.call.turn_id == turn_id:
            return "the user has not answered yet: ask the question and wait for their yes"
        if waiting.answer_turn is None:
            # Typed text, an announcement or a reminder: the question stays open for the spoken answer.
            return "only the user's spoken yes can confirm this; ask them aloud and wait for their answer"
        if waiting.answer_turn != turn_id:
            del self._pending[token]
            return "the user did not say yes right after the question; nothing was done, ask them again"
        if waiting.spoiled:
            del self._pending[token]
            return (
                f"{CONFIRM_TOOL} must come straight after the user's yes, before any other tool; nothing was "
                "done, ask them again"
            )
        del self._pending[token]
        return waiting.call

    def _expire(self) -> None:
        now = self._clock.now()
        for token in [t for t, w in self._pending.items() if w.call.expires_at < now]:
            del self._pending[token]


def _random_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(6))
