"""Serve Home Assistant over the Wyoming protocol: the box as a conversation agent and a TTS voice.

Home Assistant is the TCP client: it sends ``describe`` and builds entities from our ``info``. Wyoming
has no password, so the server listens on loopback unless configured, and then only serves the clients
in ``wyoming.allowed_clients`` (the settings refuse an exposed host without that list).

- ``handle`` (conversation agent): each ``transcript`` becomes an ``AskRequested`` on the bus with a
  fresh turn id; that turn's answer goes back as ``handled`` as soon as its text is complete
  (``ReplyCompleted``), not spoken at the box unless ``conversation.speak_remote_answers`` says so. HA's
  Assist pipelines (typed, or spoken at any other satellite) are then answered by the box. Newer HA only:
  2024.3 does not know handle programs.
- ``tts`` (when the daemon gives us its ``Voice``): ``synthesize`` → the household's dialect voice →
  ``audio-start``/``audio-chunk``/``audio-stop``, so HA can speak with it on any media player or pipeline.
  Works with HA 2024.3 and newer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING

from ..bus import Bus
from ..config import WyomingSettings
from ..events import AskRequested, ReplyCompleted, ReplyText, TurnEnded, TurnFailed
from ..ports import ModelText, ReplyPiece, Voice
from ..tasks import cancel_and_wait
from .commands import MAX_COMMAND_CHARS

if TYPE_CHECKING:
    from wyoming.event import Event as WyomingEvent
    from wyoming.info import Info

_LOGGER = logging.getLogger(__name__)

LANGUAGES = ["zh", "zh-CN", "zh-HK", "yue", "en"]
"""Languages HA may route to us; the model answers in the household's dialect either way."""


class WyomingServer:
    """A Wyoming TCP server; ``run`` serves until cancelled. ``port`` is the bound port once started."""

    def __init__(
        self,
        settings: WyomingSettings,
        bus: Bus,
        version: str,
        *,
        voice: Voice | None = None,
        new_id: Callable[[], str] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._settings = settings
        self._redact = redact or (lambda text: text)
        self._voice = voice
        self._bus = bus
        self._version = version
        self._new_id = new_id or (lambda: f"wyoming-{uuid.uuid4().hex[:12]}")
        self.connections: set[asyncio.Task[None]] = set()
        """The connections being served (their handlers' tasks)."""
        self._started = asyncio.Event()
        self.port = settings.port
        self.bound: tuple[str, ...] = ()
        """Addresses the server listens on, once started."""

    async def started(self) -> int:
        """Wait until the server listens; return its port (useful with port 0 in tests)."""
        await self._started.wait()
        return self.port

    @property
    def settings(self) -> WyomingSettings:
        """The server's settings (address, allow-list, limits)."""
        return self._settings

    async def run(self) -> None:
        """Listen until cancelled, then close every connection."""
        from .wyoming_server import Connection, TcpServer

        server = TcpServer(self._settings.host, self._settings.port)
        await server.start(lambda reader, writer: Connection(reader, writer, self))
        names = [sock.getsockname() for sock in server.sockets]  # type: ignore[attr-defined]
        self.port = int(names[0][1])
        self.bound = tuple(str(name[0]) for name in names)
        _LOGGER.info("Wyoming conversation agent listening on %s:%d", self._settings.host, self.port)
        self._started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
            for task in list(self.connections):
                await cancel_and_wait(task)

    async def ask(self, text: str) -> tuple[str, bool]:
        """Put a question on the bus and wait for its turn's answer; return (answer, ok)."""
        turn_id = self._new_id()
        replies = self._bus.subscribe(f"wyoming:{turn_id}", ReplyText, ReplyCompleted, TurnFailed, TurnEnded)
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
                    elif isinstance(event, ReplyCompleted):
                        # HA gets the answer now, not after the box (if it speaks at all) has said it.
                        pieces = [event.text]
                        break
                    elif isinstance(event, TurnFailed):
                        failure = event.message
                    elif isinstance(event, TurnEnded):
                        break
        except TimeoutError:
            _LOGGER.warning("no answer to a Wyoming question within %.0f s", self._settings.answer_timeout_seconds)
            return "Sorry, the assistant took too long to answer.", False
        finally:
            self._bus.unsubscribe(replies)
        answer = self._redact("".join(pieces).strip())
        if failure is not None and not answer:
            return self._redact(failure), False
        return answer, bool(answer)

    async def synthesize(self, text: str, writer: asyncio.StreamWriter) -> None:
        """Speak ``text`` with the daemon's voice and stream the audio back; an ``error`` if we cannot."""
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.error import Error
        from wyoming.event import async_write_event

        text = text.strip()
        if self._voice is None or not text or len(text) > MAX_COMMAND_CHARS:
            reason = (
                "this box offers no voice"
                if self._voice is None
                else "nothing to say"
                if not text
                else f"text too long (over {MAX_COMMAND_CHARS} characters)"
            )
            await async_write_event(Error(text=reason, code="tts-unavailable").event(), writer)
            return
        started = False
        try:
            async for chunk in self._voice.speak(_pieces(text)):
                if not started:
                    await async_write_event(AudioStart(rate=chunk.rate_hz, width=2, channels=1).event(), writer)
                    started = True
                await async_write_event(
                    AudioChunk(rate=chunk.rate_hz, width=2, channels=1, audio=chunk.pcm).event(), writer
                )
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as err:
            # The voice is another team's engine: whatever it raises, HA gets an error, the server lives.
            _LOGGER.exception("the voice failed to speak a Wyoming synthesize request")
            message = self._redact(f"speech synthesis failed: {err}")
            await async_write_event(Error(text=message, code="tts-failed").event(), writer)
            return
        if not started:
            await async_write_event(AudioStart(rate=16_000, width=2, channels=1).event(), writer)
        await async_write_event(AudioStop().event(), writer)

    def info(self) -> Info:
        """What we tell HA in answer to ``describe``."""
        from wyoming.info import Attribution, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice

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
        tts = []
        if self._voice is not None:
            voice = TtsVoice(
                name="xiangyin",
                attribution=attribution,
                installed=True,
                description="The household's dialect voice",
                version=self._version,
                languages=LANGUAGES,
            )
            tts.append(
                TtsProgram(
                    name=f"{self._settings.name} voice",
                    attribution=attribution,
                    installed=True,
                    description="Xiangyin speech in the household's dialect",
                    version=self._version,
                    voices=[voice],
                )
            )
        return Info(handle=[program], tts=tts)


MAX_HEADER_BYTES = 64 * 1024
"""Longest header line, in bytes, of a Wyoming message."""
MAX_DATA_BYTES = 64 * 1024
"""Largest ``data`` section, in bytes (a question is at most a few KiB of JSON)."""
MAX_PAYLOAD_BYTES = 1024 * 1024
"""Largest binary payload, in bytes; this server takes no audio, so none is ever needed."""


async def read_event(reader: asyncio.StreamReader) -> WyomingEvent | None:
    """The next message, or None at the end of the stream; a ValueError for one that is malformed or too big.

    The wyoming library's reader allocates whatever length a header claims and turns every error into the
    end of the stream; this one refuses sizes over the limits before reading them.
    """
    from wyoming.event import Event

    line = await reader.readline()  # over the stream's limit: a ValueError
    if not line:
        return None
    header = json.loads(line)
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ValueError("a header that is not an object with a type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ValueError("data that is not an object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    if data_length:
        extra = json.loads(await reader.readexactly(data_length))
        if not isinstance(extra, dict):
            raise ValueError("a data section that is not an object")
        data = {**data, **extra}
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    payload = await reader.readexactly(payload_length) if payload_length else None
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, object], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ValueError(f"{key} {value!r} is not a size from 0 to {limit}")
    return value


def peer_allowed(peer: object, allowed: Sequence[IPv4Network | IPv6Network]) -> bool:
    """True if a client at ``peer`` (a socket peername) may talk to us.

    An empty list allows everyone: the settings allow that only on loopback.
    """
    if not allowed:
        return True
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False  # a unix socket or an unknown transport: no address to check
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return any(address in network for network in allowed)


async def _pieces(text: str) -> AsyncIterator[ReplyPiece]:
    yield ModelText(text)
