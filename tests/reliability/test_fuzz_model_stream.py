"""Bad model output, fuzzed: random token ids, broken tool calls and broken vLLM streams.

Whatever the model or its server sends, the daemon gets typed events (text, speech codes in range, tool
calls with ``error`` set when unreadable) or a ``ModelError``/``StreamError``, and buffers stay bounded.
Then the same kind of output, played by a scripted model through the supervisor: every turn ends and the
assistant goes back to idle.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

from assistant.config import PersonaSettings, VllmModelSettings
from assistant.errors import ModelError
from assistant.events import AssistantStateChanged, Event, TurnEnded
from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.parser import MAX_TOOL_CALL_CHARS, TOOL_CALL_OPEN, TokenStreamParser
from assistant.model.stepaudio2.vllm import VllmSpeechModel
from assistant.model.stepaudio2.vllm_protocol import MAX_REPLY_CHARS, ReplyAssembler, StreamError
from assistant.ports import (
    ModelDone,
    ModelEvent,
    ModelRequest,
    ModelSpeech,
    ModelText,
    ModelToolCall,
    ModelTranscript,
)
from support.fakes import FakeTools, Step, after, silence, speech, timeline, wake_word
from support.rig import Rig
from support.synthetic import write_tokenizer
from tests.reliability.fuzzing import FUZZ, junk

# --- the token stream parser, with the byte-level tokenizer of the tiny checkpoint ------------------


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    directory = Path(tempfile.mkdtemp(prefix="xiangyin-fuzz-tokenizer-"))
    write_tokenizer(directory)
    return AutoTokenizer.from_pretrained(str(directory))


def _decoder(tokenizer: PreTrainedTokenizerBase) -> Any:
    # Exactly the engine's decode call.
    return lambda ids: str(tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))


_BYTE_SYMBOLS = bytes_to_unicode()


def _byte_ids(tokenizer: PreTrainedTokenizerBase, data: bytes) -> list[int]:
    """Token ids of raw bytes (one token per byte in this vocabulary), valid UTF-8 or not."""
    return [int(tokenizer.convert_tokens_to_ids(_BYTE_SYMBOLS[b])) for b in data]


SPECIAL_IDS = [
    t.TTS_START, t.TTS_END, t.TTS_PAD, t.EOT, t.BOT, t.ENDOFTEXT, t.AUDIO_START, t.AUDIO_END, t.AUDIO_PATCH,
    t.TOOL_CALL_START_ID, t.TOOL_CALL_END_ID, t.AUDIO_0, t.LAST_ID, t.LAST_ID + 1, t.VOCAB_SIZE - 1,
    t.VOCAB_SIZE, -1, 2**40,
]  # fmt: skip
FRAGMENTS = [
    "<tool_call>", "</tool_call>", "<tool_", "call>", "function\n", "get_weather\n", '{"city": "广州"}',
    "[1, 2]", '"just a string"', "42", "null", "{", '{"a": ' * 50, "\n", "好的，", "<tts_start>", "<|EOT|>",
]  # fmt: skip

pieces = st.one_of(
    st.sampled_from(SPECIAL_IDS).map(lambda i: ("ids", [i])),
    st.lists(st.integers(t.AUDIO_0, t.LAST_ID), min_size=1, max_size=8).map(lambda ids: ("ids", ids)),
    st.lists(st.integers(-3, t.VOCAB_SIZE + 3), min_size=1, max_size=4).map(lambda ids: ("ids", ids)),
    st.binary(min_size=1, max_size=12).map(lambda data: ("bytes", data)),
    st.sampled_from(FRAGMENTS).map(lambda text: ("bytes", text.encode())),
    st.text(max_size=12).map(lambda text: ("bytes", text.encode())),
)


def _check_events(events: Sequence[ModelEvent]) -> None:
    """What the turn relies on, whatever the model wrote."""
    assert [e for e in events if isinstance(e, ModelDone)] == [events[-1]]
    for event in events:
        assert isinstance(event, ModelText | ModelSpeech | ModelToolCall | ModelDone)
        if isinstance(event, ModelSpeech):
            assert event.tokens and all(0 <= code <= t.AUDIO_PAD_CODE for code in event.tokens)
        if isinstance(event, ModelText):
            assert event.text and TOOL_CALL_OPEN not in event.text
        if isinstance(event, ModelToolCall):
            assert isinstance(event.arguments, Mapping) and isinstance(event.name, str)
            assert event.error is None or (isinstance(event.error, str) and not event.arguments)
            assert event.error is not None or event.name


@FUZZ
@given(script=st.lists(pieces, max_size=60), in_tts=st.booleans())
@example(script=[("ids", [-1]), ("ids", [2**40])], in_tts=False)
@example(script=[("bytes", b"<tool_call>function\nf\n[" + b"[" * 5000)], in_tts=False)
def test_random_token_streams_give_typed_events(
    tokenizer: PreTrainedTokenizerBase, script: list[tuple[str, Any]], in_tts: bool
) -> None:
    parser = TokenStreamParser(_decoder(tokenizer), in_tts=in_tts, speech_chunk=7)
    events: list[ModelEvent] = []
    for kind, value in script:
        for token in value if kind == "ids" else _byte_ids(tokenizer, value):
            events += parser.feed(token)
    events += parser.finish()
    _check_events(events)


def test_an_endless_tool_call_is_reported_while_it_streams_and_not_kept(tokenizer: PreTrainedTokenizerBase) -> None:
    parser = TokenStreamParser(_decoder(tokenizer), in_tts=False)
    events: list[ModelEvent] = []
    for token in _byte_ids(tokenizer, b'<tool_call>function\nget_weather\n{"city": "' + b"x" * 3 * MAX_TOOL_CALL_CHARS):
        events += parser.feed(token)
    (call,) = events
    assert isinstance(call, ModelToolCall) and call.name == "get_weather"
    assert call.error is not None and "longer than" in call.error
    assert parser.finish() == [ModelDone("tool_calls")], "the cut-off call is reported once"


def test_a_call_after_an_oversized_one_is_read_normally(tokenizer: PreTrainedTokenizerBase) -> None:
    parser = TokenStreamParser(_decoder(tokenizer), in_tts=False)
    text = (
        f"<tool_call>function\nf\n{'x' * 2 * MAX_TOOL_CALL_CHARS}</tool_call>ok<tool_call>function\ng\n{{}}</tool_call>"
    )
    events = [e for token in _byte_ids(tokenizer, text.encode()) for e in parser.feed(token)] + parser.finish()
    calls = [e for e in events if isinstance(e, ModelToolCall)]
    assert [c.name for c in calls] == ["f", "g"]
    assert "".join(e.text for e in events if isinstance(e, ModelText)) == "ok"
    assert calls[0].error is not None and calls[1].error is None


def test_invalid_utf8_is_released_as_it_streams_not_held_to_the_end(tokenizer: PreTrainedTokenizerBase) -> None:
    parser = TokenStreamParser(_decoder(tokenizer), in_tts=True)
    texts = [e for token in _byte_ids(tokenizer, b"\xff" * 1000) for e in parser.feed(token)]
    assert sum(len(e.text) for e in texts if isinstance(e, ModelText)) >= 900


# --- the vLLM stream: SSE chunks of any shape -----------------------------------------------------

audio_strings = st.one_of(
    st.lists(st.integers(0, 7000), max_size=6).map(lambda codes: "".join(f"<audio_{c}>" for c in codes)),
    st.sampled_from(["<audio_" + "9" * 5000 + ">", "<audio_-1>", "<audio_>", "<audio_6561>", "garbage"]),
    st.text(max_size=20),
)
maybe = junk(6)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "content": st.text(max_size=20) | maybe,
        "tts_content": st.fixed_dictionaries(
            {}, optional={"tts_text": st.text(max_size=10) | maybe, "tts_audio": audio_strings | maybe}
        )
        | maybe,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.integers(-2, 40) | maybe,
                    "id": st.text(max_size=8) | maybe,
                    "function": st.fixed_dictionaries(
                        {},
                        optional={
                            "name": st.sampled_from(["get_weather", "", "turn_on"]) | st.text(max_size=8) | maybe,
                            "arguments": st.sampled_from(['{"city":', ' "广州"}', "[1]", "3", '"s"', "{}", "{"])
                            | st.text(max_size=10)
                            | maybe,
                        },
                    )
                    | maybe,
                },
            )
            | maybe,
            max_size=3,
        )
        | maybe,
    },
)
chunks = st.one_of(
    st.builds(
        lambda delta, index, reason: {"choices": [{"index": index, "delta": delta, "finish_reason": reason}]},
        deltas | maybe,
        st.just(0) | maybe,
        st.none() | st.sampled_from(["stop", "length", "tool_calls"]) | maybe,
    ),
    st.builds(lambda error: {"error": error}, maybe),
    maybe,
)
sse_data = st.one_of(
    chunks.map(lambda c: json.dumps(c, ensure_ascii=False)),
    st.sampled_from(["[DONE]", "", "{", "[" * 5000, '{"choices": [' + "9" * 5000 + "]}", "NaN"]),
    st.text(max_size=30),
)


def _check_assembled(reply: ReplyAssembler, events: list[ModelEvent]) -> None:
    for event in events:
        assert isinstance(event, ModelText | ModelSpeech)
        if isinstance(event, ModelSpeech):
            assert all(0 <= code <= t.AUDIO_PAD_CODE for code in event.tokens)
    calls = reply.tool_calls()
    _check_events([*calls, ModelDone()])
    message = reply.assistant_message(calls)
    if message is not None:
        json.dumps(message, ensure_ascii=False)  # goes back to the server as history


@FUZZ
@given(data=st.lists(sse_data, max_size=12))
@example(data=['{"choices": [{"delta": {"tts_content": {"tts_audio": "<audio_' + "9" * 5000 + '>"}}}]}'])
@example(data=["[" * 5000])
@example(
    data=['{"choices": [{"delta": {"tool_calls": [{"function": {"name": "f", "arguments": "' + "[" * 3000 + '"}}]}}]}']
)
def test_any_sse_chunks_give_text_speech_and_calls_or_a_stream_error(data: list[str]) -> None:
    reply = ReplyAssembler()
    events: list[ModelEvent] = []
    for item in data:
        try:
            events += reply.feed(item)
        except StreamError as err:
            assert str(err)
            return
    _check_assembled(reply, events)


def test_a_reply_cannot_grow_without_bound() -> None:
    reply = ReplyAssembler()
    piece = json.dumps({"choices": [{"delta": {"content": "话" * 10_000}}]})
    with pytest.raises(StreamError, match="longer than"):
        for _ in range(MAX_REPLY_CHARS // 10_000 + 2):
            reply.feed(piece)
    calls = ReplyAssembler()
    arguments = json.dumps(
        {"choices": [{"delta": {"tool_calls": [{"function": {"name": "f", "arguments": "x" * 9999}}]}}]}
    )
    for _ in range(2 * MAX_TOOL_CALL_CHARS // 9999):
        calls.feed(arguments)
    (call,) = calls.tool_calls()
    assert call.error is not None and "longer than" in call.error


bodies = st.one_of(
    st.lists(sse_data, max_size=8).map(lambda items: "".join(f"data: {d}\n\n" for d in items).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"data: \xff\xfe\n\n", b"data: [DONE]\n\n", b"event: error\ndata: {}\n\n", b"\n" * 50]),
    st.builds(lambda doc: json.dumps(doc).encode(), junk(6)),
)


@FUZZ
@given(
    status=st.sampled_from([200, 200, 200, 400, 401, 404, 408, 429, 500, 503]) | st.integers(200, 599),
    content_type=st.sampled_from(
        ["text/event-stream", "application/json", "text/html", "text/event-stream; charset=latin-1"]
    ),
    body=bodies,
)
@example(status=400, content_type="application/json", body=b"[" * 5000)
@example(status=500, content_type="text/html", body=b"x" * 1_000_000)
def test_the_vllm_client_turns_any_reply_into_events_or_a_model_error(
    status: int, content_type: str, body: bytes
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": content_type}, content=body)

    async def ask() -> list[ModelEvent]:
        published: list[Event] = []
        model = VllmSpeechModel(
            VllmModelSettings(retries=0), PersonaSettings(), published.append, transport=httpx.MockTransport(reply)
        )
        events: list[ModelEvent] = []
        try:
            async with asyncio.timeout(20):
                async for event in model.respond(ModelRequest("room", text="几点了")):
                    events.append(event)
        except ModelError as err:
            assert str(err) and len(str(err)) < 1000
            return []
        finally:
            await model.aclose()
        return events

    events = asyncio.run(ask())
    if events:
        _check_events(events)


# --- the same kind of output through the supervisor --------------------------------------------

QUESTION = timeline(silence(0.4), wake_word(), speech(1.2), silence(3.0))

model_events = st.one_of(
    st.builds(ModelTranscript, st.text(max_size=20)),
    st.builds(ModelText, st.text(max_size=30) | st.just("长" * 200)),
    st.builds(ModelSpeech, st.lists(st.integers(0, t.SPEECH_CODES - 1), max_size=60).map(tuple)),
    st.builds(
        ModelToolCall,
        st.text(max_size=6),
        st.sampled_from(["echo", "slow", "broken", "", "nope"]) | st.text(max_size=10),
        st.dictionaries(st.text(max_size=5), junk(5), max_size=3),
        st.none() | st.text(max_size=20),
    ),
    st.builds(ModelDone, st.sampled_from(["stop", "tool_calls", "length"]) | st.text(max_size=8)),
)
failures = st.one_of(
    st.builds(lambda recoverable: ModelError("the model fell over", recoverable=recoverable), st.booleans()),
    st.just(RuntimeError("a bug in a model adapter")),
)
steps = st.builds(after, st.floats(0, 1.5), model_events | failures)


def _idle_after_a_turn(events: list[Event]) -> bool:
    states = [e.new for e in events if isinstance(e, AssistantStateChanged)]
    return any(isinstance(e, TurnEnded) for e in events) and bool(states) and states[-1] == "idle"


async def _echo(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"echo": str(dict(arguments))[:200]}


async def _slow(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    await asyncio.sleep(0.01)
    return {"ok": True}


async def _broken(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"ok": False, "error": "broken on purpose"}


@FUZZ
@given(rounds=st.lists(st.lists(steps, max_size=8), min_size=1, max_size=5))
@example(rounds=[[after(0.1, ModelToolCall("c1", "echo", {"a": float("nan")})), after(0, ModelDone("tool_calls"))]])
@example(rounds=[[after(0.1, ModelText("好")), after(0.1, RuntimeError("adapter bug"))]])
@example(rounds=[[]])
def test_every_turn_ends_and_the_assistant_returns_to_idle(rounds: list[list[Step]]) -> None:
    tools = FakeTools(handlers={"echo": _echo, "slow": _slow, "broken": _broken})
    rig = Rig(rounds=rounds, tools=tools)
    events = asyncio.run(rig.run(QUESTION, until=_idle_after_a_turn, limit_seconds=300))
    assert sum(isinstance(e, TurnEnded) for e in events) == 1
