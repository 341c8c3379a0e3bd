"""The vLLM backend against a fake server on 127.0.0.1 that speaks (and checks) the fork's format."""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from assistant.audio import AudioChunk
from assistant.config import PersonaSettings, VllmModelSettings
from assistant.errors import ModelError
from assistant.events import ConnectionChanged, Event
from assistant.model.stepaudio2.prompt import TOOL_RESULT_INSTRUCTION, input_turn
from assistant.model.stepaudio2.vllm import VllmSpeechModel, build_vllm_model
from assistant.ports import (
    ModelDone,
    ModelEvent,
    ModelRequest,
    ModelSpeech,
    ModelText,
    ModelToolCall,
    ToolResult,
    ToolSpec,
)
from support.vllm_fake import (
    Corrupt,
    Fail,
    FakeCall,
    FakeVllmServer,
    Flood,
    Hang,
    Spoken,
    Truncate,
    Written,
    prompt_lengths,
    render_prompt,
)

WEATHER = ToolSpec(
    "get_weather", "查天气", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)
TODAY = datetime.date(2026, 11, 25)
MakeModel = Callable[..., VllmSpeechModel]


def utterance(seconds: float) -> AudioChunk:
    return AudioChunk(b"\x10\x00\xf0\xff" * round(seconds * 8_000))


def speech(events: list[ModelEvent]) -> list[int]:
    return [code for e in events if isinstance(e, ModelSpeech) for code in e.tokens]


def text(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ModelText))


async def collect(model: VllmSpeechModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.respond(request)]


class InstantClock:
    """Records the sleeps of the retry and health loops and lets an action run in each."""

    def __init__(self, on_sleep: Callable[[], Any] | None = None) -> None:
        self.sleeps: list[float] = []
        self._on_sleep = on_sleep

    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._on_sleep is not None:
            await self._on_sleep()


@pytest.fixture
async def server() -> AsyncIterator[FakeVllmServer]:
    async with FakeVllmServer() as fake:
        yield fake
    assert fake.problems == [], "the client sent requests outside the documented format"


@pytest.fixture
async def published() -> list[Event]:
    return []


@pytest.fixture
async def make_model(server: FakeVllmServer, published: list[Event]) -> AsyncIterator[MakeModel]:
    models: list[VllmSpeechModel] = []

    def make(**overrides: Any) -> VllmSpeechModel:
        clock = overrides.pop("clock", InstantClock())
        fields: dict[str, Any] = {
            "base_url": server.base_url,
            "first_token_timeout_seconds": 2.0,
            "idle_timeout_seconds": 1.0,
            "retries": 0,
            **overrides,
        }
        model = VllmSpeechModel(
            VllmModelSettings(**fields), PersonaSettings(), published.append, clock=clock, today=lambda: TODAY
        )
        models.append(model)
        return model

    yield make
    for model in models:
        await model.aclose()


# --- answers ---------------------------------------------------------------------------------------------


async def test_a_spoken_answer_streams_text_and_speech_then_done(server: FakeVllmServer, make_model: MakeModel) -> None:
    server.script.append(Spoken("今天晴", tuple(range(10, 22))))
    events = await collect(make_model(), ModelRequest("kitchen", (WEATHER,), audio=utterance(30.0)))
    assert text(events) == "今天晴" and speech(events) == list(range(10, 22))
    assert events[-1] == ModelDone("stop")
    [body] = server.requests
    assert [item["type"] for item in body["messages"][1]["content"]] == ["input_audio", "input_audio"]
    assert body["messages"][-1] == {"role": "assistant", "content": "<tts_start>"}
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert "今天是2026年11月25日" in body["messages"][0]["content"]


async def test_a_dialect_chosen_at_run_time_changes_the_system_prompt(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    await collect(model, ModelRequest("kitchen", (), text="几点了"))
    model.set_dialect("cantonese")
    await collect(model, ModelRequest("kitchen", (), text="几点了"))
    first, second = (body["messages"][0]["content"] for body in server.requests)
    assert "粤语" not in first and "粤语" in second


async def test_the_next_turn_sends_the_earlier_answer_back_as_tts_content(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.extend([Spoken("你好", (1, 2, 3)), Spoken("再见", (4,))])
    await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    await collect(model, ModelRequest("kitchen", audio=utterance(2.0)))
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "human", "assistant", "human", "assistant"]
    assert second[2] == {
        "role": "assistant",
        "tts_content": {"tts_text": "你好", "tts_audio": "<audio_1><audio_2><audio_3>"},
    }
    assert second[1] == server.requests[0]["messages"][1]


async def test_consecutive_turns_reuse_one_connection(server: FakeVllmServer, make_model: MakeModel) -> None:
    model = make_model()
    for _ in range(3):
        await collect(model, ModelRequest("kitchen", text="你好"))
    assert len(server.peers) == 3 and len(set(server.peers)) == 1


async def test_a_text_answer_is_asked_for_without_the_prefill(server: FakeVllmServer, make_model: MakeModel) -> None:
    server.script.append(Written("三点了。"))
    events = await collect(make_model(), ModelRequest("cli", text="几点了？", speak=False))
    assert text(events) == "三点了。" and speech(events) == []
    assert server.requests[0]["add_generation_prompt"] is True


# --- tools ---------------------------------------------------------------------------------------------------


async def test_a_tool_round_trip_resends_the_answer_with_its_calls_and_an_input_turn(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    call = FakeCall("get_weather", '{"city": "成都"}')
    server.script.extend([Spoken("我查一下", tuple(range(8)), calls=(call,)), Spoken("成都晴", (9, 9, 9))])
    first = await collect(model, ModelRequest("kitchen", (WEATHER,), audio=utterance(2.0)))
    assert text(first) == "我查一下"
    assert first[-2:] == [ModelToolCall(call.call_id, "get_weather", {"city": "成都"}), ModelDone("tool_calls")]

    result = ToolResult(call.call_id, "get_weather", {"weather": "晴", "temp_c": 18})
    second = await collect(model, ModelRequest("kitchen", (WEATHER,), tool_results=(result,)))
    assert text(second) == "成都晴" and second[-1] == ModelDone("stop")
    messages = server.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "human", "assistant", "input", "assistant"]
    assert messages[2]["tts_content"]["tts_text"] == "我查一下"
    assert messages[2]["tool_calls"][0]["id"] == call.call_id
    assert messages[3]["tool_call_id"] == call.call_id
    [item] = messages[3]["content"]
    assert item["text"] == '{"weather": "晴", "temp_c": 18}\n\n\n' + TOOL_RESULT_INSTRUCTION


async def test_malformed_tool_arguments_reach_the_turn_as_an_error_and_the_next_request_stays_valid(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    call = FakeCall("get_weather", '{"city": 成都}')
    server.script.extend([Spoken("好", (1,), calls=(call,)), Spoken("抱歉", (2,))])
    first = await collect(model, ModelRequest("kitchen", (WEATHER,), audio=utterance(1.0)))
    [tool_call] = [e for e in first if isinstance(e, ModelToolCall)]
    assert tool_call.error is not None and "JSON" in tool_call.error
    failure = ToolResult(call.call_id, "get_weather", {"ok": False, "error": tool_call.error})
    await collect(model, ModelRequest("kitchen", (WEATHER,), tool_results=(failure,)))
    assert server.requests[1]["messages"][2]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize("speak", [False, True])
async def test_a_question_after_an_interrupted_tool_round_drops_the_unanswered_call(
    server: FakeVllmServer, make_model: MakeModel, speak: bool
) -> None:
    model = make_model()
    call = FakeCall("get_weather", '{"city": "成都"}')
    server.script.extend([Spoken("", (), calls=(call,)) if speak else Written("", calls=(call,)), Spoken("好", (1,))])
    await collect(model, ModelRequest("kitchen", (WEATHER,), text="天气", speak=speak))
    await collect(model, ModelRequest("kitchen", (WEATHER,), text="算了"))
    assert [m["role"] for m in server.requests[1]["messages"]] == ["system", "human", "human", "assistant"]


# --- failures ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "recoverable", "words"),
    [
        (500, True, "struggling"),
        (503, True, "struggling"),
        (429, True, "struggling"),
        (401, False, "API key"),
        (404, False, "does not serve"),
        (400, False, "rejected"),
    ],
)
async def test_http_errors_map_to_recoverable_or_final_model_errors(
    server: FakeVllmServer, make_model: MakeModel, status: int, recoverable: bool, words: str
) -> None:
    server.script.append(Fail(status, {"error": {"message": "nope", "code": status}}))
    with pytest.raises(ModelError, match=words) as caught:
        await collect(make_model(), ModelRequest("kitchen", audio=utterance(1.0)))
    assert caught.value.recoverable is recoverable
    assert "nope" in caught.value.message


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None), (None, None)],
    ids=["delta-seconds", "http-date-in-the-past", "unreadable", "absent"],
)
async def test_a_429_carries_the_servers_retry_after(
    server: FakeVllmServer, make_model: MakeModel, header: str | None, seconds: float | None
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    server.script.append(Fail(429, {"error": {"message": "busy", "code": 429}}, headers))
    with pytest.raises(ModelError, match="struggling") as caught:
        await collect(make_model(), ModelRequest("kitchen", audio=utterance(1.0)))
    assert caught.value.recoverable is True
    assert caught.value.retry_after_seconds == seconds


async def test_an_api_key_is_sent_as_a_bearer_token_and_never_logged(
    server: FakeVllmServer, make_model: MakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    server.api_key = "s3cret-key"
    with caplog.at_level(logging.DEBUG):
        await collect(make_model(api_key="s3cret-key"), ModelRequest("kitchen", audio=utterance(1.0)))
        with pytest.raises(ModelError, match="API key") as caught:
            await collect(make_model(api_key="wrong-key"), ModelRequest("kitchen", audio=utterance(1.0)))
    assert server.headers[0]["Authorization"] == "Bearer s3cret-key"
    assert "s3cret" not in caplog.text and "wrong-key" not in caplog.text and "wrong-key" not in str(caught.value)
    assert caught.value.recoverable is False


async def test_a_server_that_never_answers_times_out_at_the_first_token_limit(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    server.script.append(Hang())
    with pytest.raises(ModelError, match="no token within 0.3 s") as caught:
        await collect(make_model(first_token_timeout_seconds=0.3), ModelRequest("kitchen", audio=utterance(1.0)))
    assert caught.value.recoverable
    await asyncio.wait_for(server.disconnected.wait(), 2.0)


async def test_a_server_that_accepts_but_never_answers_times_out(published: list[Event]) -> None:
    accepted = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the client hangs up
        writer.close()

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    settings = VllmModelSettings(base_url=f"http://127.0.0.1:{port}/v1", first_token_timeout_seconds=0.3)
    model = VllmSpeechModel(settings, PersonaSettings(), published.append, clock=InstantClock())
    try:
        with pytest.raises(ModelError, match="did not answer in time") as caught:
            await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    finally:
        await model.aclose()
        listener.close()
        await listener.wait_closed()
    assert caught.value.recoverable and accepted.is_set()
    assert [e.connected for e in published if isinstance(e, ConnectionChanged)] == [False]


async def test_a_reply_that_stalls_midway_times_out_after_the_idle_limit(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    server.script.append(Hang(Spoken("你好", tuple(range(8))), after_chunks=4))
    seen: list[ModelEvent] = []
    with pytest.raises(ModelError, match="silent for 0.2 s") as caught:
        async for event in make_model(idle_timeout_seconds=0.2).respond(ModelRequest("kitchen", audio=utterance(1.0))):
            seen.append(event)
    assert caught.value.recoverable and text(seen) == "你"


async def test_a_truncated_stream_is_recoverable_and_leaves_the_history_untouched(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.append(Truncate(Spoken("你好", tuple(range(8))), after_chunks=5))
    with pytest.raises(ModelError) as caught:
        await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    assert caught.value.recoverable
    assert model.history("kitchen") == []


@pytest.mark.parametrize(
    "line",
    [
        'data: {"choices": [{"index": 0, "delta": {"content": "x"\n\n',
        'data: {"error": {"message": "engine died", "code": 500}}\n\n',
    ],
)
async def test_a_malformed_or_failed_chunk_is_a_recoverable_error(
    server: FakeVllmServer, make_model: MakeModel, line: str
) -> None:
    server.script.append(Corrupt(Spoken("你好", tuple(range(8))), at=3, line=line))
    with pytest.raises(ModelError) as caught:
        await collect(make_model(), ModelRequest("kitchen", audio=utterance(1.0)))
    assert caught.value.recoverable


@pytest.mark.parametrize(
    "piece",
    [b"x" * 65_536, b"data: " + b"x" * 1_000 + b"\n"],
    ids=["one endless line", "data lines that never end the event"],
)
async def test_an_event_that_never_ends_is_cut_off_before_it_fills_the_memory(
    server: FakeVllmServer, make_model: MakeModel, piece: bytes
) -> None:
    import tracemalloc

    server.script.append(Flood(piece, total_bytes=48_000_000, reply=Spoken("你好", tuple(range(8)))))
    tracemalloc.start()
    try:
        # 4 MB must arrive before the idle limit: generous, for a machine busy with other work.
        with pytest.raises(ModelError, match="an event of over") as caught:
            await collect(make_model(idle_timeout_seconds=30.0), ModelRequest("kitchen", audio=utterance(1.0)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.recoverable
    assert peak < 16_000_000, f"{peak / 1e6:.0f} MB held for a 48 MB flood"


async def test_a_prompt_over_the_context_length_starts_the_room_afresh(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    message = "This model's maximum context length is 16384 tokens. However, you requested 17000 tokens."
    server.script.append(Fail(400, {"error": {"message": message, "code": 400}}))
    with pytest.raises(ModelError, match="fresh") as caught:
        await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    assert caught.value.recoverable and model.history("kitchen") == []


async def test_a_prompt_whose_text_fills_the_context_starts_the_room_afresh(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.append(Spoken("好的" * 20, tuple(range(400))))
    await collect(model, ModelRequest("kitchen", text="讲个故事"))
    # The fork counts that long spoken answer as text tokens: the next prompt's text alone overflows.
    server.max_model_len = prompt_lengths(server.requests[0])[1] + 100
    with pytest.raises(ModelError, match="fresh") as caught:
        await collect(model, ModelRequest("kitchen", text="再讲一个"))
    assert server.overflows == ["http 400"]
    assert caught.value.recoverable and model.history("kitchen") == []
    events = await collect(model, ModelRequest("kitchen", text="再讲一个"))  # the turn's retry
    assert events[-1] == ModelDone("stop") and server.overflows == ["http 400"]


async def test_a_prompt_whose_audio_overflows_the_context_mid_stream_starts_the_room_afresh(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.append(Spoken("好的" * 5, tuple(range(40))))
    await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    # The text fits; the audio, once the encoder expands it, does not: HTTP 200 and an error event.
    server.max_model_len = prompt_lengths(server.requests[0])[1] + 100
    with pytest.raises(ModelError, match="fresh") as caught:
        await collect(model, ModelRequest("kitchen", audio=utterance(6.0)))
    assert server.overflows == ["error event"]
    assert caught.value.recoverable and model.history("kitchen") == []
    events = await collect(model, ModelRequest("kitchen", audio=utterance(6.0)))
    assert events[-1] == ModelDone("stop") and len(server.requests) == 3


async def test_a_tool_round_over_the_context_keeps_its_question_and_calls(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.append(Spoken("好的" * 20, tuple(range(400))))
    await collect(model, ModelRequest("kitchen", (WEATHER,), text="讲个故事"))
    call = FakeCall("get_weather", '{"city": "成都"}')
    server.script.append(Spoken("", (), calls=(call,)))
    await collect(model, ModelRequest("kitchen", (WEATHER,), text="成都天气呢"))
    server.max_model_len = prompt_lengths(server.requests[0])[1] + 150
    result = ToolResult(call.call_id, "get_weather", {"weather": "晴"})
    with pytest.raises(ModelError, match="fresh"):
        await collect(model, ModelRequest("kitchen", (WEATHER,), tool_results=(result,)))
    assert server.overflows == ["http 400"]
    assert [m["role"] for m in model.history("kitchen")] == ["human", "assistant"]
    events = await collect(model, ModelRequest("kitchen", (WEATHER,), tool_results=(result,)))
    assert events[-1] == ModelDone("stop")
    assert [m["role"] for m in server.requests[-1]["messages"]] == [
        "system",
        "human",
        "assistant",
        "input",
        "assistant",
    ]


async def test_a_spoken_answer_that_only_calls_a_tool_is_replayed_as_the_model_wrote_it(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    call = FakeCall("get_weather", '{"city":"成都"}')
    server.script.extend([Spoken("", (), calls=(call,)), Spoken("成都晴", (1, 2))])
    await collect(model, ModelRequest("kitchen", (WEATHER,), text="成都天气"))
    result = ToolResult(call.call_id, "get_weather", {"weather": "晴"})
    await collect(model, ModelRequest("kitchen", (WEATHER,), tool_results=(result,)))
    prompt = render_prompt(server.requests[1])
    assert (
        '<|BOT|>assistant\n<tts_start><tts_end><tool_call>function\nget_weather\n{"city": "成都"}</tool_call>' in prompt
    )


async def test_several_tool_results_of_one_round_go_back_as_one_input_turn(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    calls = (FakeCall("get_weather", '{"city": "成都"}'), FakeCall("get_weather", '{"city": "重庆"}'))
    server.script.extend([Spoken("我查一下", (1, 2, 3, 4), calls=calls), Spoken("都晴", (5,))])
    first = await collect(model, ModelRequest("kitchen", (WEATHER,), text="成都和重庆天气"))
    assert [e.arguments for e in first if isinstance(e, ModelToolCall)] == [{"city": "成都"}, {"city": "重庆"}]
    results = (
        ToolResult(calls[0].call_id, "get_weather", {"weather": "晴"}),
        ToolResult(calls[1].call_id, "get_weather", {"weather": "阴"}),
    )
    await collect(model, ModelRequest("kitchen", (WEATHER,), tool_results=results))
    messages = server.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "human", "assistant", "input", "assistant"]
    assert input_turn(results) + "<|BOT|>assistant\n<tts_start>" in render_prompt(server.requests[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_server_that_is_down_fails_recoverably_and_is_published(published: list[Event]) -> None:
    clock = InstantClock()
    settings = VllmModelSettings(base_url=f"http://box:pa55word@127.0.0.1:{free_port()}/v1", retries=2)
    model = VllmSpeechModel(settings, PersonaSettings(), published.append, clock=clock)
    try:
        with pytest.raises(ModelError, match="cannot reach") as caught:
            await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    finally:
        await model.aclose()
    assert caught.value.recoverable and len(clock.sleeps) == 2
    [change] = [e for e in published if isinstance(e, ConnectionChanged)]
    assert (change.service, change.connected) == ("model", False)
    assert "127.0.0.1" in change.detail and "pa55word" not in change.detail + caught.value.message


async def test_a_refused_connection_is_retried_until_the_server_is_up(published: list[Event]) -> None:
    port = free_port()
    late = FakeVllmServer()
    clock = InstantClock(on_sleep=lambda: late.start(port))
    model = VllmSpeechModel(
        VllmModelSettings(base_url=f"http://127.0.0.1:{port}/v1", retries=1),
        PersonaSettings(),
        published.append,
        clock=clock,
    )
    try:
        events = await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    finally:
        await model.aclose()
        await late.stop()
    assert events[-1] == ModelDone("stop") and len(clock.sleeps) == 1 and late.problems == []
    assert [e.connected for e in published if isinstance(e, ConnectionChanged)] == [False, True]


# --- health --------------------------------------------------------------------------------------------------


async def test_health_checks_publish_each_change_of_reachability_once(
    server: FakeVllmServer, make_model: MakeModel, published: list[Event]
) -> None:
    model = make_model()
    assert await model.check_health() and await model.check_health()
    server.models_status = 503
    assert not await model.check_health()
    server.models_status = 200
    server.model = "another-model"
    assert not await model.check_health()
    server.model = "step-audio-2-mini"
    assert await model.check_health()
    changes = [(e.connected, e.detail) for e in published if isinstance(e, ConnectionChanged)]
    assert [connected for connected, _ in changes] == [True, False, True]
    assert "503" in changes[1][1]


async def test_health_checks_report_a_missing_model_by_name(server: FakeVllmServer, published: list[Event]) -> None:
    model = build_vllm_model(
        VllmModelSettings(base_url=server.base_url, model="step-audio-2-think"), PersonaSettings(), published.append
    )
    try:
        assert not await model.check_health()
    finally:
        await model.aclose()
    [change] = published
    assert isinstance(change, ConnectionChanged) and "step-audio-2-think" in change.detail and not change.connected


async def test_the_health_loop_backs_off_while_down_and_waits_the_interval_while_up(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1
        server.models_status = 200 if ticks >= 2 else 500
        if ticks == 3:
            raise asyncio.CancelledError

    clock = InstantClock(on_sleep=tick)
    server.models_status = 500
    with pytest.raises(asyncio.CancelledError):
        await make_model(clock=clock, health_interval_seconds=30).run_health_checks()
    assert clock.sleeps[0] < 2 and clock.sleeps[1] < 3 and clock.sleeps[2] == 30


# --- many rooms, barge-in ------------------------------------------------------------------------------------------


async def test_concurrent_rooms_keep_their_histories_apart(server: FakeVllmServer, make_model: MakeModel) -> None:
    def answer(body: dict[str, Any]) -> Spoken:
        question = body["messages"][-2]["content"]
        return Spoken(f"答{question}", tuple(range(12)), token_delay_seconds=0.001)

    server.default = answer
    model = make_model()
    rooms = [f"room{r}" for r in range(4)]

    async def converse(room: str) -> list[str]:
        answers = []
        for turn in range(3):
            events = await collect(model, ModelRequest(room, text=f"{room}-q{turn}"))
            answers.append(text(events))
        return answers

    results = await asyncio.gather(*(converse(room) for room in rooms))
    assert results == [[f"答{room}-q{t}" for t in range(3)] for room in rooms]
    for body in server.requests:
        room = body["messages"][-2]["content"].split("-")[0]
        said = [m.get("content") or m.get("tts_content", {}).get("tts_text") for m in body["messages"][1:-1]]
        assert all(room in line for line in said), said
    assert {len(b["messages"]) for b in server.requests} == {3, 5, 7}


async def test_cancelling_a_reply_closes_the_stream_and_keeps_what_was_heard(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    server.script.append(Spoken("一二三四五六七八九十", tuple(range(40)), token_delay_seconds=0.01))
    model = make_model()
    heard: list[ModelEvent] = []
    six_codes_heard = asyncio.Event()

    async def listen() -> None:
        async for event in model.respond(ModelRequest("kitchen", audio=utterance(1.0))):
            heard.append(event)
            if len(speech(heard)) >= 6:
                six_codes_heard.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(six_codes_heard.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.disconnected.wait(), 1.0)
    [user, partial] = model.history("kitchen")
    assert user["role"] == "human"
    assert 6 <= partial["tts_content"]["tts_audio"].count("<audio_") < 40


async def test_a_speculative_round_taken_back_leaves_the_rooms_history_as_it_was(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.append(Spoken("你好", tuple(range(8))))
    await collect(model, ModelRequest("kitchen", audio=utterance(1.0)))
    kept = model.history("kitchen")
    server.script.append(Spoken("半句", tuple(range(8))))
    await collect(model, ModelRequest("kitchen", audio=utterance(0.5), speculative=True))
    assert len(model.history("kitchen")) > len(kept)
    model.retract("kitchen")
    assert model.history("kitchen") == kept
    model.retract("kitchen")
    assert model.history("kitchen") == kept, "a second retract takes back nothing more"


async def test_a_round_cancelled_while_speculative_and_taken_back_leaves_no_partial_answer(
    server: FakeVllmServer, make_model: MakeModel
) -> None:
    model = make_model()
    server.script.append(Spoken("你好你好你好", tuple(range(40))))
    stream = model.respond(ModelRequest("kitchen", audio=utterance(0.5), speculative=True))
    await anext(stream)
    await stream.aclose()
    model.retract("kitchen")
    assert model.history("kitchen") == []
