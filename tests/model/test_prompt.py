"""The chat layout: system prompt from the persona, tool schemas, input turns."""

from __future__ import annotations

import json
from datetime import datetime

from assistant.config import PersonaSettings
from assistant.model.stepaudio2 import prompt
from assistant.ports import ToolResult, ToolSpec

TODAY = datetime(2026, 11, 25, 9, 30)
WEATHER = ToolSpec(
    "get_weather", "查询天气", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)


def test_system_prompt_carries_name_date_place_dialect_and_style() -> None:
    persona = PersonaSettings(name="阿福", dialect="cantonese", style="elderly", location="广州")
    text = prompt.system_prompt(persona, TODAY, with_tools=True)
    assert "阿福" in text
    assert "2026年11月25日，星期三" in text
    assert "广州" in text
    assert "粤语" in text
    assert "慢一点" in text and "重复" in text
    assert "调用工具" in text
    assert "9" not in text.split("星期三")[1]  # no time of day: the prompt must stay stable all day


def test_each_dialect_and_style_changes_the_prompt() -> None:
    texts = {
        prompt.system_prompt(PersonaSettings(dialect=d, style=s), TODAY, with_tools=False)
        for d in ("mandarin", "cantonese", "sichuanese", "english")
        for s in ("default", "elderly", "brief")
    }
    assert len(texts) == 12
    assert all("调用工具" not in text for text in texts)


def test_tools_turn_is_the_openai_function_list_with_unicode_kept() -> None:
    turn = prompt.tools_turn([WEATHER])
    assert turn.startswith("<|BOT|>tool_json_schemas\n") and turn.endswith("<|EOT|>")
    body = json.loads(turn.removeprefix("<|BOT|>tool_json_schemas\n").removesuffix("<|EOT|>"))
    assert body == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "查询天气", "parameters": dict(WEATHER.parameters)},
        }
    ]
    assert "查询天气" in turn


def test_input_turn_holds_the_result_and_asks_for_a_spoken_summary() -> None:
    turn = prompt.input_turn([ToolResult("c1", "get_weather", {"ok": True, "temperature_c": 21})])
    assert turn.startswith("<|BOT|>input\n")
    assert '{"ok": true, "temperature_c": 21}' in turn
    assert turn.endswith(f"\n\n\n{prompt.TOOL_RESULT_INSTRUCTION}<|EOT|>")


def test_input_turn_names_each_result_when_there_are_several() -> None:
    turn = prompt.input_turn([ToolResult("a", "clock", {"time": "09:30"}), ToolResult("b", "weather", {"ok": False})])
    assert 'clock: {"time": "09:30"}' in turn and 'weather: {"ok": false}' in turn


def test_assistant_prefix_asks_for_speech_or_text() -> None:
    assert prompt.assistant_prefix(True) == "<|BOT|>assistant\n<tts_start>"
    assert prompt.assistant_prefix(False) == "<|BOT|>assistant\n"
    assert prompt.tool_call_text("clock", {}) == "<tool_call>function\nclock\n{}</tool_call>"
