"""Whole turns through the real supervisor and turn, with the engine on the tiny checkpoint.

The microphone, speaker, voice and tools are the fakes of ``support/fakes.py``; the model is the real
engine, its answers forced by a scripted logits processor, so parsing, the tool round trip, the history
and KV-cache reuse are checked end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from assistant.events import Event, ReplyText, ToolCallFinished, ToolCallRequested, TurnEnded
from assistant.model.stepaudio2 import prompt
from assistant.model.stepaudio2 import tokens as t
from assistant.ports import ToolResult
from support import fakes
from support.rig import Rig, names
from tests.model.conftest import EngineFactory, Speech

pytestmark = pytest.mark.models

QUESTION = fakes.timeline(fakes.silence(0.4), fakes.wake_word(), fakes.speech(1.2), fakes.silence(3.0))
# Fake time runs ahead while the model computes on a real thread; the limit only guards against hangs.
LIMIT_SECONDS = 100_000.0


def squeeze(events: list[Event]) -> list[str]:
    """Event names with runs of ReplyText collapsed to one."""
    out: list[str] = []
    for name in names(events):
        if not (name == "ReplyText" and out and out[-1] == "ReplyText"):
            out.append(name)
    return out


async def test_a_spoken_question_with_a_tool_call_runs_end_to_end(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    s = speech
    filler = [*s.spoken("我查下", list(range(8))), *s.tool_call("get_weather", '{"city": "广州"}'), t.EOT]
    answer = [*s.spoken("广州今日廿一度", list(range(100, 150))), t.EOT]
    follow_up = [*s.spoken("唔使客气", list(range(200, 225))), t.EOT]
    engine = engine_factory([filler, answer, follow_up])

    async def get_weather(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"ok": True, "city": arguments["city"], "temperature_c": 21}

    tools = fakes.FakeTools({"get_weather": get_weather})
    rig = Rig(tools=tools)
    rig.model = engine  # type: ignore[assignment]
    events = await rig.run(QUESTION, limit_seconds=LIMIT_SECONDS)

    sequence = squeeze(events)
    # The filler's speech may reach the speaker before or after its first text: only playback floats.
    assert [n for n in sequence if not n.startswith("Playback")] == [
        "WakeDetected",
        "TurnStarted",
        "ListeningStarted",
        "SpeechStarted",
        "SpeechEnded",
        "ReplyText",
        "ToolCallRequested",
        "ToolCallFinished",
        "ReplyText",
        "ReplyCompleted",
        "TurnEnded",
    ]
    playback = [n for n in sequence if n.startswith("Playback")]
    assert playback == ["PlaybackStarted", "PlaybackFinished"]
    assert sequence.index("PlaybackStarted") < sequence.index(
        "ToolCallRequested"
    )  # the filler plays while the tool runs
    assert events[-1] == TurnEnded(turn_id=events[1].turn_id, outcome="completed")
    requested = next(e for e in events if isinstance(e, ToolCallRequested))
    assert (requested.tool, requested.arguments) == ("get_weather", {"city": "广州"})
    assert next(e for e in events if isinstance(e, ToolCallFinished)).ok
    assert "".join(e.text for e in events if isinstance(e, ReplyText)) == "我查下广州今日廿一度"
    # FakeVoice: 0.1 s per character of text, 25 speech tokens per second.
    assert rig.speaker.played_seconds == pytest.approx(0.1 * len("我查下广州今日廿一度") + (8 + 50) / 25, abs=0.01)

    entries = engine.history("default")
    roles = [e.role for e in entries]
    assert roles == ["system", "tools", "human", "assistant", "input", "assistant"]
    result = ToolResult(requested.call_id, "get_weather", {"ok": True, "city": "广州", "temperature_c": 21})
    assert engine.render(entries[4:5]) == prompt.input_turn([result])
    assert "get_weather" in engine.render(entries[1:2])
    assert entries[2].audio and entries[2].audio[0].count > 0  # the user's audio went in as placeholders

    # A second question in the same conversation: only the new turn is computed, the rest comes from the cache.
    before = engine.last_round.prompt_tokens + engine.last_round.decode_steps
    events = await rig.run(QUESTION, turns=2, limit_seconds=LIMIT_SECONDS)
    assert events[-1].outcome == "completed"  # type: ignore[attr-defined]
    stats = engine.last_round
    human = engine.history("default")[-2]
    assert human.role == "human" and human.audio
    assert stats.reused_tokens == before - 1
    assert stats.prefill_tokens == 1 + len(human.tokens) + len(s.text(prompt.assistant_prefix(True)))
    assert stats.audio_chunks == 1  # only the new utterance was encoded
