"""The Wyoming server (conversation agent and voice), driven by the wyoming client library over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk as WyomingChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event as WyomingEvent
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize

from assistant.audio import AudioChunk
from assistant.bus import Bus
from assistant.config import WyomingSettings
from assistant.events import AskRequested, ReplyText, TurnEnded, TurnFailed, TurnStarted
from assistant.integrations.wyoming import WyomingServer
from assistant.ports import ReplyPiece, Voice
from assistant.tasks import MonotonicClock, cancel_and_wait
from support.fakes import FakeVoice

Answer = Callable[[Bus, AskRequested], None]


def answers_in_pieces(bus: Bus, ask: AskRequested) -> None:
    """What the supervisor does with an AskRequested: one turn, under the request's id."""
    bus.publish(TurnStarted(turn_id=ask.turn_id, trigger="api"))
    bus.publish(ReplyText(turn_id="someone-else", text="not mine "))
    for piece in ("明天", "有雨，", "记得带伞。"):
        bus.publish(ReplyText(turn_id=ask.turn_id, text=piece))
    bus.publish(TurnEnded(turn_id=ask.turn_id, outcome="completed"))


@asynccontextmanager
async def agent(
    answer: Answer | None = answers_in_pieces,
    answer_seconds: float = 5.0,
    voice: Voice | None = None,
    redact: Callable[[str], str] | None = None,
    asked: list[str] | None = None,
    **limits: float,
) -> AsyncIterator[AsyncTcpClient]:
    bus = Bus(MonotonicClock())

    async def supervisor() -> None:
        async for envelope in bus.subscribe("fake-supervisor", AskRequested):
            assert isinstance(envelope.event, AskRequested)
            assert envelope.event.source == "ha" and envelope.event.turn_id
            if asked is not None:
                asked.append(envelope.event.text)
            if answer is not None:
                answer(bus, envelope.event)

    settings = WyomingSettings(enabled=True, host="127.0.0.1", port=1, answer_timeout_seconds=answer_seconds, **limits)
    server = WyomingServer(settings.model_copy(update={"port": 0}), bus, "1.0.0", voice=voice, redact=redact)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(supervisor())]
    port = await server.started()
    try:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            yield client
    finally:
        for task in tasks:
            await cancel_and_wait(task)


async def exchange(client: AsyncTcpClient, event: WyomingEvent) -> WyomingEvent:
    await client.write_event(event)
    reply = await asyncio.wait_for(client.read_event(), 10)
    assert reply is not None
    return reply


async def test_describe_offers_a_conversation_agent() -> None:
    async with agent() as client:
        info = Info.from_event(await exchange(client, Describe().event()))
    assert [p.name for p in info.handle] == ["Xiangyin"]
    assert "zh-HK" in info.handle[0].models[0].languages
    assert info.satellite is None


async def test_a_question_is_answered_with_the_text_of_its_own_turn() -> None:
    async with agent() as client:
        reply = await exchange(client, Transcript(text="明天会下雨吗？", language="zh").event())
        pong = await exchange(client, Ping(text="still there").event())
    assert Handled.is_type(reply.type)
    assert Handled.from_event(reply).text == "明天有雨，记得带伞。"
    assert Pong.from_event(pong).text == "still there"


async def test_a_failed_turn_is_not_handled_and_says_why() -> None:
    def fails(bus: Bus, ask: AskRequested) -> None:
        bus.publish(TurnFailed(turn_id=ask.turn_id, code="model-unavailable", message="The model is not loaded."))
        bus.publish(TurnEnded(turn_id=ask.turn_id, outcome="error"))

    async with agent(fails) as client:
        reply = await exchange(client, Transcript(text="你好").event())
    assert NotHandled.is_type(reply.type)
    assert NotHandled.from_event(reply).text == "The model is not loaded."


async def test_no_answer_in_time_is_not_handled_and_the_connection_lives_on() -> None:
    async with agent(answer=None, answer_seconds=0.2) as client:
        reply = await exchange(client, Transcript(text="你好").event())
        assert NotHandled.is_type(reply.type)
        assert "too long" in (NotHandled.from_event(reply).text or "")
        assert Pong.is_type((await exchange(client, Ping().event())).type)


async def test_unknown_events_and_empty_questions_do_not_break_the_connection() -> None:
    async with agent() as client:
        await client.write_event(WyomingEvent(type="something-new", data={"x": 1}))
        empty = await exchange(client, Transcript(text="   ").event())
        assert NotHandled.is_type(empty.type)
        assert Pong.is_type((await exchange(client, Ping().event())).type)


class BrokenVoice:
    async def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        async for _ in pieces:
            raise RuntimeError("engine crashed")
        yield AudioChunk(b"")  # pragma: no cover


async def read_audio(client: AsyncTcpClient) -> tuple[AudioStart, bytes]:
    start = AudioStart.from_event(await exchange(client, Synthesize(text="饭好了，快来吃").event()))
    audio = b""
    while not AudioStop.is_type((event := await asyncio.wait_for(client.read_event(), 10)).type):  # type: ignore[union-attr]
        assert event is not None
        audio += WyomingChunk.from_event(event).audio
    return start, audio


async def test_describe_offers_a_voice_when_the_daemon_has_one() -> None:
    async with agent(voice=FakeVoice()) as client:
        info = Info.from_event(await exchange(client, Describe().event()))
    assert [v.name for p in info.tts for v in p.voices] == ["xiangyin"]


async def test_synthesize_streams_the_voice_audio_back() -> None:
    async with agent(voice=FakeVoice(seconds_per_char=0.1)) as client:
        start, audio = await read_audio(client)
    assert (start.rate, start.width, start.channels) == (24_000, 2, 1)
    assert len(audio) == round(7 * 0.1 * 24_000) * 2  # seven characters at 0.1 s each
    assert audio.startswith(b"VOIC")


async def test_a_failing_voice_or_no_voice_answers_an_error_and_the_connection_lives_on() -> None:
    async with agent(voice=BrokenVoice()) as client:
        error = await exchange(client, Synthesize(text="你好").event())
        assert Error.is_type(error.type) and "engine crashed" in Error.from_event(error).text
        assert Pong.is_type((await exchange(client, Ping().event())).type)
    async with agent(voice=None) as client:
        error = await exchange(client, Synthesize(text="你好").event())
        assert Error.from_event(error).code == "tts-unavailable"


async def test_a_question_too_long_is_not_handled_and_never_asked() -> None:
    asked: list[str] = []
    async with agent(asked=asked) as client:
        reply = await exchange(client, Transcript(text="问" * 2001).event())
        assert NotHandled.is_type(reply.type) and "too long" in NotHandled.from_event(reply).text
        assert Handled.is_type((await exchange(client, Transcript(text="明天天气？").event())).type)
    assert asked == ["明天天气？"]


async def test_an_answer_carrying_a_secret_goes_back_masked() -> None:
    async with agent(redact=lambda text: text.replace("有雨", "***")) as client:
        reply = await exchange(client, Transcript(text="明天天气？").event())
    assert Handled.from_event(reply).text == "明天***，记得带伞。"


async def test_junk_frames_close_only_that_connection_with_a_clear_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with agent() as client:
        port = client.port
        for junk in (
            b'{"type": "describe", "data_length": "x"}\n',
            b"[1, 2]\n",
            b'{"type": "transcript", "data": [1]}\n',
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(junk)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()
        assert Handled.is_type((await exchange(client, Transcript(text="明天天气？").event())).type)
    assert "Unhandled exception" not in caplog.text
    assert caplog.text.count("after a malformed message") == 3


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closes the connection (what it sent before is ignored)."""
    while await asyncio.wait_for(reader.read(4096), 60):
        pass
    return True


async def test_a_peer_that_sends_half_a_message_and_waits_is_closed_after_the_idle_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")

    def slowly(bus: Bus, ask: AskRequested) -> None:  # slower than the idle timeout
        asyncio.get_running_loop().call_later(0.6, answers_in_pieces, bus, ask)

    async with agent(slowly, idle_timeout_seconds=0.3) as client:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b'{"type": "transcript", "data_length": 20}\n{"text": ')  # and nothing more, ever
        await writer.drain()
        assert await _closed_by_server(reader)
        writer.close()
        # Only the wait for a message is timed: a question whose answer takes longer is still answered.
        async with AsyncTcpClient("127.0.0.1", client.port) as asking:
            assert Handled.is_type((await exchange(asking, Transcript(text="明天天气？").event())).type)
    assert "no complete message in" in caplog.text


async def test_connections_over_the_cap_are_closed_at_once_and_those_served_go_on() -> None:
    async with agent(max_connections=2) as client:  # the client of the fixture is the first connection
        second_reader, second_writer = await asyncio.open_connection("127.0.0.1", client.port)
        # Connected and saying nothing: it holds its place until the idle timeout.
        third_reader, third_writer = await asyncio.open_connection("127.0.0.1", client.port)
        assert await _closed_by_server(third_reader)
        assert Pong.is_type((await exchange(client, Ping(text="still here").event())).type)
        for writer in (second_writer, third_writer):
            writer.close()


@pytest.mark.parametrize(
    "header",
    [
        b'{"type": "synthesize", "payload_length": 4000000000}\n',
        b'{"type": "synthesize", "data_length": 100000000}\n',
        b'{"type": "synthesize", "data_length": -5}\n',
        b'{"type": "' + b"x" * 100_000 + b'"}\n',
    ],
    ids=["4-GB-payload", "100-MB-data", "negative-length", "100-kB-header"],
)
async def test_a_message_claiming_a_huge_size_is_refused_before_it_is_read(
    header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with agent() as client:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(header)
        await writer.drain()
        assert await _closed_by_server(reader)
        writer.close()
        assert Pong.is_type((await exchange(client, Ping(text="fine").event())).type)
    assert "after a malformed message" in caplog.text
