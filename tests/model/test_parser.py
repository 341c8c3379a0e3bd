"""The token stream parser: interleaved text and speech, pads, tool calls, malformed output."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.model.stepaudio2 import tokens as t
from assistant.model.stepaudio2.parser import TokenStreamParser, parse_tool_call
from assistant.ports import ModelDone, ModelEvent, ModelSpeech, ModelText, ModelToolCall

# A toy byte-level vocabulary: id n < 256 is byte n; two added tokens decode to their markers.
_ADDED = {t.TOOL_CALL_START_ID: b"<tool_call>", t.TOOL_CALL_END_ID: b"</tool_call>"}


def decode(ids: Sequence[int]) -> str:
    return b"".join(_ADDED.get(i, bytes([i]) if i < 256 else b"?") for i in ids).decode("utf-8", errors="replace")


def ids(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def run(
    tokens: Sequence[int], *, in_tts: bool = True, speech_chunk: int = 25
) -> tuple[list[ModelEvent], TokenStreamParser]:
    parser = TokenStreamParser(decode, in_tts=in_tts, speech_chunk=speech_chunk)
    events = [e for token in tokens for e in parser.feed(token)]
    return [*events, *parser.finish()], parser


def audio(*codes: int) -> list[int]:
    return [t.AUDIO_0 + c for c in codes]


def joined_text(events: Sequence[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ModelText))


def speech_codes(events: Sequence[ModelEvent]) -> list[int]:
    return [c for e in events if isinstance(e, ModelSpeech) for c in e.tokens]


def test_interleaved_answer_splits_into_text_and_speech_with_the_pads_passed_on() -> None:
    # "好" is three bytes, so its character only appears once the third byte has arrived.
    hao = ids("好")
    tokens = [hao[0], *audio(1, 2, 3, 4), hao[1], *audio(5, 6, 7, 8), hao[2], *audio(9, 6561, 6561, 6561)]
    tokens += [t.TTS_PAD, *audio(6561, 6561, 6561, 6561), t.TTS_END, t.EOT]
    events, parser = run(tokens)
    assert joined_text(events) == "好"
    assert "\ufffd" not in joined_text(events)
    # As StepFun's split: the pads reach the voice, which decides (voice.token2wav.speech_pad).
    assert speech_codes(events) == [1, 2, 3, 4, 5, 6, 7, 8, 9, *[6561] * 7]
    assert events[-1] == ModelDone("stop")
    assert parser.spoken_text == "好" and parser.speech_tokens == 9  # real speech only


def test_speech_is_sent_at_each_text_slot_and_in_chunks_of_at_most_the_chunk_size() -> None:
    events, _ = run([*audio(*range(10)), ord("a"), *audio(10, 11)], speech_chunk=4)
    speech = [e.tokens for e in events if isinstance(e, ModelSpeech)]
    assert speech == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9), (10, 11)]
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ModelText") == 3  # the text slot comes after the speech before it, in order


def test_tool_call_after_the_spoken_filler_is_parsed_and_not_spoken() -> None:
    tokens = [*ids("好的"), t.TTS_END, t.TOOL_CALL_START_ID, *ids('function\nget_weather\n{"city": "广州"}')]
    tokens += [t.TOOL_CALL_END_ID, t.EOT]
    events, parser = run(tokens)
    assert joined_text(events) == "好的"
    calls = [e for e in events if isinstance(e, ModelToolCall)]
    assert calls == [ModelToolCall("call_1", "get_weather", {"city": "广州"})]
    assert events[-1] == ModelDone("tool_calls")
    assert parser.tool_calls == calls


def test_tool_call_markers_spelt_as_plain_text_are_recognised_even_when_split() -> None:
    events, _ = run([*ids("ok<tool_"), *ids("call>function\nclock\n{}</tool_"), *ids("call>"), t.EOT], in_tts=False)
    assert joined_text(events) == "ok"
    assert [e for e in events if isinstance(e, ModelToolCall)] == [ModelToolCall("call_1", "clock", {})]


def test_text_that_merely_looks_like_the_start_of_a_marker_is_released() -> None:
    events, _ = run([*ids("a <tool"), *ids(" b"), t.EOT], in_tts=False)
    assert joined_text(events) == "a <tool b"
    assert not any(isinstance(e, ModelToolCall) for e in events)


def test_several_calls_in_a_row_get_distinct_ids() -> None:
    body = "".join(f"<tool_call>function\nt{i}\n{{}}</tool_call>" for i in range(3))
    events, _ = run([*ids(body), t.EOT], in_tts=False)
    calls = [e for e in events if isinstance(e, ModelToolCall)]
    assert [c.name for c in calls] == ["t0", "t1", "t2"]
    assert len({c.call_id for c in calls}) == 3


def test_malformed_arguments_become_an_error_call_not_an_exception() -> None:
    events, _ = run([*ids('<tool_call>function\nget_weather\n{"city": 广州}</tool_call>'), t.EOT], in_tts=False)
    (call,) = [e for e in events if isinstance(e, ModelToolCall)]
    assert call.name == "get_weather" and call.arguments == {}
    assert call.error is not None and "not valid JSON" in call.error


def test_an_unterminated_call_is_reported_as_an_error_at_the_end() -> None:
    events, _ = run([*ids('<tool_call>function\nget_weather\n{"city": "广'), t.EOT], in_tts=False)
    (call,) = [e for e in events if isinstance(e, ModelToolCall)]
    assert call.name == "get_weather"
    assert call.error is not None and "cut off" in call.error
    assert events[-1] == ModelDone("tool_calls")


def test_parse_tool_call_rejects_wrong_shapes() -> None:
    assert parse_tool_call("get_weather\n{}", "c").error is not None  # no "function" line
    assert parse_tool_call("function\n\n{}", "c").error is not None  # no name
    not_object = parse_tool_call("function\nf\n[1, 2]", "c")
    assert not_object.error is not None and "JSON object" in not_object.error
    assert parse_tool_call("function\nclock\n", "c") == ModelToolCall("c", "clock", {})


def test_finish_reports_length_and_flushes_held_text() -> None:
    parser = TokenStreamParser(decode, in_tts=False)
    events = [e for token in [*ids("abc<tool")] for e in parser.feed(token)]
    assert joined_text(events) == "abc"
    rest = parser.finish("length")
    assert joined_text(rest) == "<tool"
    assert rest[-1] == ModelDone("length")
    assert parser.finish() == []
