"""The box on MQTT: Home Assistant discovery, state topics from bus facts, commands to bus requests.

One long-lived task (``MqttBridge.run``) keeps a connection to the broker with jittered backoff. Every
outgoing message goes through one queue that survives disconnects, so nothing a skill or the bus produced
is lost while the broker is away; retained states are re-sent in full after each reconnect. Incoming
commands use QoS 1 on a persistent session, so the broker keeps those sent while the box was offline
(across a broker restart too, when the broker persists sessions). QoS 1 means at least once: a command
whose acknowledgement was lost with the connection comes again, marked DUP, and is not carried out twice.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..bus import Bus
from ..config import MqttSettings
from ..events import (
    AssistantStateChanged,
    ConnectionChanged,
    EnrolledWordsChanged,
    EnrolmentProgress,
    MuteChanged,
    ReplyCompleted,
    ReplyText,
    SettingChanged,
    TurnEnded,
    UserTranscript,
    VolumeChanged,
    WakeDetected,
)
from ..ports import MessagePublisher
from ..tasks import backoff
from . import discovery
from .commands import CommandError, EnrolName, parse_command
from .discovery import OFF, OFFLINE, ON, ONLINE, DeviceInfo, Topics
from .outbox import Outbox, Outgoing

if TYPE_CHECKING:
    import aiomqtt
    from paho.mqtt.client import Client as PahoClient
    from paho.mqtt.client import MQTTMessage

_LOGGER = logging.getLogger(__name__)

_REMEMBERED_COMMANDS = 256
"""Recent QoS 1 commands kept to recognise a redelivery; the broker re-sends right after a reconnect."""

_Handled = collections.OrderedDict[tuple[int, str, bytes], None]
"""(packet id, topic, digest of the payload) of QoS 1 messages carried out; a digest, so junk costs 16 bytes."""

INBOX_LIMIT = 64
"""Received messages waiting to be carried out; in a flood the oldest are dropped, so the newest still count."""
_BURST = 50
"""Commands carried out back to back before pacing starts."""
_PACE_SECONDS = 0.002
"""Pause between commands beyond a burst: a flood reaches the rest of the daemon at about 500 a second at most,
which the supervisor and the bus keep up with."""

_FACTS = (
    AssistantStateChanged,
    UserTranscript,
    ReplyText,
    ReplyCompleted,
    TurnEnded,
    WakeDetected,
    MuteChanged,
    VolumeChanged,
    SettingChanged,
    EnrolmentProgress,
    EnrolledWordsChanged,
)


class MqttBridge:
    """Connects the bus to an MQTT broker and announces the box to Home Assistant.

    Also the daemon's ``MessagePublisher``: skills publish through it and never see the connection drop.
    """

    def __init__(
        self,
        settings: MqttSettings,
        bus: Bus,
        version: str,
        *,
        wake_words: Sequence[str] = (),
        wake_word: str | None = None,
        dialect: str | None = None,
        volume: float | None = None,
        muted: bool = False,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self._settings = settings
        self._redact = redact or (lambda text: text)
        """Masks the daemon's secrets in the transcript and answer, which anyone on the broker may read."""
        self._bus = bus
        self.topics = Topics.from_settings(settings)
        self._info = DeviceInfo(name=settings.device_name, version=version, wake_words=tuple(wake_words))
        self._configured_wake_words = tuple(wake_words)
        self._outbox = Outbox(settings.queue_limit)
        self._retained: dict[str, str] = {}
        """Last value of every retained state topic, re-sent after a reconnect."""
        self._answers: dict[str | None, list[str]] = {}
        self._handled: _Handled = collections.OrderedDict()
        """Commands carried out on this connection."""
        self._handled_before: _Handled = collections.OrderedDict()
        """Commands carried out on the last connection that had any: the only ones the broker can re-send.
        Older ones are forgotten, so a broker that reuses packet ids cannot make us drop a new command."""
        self._inbox: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        """Received (topic, payload, retained), oldest first, at most INBOX_LIMIT."""
        self._inbox_ready = asyncio.Event()
        self._flooded = 0
        """Messages dropped from the inbox since the last report."""
        self.connected = False
        self._reported: bool | None = None
        """Last connection state published on the bus; None before the first attempt."""
        # Subscribe now, not in run(), so facts published between construction and run() are kept.
        self._facts = bus.subscribe("mqtt", *_FACTS)
        self._set_state("state", "idle")
        self._set_state("listening", OFF)
        self._set_state("mute", ON if muted else OFF)
        self._enrol_name = ""
        """The name in "Wake word to enrol"; cleared at start, so Home Assistant shows what the box will use."""
        self._set_state("enrol_name", "")
        self._set_state("enrolment", "idle")
        if wake_word is not None:
            self._set_state("wake_word", wake_word)
        if dialect is not None:
            self._set_state("dialect", dialect)
        if volume is not None:
            self._set_state("volume", discovery.volume_percent(volume))

    # --- MessagePublisher ---------------------------------------------------------------------------

    async def publish(self, topic: str, payload: str, *, qos: int = 1, retain: bool = False) -> None:
        """Queue one message; it is sent as soon as the broker is reachable (now, when connected)."""
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"cannot publish to {topic!r}: a topic must be non-empty and free of wildcards")
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS must be 0, 1 or 2, not {qos}")
        self._outbox.put(Outgoing(topic, payload, qos, retain))

    def _set_state(self, key: str, value: str) -> None:
        self._set_retained(self.topics.state(key), value)

    def _set_retained(self, topic: str, value: str) -> None:
        self._retained[topic] = value
        # While away, only the latest value matters: _announce sends every retained state on connect.
        if self.connected:
            self._outbox.put(Outgoing(topic, value, 1, True))

    # --- bus → MQTT -----------------------------------------------------------------------------

    def _on_fact(self, event: object) -> None:
        match event:
            case AssistantStateChanged(new=new):
                self._set_state("state", new)
                self._set_state("listening", ON if new == "listening" else OFF)
            case UserTranscript(text=text):
                for topic, value in discovery.text_state(self.topics, "transcript", self._redact(text)).items():
                    self._set_retained(topic, value)
            case ReplyText(turn_id=turn_id, text=text):
                self._answers.setdefault(turn_id, []).append(text)
            case ReplyCompleted(turn_id=turn_id, text=text):
                # As soon as the text is whole, not once the box has finished saying it.
                self._answers.pop(turn_id, None)
                self._set_answer(text)
            case TurnEnded(turn_id=turn_id):
                # What an interrupted or failed turn got to say before it ended.
                self._set_answer("".join(self._answers.pop(turn_id, [])))
            case WakeDetected(wake_word=wake_word, score=score):
                # Events are momentary: never retained, or HA would replay old detections on restart.
                self._outbox.put(Outgoing(self.topics.state("wake"), discovery.wake_event(wake_word, score), 0, False))
            case MuteChanged(muted=muted):
                self._set_state("mute", ON if muted else OFF)
            case VolumeChanged(level=level):
                self._set_state("volume", discovery.volume_percent(level))
            case SettingChanged(key=key, value=value):
                self._set_state(key, value)
            case EnrolmentProgress(name=name, stage=stage, message=message, take=take, takes=takes):
                attributes = {"name": name, "stage": stage, "take": take, "takes": takes, "message": message}
                self._set_state("enrolment", discovery.cut_state(message))
                self._set_retained(self.topics.attributes("enrolment"), json.dumps(attributes, ensure_ascii=False))
            case EnrolledWordsChanged(words=words, listening=listening):
                self._offer_wake_words(listening)
                attributes = {"words": list(words), "listening": list(listening)}
                self._set_state("enrolled_words", discovery.cut_state(", ".join(words) or "none"))
                self._set_retained(self.topics.attributes("enrolled_words"), json.dumps(attributes, ensure_ascii=False))

    def _offer_wake_words(self, enrolled: Sequence[str]) -> None:
        """Let the wake-word select offer the enrolled words listened for, too; rediscover when that changed."""
        configured = self._configured_wake_words
        options = (*configured, *(name for name in enrolled if name not in configured))
        if options == tuple(self._info.wake_words):
            return
        self._info = dataclasses.replace(self._info, wake_words=options)
        if self.connected:
            self._announce()

    def _set_answer(self, text: str) -> None:
        answer = self._redact(text.strip())
        if answer:
            for topic, value in discovery.text_state(self.topics, "answer", answer).items():
                self._set_retained(topic, value)

    async def _follow_bus(self) -> None:
        async for envelope in self._facts:
            self._on_fact(envelope.event)

    # --- MQTT → bus -----------------------------------------------------------------------------

    def _receive_one(self, topic: str, payload: bytes, retained: bool) -> None:
        """Take a message off the connection at once: a flood must not hold up the keepalive or the queue."""
        if len(self._inbox) >= INBOX_LIMIT:
            self._inbox.popleft()
            self._flooded += 1
        self._inbox.append((topic, payload, retained))
        self._inbox_ready.set()

    async def _carry_out(self) -> None:
        """Carry out received messages in order, paced beyond a burst so a flood cannot swamp the daemon."""
        loop = asyncio.get_running_loop()
        window_start, in_window = loop.time(), 0
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox:
                topic, payload, retained = self._inbox.popleft()
                self._on_message(topic, payload, retained=retained)
                now = loop.time()
                if now - window_start >= 1.0:
                    window_start, in_window = now, 0
                in_window += 1
                await asyncio.sleep(_PACE_SECONDS if in_window > _BURST else 0)
            if self._flooded:
                _LOGGER.warning(
                    "MQTT commands came faster than they can be carried out: %d of the oldest were dropped, "
                    "the newest %d kept",
                    self._flooded,
                    INBOX_LIMIT,
                )
                self._flooded = 0

    def _on_message(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        if topic == self.topics.ha_status:
            if payload.strip() == ONLINE.encode():
                _LOGGER.info("Home Assistant came online; announcing the box again")
                self._announce()
            return
        if retained:
            # A retained command would run again on every reconnect: commands count only when sent.
            _LOGGER.warning("ignoring a retained MQTT command on %s; clear it with an empty retained message", topic)
            return
        try:
            event = parse_command(self.topics, topic, payload, self._info.wake_words, enrol_name=self._enrol_name)
        except CommandError as err:
            _LOGGER.warning("ignoring MQTT command on %s: %s", topic, err)
            return
        except Exception:
            # Whatever a client sends, the bridge (and with it the daemon) stays up.
            _LOGGER.exception("ignoring an MQTT command on %s that could not be read", topic)
            return
        _LOGGER.info("MQTT command on %s: %s", topic, type(event).__name__)
        if isinstance(event, EnrolName):
            self._enrol_name = event.name
            self._set_state("enrol_name", event.name)
            return
        self._bus.publish(event)

    # --- connection -----------------------------------------------------------------------------

    def _announce(self) -> None:
        """Queue discovery configs, availability and every retained state."""
        for topic, payload in discovery.discovery_messages(self.topics, self._info, self._settings.discovery).items():
            self._outbox.put(Outgoing(topic, payload, 1, True))
        self._outbox.put(Outgoing(self.topics.availability, ONLINE, 1, True))
        for topic, value in self._retained.items():
            self._outbox.put(Outgoing(topic, value, 1, True))

    def _client(self) -> aiomqtt.Client:
        import aiomqtt

        settings = self._settings
        tls = aiomqtt.TLSParameters(ca_certs=settings.ca_file) if settings.tls else None
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            identifier=f"xiangyin-{settings.device_id}",
            # A persistent session: the broker queues QoS 1 commands sent while we are away.
            clean_session=False,
            keepalive=settings.keepalive_seconds,
            will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
            tls_params=tls,
            timeout=10,
            # MQTT packets are tiny: without this, Nagle and delayed ACKs add about 40 ms per exchange.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def run(self) -> None:
        """Stay connected until cancelled; publish ConnectionChanged on every change."""
        import aiomqtt

        follower = asyncio.create_task(self._follow_bus(), name="mqtt:bus")
        worker = asyncio.create_task(self._carry_out(), name="mqtt:commands")
        delays = backoff(0.5, self._settings.reconnect_max_seconds)
        where = f"{self._settings.host}:{self._settings.port}"
        failures = 0
        try:
            while True:
                try:
                    client = self._client()
                    self._skip_redeliveries(client)
                    async with client:
                        delays, failures = backoff(0.5, self._settings.reconnect_max_seconds), 0
                        await self._serve(client, where)
                except aiomqtt.MqttError as err:
                    if self.connected:
                        self._set_connected(False, f"{where}: {err}")
                    elif failures == 0:
                        _LOGGER.warning("cannot connect to the MQTT broker at %s: %s%s", where, err, _hint(err))
                        self._set_connected(False, f"{where}: {err}")
                    failures += 1
                # aiomqtt's exit may have swallowed our stop (see _raise_if_cancelling); never reconnect past it.
                _raise_if_cancelling()
                delay = next(delays)
                _LOGGER.info("reconnecting to the MQTT broker at %s in %.1f s", where, delay)
                await asyncio.sleep(delay)
        finally:
            follower.cancel()
            worker.cancel()
            self._bus.unsubscribe(self._facts)
            self._set_connected(False, "stopped", stopping=True)

    async def _serve(self, client: aiomqtt.Client, where: str) -> None:
        """Run one connection until it drops (raises MqttError) or we are cancelled."""
        if self._handled:
            self._handled_before, self._handled = self._handled, collections.OrderedDict()
        # Exact topics, no wildcard: the broker hands us our own commands and Home Assistant's status only.
        await client.subscribe([(topic, 1) for topic in (*self.topics.commands, self.topics.ha_status)])
        _raise_if_cancelling()
        self._announce()
        self._set_connected(True, where)
        workers = {
            asyncio.create_task(self._send(client), name="mqtt:send"),
            asyncio.create_task(self._receive(client), name="mqtt:receive"),
        }
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self._stop(workers)
            await self._say_goodbye(client)
            raise
        await self._stop(workers)
        for task in done:
            task.result()
        raise aiomqtt_error("the connection closed")

    @staticmethod
    async def _stop(workers: set[asyncio.Task[None]]) -> None:
        # Python 3.11's wait_for (inside aiomqtt) loses a cancel that races a finishing publish,
        # so cancel again until every worker has really stopped.
        while pending := {task for task in workers if not task.done()}:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.1)
        for task in workers:
            # A worker that failed on its own while being stopped: the connection's first failure is reported
            # by the caller; this one must not resurface as "Task exception was never retrieved".
            if not task.cancelled():
                task.exception()

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            message = await self._outbox.peek()
            # Dequeue only once the broker acknowledged it (QoS 1), so a drop mid-send loses nothing.
            await client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
            _raise_if_cancelling()
            self._outbox.sent(message)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self._receive_one(message.topic.value, payload, bool(message.retain))
            if message.qos > 0:
                self._handled[_handled_key(message.mid, message.topic.value, payload)] = None
                if len(self._handled) > _REMEMBERED_COMMANDS:
                    self._handled.popitem(last=False)

    def _skip_redeliveries(self, client: aiomqtt.Client) -> None:
        """Drop a DUP re-send of a message already carried out (paho still acknowledges it).

        aiomqtt hides the DUP flag, so this wraps paho's callback; a message is a re-send only if it has
        DUP set *and* the packet id, topic and payload of one we handled, so nothing new is ever dropped.
        """
        paho = client._client
        deliver = paho.on_message
        assert deliver is not None, "aiomqtt sets paho's on_message"

        def on_message(paho_client: PahoClient, userdata: Any, message: MQTTMessage) -> None:
            key = _handled_key(message.mid, message.topic, bytes(message.payload))
            if message.dup and (key in self._handled or key in self._handled_before):
                _LOGGER.info("ignoring a re-sent MQTT command on %s: it was already carried out", message.topic)
                return
            deliver(paho_client, userdata, message)

        paho.on_message = on_message

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        """Mark the box offline on a clean shutdown (the will only fires on an unclean one)."""
        try:
            async with asyncio.timeout(2):
                await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
        except Exception as err:  # shutting down anyway; the will covers us
            _LOGGER.debug("could not publish offline on shutdown: %s", err)

    def _set_connected(self, connected: bool, detail: str, *, stopping: bool = False) -> None:
        """Record and publish a change; the first failure to connect counts as one, too."""
        if connected == self._reported:
            return
        was, self.connected, self._reported = self.connected, connected, connected
        if connected:
            _LOGGER.info("connected to the MQTT broker at %s", detail)
        elif was and stopping:
            _LOGGER.info("disconnected from the MQTT broker: %s", detail)  # our own doing: nothing is wrong
        elif was:
            _LOGGER.warning("MQTT broker connection lost: %s", detail)
        self._bus.publish(ConnectionChanged(service="mqtt", connected=connected, detail=detail))


if TYPE_CHECKING:
    _PUBLISHER: type[MessagePublisher] = MqttBridge  # mypy proves the bridge fits the skills' port


def aiomqtt_error(message: str) -> Exception:
    """An ``aiomqtt.MqttError``, imported lazily like the rest of paho."""
    import aiomqtt

    return aiomqtt.MqttError(message)


def _raise_if_cancelling() -> None:
    """Honour a cancel that Python 3.11's ``asyncio.wait_for`` swallowed (it leaves ``cancelling()`` set)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _hint(err: Exception) -> str:
    text = str(err).lower()
    if "not authorized" in text or "bad user name or password" in text:
        return " (check mqtt.username and mqtt.password)"
    if "refused" in text or "timed out" in text:
        return " (is the broker running, and are mqtt.host and mqtt.port right?)"
    return ""


def _handled_key(mid: int, topic: str, payload: bytes) -> tuple[int, str, bytes]:
    return mid, topic, hashlib.blake2b(payload, digest_size=16).digest()
