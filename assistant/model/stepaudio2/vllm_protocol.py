"""StepFun's vLLM chat protocol for Step-Audio 2, as pure functions: requests, stream assembly, history.

No I/O here: ``vllm.py`` moves the bytes. The wire format follows StepFun's fork of vLLM
(``--tokenizer-mode step_audio_2 --audio-parser step_audio_2_tts_ta4 --tool-call-parser step_audio_2``,
branch ``step-audio2-mini``; ``support/vllm_fake.py`` names the commit and reproduces it):

* user audio is sent as ``input_audio`` items of base64 WAV, one item per chunk of at most 25 s
  (a single 30 s chunk crashed the server);
* a spoken answer is asked for by prefilling the assistant turn with ``<tts_start>`` and setting
  ``continue_final_message: true, add_generation_prompt: false``;
* a spoken reply streams ``delta.tts_content.tts_text`` (what is said) and ``delta.tts_content.tts_audio``
  (``<audio_N>`` speech codes for token2wav); the fork blanks ``content`` on every chunk of it, so words the
  model writes after ``<tts_end>`` never arrive and the answer's text (``ModelText``) is ``tts_text`` alone.
  A text reply (no prefill) streams ``delta.content``; whitespace between it and a tool call is layout and is
  dropped;
* a tool call streams its name first (``arguments: null``), then its whole arguments in one delta once they
  parse as JSON. Arguments that do not parse are never sent, and neither are empty ones (``{}``): both
  arrive as the name alone, told apart by the tool's schema (:meth:`ReplyAssembler.tool_calls`);
* earlier spoken answers go back as ``{"role": "assistant", "tts_content": {...}}``, kept even when empty,
  because the model wrote ``<tts_start><tts_end>`` before a bare tool call and the fork renders it so; a
  round's tool results go back as one ``input`` turn (:func:`tool_result_messages`);
* a prompt over the context length is refused in the fork's own words (:func:`is_context_overflow`).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import uuid
import wave
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...audio import MIC_RATE_HZ, SAMPLE_WIDTH_BYTES, AudioChunk
from ...config import VllmModelSettings
from ...ports import ModelEvent, ModelSpeech, ModelText, ModelToolCall, ToolResult, ToolSpec
from .frontend import MAX_CHUNK_SECONDS
from .parser import MAX_TOOL_CALL_CHARS
from .prompt import TTS_START_TEXT, tool_results_text, tool_schemas
from .tokens import AUDIO_PAD_CODE, SPEECH_CODES

_LOGGER = logging.getLogger(__name__)

TTS_START = TTS_START_TEXT
"""Prefill of the assistant turn that makes the model answer in interleaved text and speech."""

_AUDIO_TOKEN = re.compile(r"<audio_(\d{1,9})>")
_AUDIO_TOKENS_PER_SECOND = 12.5
_TOKENS_PER_MESSAGE = 4  # <|BOT|>, the role, "\n" and <|EOT|>

# Bounds on one reply, far above what max_tokens (at most 8192) lets the model write, so a broken or
# hostile server cannot make the daemon hold unbounded memory.
MAX_EVENT_CHARS = 1_000_000
"""Longest data of one SSE event."""
MAX_REPLY_CHARS = 256_000
"""Most characters of answer text (spoken and written) in one reply."""
MAX_REPLY_CODES = 65_536
"""Most speech codes in one reply (about 44 minutes of speech)."""
MAX_TOOL_CALLS = 16
"""Most tool calls in one reply."""
_MAX_NAME_CHARS = 256


class StreamError(Exception):
    """The server's stream broke the protocol or reported an error mid-way; the message says which."""


class PromptTooLong(StreamError):
    """The server refused the prompt mid-stream because it is longer than the model's context."""


# Upstream vLLM checks the prompt's length itself ("This model's maximum context length is …"). The fork
# builds the prompt as token ids, which skips that check, so a prompt too long shows up further on: as a
# negative ``max_tokens`` (the room vLLM computes for the answer) or, once the audio is expanded, as the
# engine's "decoder prompt … is longer than the maximum model length".
_CONTEXT_TOO_LONG = re.compile(
    r"maximum context length"
    r"|max_tokens must be at least 1, got (?:-\d+|0)\b"
    r"|prompt \(length \d+\) is longer than the maximum model length",
    re.IGNORECASE,
)


def is_context_overflow(message: str) -> bool:
    """Whether the server's error message says the prompt does not fit the model's context.

    The request's own ``max_tokens`` is at least 1, so "max_tokens must be at least 1, got -N" can only be
    the room left after the prompt.
    """
    return _CONTEXT_TOO_LONG.search(message) is not None


# --- request --------------------------------------------------------------------------------------


def split_audio(audio: AudioChunk, max_seconds: float = MAX_CHUNK_SECONDS) -> list[AudioChunk]:
    """Cut audio into the fewest chunks of at most ``max_seconds``, all about the same length.

    Even pieces avoid a tiny last chunk, which the encoder would turn into zero audio embeddings.
    """
    if audio.samples == 0:
        return []
    count = math.ceil(audio.seconds / max_seconds - 1e-9)
    step = math.ceil(audio.samples / count) * SAMPLE_WIDTH_BYTES
    return [AudioChunk(audio.pcm[start : start + step], audio.rate_hz) for start in range(0, len(audio.pcm), step)]


def wav_bytes(audio: AudioChunk) -> bytes:
    """Encode mono int16 PCM as a WAV file in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH_BYTES)
        wav.setframerate(audio.rate_hz)
        wav.writeframes(audio.pcm)
    return buffer.getvalue()


def audio_items(audio: AudioChunk) -> list[dict[str, Any]]:
    """Return the ``input_audio`` content items for an utterance, one per ≤25 s chunk."""
    if audio.rate_hz != MIC_RATE_HZ:
        raise ValueError(f"the model hears 16 kHz audio, got {audio.rate_hz} Hz")
    return [
        {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(wav_bytes(chunk)).decode("ascii"), "format": "wav"},
        }
        for chunk in split_audio(audio)
    ]


def user_message(*, audio: AudioChunk | None, text: str | None) -> dict[str, Any]:
    """Return the ``human`` turn (StepFun's role name) for an utterance, a text, or both (audio first)."""
    items: list[dict[str, Any]] = audio_items(audio) if audio is not None else []
    if text:
        if not items:
            return {"role": "human", "content": text}
        items.append({"type": "text", "text": text})
    if not items:
        raise ValueError("a user turn needs audio or text")
    return {"role": "human", "content": items}


def tool_result_messages(results: Sequence[ToolResult]) -> list[dict[str, Any]]:
    """Return the ``input`` turn that answers a round's tool calls: one turn, one text item, for all of them.

    The text is the local engine's (``prompt.tool_results_text``), so both backends put the same bytes in
    front of the model: the layout of StepFun's own examples (the results, three newlines, the instruction
    to sum up), which the model was tuned on. One turn per result, or a second text item, would not be the
    same: the fork joins a turn's text items with a newline. The fork ignores ``tool_call_id`` when it lays
    out an ``input`` turn; the first call's id is sent as StepFun's client sends one.
    """
    if not results:
        raise ValueError("a tool round needs at least one result")
    text = tool_results_text(results)
    return [{"role": "input", "tool_call_id": results[0].call_id, "content": [{"type": "text", "text": text}]}]


def build_payload(
    settings: VllmModelSettings,
    *,
    system: str,
    tools: Sequence[ToolSpec],
    messages: Sequence[Mapping[str, Any]],
    speak: bool,
) -> dict[str, Any]:
    """Return the body of one streaming ``/chat/completions`` request."""
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": [{"role": "system", "content": system}, *messages],
        "stream": True,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "repetition_penalty": settings.repetition_penalty,
        # The audio and tool parsers read <tts_start>, <tts_end> and <tool_call> from the raw text.
        "skip_special_tokens": False,
    }
    if tools:
        body["tools"] = tool_schemas(tools)
        body["tool_choice"] = "auto"
    if speak:
        body["messages"].append({"role": "assistant", "content": TTS_START})
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    else:
        body["continue_final_message"] = False
        body["add_generation_prompt"] = True
    return body


# --- response -------------------------------------------------------------------------------------


def parse_speech_codes(tokens: str) -> tuple[int, ...]:
    """Return the speech codes in a ``<audio_N><audio_M>…`` string, the pad 6561 kept, out-of-range ones dropped."""
    codes: list[int] = []
    for match in _AUDIO_TOKEN.finditer(tokens):
        code = int(match.group(1))
        if code < SPEECH_CODES or code == AUDIO_PAD_CODE:  # the pad is passed on as StepFun's client does
            codes.append(code)
        else:
            _LOGGER.warning("dropped speech code %d: neither a code 0..%d nor the pad", code, SPEECH_CODES - 1)
    leftover = _AUDIO_TOKEN.sub("", tokens).strip()
    if leftover:
        _LOGGER.warning("ignored %d characters that are not speech tokens in tts_audio", len(leftover))
    return tuple(codes)


def speech_tokens_text(codes: Iterable[int]) -> str:
    """Render speech codes back as the server's ``<audio_N>`` string."""
    return "".join(f"<audio_{code}>" for code in codes)


@dataclass
class _CallParts:
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    too_long: bool = False


@dataclass
class ReplyAssembler:
    """Folds the SSE chunks of one reply into model events and, at the end, the assistant turn."""

    spoken: bool = False
    """The request prefilled ``<tts_start>``: the turn kept in the history is a spoken one even if empty."""
    tts_text: list[str] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    """Set from the chunk that carried it; None while the reply is still open."""
    done: bool = False
    """True once ``data: [DONE]`` arrived."""
    _calls: dict[int, _CallParts] = field(default_factory=dict)
    _chars: int = 0

    @property
    def complete(self) -> bool:
        """True when the server closed the reply properly (a finish reason or [DONE])."""
        return self.done or self.finish_reason is not None

    def feed(self, data: str) -> list[ModelEvent]:
        """Take the data of one SSE event; return the text and speech it carries."""
        if data.strip() == "[DONE]":
            self.done = True
            return []
        if len(data) > MAX_EVENT_CHARS:
            raise StreamError(f"the server sent a chunk of {len(data)} characters (at most {MAX_EVENT_CHARS})")
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as err:
            raise StreamError(f"the server sent a chunk that is not JSON ({err.msg} at {err.pos})") from None
        except (ValueError, RecursionError):
            raise StreamError("the server sent a chunk with JSON too large to read") from None
        if not isinstance(chunk, dict):
            raise StreamError(f"the server sent a {type(chunk).__name__} where a chunk object belongs")
        if "error" in chunk:
            error = chunk["error"]
            message = str(error.get("message") if isinstance(error, dict) else error)
            if is_context_overflow(message):
                raise PromptTooLong(f"the server refused the prompt: {message[:200]}")
            raise StreamError(f"the server failed mid-reply: {message[:200]}")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise StreamError("the server sent a chunk without a choices list")
        events: list[ModelEvent] = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise StreamError("the server sent a delta that is not an object")
            events.extend(self._delta(delta))
            if isinstance(reason := choice.get("finish_reason"), str):
                self.finish_reason = reason
        return events

    def _delta(self, delta: Mapping[str, Any]) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        tts = delta.get("tts_content")
        if isinstance(tts, dict):
            if isinstance(text := tts.get("tts_text"), str) and text:
                self._count_chars(text)
                self.tts_text.append(text)
                events.append(ModelText(text))
            if isinstance(audio := tts.get("tts_audio"), str) and audio:
                codes = parse_speech_codes(audio)
                if codes:
                    if len(self.codes) + len(codes) > MAX_REPLY_CODES:
                        raise StreamError(f"the reply has more than {MAX_REPLY_CODES} speech codes")
                    self.codes.extend(codes)
                    events.append(ModelSpeech(codes))
        if isinstance(content := delta.get("content"), str) and content:
            # Whitespace between <tts_end> and a tool call is layout, not something to say.
            if content.strip() or self.content:
                self._count_chars(content)
                self.content.append(content)
                events.append(ModelText(content))
        calls = delta.get("tool_calls") or []
        if not isinstance(calls, list):
            raise StreamError("the server sent tool_calls that are not a list")
        for call in calls:
            self._tool_call_delta(call)
        return events

    def _count_chars(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > MAX_REPLY_CHARS:
            raise StreamError(f"the reply is longer than {MAX_REPLY_CHARS} characters")

    def _tool_call_delta(self, call: Any) -> None:
        if not isinstance(call, dict):
            raise StreamError("the server sent a tool call delta that is not an object")
        index = call.get("index", 0)
        index = index if isinstance(index, int) else 0
        if index not in self._calls and len(self._calls) >= MAX_TOOL_CALLS:
            raise StreamError(f"the reply has more than {MAX_TOOL_CALLS} tool calls")
        parts = self._calls.setdefault(index, _CallParts())
        if isinstance(call_id := call.get("id"), str) and not parts.call_id:
            parts.call_id = call_id[:_MAX_NAME_CHARS]
        function = call.get("function") or {}
        if isinstance(function, dict):
            # OpenAI's own stream accumulator concatenates every string field; names may come in pieces.
            name = function.get("name")
            arguments = function.get("arguments")
            name = name if isinstance(name, str) else ""
            arguments = arguments if isinstance(arguments, str) else ""
            if len(parts.name) + len(name) > _MAX_NAME_CHARS or (
                len(parts.arguments) + len(arguments) > MAX_TOOL_CALL_CHARS
            ):
                parts.too_long = True
            if not parts.too_long:
                parts.name += name
                parts.arguments += arguments

    def tool_calls(self, tools: Sequence[ToolSpec] = ()) -> list[ModelToolCall]:
        """Return the tool calls of the reply; unusable ones carry ``error`` instead of arguments.

        The fork sends a call's arguments only once they parse as JSON and are not empty, so a name alone
        means either ``{}`` or arguments that were not JSON. ``tools`` tells them apart: a tool that requires
        arguments gets an error, one that requires none is called with ``{}``.
        """
        required = {spec.name: _required(spec) for spec in tools}
        calls: list[ModelToolCall] = []
        for index in sorted(self._calls):
            parts = self._calls[index]
            call_id = parts.call_id or f"call-{uuid.uuid4().hex[:12]}"
            parts.call_id = call_id
            name = parts.name.strip()
            if parts.too_long:
                error = f"the tool call is longer than {MAX_TOOL_CALL_CHARS} characters; it was not read"
                calls.append(ModelToolCall(call_id, name, error=error))
                continue
            if not name:
                calls.append(ModelToolCall(call_id, "", error="the model called a tool without a name"))
                continue
            raw = parts.arguments.strip()
            if not raw and (missing := required.get(name)):
                error = (
                    f"the model called {name} without its arguments ({', '.join(missing)}); the arguments it "
                    "wrote were probably not valid JSON, which the server does not pass on"
                )
                calls.append(ModelToolCall(call_id, name, error=error))
                continue
            try:
                arguments = json.loads(raw) if raw else {}
            except json.JSONDecodeError as err:
                calls.append(ModelToolCall(call_id, name, error=f"the arguments are not valid JSON ({err.msg})"))
                continue
            except (ValueError, RecursionError):
                calls.append(ModelToolCall(call_id, name, error="the arguments are JSON too large to read"))
                continue
            if not isinstance(arguments, dict):
                calls.append(ModelToolCall(call_id, name, error="the arguments must be a JSON object"))
                continue
            calls.append(ModelToolCall(call_id, name, arguments))
        return calls

    def assistant_message(self, calls: Sequence[ModelToolCall] = ()) -> dict[str, Any] | None:
        """Return the assistant turn to keep in the history, or None when the reply said nothing.

        A spoken reply keeps its ``tts_content`` even when empty: before a bare tool call the model wrote
        ``<tts_start><tts_end>``, and the fork renders an empty ``tts_content`` as exactly that.
        """
        message: dict[str, Any] = {"role": "assistant"}
        tts_text = "".join(self.tts_text)
        if tts_text or self.codes or self.spoken:
            message["tts_content"] = {"tts_text": tts_text, "tts_audio": speech_tokens_text(self.codes)}
        content = "".join(self.content)
        if content or "tts_content" not in message:
            message["content"] = content
        if calls:
            # The server json.loads these when rendering, so a malformed call goes back as {}; its
            # result tells the model what was wrong.
            message["tool_calls"] = [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": "{}" if c.error else json.dumps(dict(c.arguments), ensure_ascii=False),
                    },
                }
                for c in calls
            ]
        if not (tts_text or self.codes or content or calls):
            return None
        return message

    def empty_message(self) -> dict[str, Any]:
        """Return the assistant turn of a reply that said nothing and called nothing."""
        if self.spoken:
            return {"role": "assistant", "tts_content": {"tts_text": "", "tts_audio": ""}}
        return {"role": "assistant", "content": ""}


def _required(spec: ToolSpec) -> list[str]:
    """The argument names a tool's JSON Schema requires (none when the schema does not say)."""
    required = spec.parameters.get("required")
    return [str(name) for name in required] if isinstance(required, list) else []


# --- history --------------------------------------------------------------------------------------


def _text_tokens(text: str) -> int:
    # About one token per CJK character and per 3-4 Latin letters; UTF-8 bytes / 3 covers both.
    return math.ceil(len(text.encode("utf-8")) / 3)


def estimate_tokens(message: Mapping[str, Any]) -> int:
    """Estimate how many prompt tokens a message costs (reference §2: 12.5/s heard, ~31/s spoken)."""
    tokens = _TOKENS_PER_MESSAGE
    content = message.get("content")
    if isinstance(content, str):
        tokens += _text_tokens(content)
    elif isinstance(content, list):
        for item in content:
            if item.get("type") == "input_audio":
                # base64 of a 16 kHz int16 WAV: 4 characters per 3 bytes, 32,000 bytes per second.
                seconds = len(item["input_audio"]["data"]) * 3 / 4 / (MIC_RATE_HZ * SAMPLE_WIDTH_BYTES)
                tokens += math.ceil(seconds * _AUDIO_TOKENS_PER_SECOND) + 2
            elif item.get("type") == "text":
                tokens += _text_tokens(str(item.get("text", "")))
    if isinstance(tts := message.get("tts_content"), dict):
        codes = len(_AUDIO_TOKEN.findall(tts.get("tts_audio", "")))
        # The fork re-interleaves 1 text : 4 audio, padding whichever runs out first.
        tokens += max(math.ceil(codes / 4), _text_tokens(tts.get("tts_text", ""))) * 5 + 2
    for call in message.get("tool_calls") or ():
        tokens += _text_tokens(json.dumps(call, ensure_ascii=False)) + 4
    return tokens


def as_text_only(message: Mapping[str, Any]) -> dict[str, Any]:
    """Return a spoken assistant turn with its speech codes dropped, as StepFun's text multi-turn does."""
    text_only = {k: v for k, v in message.items() if k != "tts_content"}
    spoken = message.get("tts_content", {}).get("tts_text", "")
    text_only["content"] = spoken + str(message.get("content") or "")
    return text_only


@dataclass
class History:
    """One room's conversation as the server will read it, kept under a token budget."""

    budget_tokens: int
    """Estimated prompt tokens the history may cost."""
    messages: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, messages: Iterable[dict[str, Any]]) -> None:
        """Append turns, then trim to the budget."""
        self.messages.extend(messages)
        self.trim()

    def tokens(self) -> int:
        """Estimated prompt tokens of the whole history."""
        return sum(estimate_tokens(m) for m in self.messages)

    def trim(self) -> None:
        """Fit the budget: older spoken answers become text, then the oldest exchanges go.

        An exchange starts at a ``human`` turn, so the history always starts with one. The newest
        exchange is kept whole even over budget: the model cannot answer without it.
        """
        while self.tokens() > self.budget_tokens:
            starts = [i for i, m in enumerate(self.messages) if m.get("role") == "human"]
            newest = starts[-1] if starts else 0
            spoken = [i for i, m in enumerate(self.messages[:newest]) if "tts_content" in m]
            if spoken:
                self.messages[spoken[0]] = as_text_only(self.messages[spoken[0]])
            elif len(starts) > 1:
                del self.messages[: starts[1]]
            else:
                return

    def drop_earlier_exchanges(self) -> None:
        """Keep only the newest exchange (from its ``human`` turn on): what a tool round cannot do without."""
        starts = [i for i, m in enumerate(self.messages) if m.get("role") == "human"]
        del self.messages[: starts[-1] if starts else len(self.messages)]

    def close_open_tool_calls(self) -> None:
        """Drop tool calls left without results (the turn was interrupted before they ran).

        The server would render them as a call the model is still waiting on.
        """
        if self.messages and "tool_calls" in (last := self.messages[-1]):
            del last["tool_calls"]
            tts = last.get("tts_content") or {}
            if not (last.get("content") or tts.get("tts_text") or tts.get("tts_audio")):
                self.messages.pop()
