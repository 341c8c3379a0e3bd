"""A fake of StepFun's vLLM server for Step-Audio 2: the documented request and streaming format, scripted.

Every request is checked against the shape the fork documents (base64 WAV chunks of at most 25 s at
16 kHz mono, OpenAI tools, earlier answers as ``tts_content``, ``input`` turns for tool results, the
``<tts_start>`` prefill with ``continue_final_message``); what is wrong goes to ``problems`` and gets an
HTTP 400, so a test asserts ``server.problems == []``. Replies stream like the fork: one delta per token,
``tts_content.tts_text`` / ``tts_content.tts_audio`` inside the spoken part, ``tool_calls`` with the
arguments as string diffs, a final ``finish_reason`` and ``data: [DONE]``.

Run ``python -m tests.vllm_fake --port 8000`` for a standalone server (the bench uses this).
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODEL = "step-audio-2-mini"
_AUDIO_TOKENS = re.compile(r"(<audio_\d{1,4}>)*")
_ROLES = {"system", "human", "assistant", "input"}


# --- scripted behaviours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeCall:
    """A tool call the fake model makes; ``arguments`` is raw text, so it may be malformed."""

    name: str
    arguments: str
    call_id: str = field(default_factory=lambda: f"chatcmpl-tool-{uuid.uuid4().hex}")


@dataclass(frozen=True)
class Spoken:
    """A spoken answer: text and speech codes interleaved 1 : 4, then tool calls."""

    text: str = "好的"
    codes: Sequence[int] = tuple(range(100, 108))
    calls: Sequence[FakeCall] = ()
    token_delay_seconds: float = 0.0


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


Behaviour = Spoken | Written | Fail | Hang | Truncate | Corrupt | Flood
Script = Behaviour | Callable[[dict[str, Any]], Behaviour]


# --- the stream ---------------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def _tool_call_deltas(calls: Sequence[FakeCall]) -> Iterator[dict[str, Any]]:
    for index, call in enumerate(calls):
        yield {
            "tool_calls": [{"index": index, "id": call.call_id, "type": "function", "function": {"name": call.name}}]
        }
        # The fork streams arguments as diffs of growing JSON; three pieces are enough to test joining.
        step = max(1, math.ceil(len(call.arguments) / 3))
        for start in range(0, len(call.arguments), step):
            yield {"tool_calls": [{"index": index, "function": {"arguments": call.arguments[start : start + step]}}]}


def stream_chunks(reply: Spoken | Written) -> list[dict[str, Any]]:
    """Return the chunks of a reply in the fork's streaming format, finish reason included."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    if isinstance(reply, Spoken):
        groups = max(len(reply.text), math.ceil(len(reply.codes) / 4))
        for i in range(groups):
            # Pads (<tts_pad>, <audio_6561>) are dropped by the audio parser and leave empty deltas.
            text = reply.text[i] if i < len(reply.text) else ""
            chunks.append(_chunk({"content": "", "tts_content": {"tts_text": text, "tts_audio": ""}}))
            for code in reply.codes[4 * i : 4 * i + 4]:
                chunks.append(_chunk({"content": "", "tts_content": {"tts_text": "", "tts_audio": f"<audio_{code}>"}}))
    else:
        for start in range(0, len(reply.text), 2):
            chunks.append(_chunk({"content": reply.text[start : start + 2]}))
    chunks.extend(_chunk(delta) for delta in _tool_call_deltas(reply.calls))
    chunks.append(_chunk({}, "tool_calls" if reply.calls else "stop"))
    return chunks


def _line(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


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
            if message.get("tool_call_id") not in call_ids:
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


class FakeVllmServer:
    """An aiohttp server on 127.0.0.1 that plays a script of behaviours, one per chat request."""

    def __init__(self, *, model: str = MODEL, api_key: str | None = None, default: Script | None = None) -> None:
        self.model = model
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
        script = self.script.popleft() if self.script else self.default
        behaviour = script(body) if callable(script) else script
        if isinstance(behaviour, Fail):
            if isinstance(behaviour.body, str):
                return web.Response(status=behaviour.status, text=behaviour.body)
            return web.json_response(behaviour.body, status=behaviour.status)
        return await self._stream(request, behaviour)

    async def _stream(
        self, request: web.Request, behaviour: Spoken | Written | Hang | Truncate | Corrupt | Flood
    ) -> web.StreamResponse:
        reply = behaviour if isinstance(behaviour, Spoken | Written) else behaviour.reply
        lines = [_line(c) for c in stream_chunks(reply)] + [b"data: [DONE]\n\n"]
        stop_at: int | None = None
        if isinstance(behaviour, Hang):
            stop_at = behaviour.after_chunks
        elif isinstance(behaviour, Truncate | Flood):
            stop_at = behaviour.after_chunks
        elif isinstance(behaviour, Corrupt):
            lines[behaviour.at] = behaviour.line.encode()
        delay = reply.token_delay_seconds if isinstance(reply, Spoken) else 0.0
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


async def _serve(port: int, token_delay_seconds: float, text: str, codes: int) -> None:
    server = FakeVllmServer(default=Spoken(text, tuple(range(codes)), token_delay_seconds=token_delay_seconds))
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
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.token_delay_ms / 1000, args.text, args.codes))


if __name__ == "__main__":
    main()
