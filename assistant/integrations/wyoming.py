"""Serve Home Assistant over the Wyoming protocol as a conversation agent (a ``handle`` program).

Home Assistant is the TCP client: it sends ``describe`` and builds a conversation entity from our
``info``; each ``transcript`` it sends becomes an ``AskRequested`` on the bus, carrying a fresh turn id,
and the ``ReplyText`` of that turn goes back as ``handled`` once its ``TurnEnded`` arrives. The box thus
answers HA's Assist pipelines (typed or spoken at any other satellite) in its own words and dialect.
HA 2024.12 and newer use Wyoming handle programs; HA 2024.3 lists the service but ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..bus import Bus
from ..config import WyomingSettings
from ..events import AskRequested, ReplyText, TurnEnded, TurnFailed
from ..tasks import cancel_and_wait

if TYPE_CHECKING:
    from wyoming.event import Event as WyomingEvent
    from wyoming.info import Info

_LOGGER = logging.getLogger(__name__)

LANGUAGES = ["zh", "zh-CN", "zh-HK", "yue", "en"]
"""Languages HA may route to us; the model answers in the household's dialect either way."""


class WyomingServer:
    """A Wyoming TCP server; ``run`` serves until cancelled. ``port`` is the bound port once started."""

    def __init__(self, settings: WyomingSettings, bus: Bus, version: str, *, new_id: Callable[[], str] | None = None):
        self._settings = settings
        self._bus = bus
        self._version = version
        self._new_id = new_id or (lambda: f"wyoming-{uuid.uuid4().hex[:12]}")
        self._connections: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()
        self.port = settings.port

    async def started(self) -> int:
        """Wait until the server listens; return its port (useful with port 0 in tests)."""
        await self._started.wait()
        return self.port

    async def run(self) -> None:
        """Listen until cancelled, then close every connection."""
        server = await asyncio.start_server(self._connection, self._settings.host, self._settings.port)
        self.port = int(server.sockets[0].getsockname()[1])
        _LOGGER.info("Wyoming conversation agent listening on %s:%d", self._settings.host, self.port)
        self._started.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            for task in list(self._connections):
                await cancel_and_wait(task)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        _LOGGER.info("Wyoming client connected from %s", peer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            _LOGGER.info("Wyoming client %s went away: %s", peer, err)
        except (ValueError, KeyError, UnicodeDecodeError) as err:
            # A malformed frame: this client is confused, the server is fine.
            _LOGGER.warning("closing Wyoming connection from %s after a malformed message: %s", peer, err)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from wyoming.asr import Transcript
        from wyoming.event import async_read_event, async_write_event
        from wyoming.handle import Handled, NotHandled
        from wyoming.info import Describe
        from wyoming.ping import Ping, Pong

        while (event := await async_read_event(reader)) is not None:
            reply: WyomingEvent | None = None
            if Describe.is_type(event.type):
                reply = self.info().event()
            elif Ping.is_type(event.type):
                reply = Pong(text=Ping.from_event(event).text).event()
            elif Transcript.is_type(event.type):
                text = (Transcript.from_event(event).text or "").strip()
                if not text:
                    reply = NotHandled(text="I did not get a question.").event()
                else:
                    answer, ok = await self.ask(text)
                    reply = (Handled if ok else NotHandled)(text=answer).event()
            else:
                _LOGGER.debug("ignoring Wyoming event %s", event.type)
            if reply is not None:
                await async_write_event(reply, writer)

    async def ask(self, text: str) -> tuple[str, bool]:
        """Put a question on the bus and wait for its turn's answer; return (answer, ok)."""
        turn_id = self._new_id()
        replies = self._bus.subscribe(f"wyoming:{turn_id}", ReplyText, TurnFailed, TurnEnded)
        pieces: list[str] = []
        failure: str | None = None
        try:
            self._bus.publish(AskRequested(turn_id=turn_id, text=text, source="ha"))
            async with asyncio.timeout(self._settings.answer_timeout_seconds):
                async for envelope in replies:
                    event = envelope.event
                    if event.turn_id != turn_id:
                        continue
                    if isinstance(event, ReplyText):
                        pieces.append(event.text)
                    elif isinstance(event, TurnFailed):
                        failure = event.message
                    elif isinstance(event, TurnEnded):
                        break
        except TimeoutError:
            _LOGGER.warning("no answer to a Wyoming question within %.0f s", self._settings.answer_timeout_seconds)
            return "Sorry, the assistant took too long to answer.", False
        finally:
            self._bus.unsubscribe(replies)
        answer = "".join(pieces).strip()
        if failure is not None and not answer:
            return failure, False
        return answer, bool(answer)

    def info(self) -> Info:
        """What we tell HA in answer to ``describe``."""
        from wyoming.info import Attribution, HandleModel, HandleProgram, Info

        attribution = Attribution(name="Xiangyin", url="")
        model = HandleModel(
            name="step-audio-2-mini",
            attribution=Attribution(name="StepFun", url="https://github.com/stepfun-ai/Step-Audio2"),
            installed=True,
            description="Step-Audio 2 mini, answering in the household's dialect",
            version=self._version,
            languages=LANGUAGES,
        )
        program = HandleProgram(
            name=self._settings.name,
            attribution=attribution,
            installed=True,
            description="Xiangyin voice assistant",
            version=self._version,
            models=[model],
            supports_home_control=True,
        )
        return Info(handle=[program])
