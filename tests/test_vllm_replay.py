"""Streams of StepFun's vLLM fork, written by hand from its rules (tests/data/vllm), replayed through the client."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.config import PersonaSettings, VllmModelSettings
from assistant.errors import ModelError
from assistant.model.stepaudio2.vllm import VllmSpeechModel
from assistant.ports import ModelDone, ModelEvent, ModelRequest, ModelSpeech, ModelText, ModelToolCall, ToolSpec
from support.vllm_fake import (
    FakeCall,
    Overflow,
    Spoken,
    Written,
    overflow_event,
    overflow_status,
    sse_line,
    stream_chunks,
)

DATA = Path(__file__).parent / "data" / "vllm"
WEATHER = ToolSpec(
    "get_weather", "查天气", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def answering(*replies: tuple[int, bytes]) -> VllmSpeechModel:
    """A client whose server answers each request with the next recorded reply."""
    answers: Iterator[tuple[int, bytes]] = iter(replies)

    def answer(_: httpx.Request) -> httpx.Response:
        status, body = next(answers)
        headers = SSE if status == 200 else {"content-type": "application/json"}
        return httpx.Response(status, headers=headers, content=body)

    return VllmSpeechModel(
        VllmModelSettings(retries=0), PersonaSettings(), lambda _: None, transport=httpx.MockTransport(answer)
    )


async def replay(name: str, request: ModelRequest) -> tuple[VllmSpeechModel, list[ModelEvent]]:
    """Answer one request with a recorded stream; return the client (closed) and what it yielded."""
    model = answering((200, recorded(name)))
    try:
        events = [event async for event in model.respond(request)]
    finally:
        await model.aclose()
    return model, events


def text(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ModelText))


def codes(events: list[ModelEvent]) -> list[int]:
    return [code for e in events if isinstance(e, ModelSpeech) for code in e.tokens]


# --- through the client --------------------------------------------------------------------------------


async def test_a_recorded_spoken_answer_gives_its_text_and_speech() -> None:
    model, events = await replay("spoken_answer.sse", ModelRequest("room", text="你好"))
    assert text(events) == "好的" and codes(events) == [10, 11, 12, 13, 14, 15]
    assert events[-1] == ModelDone("stop")
    assert model.history("room")[-1] == {
        "role": "assistant",
        "tts_content": {
            "tts_text": "好的",
            "tts_audio": "<audio_10><audio_11><audio_12><audio_13><audio_14><audio_15>",
        },
    }


async def test_a_recorded_tool_call_without_speech_is_read_and_kept_with_its_empty_tts_content() -> None:
    request = ModelRequest("room", (WEATHER,), text="成都天气")
    model, events = await replay("spoken_tool_call.sse", request)
    call_id = "chatcmpl-tool-8d1e6b0f5a2c4c3e9f7a1b2d3c4e5f60"
    assert events == [ModelToolCall(call_id, "get_weather", {"city": "成都"}), ModelDone("tool_calls")]
    assert model.history("room")[-1] == {
        "role": "assistant",
        "tts_content": {"tts_text": "", "tts_audio": ""},
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "成都"}'}}
        ],
    }


async def test_a_recorded_call_whose_arguments_were_not_json_reaches_the_turn_as_an_error() -> None:
    request = ModelRequest("room", (WEATHER,), text="成都天气")
    _, events = await replay("spoken_tool_call_invalid_json.sse", request)
    assert text(events) == "我" and codes(events) == [20, 21, 22, 23]
    [call] = [e for e in events if isinstance(e, ModelToolCall)]
    assert call.name == "get_weather" and call.arguments == {}
    assert call.error is not None and "city" in call.error
    assert events[-1] == ModelDone("tool_calls")


async def test_a_recorded_text_answer_gives_its_content() -> None:
    request = ModelRequest("room", text="几点了", speak=False)
    model, events = await replay("written_answer.sse", request)
    assert events == [ModelText("现在"), ModelText("三点"), ModelText("。"), ModelDone("stop")]
    assert model.history("room")[-1] == {"role": "assistant", "content": "现在三点。"}


@pytest.mark.parametrize(
    "refusal",
    [(200, "decoder_prompt_too_long.sse"), (400, "max_tokens_below_one.json")],
    ids=["error event", "http 400"],
)
async def test_a_recorded_refusal_of_a_prompt_too_long_starts_the_room_afresh(refusal: tuple[int, str]) -> None:
    status, name = refusal
    model = answering((200, recorded("spoken_answer.sse")), (status, recorded(name)))
    try:
        [_ async for _ in model.respond(ModelRequest("room", text="你好"))]
        assert len(model.history("room")) == 2
        with pytest.raises(ModelError, match="fresh") as caught:
            [_ async for _ in model.respond(ModelRequest("room", text="再说一遍"))]
    finally:
        await model.aclose()
    assert caught.value.recoverable and model.history("room") == []


# --- the fake says the same ------------------------------------------------------------------------------


def _normalised(stream: bytes) -> list[bytes]:
    """The data lines with ids and timestamps replaced, which both sides make up."""
    stream = re.sub(rb'"id":"chatcmpl-tool-[0-9a-f]+"', b'"id":"TOOL"', stream)
    stream = re.sub(rb'"id":"chatcmpl-[0-9a-f]+"', b'"id":"CHUNK"', stream)
    stream = re.sub(rb'"created":\d+', b'"created":0', stream)
    return stream.split(b"\n\n")


@pytest.mark.parametrize(
    ("name", "reply", "tools"),
    [
        ("spoken_answer.sse", Spoken("好的", (10, 11, 12, 13, 14, 15)), False),
        ("spoken_tool_call.sse", Spoken("", (), calls=(FakeCall("get_weather", '{"city":"成都"}'),)), True),
        (
            "spoken_tool_call_invalid_json.sse",
            Spoken("我", (20, 21, 22, 23), calls=(FakeCall("get_weather", '{"city": 成都}'),)),
            True,
        ),
        ("written_answer.sse", Written("现在三点。"), False),
    ],
)
def test_the_fake_streams_the_recorded_bytes(name: str, reply: Spoken | Written, tools: bool) -> None:
    fake = b"".join(sse_line(chunk) for chunk in stream_chunks(reply, tools=tools)) + b"data: [DONE]\n\n"
    assert _normalised(fake) == _normalised(recorded(name))


def test_the_fake_refuses_a_prompt_too_long_in_the_recorded_words() -> None:
    event = overflow_event(Overflow(text_tokens=16_000, audio_tokens=1_021))
    assert (event + "data: [DONE]\n\n").encode() == recorded("decoder_prompt_too_long.sse")
    refusal = overflow_status(Overflow(text_tokens=17_000))
    assert refusal is not None and refusal[0] == 400
    assert json.dumps(refusal[1], ensure_ascii=False, separators=(",", ":")).encode() == recorded(
        "max_tokens_below_one.json"
    )
