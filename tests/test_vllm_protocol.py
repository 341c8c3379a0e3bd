"""The pure half of the vLLM backend: requests, stream assembly and history, without a server."""

from __future__ import annotations

import base64
import io
import json
import logging
import wave

import pytest

from assistant.audio import AudioChunk
from assistant.config import VllmModelSettings
from assistant.model.stepaudio2.prompt import input_turn
from assistant.model.stepaudio2.vllm_protocol import (
    TTS_START,
    History,
    PromptTooLong,
    ReplyAssembler,
    StreamError,
    audio_items,
    build_payload,
    estimate_tokens,
    is_context_overflow,
    parse_speech_codes,
    split_audio,
    tool_result_messages,
    user_message,
)
from assistant.ports import ModelSpeech, ModelText, ToolResult, ToolSpec
from support.vllm_fake import (
    FakeCall,
    Overflow,
    Spoken,
    Written,
    check_request,
    overflow_event,
    render_prompt,
    stream_chunks,
)

WEATHER = ToolSpec(
    "get_weather", "查天气", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)


def tone(seconds: float) -> AudioChunk:
    samples = round(seconds * 16_000)
    return AudioChunk((bytes(range(256)) * (samples // 128 + 1))[: 2 * samples])


def feed_all(assembler: ReplyAssembler, reply: Spoken | Written) -> list[object]:
    events: list[object] = []
    for chunk in stream_chunks(reply):
        events += assembler.feed(json.dumps(chunk))
    events += assembler.feed("[DONE]")
    return events


# --- requests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "pieces"), [(1.0, [1.0]), (25.0, [25.0]), (25.5, [12.75, 12.75]), (60.0, [20.0, 20.0, 20.0])]
)
def test_audio_is_cut_into_even_chunks_of_at_most_25_seconds(seconds: float, pieces: list[float]) -> None:
    chunks = split_audio(tone(seconds))
    assert [round(c.seconds, 3) for c in chunks] == pieces
    assert b"".join(c.pcm for c in chunks) == tone(seconds).pcm


def test_audio_items_are_base64_wavs_of_the_original_samples() -> None:
    audio = tone(30.0)
    items = audio_items(audio)
    pcm = b""
    for item in items:
        assert item["type"] == "input_audio" and item["input_audio"]["format"] == "wav"
        with wave.open(io.BytesIO(base64.b64decode(item["input_audio"]["data"]))) as wav:
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
            pcm += wav.readframes(wav.getnframes())
    assert len(items) == 2 and pcm == audio.pcm


def test_audio_at_another_rate_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="16 kHz"):
        audio_items(AudioChunk(b"\0\0" * 100, 24_000))


def test_a_user_turn_puts_audio_before_text_and_needs_one_of_them() -> None:
    message = user_message(audio=tone(1.0), text="这是什么声音？")
    assert [item["type"] for item in message["content"]] == ["input_audio", "text"]
    assert user_message(audio=None, text="你好") == {"role": "human", "content": "你好"}
    with pytest.raises(ValueError, match="audio or text"):
        user_message(audio=None, text=None)


def test_a_spoken_request_prefills_tts_start_and_continues_it() -> None:
    body = build_payload(
        VllmModelSettings(),
        system="sys",
        tools=(WEATHER,),
        messages=[user_message(audio=tone(2), text=None)],
        speak=True,
    )
    assert body["messages"][-1] == {"role": "assistant", "content": TTS_START}
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "查天气", "parameters": dict(WEATHER.parameters)},
        }
    ]
    assert body["stream"] is True and body["skip_special_tokens"] is False
    assert check_request(body) == []


def test_a_text_request_lets_the_server_open_the_answer() -> None:
    body = build_payload(
        VllmModelSettings(), system="sys", tools=(), messages=[user_message(audio=None, text="几点了")], speak=False
    )
    assert body["messages"][-1]["role"] == "human" and "tools" not in body
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (False, True)
    assert check_request(body) == []


def test_a_rounds_tool_results_go_back_as_one_input_turn_laid_out_as_the_local_engine_does() -> None:
    results = (
        ToolResult("a", "get_weather", {"temp_c": 25}),
        ToolResult("b", "get_time", {"ok": False, "error": "无网络"}),
    )
    [message] = tool_result_messages(results)
    assert message["role"] == "input" and message["tool_call_id"] == "a"
    body = build_payload(
        VllmModelSettings(),
        system="sys",
        tools=(WEATHER,),
        messages=[
            user_message(audio=None, text="天气和时间"),
            {"role": "assistant", "content": "", "tool_calls": [call_message("a"), call_message("b")]},
            message,
        ],
        speak=True,
    )
    assert check_request(body) == []
    # What the fork lays out for the model is byte for byte the local engine's input turn.
    assert input_turn(results) + "<|BOT|>assistant\n<tts_start>" in render_prompt(body)
    assert "get_time: " in message["content"][0]["text"] and "口语化" in message["content"][0]["text"]


def call_message(call_id: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


# --- the stream ----------------------------------------------------------------------------------------


def test_speech_codes_out_of_range_are_dropped_with_a_warning_and_the_pad_is_passed_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_speech_codes("<audio_0><audio_6560><audio_6561><audio_9999>junk") == (0, 6560, 6561)
    assert "9999" in caplog.text and "not speech tokens" in caplog.text
    assert "6561" not in caplog.text  # the pad is expected, not worth a warning


def test_a_spoken_reply_yields_its_text_and_speech_in_stream_order() -> None:
    assembler = ReplyAssembler()
    events = feed_all(assembler, Spoken("你好", tuple(range(6))))
    assert events == [
        ModelText("你"),
        *[ModelSpeech((code,)) for code in range(4)],
        ModelText("好"),
        ModelSpeech((4,)),
        ModelSpeech((5,)),
    ]
    assert assembler.complete and assembler.finish_reason == "stop"
    assert assembler.assistant_message() == {
        "role": "assistant",
        "tts_content": {"tts_text": "你好", "tts_audio": "".join(f"<audio_{c}>" for c in range(6))},
    }


DELTA_KEYS = {"role", "content", "reasoning_content", "tool_calls", "tts_content"}


@pytest.mark.parametrize(
    "reply",
    [Spoken("好", (1, 2, 3, 4, 5), calls=(FakeCall("get_weather", '{"city": "成都"}'),)), Written("三点了。")],
    ids=["spoken", "written"],
)
def test_the_fake_streams_the_forks_chunks(reply: Spoken | Written) -> None:
    first, *rest = stream_chunks(reply, tools=True)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    for chunk in rest:
        [choice] = chunk["choices"]
        assert set(choice["delta"]) == DELTA_KEYS
        assert choice["delta"]["role"] is None and choice["delta"]["reasoning_content"] is None
        assert choice["stop_reason"] is None and chunk["usage"] is None
        if isinstance(reply, Spoken):
            assert choice["delta"]["content"] == "" and set(choice["delta"]["tts_content"]) == {"tts_text", "tts_audio"}
        else:
            assert choice["delta"]["tts_content"] == {}
    assert [c["choices"][0]["finish_reason"] for c in rest][-2:] == [
        None,
        "tool_calls" if reply.calls else "stop",
    ]


def test_the_fake_streams_a_tool_call_as_its_name_then_its_whole_arguments() -> None:
    call = FakeCall("get_weather", '{"city":"成都",\n "days": 2}', "chatcmpl-tool-1")
    deltas = [c["choices"][0]["delta"]["tool_calls"] for c in stream_chunks(Written("", calls=(call,)))[1:]]
    assert [d for d in deltas if d] == [
        [{"id": call.call_id, "type": "function", "index": 0, "function": {"name": "get_weather", "arguments": None}}],
        [
            {
                "id": None,
                "type": None,
                "index": 0,
                "function": {"name": None, "arguments": '{"city": "成都", "days": 2}'},
            }
        ],
    ]


@pytest.mark.parametrize("arguments", ['{"city": 成都}', "{}"])
def test_the_fake_streams_only_the_name_of_a_call_whose_arguments_are_invalid_or_empty(arguments: str) -> None:
    chunks = stream_chunks(Spoken("", (), calls=(FakeCall("get_weather", arguments),)))
    calls = [d for c in chunks[1:] for d in c["choices"][0]["delta"]["tool_calls"]]
    assert [(d["function"]["name"], d["function"]["arguments"]) for d in calls] == [("get_weather", None)]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_words_after_tts_end_never_reach_the_client_and_nothing_waits_for_them() -> None:
    # The fork blanks content on every chunk of a spoken reply: the model's "（笑）" is lost on the wire.
    reply = Spoken("好的", (1, 2, 3, 4), after="（笑）", calls=(FakeCall("get_weather", '{"city": "成都"}'),))
    assert not any("笑" in json.dumps(c, ensure_ascii=False) for c in stream_chunks(reply))
    assembler = ReplyAssembler(spoken=True)
    events = feed_all(assembler, reply)
    assert "".join(e.text for e in events if isinstance(e, ModelText)) == "好的"
    calls = assembler.tool_calls((WEATHER,))
    assert calls[0].arguments == {"city": "成都"} and assembler.complete
    message = assembler.assistant_message(calls)
    assert message is not None and "content" not in message
    assert message["tts_content"] == {"tts_text": "好的", "tts_audio": "<audio_1><audio_2><audio_3><audio_4>"}


@pytest.mark.parametrize(
    ("message", "overflow"),
    [
        ("max_tokens must be at least 1, got -616.", True),
        ("max_tokens must be at least 1, got 0.", True),
        ("The decoder prompt (length 17021) is longer than the maximum model length of 16384. Make sure…", True),
        ("This model's maximum context length is 16384 tokens. However, you requested 17000 tokens.", True),
        ("max_tokens must be at least 1, got 5.", False),
        ("CUDA out of memory", False),
    ],
)
def test_context_overflow_is_recognised_in_the_forks_words_and_upstreams(message: str, overflow: bool) -> None:
    assert is_context_overflow(message) is overflow


def test_an_overflow_error_event_is_told_apart_from_other_failures() -> None:
    with pytest.raises(PromptTooLong):
        ReplyAssembler().feed(overflow_event(Overflow(16_000, 1_021)).removeprefix("data: "))
    with pytest.raises(StreamError) as caught:
        ReplyAssembler().feed('{"error": {"message": "engine died", "code": 500}}')
    assert not isinstance(caught.value, PromptTooLong)


def test_tool_call_arguments_sent_whole_after_the_name_are_read() -> None:
    assembler = ReplyAssembler()
    feed_all(assembler, Spoken("好", (1, 2), calls=(FakeCall("get_weather", '{"city": "成都", "days": 2}', "id-1"),)))
    [call] = assembler.tool_calls()
    assert (call.call_id, call.name, call.arguments, call.error) == (
        "id-1",
        "get_weather",
        {"city": "成都", "days": 2},
        None,
    )
    message = assembler.assistant_message([call])
    assert message is not None and message["tool_calls"] == [
        {
            "id": "id-1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "成都", "days": 2}'},
        }
    ]


CLOCK = ToolSpec("get_time", "现在几点", {"type": "object", "properties": {}})


@pytest.mark.parametrize(
    ("tool", "arguments", "error"),
    [
        # The fork sends no arguments for JSON it cannot parse, nor for {}: the schema tells the two apart.
        (WEATHER, '{"city": "成都"', "without its arguments (city)"),
        (WEATHER, '{"city": 成都}', "without its arguments (city)"),
        (WEATHER, "{}", "without its arguments (city)"),
        (WEATHER, '["成都"]', "JSON object"),
        (CLOCK, "{}", None),
        (CLOCK, "{oops", None),
    ],
)
def test_unusable_tool_arguments_become_an_error_not_a_crash(tool: ToolSpec, arguments: str, error: str | None) -> None:
    assembler = ReplyAssembler()
    feed_all(assembler, Written("", calls=(FakeCall(tool.name, arguments),)))
    [call] = assembler.tool_calls((WEATHER, CLOCK))
    assert call.name == tool.name
    if error is None:
        assert call.error is None and call.arguments == {}
    else:
        assert call.error is not None and error in call.error
        message = assembler.assistant_message([call])
        assert message is not None and message["tool_calls"][0]["function"]["arguments"] == "{}"


def test_a_tool_call_without_a_name_is_reported() -> None:
    assembler = ReplyAssembler()
    assembler.feed(
        json.dumps(
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]}
        )
    )
    [call] = assembler.tool_calls()
    assert call.error is not None and "without a name" in call.error


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"choices": [{"delta": {"content": "x"', "not JSON"),
        ("[1, 2]", "list"),
        ('{"object": "chat.completion.chunk"}', "choices"),
        ('{"error": {"message": "CUDA out of memory", "code": 500}}', "CUDA out of memory"),
        ('{"choices": [{"index": 0, "delta": {"tool_calls": 1}}]}', "not a list"),
    ],
)
def test_malformed_or_failed_chunks_raise_a_stream_error(data: str, message: str) -> None:
    with pytest.raises(StreamError, match=message):
        ReplyAssembler().feed(data)


def test_a_written_reply_yields_content_and_keeps_it_as_text() -> None:
    assembler = ReplyAssembler()
    events = feed_all(assembler, Written("现在三点。"))
    assert "".join(e.text for e in events if isinstance(e, ModelText)) == "现在三点。"
    assert assembler.assistant_message() == {"role": "assistant", "content": "现在三点。"}


def test_a_usage_only_chunk_and_empty_deltas_are_harmless() -> None:
    assembler = ReplyAssembler()
    assert assembler.feed('{"choices": [], "usage": {"prompt_tokens": 3}}') == []
    assert assembler.feed('{"choices": [{"index": 0, "delta": {"content": "", "tts_content": {}}}]}') == []
    assert not assembler.complete and assembler.assistant_message() is None


# --- history ------------------------------------------------------------------------------------------------


def exchange(seconds: float, spoken_codes: int) -> list[dict[str, object]]:
    answer = {
        "tts_text": "好" * (spoken_codes // 20),
        "tts_audio": "".join(f"<audio_{i}>" for i in range(spoken_codes)),
    }
    return [user_message(audio=tone(seconds), text=None), {"role": "assistant", "tts_content": answer}]


def test_token_estimates_follow_the_reference_rates() -> None:
    user, answer = exchange(10.0, 250)
    assert 125 <= estimate_tokens(user) <= 135  # 12.5 per second heard
    assert 300 <= estimate_tokens(answer) <= 330  # ~31 per second spoken


def test_history_turns_older_spoken_answers_into_text_before_dropping_exchanges() -> None:
    history = History(budget_tokens=500)
    history.extend(exchange(5.0, 250))
    history.extend(exchange(5.0, 250))
    assert "tts_content" not in history.messages[1] and history.messages[1]["content"].startswith("好")
    assert "tts_content" in history.messages[3]
    history.extend(exchange(5.0, 250))
    assert len(history.messages) == 4 and history.tokens() <= 500
    assert history.messages[0]["role"] == "human"


def test_history_keeps_the_newest_exchange_even_over_budget() -> None:
    history = History(budget_tokens=0)
    history.extend(exchange(5.0, 100))
    history.extend(exchange(5.0, 100))
    assert len(history.messages) == 2 and "tts_content" in history.messages[1]


def test_tool_calls_left_without_results_are_closed_before_the_next_question() -> None:
    history = History(budget_tokens=10_000)
    call = {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history.extend([user_message(audio=None, text="天气"), {"role": "assistant", "content": "", "tool_calls": [call]}])
    history.close_open_tool_calls()
    assert history.messages == [user_message(audio=None, text="天气")]
