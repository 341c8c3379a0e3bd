"""The Wyoming server on the wyoming library's own server and event-handler classes, with our limits.

Imported only when the server runs (the library is an optional dependency). Two things differ from the
library's ``AsyncTcpServer`` and ``AsyncEventHandler``, on purpose:

- the server installs no SIGTERM handler (the library's ``run`` would replace the daemon's own, which
  saves unsaid announcements), and caps the header line it reads;
- a connection refuses peers outside ``wyoming.allowed_clients`` and beyond ``max_connections``, reads each
  message through :func:`.wyoming.read_event` (sizes checked before anything is read), and is closed when
  it sends no complete message for ``idle_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import TYPE_CHECKING

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer, HandlerFactory
from wyoming.tts import Synthesize

from .commands import MAX_COMMAND_CHARS
from .wyoming import MAX_HEADER_BYTES, peer_allowed, read_event

if TYPE_CHECKING:
    from .wyoming import WyomingServer

_LOGGER = logging.getLogger("assistant.integrations.wyoming")


class TcpServer(AsyncServer):
    """A TCP server for the library's handlers; ``sockets`` are known once started (port 0 works)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def sockets(self) -> tuple[object, ...]:
        """The listening sockets (empty before ``start``)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    async def start(self, handler_factory: HandlerFactory) -> None:
        """Listen without blocking; each connection runs its handler in a task of the library's."""
        self._server = await asyncio.start_server(
            partial(self._handler_callback, handler_factory), self.host, self.port, limit=MAX_HEADER_BYTES
        )

    async def run(self, handler_factory: HandlerFactory) -> None:
        """Listen until cancelled."""
        await self.start(handler_factory)
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self) -> None:
        """Stop listening and ask every handler to stop."""
        if self._server is not None:
            self._server.close()
        await super().stop()


class Connection(AsyncEventHandler):
    """One client: Home Assistant asking a question, asking for speech, or describing us."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, agent: WyomingServer) -> None:
        super().__init__(reader, writer)
        self._agent = agent
        self.peer = writer.get_extra_info("peername")

    async def run(self) -> None:
        """Serve until the client leaves, misbehaves or idles; the daemon's limits apply throughout."""
        agent, settings = self._agent, self._agent.settings
        task = asyncio.current_task()
        assert task is not None
        refusal = (
            "not in wyoming.allowed_clients"
            if not peer_allowed(self.peer, settings.allowed_clients)
            else f"already serving wyoming.max_connections ({settings.max_connections})"
            if len(agent.connections) >= settings.max_connections
            else None
        )
        if refusal is not None:
            _LOGGER.warning("refused a Wyoming connection from %s: %s", self.peer, refusal)
            await self._close()
            return
        agent.connections.add(task)
        _LOGGER.info("Wyoming client connected from %s", self.peer)
        try:
            while True:
                # Only the wait for a message is bounded: a question may take the model far longer to answer.
                async with asyncio.timeout(settings.idle_timeout_seconds):
                    event = await read_event(self.reader)
                if event is None or not await self.handle_event(event):
                    return
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            _LOGGER.info("Wyoming client %s went away: %s", self.peer, err)
        except TimeoutError:
            _LOGGER.info(
                "closing Wyoming connection from %s: no complete message in %.0f s",
                self.peer,
                settings.idle_timeout_seconds,
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
            # A malformed frame: this client is confused, the server is fine.
            _LOGGER.warning("closing Wyoming connection from %s after a malformed message: %s", self.peer, err)
        finally:
            agent.connections.discard(task)
            await self._close()

    async def handle_event(self, event: Event) -> bool:
        """Answer one message; True keeps the connection."""
        agent = self._agent
        if Describe.is_type(event.type):
            await self.write_event(agent.info().event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Synthesize.is_type(event.type):
            await agent.synthesize(Synthesize.from_event(event).text, self.writer)
        elif Transcript.is_type(event.type):
            text = (Transcript.from_event(event).text or "").strip()
            if not text:
                await self.write_event(NotHandled(text="I did not get a question.").event())
            elif len(text) > MAX_COMMAND_CHARS:
                too_long = f"The question is too long (over {MAX_COMMAND_CHARS} characters)."
                await self.write_event(NotHandled(text=too_long).event())
            else:
                answer, ok = await agent.ask(text)
                await self.write_event((Handled if ok else NotHandled)(text=answer).event())
        else:
            _LOGGER.debug("ignoring Wyoming event %s", event.type)
        return True

    async def _close(self) -> None:
        await self.disconnect()
        self.writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self.writer.wait_closed()
