"""The real turn driving the vLLM backend against the fake server: tools, the retry, a final failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from assistant.config import ConversationSettings, EndpointSettings, PersonaSettings, VllmModelSettings
from assistant.events import Event, ReplyText, ToolCallFinished, ToolCallRequested, TurnEnded, TurnFailed
from assistant.model.stepaudio2.vllm import VllmSpeechModel
from assistant.turn import Turn, TurnDeps, TurnRequest
from support.fakes import FakeSpeaker, FakeSpeechDetector, FakeTools, FakeVoice
from support.vllm_fake import Fail, FakeCall, FakeVllmServer, Spoken, prompt_lengths


class QuickClock:
    """Real time, but playback does not wait for the audio to be heard."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def weather(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"city": arguments["city"], "weather": "晴", "temp_c": 18}


@pytest.fixture
async def server() -> AsyncIterator[FakeVllmServer]:
    async with FakeVllmServer() as fake:
        yield fake
    assert fake.problems == []


async def ask(
    server: FakeVllmServer, question: str, tools: FakeTools | None = None, model: VllmSpeechModel | None = None
) -> list[Event]:
    events: list[Event] = []
    clock = QuickClock()
    own = model is None
    if model is None:
        model = VllmSpeechModel(
            VllmModelSettings(base_url=server.base_url), PersonaSettings(), events.append, clock=clock
        )
    deps = TurnDeps(
        publish=events.append,
        clock=clock,
        vad=FakeSpeechDetector(),
        model=model,
        voice=FakeVoice(),
        sink=FakeSpeaker(clock),
        tools=tools or FakeTools(),
        endpoint=EndpointSettings(),
        conversation=ConversationSettings(earcons=False),
    )
    try:
        await Turn(deps, TurnRequest("t1", "api", "kitchen", question=question)).run()
    finally:
        if own:
            await model.aclose()
    return events


async def test_a_turn_calls_the_tool_and_speaks_the_summary(server: FakeVllmServer) -> None:
    call = FakeCall("get_weather", '{"city": "成都"}')
    server.script.extend([Spoken("我查一下", tuple(range(8)), calls=(call,)), Spoken("成都晴", tuple(range(12)))])
    tools = FakeTools({"get_weather": weather})
    events = await ask(server, "成都天气怎么样", tools)
    assert [type(e) for e in events if isinstance(e, ToolCallRequested | ToolCallFinished)] == [
        ToolCallRequested,
        ToolCallFinished,
    ]
    assert "".join(e.text for e in events if isinstance(e, ReplyText)) == "我查一下成都晴"
    assert events[-1] == TurnEnded(turn_id="t1", outcome="completed")
    assert tools.calls[0].arguments == {"city": "成都"}
    assert '"temp_c": 18' in server.requests[1]["messages"][3]["content"][0]["text"]


async def test_a_server_hiccup_is_retried_once_by_the_turn(server: FakeVllmServer) -> None:
    server.script.extend([Fail(503), Spoken("好的", (1, 2, 3, 4))])
    events = await ask(server, "你好")
    assert events[-1] == TurnEnded(turn_id="t1", outcome="completed")
    assert len(server.requests) == 2 and server.requests[0] == server.requests[1]


async def test_a_refused_key_fails_the_turn_with_the_reason(server: FakeVllmServer) -> None:
    server.api_key = "the-right-key"
    events = await ask(server, "你好")
    [failure] = [e for e in events if isinstance(e, TurnFailed)]
    assert failure.code == "model-unavailable" and "API key" in failure.message
    assert events[-1] == TurnEnded(turn_id="t1", outcome="error")
    assert len(server.requests) == 0


async def test_a_room_whose_history_outgrew_the_servers_context_answers_after_starting_afresh(
    server: FakeVllmServer,
) -> None:
    # Long spoken answers, well inside the client's own budget: only the server sees the overflow.
    server.default = Spoken("好的" * 20, tuple(range(400)))
    model = VllmSpeechModel(VllmModelSettings(base_url=server.base_url), PersonaSettings(), lambda _: None)
    try:
        await ask(server, "讲个故事", model=model)
        server.max_model_len = prompt_lengths(server.requests[0])[1] + 100
        for question in ("再讲一个", "还有吗"):
            events = await ask(server, question, model=model)
            assert events[-1] == TurnEnded(turn_id="t1", outcome="completed")
    finally:
        await model.aclose()
    assert server.overflows == ["http 400", "http 400"]
    assert [len(body["messages"]) for body in server.requests] == [3, 5, 3, 5, 3]


async def test_a_tool_round_over_the_servers_context_is_retried_with_its_question_and_calls(
    server: FakeVllmServer,
) -> None:
    server.default = Spoken("好的" * 20, tuple(range(400)))
    model = VllmSpeechModel(VllmModelSettings(base_url=server.base_url), PersonaSettings(), lambda _: None)
    call = FakeCall("get_weather", '{"city": "成都"}')
    tools = FakeTools({"get_weather": weather})
    try:
        await ask(server, "讲个故事", model=model)

        def answer(body: dict[str, Any]) -> Spoken:
            # From now on the story (about 500 tokens) no longer fits; the question and its tool round do.
            server.max_model_len = prompt_lengths(body)[1] - 200
            return Spoken("", (), calls=(call,))

        server.script.extend([answer, Spoken("成都晴", (1, 2, 3, 4))])
        events = await ask(server, "成都天气怎么样", tools, model=model)
    finally:
        await model.aclose()
    assert events[-1] == TurnEnded(turn_id="t1", outcome="completed")
    assert server.overflows == ["http 400"] and len(tools.calls) == 1
    assert [m["role"] for m in server.requests[-1]["messages"]] == [
        "system",
        "human",
        "assistant",
        "input",
        "assistant",
    ]
