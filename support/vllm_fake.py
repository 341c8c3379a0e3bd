"""A fake of StepFun's vLLM server for Step-Audio 2 that speaks exactly as the fork does, scripted.

It follows the fork at ``stepfun-ai/vllm`` branch ``step-audio2-mini``, commit
``9ecabf22f542a2dd2962527a7eb9359021b3cc9f`` ("feat: step-audio2-mini support", 2025-09-02), the code behind
the ``stepfun2025/vllm:step-audio-2-v20250909`` image. Its serving code was read for the rules below; none of
it is copied. The fake writes the model's answer as a list of tokens and then applies those rules:

* The first chunk is ``{"role": "assistant", "content": ""}`` alone (dumped with ``exclude_unset``). Every
  later chunk carries all five delta keys (``role``, ``content``, ``reasoning_content``, ``tool_calls``,
  ``tts_content``) and ``stop_reason`` / ``token_ids`` / ``usage`` / ``prompt_token_ids`` as null, because the
  fork dumps them with ``exclude_unset=False``.
* When the prompt ends in ``<tts_start>`` (a spoken answer), every chunk has ``content: ""`` and
  ``tts_content: {"tts_text", "tts_audio"}``: the text and ``<audio_N>`` tokens of that token, pads dropped.
  Tokens after ``<tts_end>`` give empty strings, so words the model writes after its speech never arrive.
  Otherwise ``content`` carries the text and ``tts_content`` is ``{}``.
* With tools (``tool_choice`` auto) a tool call sends no chunk for ``<tool_call>`` or while its arguments are
  incomplete; then the name (``arguments: null``) with the first argument token, and the whole arguments,
  re-serialised by ``json.dumps(…, ensure_ascii=False)``, in one delta once they parse. Arguments that never
  parse, and arguments that parse to something falsy (``{}``), are never sent: the call arrives name-only.
  The last chunk says ``finish_reason: "tool_calls"`` once any name was sent.
* A prompt over ``max_model_len`` (when one is set) fails in one of two ways, because the fork builds the
  prompt as token ids and so skips vLLM's own "maximum context length" check: when its text tokens alone
  fill the context, HTTP 400 ``max_tokens must be at least 1, got -N.``; when they fit but the audio the
  encoder expands them with does not, HTTP 200 and one SSE ``{"error": …}`` event ("The decoder prompt
  (length N) is longer than the maximum model length of M. …") followed by ``data: [DONE]``.

Simplifications: one token per text character in a spoken answer and per two characters in a written one;
prompt tokens estimated from the rendered prompt (:func:`prompt_lengths`), not counted by the real
tokenizer, so a prompt overflows a little earlier or later than on the fork; byte fallback (a character
split over tokens, which the fork holds back until it decodes) never happens.

Every request is checked against the shape the fork reads (base64 WAV chunks of at most 25 s at 16 kHz
mono, OpenAI tools, earlier answers as ``tts_content``, ``input`` turns for tool results, the
``<tts_start>`` prefill with ``continue_final_message``); what is wrong goes to ``problems`` and gets an
HTTP 400, so a test asserts ``server.problems == []``. :func:`render_prompt` lays a request out as the fork's
tokenizer does, so a test can check what the model reads.

Run ``python -m support.vllm_fake --port 8000`` for a standalone server (the bench uses this).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import math
import re
import socket
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODEL = "step-audio-2-mini"
FORK_COMMIT = "9ecabf22f542a2dd2962527a7eb9359021b3cc9f"
"""The commit of stepfun-ai/vllm (branch step-audio2-mini) whose serving rules the fake follows."""
MAX_MODEL_LEN = 16_384
"""``--max-model-len`` of StepFun's launch line."""
_AUDIO_TOKENS = re.compile(r"(<audio_\d{1,4}>)*")
_ROLES = {"system", "human", "assistant", "input"}
_TTS_START, _TTS_END, _TTS_PAD, _AUDIO_PAD = "<tts_start>", "<tts_end>", "<tts_pad>", "<audio_6561>"
_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"
_EOS = "<|EOT|>"
_SPECIAL = re.compile(r"<\|BOT\|>|<\|EOT\|>|<audio_\d+>|<audio_patch>|<tts_start>|<tts_end>|<tts_pad>|</?tool_call>")
_AUDIO_TOKENS_PER_SECOND = 12.5


# --- scripted behaviours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeCall:
    """A tool call the fake model writes; ``arguments`` is raw text, so it may be malformed."""

    name: str
    arguments: str
    call_id: str = field(default_factory=lambda: f"chatcmpl-tool-{uuid.uuid4().hex}")
    """The id the fork makes up when it streams the name."""


@dataclass(frozen=True)
class Spoken:
    """A spoken answer: text and speech codes interleaved 1 : 4, ``<tts_end>``, ``after``, then tool calls."""

    text: str = "好的"
    codes: Sequence[int] = tuple(range(100, 108))
    calls: Sequence[FakeCall] = ()
    token_delay_seconds: float = 0.0
    after: str = ""
    """Words the model writes after ``<tts_end>``; the fork never streams them."""


@dataclass(frozen=True)
class Written:
    """A text answer (``content`` deltas), for requests without the ``<tts_start>`` prefill."""

    text: str = "好的。"
    calls: Sequence[FakeCall] = ()


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error status and body."""

    status: int
    body: Any = field(default_factory=lambda: {"error": {"message": "Internal Server Error"}})
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. ``Retry-After`` on a 429."""


@dataclass(frozen=True)
class Hang:
    """Accept the request and send nothing (``after_chunks`` > 0: stall after that many chunks)."""

    reply: Spoken | Written = Spoken()
    after_chunks: int = 0


@dataclass(frozen=True)
class Truncate:
    """Send ``after_chunks`` chunks and half of the next line, then drop the connection."""

    reply: Spoken | Written = Spoken()
    after_chunks: int = 3


@dataclass(frozen=True)
class Corrupt:
    """Replace chunk ``at`` with ``line`` (malformed JSON, an error object…) and go on streaming."""

    reply: Spoken | Written = Spoken()
    at: int = 2
    line: str = 'data: {"choices": [{"index": 0, "delta": {"content": "oops"\n\n'


@dataclass(frozen=True)
class Flood:
    """Send ``after_chunks`` chunks, then ``piece`` over and over (``total_bytes`` in all) without ending an event."""

    piece: bytes
    total_bytes: int
    reply: Spoken | Written = Spoken()
    after_chunks: int = 2


@dataclass(frozen=True)
class Overflow:
    """Answer as the fork does to a prompt of ``text_tokens`` (+ ``audio_tokens`` once expanded) that is too long."""

    text_tokens: int
    """Prompt tokens the tokenizer made, one ``<audio_patch>`` per audio item."""
    audio_tokens: int = 0
    """Tokens the audio items add once the encoder's embeddings replace their placeholders."""
    max_model_len: int = MAX_MODEL_LEN
    """The server's context length."""


Behaviour = Spoken | Written | Fail | Hang | Truncate | Corrupt | Flood | Overflow
Script = Behaviour | Callable[[dict[str, Any]], Behaviour]


# --- the fork's prompt, as text ----------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """A message's content as the fork's ``string`` content format joins it: placeholders first, then texts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    placeholders = ["<audio_patch>" for item in content if item.get("type") == "input_audio"]
    texts = [str(item.get("text", "")) for item in content if item.get("type") == "text"]
    return "\n".join([*placeholders, *texts])


def _interleaved(tts_text: str, tts_audio: str) -> str:
    """``<tts_start>``, one text token then four audio tokens (pads for the shorter side), ``<tts_end>``."""
    text = list(tts_text)
    audio = re.findall(r"<audio_\d+>", tts_audio)
    groups = max(math.ceil(len(audio) / 4), len(text))
    text += [_TTS_PAD] * (groups - len(text))
    audio += [_AUDIO_PAD] * (4 * groups - len(audio))
    return _TTS_START + "".join(text[i] + "".join(audio[4 * i : 4 * i + 4]) for i in range(groups)) + _TTS_END


def render_prompt(body: dict[str, Any]) -> str:
    """Lay a chat request out as the fork's ``step_audio_2`` tokenizer does, before tokenising."""
    messages = body["messages"]
    parts: list[str] = []
    if body.get("tools"):
        system = messages[0]["content"] + _EOS if messages and messages[0]["role"] == "system" else ""
        parts.append(f"<|BOT|>system\n{system}<|BOT|>tool_json_schemas\n")
        parts.append(json.dumps(body["tools"], ensure_ascii=False) + _EOS)
    elif messages and messages[0]["role"] == "system":
        parts.append(f"<|BOT|>system\n{messages[0]['content']}{_EOS}")
    for message in messages[1:]:
        role, content = message["role"], _content_text(message.get("content"))
        if role != "assistant":
            parts.append(f"<|BOT|>{role}\n{content}{_EOS}")
            continue
        parts.append("<|BOT|>assistant\n")
        tts = message.get("tts_content")
        parts.append(content if tts is None else _interleaved(tts["tts_text"], tts["tts_audio"]) + content)
        for call in message.get("tool_calls") or ():
            # vLLM json.loads the arguments string before the template json.dumps it again.
            arguments = json.dumps(json.loads(call["function"]["arguments"]), ensure_ascii=False)
            parts.append(f"{_CALL_OPEN}function\n{call['function']['name']}\n{arguments}{_CALL_CLOSE}")
        parts.append(_EOS)
    if body.get("add_generation_prompt"):
        parts.append("<|BOT|>assistant\n")
    if body.get("continue_final_message"):
        # The final message is left open: everything after its content goes.
        final = _content_text(messages[-1].get("content")).strip()
        last = max((i for i, part in enumerate(parts) if final in part), default=-1)
        parts = parts[: last + 1]
    return "".join(parts)


def prompt_lengths(body: dict[str, Any]) -> tuple[int, int]:
    """Estimate the prompt's tokens as the tokenizer gives them, and with the audio expanded.

    Special tokens count one each, other text one per three UTF-8 bytes; an audio item adds 12.5 tokens a
    second plus ``<audio_start>``/``<audio_end>``.
    """
    prompt = render_prompt(body)
    specials = len(_SPECIAL.findall(prompt))
    text = math.ceil(len(_SPECIAL.sub("", prompt).encode("utf-8")) / 3) + specials
    audio = 0
    for message in body["messages"]:
        for item in message.get("content") if isinstance(message.get("content"), list) else ():
            if item.get("type") == "input_audio":
                seconds = len(item["input_audio"]["data"]) * 3 / 4 / 32_000
                audio += math.ceil(seconds * _AUDIO_TOKENS_PER_SECOND) + 1  # +2 markers, -1 placeholder
    return text, text + audio


def overflow_for(body: dict[str, Any], max_model_len: int) -> Overflow | None:
    """The fork's failure for a request over ``max_model_len``, or None when it fits."""
    text, expanded = prompt_lengths(body)
    if expanded > max_model_len:
        return Overflow(text, expanded - text, max_model_len)
    return None


def overflow_status(overflow: Overflow) -> tuple[int, dict[str, Any]] | None:
    """The HTTP 400 the fork answers when the text tokens alone fill the context, else None."""
    room = overflow.max_model_len - overflow.text_tokens
    if room >= 1:
        return None
    # get_max_tokens() leaves max_model_len - prompt tokens, and SamplingParams refuses anything below 1.
    return 400, _error_body(f"max_tokens must be at least 1, got {room}.")


def overflow_event(overflow: Overflow) -> str:
    """The SSE error event the fork sends when the expanded prompt is over the context length."""
    length = overflow.text_tokens + overflow.audio_tokens
    message = (
        f"The decoder prompt (length {length}) is longer than the maximum model length of "
        f"{overflow.max_model_len}. Make sure that `max_model_len` is no smaller than the number of text "
        "tokens plus multimodal tokens. For image inputs, the number of image tokens depends on the number "
        "of images, and possibly their aspect ratios as well."
    )
    # The stream's own error events go through json.dumps, not pydantic: default separators, ASCII only.
    return f"data: {json.dumps(_error_body(message))}\n\n"


def _error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}


# --- the stream ---------------------------------------------------------------------------------------


def answer_tokens(reply: Spoken | Written) -> list[str]:
    """The tokens the model writes for a reply, as text, ending with the stop token."""
    tokens: list[str] = []
    if isinstance(reply, Spoken):
        # The prompt ends in <tts_start>; the model interleaves 1 text : 4 audio and pads the shorter side.
        inner = _interleaved(reply.text, "".join(f"<audio_{code}>" for code in reply.codes))
        tokens += re.findall(r"<[a-z_]+\d*>|.", inner[len(_TTS_START) :], flags=re.DOTALL)
        tokens += list(reply.after)
    else:
        tokens += [reply.text[i : i + 2] for i in range(0, len(reply.text), 2)]
    for call in reply.calls:
        tokens += [_CALL_OPEN, "function", "\n", call.name, "\n"]
        step = max(1, math.ceil(len(call.arguments) / 3))
        tokens += [call.arguments[i : i + step] for i in range(0, len(call.arguments), step)]
        tokens.append(_CALL_CLOSE)
    tokens.append(_EOS)
    return tokens


@dataclass
class _ToolCallState:
    """The fork's ``step_audio_2`` tool parser, reduced to what it sends."""

    calls: Sequence[FakeCall]
    index: int = -1
    inside: bool = False
    body: str = ""
    name_sent: bool = False
    arguments_sent: bool = False
    called: bool = False
    """A name was sent: the fork then ends the reply with ``finish_reason: "tool_calls"``."""

    def delta(self, text: str) -> dict[str, Any] | None:
        """The delta for one token of text, or None when the fork sends no chunk for it."""
        if text == _CALL_OPEN:
            self.index, self.inside, self.body = self.index + 1, True, ""
            self.name_sent = self.arguments_sent = False
            return None
        if not self.inside:
            return {"content": text}
        if text == _CALL_CLOSE:
            self.inside = False
            return None
        self.body += text
        parts = self.body.strip().split("\n", 2)
        if len(parts) < 3:
            return None
        _, name, raw = parts
        try:
            arguments = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            arguments = None
            if self.name_sent:
                return None
        if not self.name_sent:
            self.name_sent = self.called = True
            call_id = self.calls[self.index].call_id
            return {"tool_calls": [_call_delta(self.index, call_id=call_id, name=name)]}
        if arguments and not self.arguments_sent:
            self.arguments_sent = True
            dumped = json.dumps(arguments, ensure_ascii=False)
            return {"tool_calls": [_call_delta(self.index, arguments=dumped)]}
        return None


def _call_delta(
    index: int, *, call_id: str | None = None, name: str | None = None, arguments: str | None = None
) -> Any:
    return {
        "id": call_id,
        "type": "function" if call_id else None,
        "index": index,
        "function": {"name": name, "arguments": arguments},
    }


def _tts_delta(token: str, ended: bool) -> dict[str, str]:
    """``tts_content`` of one token of a spoken answer: pads, markers and anything after ``<tts_end>`` blank."""
    if ended or token in (_TTS_START, _TTS_END, _TTS_PAD, _AUDIO_PAD, _EOS):
        return {"tts_text": "", "tts_audio": ""}
    if token.startswith("<audio_"):
        return {"tts_text": "", "tts_audio": token}
    return {"tts_text": token, "tts_audio": ""}


def _chunk(chunk_id: str, created: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    full_delta = {
        "role": None,
        "content": delta.get("content"),
        "reasoning_content": None,
        "tool_calls": delta.get("tool_calls", []),
        "tts_content": delta.get("tts_content", {}),
    }
    choice = {
        "index": 0,
        "delta": full_delta,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "token_ids": None,
    }
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "choices": [choice],
        "usage": None,
        "prompt_token_ids": None,
    }


def stream_chunks(reply: Spoken | Written, *, tools: bool | None = None) -> list[dict[str, Any]]:
    """Return the chunks of a reply as the fork streams them, finish reason included.

    ``tools`` says whether the request had tools (the tool parser runs only then); by default, whether the
    reply calls any.
    """
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    first = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        ],
        "prompt_token_ids": None,
    }
    chunks = [first]
    parser = _ToolCallState(reply.calls) if (bool(reply.calls) if tools is None else tools) else None
    spoken = isinstance(reply, Spoken)
    ended = False
    tokens = answer_tokens(reply)
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        text = "" if last else token  # the stop token is not detokenised
        delta = parser.delta(text) if parser is not None else {"content": text}
        if delta is None:
            continue
        if spoken:
            delta = {**delta, "content": "", "tts_content": _tts_delta(token, ended)}
            ended = ended or token == _TTS_END
        if last:
            reason = "tool_calls" if parser is not None and parser.called else "stop"
            chunks.append(_chunk(chunk_id, created, delta, reason))
        else:
            chunks.append(_chunk(chunk_id, created, delta))
    return chunks


def sse_line(chunk: dict[str, Any]) -> bytes:
    """One chunk as the fork writes it: pydantic's compact JSON, UTF-8 kept."""
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


# --- request checks -------------------------------------------------------------------------------------


def _check_audio(item: dict[str, Any], where: str) -> list[str]:
    audio = item.get("input_audio")
    if not isinstance(audio, dict) or audio.get("format") != "wav" or not isinstance(audio.get("data"), str):
        return [f"{where}: input_audio must be {{data: base64 WAV, format: wav}}"]
    try:
        with wave.open(io.BytesIO(base64.b64decode(audio["data"], validate=True))) as wav:
            channels, width, rate, frames = wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()
    except (binascii.Error, wave.Error, EOFError) as err:
        return [f"{where}: input_audio is not a base64 WAV ({err})"]
    problems = []
    if (channels, width, rate) != (1, 2, 16_000):
        problems.append(f"{where}: audio must be 16 kHz mono int16, got {rate} Hz, {channels} ch, {8 * width} bit")
    elif not 0 < frames / rate <= 25.0:
        problems.append(f"{where}: audio chunk of {frames / rate:.2f} s; chunks must be 0 to 25 s")
    return problems


def _check_human(content: Any, where: str) -> list[str]:
    if isinstance(content, str):
        return [] if content else [f"{where}: empty text"]
    if not isinstance(content, list) or not content:
        return [f"{where}: content must be a string or a list of items"]
    problems: list[str] = []
    seen_text = False
    for j, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "input_audio":
            if seen_text:
                problems.append(f"{where}[{j}]: audio must come before text")
            problems += _check_audio(item, f"{where}[{j}]")
        elif kind == "text" and isinstance(item.get("text"), str):
            seen_text = True
        else:
            problems.append(f"{where}[{j}]: unknown item {item!r:.80}")
    return problems


def _check_assistant(message: dict[str, Any], where: str, call_ids: set[str]) -> list[str]:
    problems: list[str] = []
    tts = message.get("tts_content")
    if tts is not None:
        if not (
            isinstance(tts, dict) and isinstance(tts.get("tts_text"), str) and isinstance(tts.get("tts_audio"), str)
        ):
            problems.append(f"{where}: tts_content must have tts_text and tts_audio strings")
        elif not _AUDIO_TOKENS.fullmatch(tts["tts_audio"]):
            problems.append(f"{where}: tts_audio must be <audio_N> tokens only")
    elif not isinstance(message.get("content"), str):
        problems.append(f"{where}: an earlier answer needs content or tts_content")
    if message.get("content") == "<tts_start>":
        problems.append(f"{where}: a <tts_start> prefill left in the history")
    for k, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        if call.get("type") != "function" or not isinstance(call.get("id"), str) or not function.get("name"):
            problems.append(f"{where}.tool_calls[{k}]: needs id, type function and a name")
            continue
        call_ids.add(call["id"])
        try:
            if not isinstance(json.loads(function.get("arguments")), dict):
                raise ValueError
        except (TypeError, ValueError):
            # The fork json.loads these to render the turn; anything else is a 400 there too.
            problems.append(f"{where}.tool_calls[{k}]: arguments must be a JSON object string")
    return problems


def check_request(body: Any, model: str = MODEL) -> list[str]:
    """Return what is wrong with a chat request, measured against the fork's documented format."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems: list[str] = []
    if body.get("model") != model:
        problems.append(f"model {body.get('model')!r} is not served")
    if body.get("stream") is not True:
        problems.append("stream must be true")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] <= 0:
        problems.append("max_tokens must be a positive integer")
    if body.get("skip_special_tokens") is not False:
        problems.append("skip_special_tokens must be false for the audio and tool parsers")
    tools = body.get("tools")
    if tools is not None:
        for i, tool in enumerate(tools if isinstance(tools, list) else [None]):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not (
                isinstance(function, dict)
                and tool.get("type") == "function"
                and isinstance(function.get("name"), str)
                and isinstance(function.get("description"), str)
                and isinstance(function.get("parameters"), dict)
                and function["parameters"].get("type") == "object"
            ):
                problems.append(f"tools[{i}] must be {{type: function, function: {{name, description, parameters}}}}")
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return [*problems, "messages must hold a system turn and at least one more"]
    if messages[0].get("role") != "system" or not isinstance(messages[0].get("content"), str):
        problems.append("messages[0] must be the system prompt")
    if messages[1].get("role") != "human":
        problems.append("the conversation must start with a human turn")
    prefill = messages[-1].get("role") == "assistant" and messages[-1].get("content") == "<tts_start>"
    call_ids: set[str] = set()
    for i, message in enumerate(messages[1 : len(messages) - prefill], start=1):
        where, role = f"messages[{i}]", message.get("role")
        if role not in _ROLES or role == "system":
            problems.append(f"{where}: unexpected role {role!r}")
        elif role == "human":
            problems += _check_human(message.get("content"), where)
        elif role == "assistant":
            problems += _check_assistant(message, where, call_ids)
        elif role == "input":
            # The fork ignores tool_call_id when it lays out an input turn; one that is sent must still fit.
            if "tool_call_id" in message and message["tool_call_id"] not in call_ids:
                problems.append(f"{where}: tool_call_id {message.get('tool_call_id')!r} answers no earlier call")
            content = message.get("content")
            if not isinstance(content, list) or not all(
                isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str) for c in content
            ):
                problems.append(f"{where}: input content must be text items")
    if prefill:
        if body.get("continue_final_message") is not True or body.get("add_generation_prompt") is not False:
            problems.append("a <tts_start> prefill needs continue_final_message true and add_generation_prompt false")
    else:
        if messages[-1].get("role") not in ("human", "input"):
            problems.append("without a prefill the last turn must be the user's or a tool result")
        if body.get("continue_final_message") is True or body.get("add_generation_prompt") is False:
            problems.append("a text answer needs the server's generation prompt")
    return problems


# --- the server --------------------------------------------------------------------------------------------
# --- the server --------------------------------------------------------------------------------------------


class FakeVllmServer:
    """An aiohttp server on 127.0.0.1 that plays a script of behaviours, one per chat request."""

    def __init__(
        self,
        *,
        model: str = MODEL,
        api_key: str | None = None,
        default: Script | None = None,
        max_model_len: int | None = None,
    ) -> None:
        self.model = model
        self.max_model_len = max_model_len
        """Context length in tokens: a longer prompt fails as the fork fails it. None: no limit."""
        self.api_key = api_key
        self.script: deque[Script] = deque()
        """Behaviours for the next chat requests, in order; ``default`` when empty."""
        self.default: Script = default or Spoken()
        self.requests: list[dict[str, Any]] = []
        """Bodies of every chat request received."""
        self.peers: list[Any] = []
        """Client address of every chat request (the same one twice means a reused connection)."""
        self.headers: list[dict[str, str]] = []
        """Headers of every request received (chat and models)."""
        self.problems: list[str] = []
        """Everything wrong with the requests received."""
        self.overflows: list[str] = []
        """How each prompt too long was refused: ``"http 400"`` or ``"error event"``."""
        self.disconnects = 0
        """Streams the client closed before the end."""
        self.disconnected = asyncio.Event()
        self.models_status = 200
        """Status of GET /v1/models (set to 500 to fail health checks)."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """URL up to and including /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 (a free port unless one is given)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Close the listener and every open stream."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeVllmServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _authorized(self, request: web.Request) -> bool:
        self.headers.append(dict(request.headers))
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        if self.models_status != 200:
            return web.json_response({"error": {"message": "unhealthy"}}, status=self.models_status)
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            self.problems.append("the body is not JSON")
            return web.json_response({"error": {"message": "bad JSON"}}, status=400)
        self.requests.append(body)
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        problems = check_request(body, self.model)
        if problems:
            self.problems.extend(problems)
            return web.json_response({"error": {"message": "; ".join(problems), "code": 400}}, status=400)
        # A prompt too long fails whatever the model would have said: the script waits for the next request.
        behaviour: Behaviour | None = None
        if self.max_model_len is not None:
            behaviour = overflow_for(body, self.max_model_len)
        if behaviour is None:
            script = self.script.popleft() if self.script else self.default
            behaviour = script(body) if callable(script) else script
        if isinstance(behaviour, Overflow):
            refusal = overflow_status(behaviour)
            self.overflows.append("error event" if refusal is None else "http 400")
            if refusal is not None:
                status, error = refusal
                return web.json_response(error, status=status, dumps=_compact)
        if isinstance(behaviour, Fail):
            if isinstance(behaviour.body, str):
                return web.Response(status=behaviour.status, text=behaviour.body, headers=behaviour.headers)
            return web.json_response(behaviour.body, status=behaviour.status, headers=behaviour.headers)
        return await self._stream(request, behaviour, tools=bool(body.get("tools")))

    async def _stream(
        self,
        request: web.Request,
        behaviour: Spoken | Written | Hang | Truncate | Corrupt | Flood | Overflow,
        *,
        tools: bool,
    ) -> web.StreamResponse:
        delay = 0.0
        if isinstance(behaviour, Overflow):
            # The engine refuses the prompt on the first read of its output, after the 200 went out.
            lines = [overflow_event(behaviour).encode(), b"data: [DONE]\n\n"]
        else:
            reply = behaviour if isinstance(behaviour, Spoken | Written) else behaviour.reply
            lines = [sse_line(c) for c in stream_chunks(reply, tools=tools)] + [b"data: [DONE]\n\n"]
            delay = reply.token_delay_seconds if isinstance(reply, Spoken) else 0.0
        stop_at: int | None = None
        if isinstance(behaviour, Hang | Truncate | Flood):
            stop_at = behaviour.after_chunks
        elif isinstance(behaviour, Corrupt):
            lines[behaviour.at] = behaviour.line.encode()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for i, line in enumerate(lines):
                if i == stop_at:
                    if isinstance(behaviour, Truncate):
                        await response.write(line[: len(line) // 2])
                        assert request.transport is not None
                        request.transport.close()
                        return response
                    if isinstance(behaviour, Flood):
                        for _ in range(behaviour.total_bytes // len(behaviour.piece)):
                            await response.write(behaviour.piece)
                        await response.write_eof()
                        return response
                    # The runner cancels a handler whose client went away; until then it waits for ever.
                    await asyncio.Event().wait()
                if delay:
                    await asyncio.sleep(delay)
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError
                await response.write(line)
            await response.write_eof()
        except asyncio.CancelledError:
            self._note_disconnect()
            raise
        except ConnectionError:
            self._note_disconnect()
        return response

    def _note_disconnect(self) -> None:
        self.disconnects += 1
        self.disconnected.set()


def _compact(value: Any) -> str:
    # Starlette's JSONResponse: compact separators, UTF-8 kept.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _serve(port: int, token_delay_seconds: float, text: str, codes: int, max_model_len: int | None) -> None:
    server = FakeVllmServer(
        default=Spoken(text, tuple(range(codes)), token_delay_seconds=token_delay_seconds), max_model_len=max_model_len
    )
    await server.start(port)
    print(f"fake vLLM server on {server.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    """Serve the fake until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="pause before each streamed token")
    parser.add_argument("--text", default="今天晴，最高二十五度，适合出门。")
    parser.add_argument("--codes", type=int, default=100, help="speech codes per answer (25 per second)")
    parser.add_argument("--max-model-len", type=int, default=None, help="refuse longer prompts as the fork does")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.token_delay_ms / 1000, args.text, args.codes, args.max_model_len))


if __name__ == "__main__":
    main()
