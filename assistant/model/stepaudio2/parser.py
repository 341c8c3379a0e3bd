r"""Token stream → model events: text deltas, speech-token chunks and tool calls.

Step-Audio 2 answers in one stream. Inside ``<tts_start>…<tts_end>`` it interleaves one text token with
four speech tokens (pads fill whichever side runs out); outside it writes plain text, where tool calls
appear as ``<tool_call>function\nNAME\n{json}</tool_call>``. This module is pure (no torch, no tokenizer
class): the caller passes a ``decode`` function, so the vLLM backend can reuse the same parsing.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...ports import ModelDone, ModelEvent, ModelSpeech, ModelText, ModelToolCall
from . import tokens as t

_LOGGER = logging.getLogger(__name__)

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
MAX_TOOL_CALL_CHARS = 32_768
"""Longest tool call body kept; a longer one becomes an error call and the rest of it is skipped."""
_MAX_PENDING_TOKENS = 16
"""Tokens held back while they decode to half a character; more means the bytes are invalid, not split."""

Decode = Callable[[Sequence[int]], str]
"""Turns text token ids into a string (the tokenizer's decode, special tokens kept)."""


def _call_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"call_{next(counter)}"


def parse_tool_call(body: str, call_id: str) -> ModelToolCall:
    """Parse the inside of ``<tool_call>…</tool_call>``; a malformed call gets ``error`` set, never raises."""
    kind, _, rest = body.strip().partition("\n")
    name, _, raw_arguments = rest.partition("\n")
    name = name.strip()
    kind = kind.strip()
    if kind != "function" or not name:
        snippet = body.strip()[:80]
        return ModelToolCall(
            call_id, name, {}, error=f'malformed tool call, expected "function\\nNAME\\n{{json}}": {snippet!r}'
        )
    raw_arguments = raw_arguments.strip()
    if not raw_arguments:
        return ModelToolCall(call_id, name, {})
    try:
        arguments: Any = json.loads(raw_arguments)
    except json.JSONDecodeError as err:
        return ModelToolCall(
            call_id, name, {}, error=f"arguments of {name} are not valid JSON ({err.msg}, character {err.pos})"
        )
    except (ValueError, RecursionError):  # a number of thousands of digits, or nesting deeper than Python recurses
        return ModelToolCall(call_id, name, {}, error=f"arguments of {name} are JSON too large to read")
    if not isinstance(arguments, dict):
        return ModelToolCall(
            call_id, name, {}, error=f"arguments of {name} must be a JSON object, got {type(arguments).__name__}"
        )
    return ModelToolCall(call_id, name, arguments)


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class _TextScanner:
    """Splits decoded text into answer text and tool-call bodies, holding back half-seen markers.

    A call body longer than ``max_call_chars`` is reported once as ``("too_long", head)`` and the rest of
    it is skipped, so a model that never closes its call cannot make the buffer grow without bound.
    """

    def __init__(self, max_call_chars: int = MAX_TOOL_CALL_CHARS) -> None:
        self._buffer = ""
        self._in_call = False
        self._too_long = False
        self._max_call_chars = max_call_chars

    @property
    def in_call(self) -> bool:
        return self._in_call

    def push(self, text: str) -> Iterator[tuple[str, str]]:
        """Yield ``("text", s)``, ``("call", body)`` and ``("too_long", head)`` pieces that are complete."""
        self._buffer += text
        while True:
            if self._in_call:
                end = self._buffer.find(TOOL_CALL_CLOSE)
                if end < 0:
                    if len(self._buffer) > self._max_call_chars and not self._too_long:
                        self._too_long = True
                        yield "too_long", self._buffer[:200]
                    if self._too_long:
                        keep = _partial_suffix(self._buffer, TOOL_CALL_CLOSE)
                        self._buffer = self._buffer[len(self._buffer) - keep :]
                    return
                if not self._too_long:
                    yield "call", self._buffer[:end]
                self._buffer = self._buffer[end + len(TOOL_CALL_CLOSE) :]
                self._in_call = self._too_long = False
            else:
                start = self._buffer.find(TOOL_CALL_OPEN)
                if start < 0:
                    keep = _partial_suffix(self._buffer, TOOL_CALL_OPEN)
                    ready, self._buffer = (
                        self._buffer[: len(self._buffer) - keep],
                        self._buffer[len(self._buffer) - keep :],
                    )
                    if ready:
                        yield "text", ready
                    return
                if start:
                    yield "text", self._buffer[:start]
                self._buffer = self._buffer[start + len(TOOL_CALL_OPEN) :]
                self._in_call = True

    def close(self) -> tuple[str, str] | None:
        """Return what is left: plain text, or the body of an unterminated call (None if already reported)."""
        rest, self._buffer = self._buffer, ""
        if self._in_call:
            self._in_call = False
            if self._too_long:
                self._too_long = False
                return None
            return "unterminated", rest
        return ("text", rest) if rest else None


class TokenStreamParser:
    """Feed generated token ids one at a time; get the model events they complete.

    Text is decoded incrementally and held back while it ends in half a UTF-8 character (byte-level BPE
    splits Chinese characters across tokens) or in half a ``<tool_call>`` marker. Speech codes are sent
    in chunks of at most ``speech_chunk`` tokens, and at every text slot, so speech starts early.
    """

    def __init__(
        self,
        decode: Decode,
        *,
        in_tts: bool = False,
        speech_chunk: int = 25,
        call_ids: Callable[[], str] | None = None,
    ) -> None:
        self._decode = decode
        self._in_tts = in_tts
        self._speech_chunk = max(1, speech_chunk)
        self._call_ids = call_ids or _call_ids()
        self._pending: list[int] = []
        self._speech: list[int] = []
        self._scanner = _TextScanner()
        self._finished = False
        self._warned_out_of_range = False
        self.text = ""
        """All answer text so far (spoken and plain, without tool calls)."""
        self.spoken_text = ""
        """The part of ``text`` that was spoken (inside the TTS section)."""
        self.speech_tokens = 0
        """Speech codes emitted so far, the pad not counted."""
        self.tool_calls: list[ModelToolCall] = []
        """Tool calls parsed so far, malformed ones included."""

    def feed(self, token: int) -> list[ModelEvent]:
        """Consume one generated id; an id outside the vocabulary is dropped with a warning."""
        events: list[ModelEvent] = []
        if not 0 <= token < t.VOCAB_SIZE:
            if not self._warned_out_of_range:
                self._warned_out_of_range = True
                _LOGGER.warning("dropped token id %d, outside the vocabulary (0..%d)", token, t.VOCAB_SIZE - 1)
            return events
        if t.is_speech(token):
            self._flush_text(events)
            self._speech.append(t.speech_code(token))
            if len(self._speech) >= self._speech_chunk:
                self._flush_speech(events)
            return events
        self._flush_speech(events)
        if token == t.TTS_START:
            self._flush_text(events)
            self._in_tts = True
        elif token == t.TTS_END:
            self._flush_text(events)
            self._in_tts = False
        elif token in (t.TTS_PAD, t.BOT, t.AUDIO_START, t.AUDIO_END, t.AUDIO_PATCH) or token in t.STOP_IDS:
            pass
        else:
            self._pending.append(token)
            self._decode_pending(events, final=False)
        return events

    def finish(self, reason: str = "stop") -> list[ModelEvent]:
        """Flush everything and end with ``ModelDone``; an unterminated tool call becomes an error call."""
        if self._finished:
            return []
        self._finished = True
        events: list[ModelEvent] = []
        self._flush_speech(events)
        self._decode_pending(events, final=True)
        rest = self._scanner.close()
        if rest is not None:
            kind, body = rest
            if kind == "text":
                self._emit_text(body, events)
            else:
                call = parse_tool_call(body, self._call_ids())
                error = "the tool call was cut off before </tool_call>" + (f" ({call.error})" if call.error else "")
                self._emit_call(ModelToolCall(call.call_id, call.name, {}, error=error), events)
        if self.tool_calls and reason == "stop":
            reason = "tool_calls"
        events.append(ModelDone(reason))
        return events

    # --- internals --------------------------------------------------------------------------------

    def _decode_pending(self, events: list[ModelEvent], *, final: bool) -> None:
        if not self._pending:
            return
        text = self._decode(self._pending)
        if text.endswith("\ufffd") and not final and len(self._pending) < _MAX_PENDING_TOKENS:
            return  # half a character: wait for the rest of its bytes
        self._pending.clear()
        for kind, piece in self._scanner.push(text):
            if kind == "text":
                self._emit_text(piece, events)
            elif kind == "call":
                self._emit_call(parse_tool_call(piece, self._call_ids()), events)
            else:
                head = parse_tool_call(piece, self._call_ids())
                error = f"the tool call is longer than {MAX_TOOL_CALL_CHARS} characters; it was not read"
                self._emit_call(ModelToolCall(head.call_id, head.name, {}, error=error), events)

    def _flush_text(self, events: list[ModelEvent]) -> None:
        self._decode_pending(events, final=False)

    def _emit_text(self, text: str, events: list[ModelEvent]) -> None:
        if not text:
            return
        self.text += text
        if self._in_tts:
            self.spoken_text += text
        events.append(ModelText(text))

    def _emit_call(self, call: ModelToolCall, events: list[ModelEvent]) -> None:
        self.tool_calls.append(call)
        events.append(call)

    def _flush_speech(self, events: list[ModelEvent]) -> None:
        if self._speech:
            self.speech_tokens += sum(code != t.AUDIO_PAD_CODE for code in self._speech)
            events.append(ModelSpeech(tuple(self._speech)))
            self._speech.clear()
