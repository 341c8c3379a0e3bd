"""Spoken confirmation of sensitive tools, as data the model reads.

The first call of a sensitive tool does nothing. It returns::

    {"ok": false, "needs_confirmation": true, "confirm_token": "k3f9q2",
     "say": "Do you want me to unlock the front door?",
     "next": "Ask the user exactly this. Only if they clearly say yes, call confirm_action ..."}

The model asks the question and the turn ends. When the user answers yes, the model calls
``confirm_action(confirm_token=...)`` and the original call runs with the arguments validated the first
time.

Only a person in the room may ask for such an action, so a token is issued only to **a turn in which
the microphone heard the user speak, before any tool that reads outside text** (``untrusted_output``: web
results, reminder texts, device names and states) ran in it. A typed turn (an MQTT or Home Assistant
``ask``, a Wyoming transcript), an announcement, a reminder, or a spoken turn that already read a web page
gets a refusal instead and nothing is held.

Only that person may say the yes, so a token is redeemed only by **the first turn after the question in
which the microphone heard the user speak** (the follow-up window, or the next wake word), only before that
turn ran any other tool, and only if no typed question, announcement or replay came in between. One yes
confirms one action. Everything else is refused:

- the turn that asked (the model cannot answer its own question, e.g. on a web page's orders);
- a typed turn (an MQTT or Home Assistant ``ask``, a Wyoming transcript) and an announcement or reminder,
  which carry text anyone on the network or the web may have written;
- a later spoken turn, once the user said something else in between;
- any turn, once a turn that did not listen (typed question, announcement, replay) came in between;
- a second token in a turn that already confirmed one;
- the answering turn after another tool ran in it: that tool's result (a web page, a reminder's text)
  could itself be the voice asking for the confirmation;
- a used token, or one older than ``confirm_seconds``.

The registry learns which turn heard speech, which turn made each call and which turns did not listen,
from the bus (:meth:`assistant.tools.ToolRegistry.observe`).
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
    action: str | None = None
    """For a tool that asks by effect: exactly what the yes approves (see ``ConfirmationRequired``)."""


@dataclass(slots=True)
class _Waiting:
    call: PendingCall
    answer_turn: str | None = None
    """The first turn after the question that heard the user speak: the only one that may confirm."""
    refusal: str | None = None
    """Why the token can no longer be redeemed (said to the model when it tries); None while it can."""


@dataclass(slots=True)
class _Turn:
    spoke: bool = False
    """The microphone heard the user in this turn."""
    read_outside: bool = False
    """A tool whose result carries outside text was called in this turn."""


_MAX_TURNS = 64
"""Turns remembered for :meth:`Confirmations.may_ask`; a request only ever concerns the latest one."""
_SPOILED = (
    f"{CONFIRM_TOOL} must come straight after the user's yes, before any other tool; nothing was done, ask them again"
)
_MOVED_ON = (
    "a typed question, an announcement or a replay came between the question and the answer, so the "
    "conversation moved on; nothing was done. Only the user's spoken yes right after the question can "
    "confirm: ask them again"
)
_ONE_PER_YES = "one yes confirms one action and this turn already confirmed another; nothing was done, ask again"


class Confirmations:
    """Issues and redeems confirmation tokens on the injected clock."""

    def __init__(self, clock: Clock, confirm_seconds: float, new_token: Callable[[], str] | None = None) -> None:
        if confirm_seconds <= 0:
            raise ValueError("confirm_seconds must be positive")
        self._clock = clock
        self._new_token = new_token or _random_token
        self._seconds = confirm_seconds
        self._pending: dict[str, _Waiting] = {}
        self._turns: dict[str, _Turn] = {}
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

    def ask(
        self, tool: str, arguments: BaseModel, question: str, turn_id: str | None, *, action: str | None = None
    ) -> dict[str, Any]:
        """Hold a call and return the result that asks the model to get the user's yes.

        ``action``: what the yes approves, for a tool that asked by effect; None for a tool always confirmed.
        """
        self._expire()
        token = self._new_token()
        call = PendingCall(tool, arguments, self._clock.now() + self._seconds, turn_id, action)
        self._pending[token] = _Waiting(call)
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

    def may_ask(self, turn_id: str | None) -> bool:
        """Whether ``turn_id`` may request a sensitive action: the user spoke in it, and nothing outside did yet."""
        turn = self._turns.get(turn_id) if turn_id is not None else None
        return turn is not None and turn.spoke and not turn.read_outside

    def heard_speech(self, turn_id: str) -> None:
        """The microphone heard the user in ``turn_id``: it is the answer to every question still unanswered."""
        self._turn(turn_id).spoke = True
        for waiting in self._pending.values():
            if waiting.answer_turn is None and waiting.call.turn_id != turn_id:
                waiting.answer_turn = turn_id

    def tool_called(self, turn_id: str, *, reads_outside: bool = False) -> None:
        """A tool other than the confirmation ran in ``turn_id``: that turn can no longer confirm.

        ``reads_outside``: its result carries outside text, so the turn can no longer request either.
        """
        if reads_outside:
            self._turn(turn_id).read_outside = True
        self._refuse(lambda waiting: waiting.answer_turn == turn_id, _SPOILED)

    def moved_on(self) -> None:
        """A turn that does not listen (typed question, announcement, replay) began: every question lapses."""
        self._refuse(lambda waiting: True, _MOVED_ON)

    def take(self, token: str, turn_id: str | None) -> PendingCall | str:
        """Redeem a token: the held call, or why it cannot run (said to the model)."""
        self._expire()
        waiting = self._pending.get(token)
        if waiting is None:
            return "no action is waiting for that confirm_token (it expired or was used); ask the user again"
        if waiting.refusal is not None:
            del self._pending[token]
            return waiting.refusal
        if turn_id is None or waiting.call.turn_id == turn_id:
            return "the user has not answered yet: ask the question and wait for their yes"
        if waiting.answer_turn is None:
            # Typed text, an announcement or a reminder: the question stays open for the spoken answer.
            return "only the user's spoken yes can confirm this; ask them aloud and wait for their answer"
        if waiting.answer_turn != turn_id:
            del self._pending[token]
            return "the user did not say yes right after the question; nothing was done, ask them again"
        del self._pending[token]
        # One yes, one action: the question the user heard named one of them.
        self._refuse(lambda other: other.answer_turn == turn_id, _ONE_PER_YES)
        return waiting.call

    def _refuse(self, which: Callable[[_Waiting], bool], reason: str) -> None:
        for waiting in self._pending.values():
            if waiting.refusal is None and which(waiting):
                waiting.refusal = reason

    def _turn(self, turn_id: str) -> _Turn:
        turn = self._turns.get(turn_id)
        if turn is None:
            turn = self._turns[turn_id] = _Turn()
            if len(self._turns) > _MAX_TURNS:
                del self._turns[next(iter(self._turns))]
        return turn

    def _expire(self) -> None:
        now = self._clock.now()
        for token in [t for t, w in self._pending.items() if w.call.expires_at < now]:
            del self._pending[token]


def _random_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(6))
