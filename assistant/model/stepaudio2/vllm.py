"""The ``vllm`` backend: Step-Audio 2 mini behind StepFun's OpenAI-compatible server, shared by many rooms.

One :class:`VllmSpeechModel` serves every room of the box (or every satellite of a GPU server): each
conversation id has its own :class:`History`, and a request is built from a snapshot of that history, so
concurrent turns of different rooms never see each other's messages. A round's turns are added to the
history only once the reply is complete (or, when the user barges in, with the part already heard); a
failed round adds nothing, so the turn's retry sends the same request again.

Failure policy (the turn retries a recoverable ``ModelError`` once when nothing was yielded yet):

* connection refused or reset before the request was sent: retried here ``retries`` times with
  jittered backoff, because these fail in milliseconds;
* connect timeouts, no first token within ``first_token_timeout_seconds``, silence of
  ``idle_timeout_seconds`` mid-reply, a reply longer than ``timeout_seconds``, HTTP 408/429/5xx, a
  truncated or malformed stream: ``ModelError(recoverable=True)`` at once, so slow failures are not
  multiplied by two layers of retries;
* HTTP 401/403 (API key), 404 (model name) and other 4xx: ``ModelError(recoverable=False)``;
* a prompt over the server's context length, in any of the shapes StepFun's fork or upstream vLLM
  word it (``vllm_protocol.is_context_overflow``: an HTTP 400 before the stream or an error event in it):
  the room starts afresh (a tool round keeps its own question and calls) and the error is recoverable,
  so the turn's retry goes out with the shorter prompt.

Every change of reachability is published as ``ConnectionChanged(service="model")``.
Cancelling the iteration (barge-in) closes the HTTP stream, and vLLM aborts the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import random
import zoneinfo
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn

import httpx
from httpx_sse import EventSource, SSEError

from ...config import PersonaSettings, VllmModelSettings
from ...errors import ModelError
from ...events import ConnectionChanged, Event
from ...httpbody import read_at_most, retry_after_seconds
from ...ports import Clock, ModelDone, ModelEvent, ModelRequest
from ...tasks import MonotonicClock, backoff, next_within
from .prompt import system_prompt
from .vllm_protocol import (
    MAX_EVENT_CHARS,
    History,
    PromptTooLong,
    ReplyAssembler,
    StreamError,
    build_payload,
    is_context_overflow,
    tool_result_messages,
    user_message,
)

_LOGGER = logging.getLogger(__name__)

SERVICE = "model"
"""``ConnectionChanged.service`` of the model server."""

_HEALTH_READ_SECONDS = 5.0
_DRAIN_SECONDS = 0.2
_MAX_ERROR_BYTES = 65_536
"""Most bytes of an error reply read for its message; the rest is not worth the memory."""
_MAX_EVENT_BYTES = 4 * MAX_EVENT_CHARS + 1024
"""Most bytes one SSE event may take on the wire: its longest data, every character 4 UTF-8 bytes, plus field names."""
_EVENT_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r")


class _ContextTooLong(Exception):
    """The prompt no longer fits the server's context window."""


class VllmSpeechModel:
    """A ``SpeechModel`` that streams Step-Audio 2 mini answers from a vLLM server."""

    def __init__(
        self,
        settings: VllmModelSettings,
        persona: PersonaSettings,
        publish: Callable[[Event], None],
        *,
        clock: Clock | None = None,
        today: Callable[[], datetime.date] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._persona = persona
        self._publish = publish
        self._clock: Clock = clock or MonotonicClock()
        self._today = today or _today_in(persona.timezone)
        self._rng = rng or random.Random()
        self._histories: dict[str, History] = {}
        self._before_speculation: dict[str, list[dict[str, Any]]] = {}
        """Room → its history before a speculative round, until the next round or a retract."""
        self._connected: bool | None = None
        # Credentials in the URL (http://user:pass@host) must not reach logs or spoken errors.
        self._url = str(httpx.URL(settings.base_url).copy_with(userinfo=b""))
        headers = {}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            # Reads are bounded per chunk below (first token, idle, whole reply), not by httpx.
            timeout=httpx.Timeout(None, connect=settings.connect_timeout_seconds),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            transport=transport,
            # The server is on the LAN; a desktop proxy from the environment would only get in the way.
            trust_env=False,
        )

    @property
    def connected(self) -> bool | None:
        """Whether the server was usable at the last contact; None before the first one."""
        return self._connected

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        """Return a copy of a room's history, as the server will read it next time."""
        history = self._histories.get(conversation_id)
        return [dict(m) for m in history.messages] if history else []

    def set_dialect(self, dialect: str) -> None:
        """Answer in another dialect from the next round on (the system prompt changes)."""
        self._persona = self._persona.model_copy(update={"dialect": dialect})

    def forget(self, conversation_id: str) -> None:
        """Drop the history of a conversation."""
        self._histories.pop(conversation_id, None)
        self._before_speculation.pop(conversation_id, None)

    def retract(self, conversation_id: str) -> None:
        """Put the room's history back as it was before its last round, if that round was speculative."""
        before = self._before_speculation.pop(conversation_id, None)
        history = self._histories.get(conversation_id)
        if before is not None and history is not None:
            history.messages[:] = before

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # --- answering --------------------------------------------------------------------------------

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream the answer to one request; cancelling the iteration stops generation on the server."""
        conversation = request.conversation_id
        history = self._histories.setdefault(conversation, History(self._settings.history_tokens))
        if request.speculative:
            self._before_speculation[conversation] = [dict(m) for m in history.messages]
        else:
            self._before_speculation.pop(conversation, None)
        turn = self._turn_messages(history, request)
        payload = build_payload(
            self._settings,
            system=system_prompt(self._persona, self._today(), with_tools=bool(request.tools)),
            tools=request.tools,
            messages=[*history.messages, *turn],
            speak=request.speak,
        )
        _LOGGER.debug(
            "asking %s for room %s: %d history messages (~%d tokens), %d tools, speak=%s",
            self._settings.model,
            conversation,
            len(history.messages),
            history.tokens(),
            len(request.tools),
            request.speak,
        )
        reply = ReplyAssembler(spoken=request.speak)
        interrupted = False
        try:
            async for event in self._stream(payload, reply):
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            interrupted = True
            raise
        except _ContextTooLong:
            if request.tool_results:
                history.drop_earlier_exchanges()
            else:
                self.forget(conversation)
            raise ModelError(
                "the conversation grew longer than the model's context; starting a fresh one", recoverable=True
            ) from None
        finally:
            # The user heard the start of this answer before interrupting; the model should know it too.
            if interrupted and (partial := reply.assistant_message()) is not None:
                history.extend([*turn, partial])
        calls = reply.tool_calls(request.tools)
        history.extend([*turn, reply.assistant_message(calls) or reply.empty_message()])
        for call in calls:
            if call.error:
                _LOGGER.warning("model called %r with unusable arguments: %s", call.name, call.error)
            yield call
        yield ModelDone("tool_calls" if calls else reply.finish_reason or "stop")

    def _turn_messages(self, history: History, request: ModelRequest) -> list[dict[str, Any]]:
        try:
            if request.tool_results:
                return tool_result_messages(request.tool_results)
            history.close_open_tool_calls()
            return [user_message(audio=request.audio, text=request.text)]
        except ValueError as err:
            raise ModelError(f"cannot ask the model: {err}") from err

    async def _stream(self, payload: dict[str, Any], reply: ReplyAssembler) -> AsyncIterator[ModelEvent]:
        settings = self._settings
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_deadline = started + settings.first_token_timeout_seconds
        last_deadline = started + settings.timeout_seconds
        async with contextlib.AsyncExitStack() as stack:
            response = await self._open(stack, payload, first_deadline)
            # httpx-sse buffers an event whole before our per-event limit sees it: cap it on the wire instead.
            if isinstance(response.stream, httpx.AsyncByteStream):  # always, from an AsyncClient
                response.stream = _EventSizeLimit(response.stream, _MAX_EVENT_BYTES)
            events = EventSource(response).aiter_sse()
            stack.push_async_callback(events.aclose)
            waiting_first = True
            while True:
                now = loop.time()
                if reply.done:
                    # Reading to the end of the body lets httpx reuse the connection for the next turn.
                    limit = now + _DRAIN_SECONDS
                elif waiting_first:
                    limit = first_deadline
                else:
                    limit = now + settings.idle_timeout_seconds
                try:
                    sse = await next_within(events, max(0.0, min(limit, last_deadline) - now))
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if reply.done:
                        break
                    if loop.time() >= last_deadline - 1e-3:
                        what = f"did not finish its reply within {settings.timeout_seconds:g} s"
                    elif waiting_first:
                        what = f"sent no token within {settings.first_token_timeout_seconds:g} s"
                    else:
                        what = f"went silent for {settings.idle_timeout_seconds:g} s mid-reply"
                    raise ModelError(f"the model server {what}", recoverable=True) from None
                except SSEError as err:
                    raise ModelError(f"the model server does not stream: {err}") from None
                except StreamError as err:
                    raise ModelError(str(err), recoverable=True) from None
                except httpx.TransportError as err:
                    if reply.done:
                        break
                    self._mark(False, f"the connection broke mid-reply ({_describe(err)})")
                    raise ModelError("the model server broke off its reply", recoverable=True) from err
                if reply.done:
                    continue
                if waiting_first:
                    waiting_first = False
                    _LOGGER.debug("first chunk after %.3f s", loop.time() - started)
                try:
                    events_in_chunk = reply.feed(sse.data)
                except PromptTooLong as err:
                    raise _ContextTooLong(str(err)) from None
                except StreamError as err:
                    raise ModelError(str(err), recoverable=True) from None
                for event in events_in_chunk:
                    yield event
        if not reply.complete:
            raise ModelError("the model server's reply stopped short", recoverable=True)

    async def _open(self, stack: contextlib.AsyncExitStack, payload: dict[str, Any], deadline: float) -> httpx.Response:
        """Send the request and return the streaming response once its status is 200."""
        loop = asyncio.get_running_loop()
        delays = backoff(0.2, 2.0, self._rng)
        for attempt in range(self._settings.retries + 1):
            error_body = b""
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    response = await stack.enter_async_context(
                        self._client.stream(
                            "POST",
                            "chat/completions",
                            json=payload,
                            # Uncompressed, so the event size limit counts what the parser will hold.
                            headers={"Accept": "text/event-stream", "Accept-Encoding": "identity"},
                        )
                    )
                    if response.status_code != httpx.codes.OK:
                        error_body = await read_at_most(response, _MAX_ERROR_BYTES)
            except httpx.ConnectError as err:
                self._mark(False, f"cannot connect to {self._url} ({_describe(err)})")
                if attempt == self._settings.retries or loop.time() >= deadline:
                    raise ModelError(f"cannot reach the model server at {self._url}", recoverable=True) from err
                delay = next(delays)
                _LOGGER.info("model server refused the connection; retrying in %.2f s", delay)
                await self._clock.sleep(delay)
                continue
            except (TimeoutError, httpx.TimeoutException) as err:
                self._mark(False, f"no answer from {self._url} ({_describe(err)})")
                raise ModelError("the model server did not answer in time", recoverable=True) from None
            except httpx.TransportError as err:
                self._mark(False, f"the connection failed ({_describe(err)})")
                raise ModelError("the connection to the model server failed", recoverable=True) from err
            if response.status_code != httpx.codes.OK:
                self._refused(response.status_code, error_body, response.headers.get("retry-after"))
            self._mark(True, f"serving {self._settings.model}")
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _refused(self, status: int, body: bytes, retry_after: str | None = None) -> NoReturn:
        """Turn an HTTP error status into the right ``ModelError``."""
        message = _error_message(body)
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        if status in (401, 403):
            self._mark(False, f"the server refused the API key ({detail})")
            raise ModelError(f"the model server refused the API key ({detail})")
        if status == 404:
            raise ModelError(f"the model server does not serve {self._settings.model!r} ({detail})")
        if status == 400 and is_context_overflow(message):
            raise _ContextTooLong(message)
        if status in (408, 429) or status >= 500:
            if status >= 500:
                self._mark(False, f"the server failed ({detail})")
            raise ModelError(
                f"the model server is struggling ({detail})",
                recoverable=True,
                retry_after_seconds=retry_after_seconds(retry_after),
            )
        raise ModelError(f"the model server rejected the request ({detail})")

    # --- health -----------------------------------------------------------------------------------

    async def check_health(self) -> bool:
        """Ask the server which models it serves; publish ConnectionChanged when reachability changes."""
        url = self._url
        try:
            response = await self._client.get(
                "models", timeout=httpx.Timeout(_HEALTH_READ_SECONDS, connect=self._settings.connect_timeout_seconds)
            )
        except httpx.HTTPError as err:
            self._mark(False, f"cannot reach {url} ({_describe(err)})")
            return False
        if response.status_code in (401, 403):
            self._mark(False, f"{url} refused the API key (HTTP {response.status_code})")
            return False
        if response.status_code != httpx.codes.OK:
            self._mark(False, f"{url}/models answered HTTP {response.status_code}")
            return False
        try:
            served = [str(card["id"]) for card in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            self._mark(False, f"{url}/models did not list models; is this a vLLM server?")
            return False
        if self._settings.model not in served:
            self._mark(False, f"{url} serves {', '.join(served) or 'nothing'}, not {self._settings.model}")
            return False
        self._mark(True, f"serving {self._settings.model}")
        return True

    async def run_health_checks(self) -> None:
        """Check the server now and then until cancelled: every interval while up, with backoff while down."""
        interval = self._settings.health_interval_seconds
        delays: Iterator[float] | None = None
        while True:
            if await self.check_health():
                delays = None
                await self._clock.sleep(interval)
            else:
                delays = delays or backoff(1.0, interval, self._rng)
                await self._clock.sleep(next(delays))

    def _mark(self, connected: bool, detail: str) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if connected:
            _LOGGER.info("model server %s: %s", self._url, detail)
        else:
            _LOGGER.warning("model server unavailable: %s", detail)
        self._publish(ConnectionChanged(service=SERVICE, connected=connected, detail=detail))


def build_vllm_model(
    settings: VllmModelSettings, persona: PersonaSettings, publish: Callable[[Event], None]
) -> VllmSpeechModel:
    """Build the vLLM backend; run its ``check_health`` at start-up and ``run_health_checks`` as a service."""
    return VllmSpeechModel(settings, persona, publish)


def _today_in(timezone: str) -> Callable[[], datetime.date]:
    try:
        zone: datetime.tzinfo = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        _LOGGER.warning("unknown time zone %r; the model is told the date of the system clock", timezone)
        return datetime.date.today
    return lambda: datetime.datetime.now(zone).date()


class _EventSizeLimit(httpx.AsyncByteStream):
    """A response body that fails with ``StreamError`` once one SSE event grows past ``max_bytes``."""

    def __init__(self, inner: httpx.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        tail = b""  # the end of the previous piece: an event's blank line may straddle two pieces
        open_bytes = 0
        async for piece in self._inner:
            window = tail + piece
            ends = [at + len(end) for end in _EVENT_ENDS if (at := window.rfind(end)) >= 0]
            open_bytes = len(window) - max(ends) if ends else open_bytes + len(piece)
            if open_bytes > self._max_bytes:
                raise StreamError(f"the server sent an event of over {self._max_bytes} bytes")
            tail = window[-3:]
            yield piece

    async def aclose(self) -> None:
        await self._inner.aclose()


def _error_message(raw: bytes) -> str:
    """Return the server's own explanation of an error, short and on one line."""
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or error
        text = str(error)
    return " ".join(text.split())[:300]


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
