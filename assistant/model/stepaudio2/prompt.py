r"""The chat layout Step-Audio 2 was trained on, as plain strings (no tokenizer, no torch).

Every turn is ``<|BOT|>{role}\n{content}<|EOT|>``; the user's role is ``human``; tools are declared in a
``tool_json_schemas`` turn right after the system turn; tool results come back in an ``input`` turn; a
spoken answer is requested by opening the assistant turn with ``<tts_start>``. The vLLM backend sends the
same system prompt, tool schemas and ``input`` text, so they live here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from ...config import PersonaSettings
from ...ports import ToolResult, ToolSpec
from .tokens import STRINGS, TTS_START

BOT = "<|BOT|>"
EOT = "<|EOT|>"
TTS_START_TEXT = STRINGS[TTS_START]

_WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")

_DIALECT_LINES = {
    "mandarin": "请用普通话和用户交流。",
    "cantonese": "请用粤语（广东话）和用户交流，用粤语的说法和语气。",
    "sichuanese": "请用四川话和用户交流，用四川话的说法和语气。",
    "english": "Please talk with the user in English.",
}

_STYLE_LINES = {
    "default": "回答要口语化、简洁，适合直接说出来，不要用列表、表格或表情符号。",
    "brief": "回答要非常简短，一两句话说完，不要用列表、表格或表情符号。",
    # Elderly listeners: slower delivery, everyday words, and key facts said twice.
    "elderly": (
        "用户是老人家。请说得慢一点、清楚一点，用简单常用的词和短句，一次只讲一件事；"
        "时间、数字、名字这些重要的信息要重复说一遍。不要用列表、表格或表情符号。"
    ),
}

_TOOL_LINE = (
    "你具备调用工具解决问题的能力，你需要根据用户的需求和上下文情景，自主选择是否调用系统提供的工具来协助用户。"
)

TOOL_RESULT_INSTRUCTION = "请用口语化形式总结检索结果，简短地回答用户的问题。"
"""Appended to an ``input`` turn: StepFun's own words, kept verbatim because the model was tuned on them."""


def turn(role: str, content: str) -> str:
    """One closed chat turn."""
    return f"{BOT}{role}\n{content}{EOT}"


def turn_open(role: str) -> str:
    """The start of a turn whose content follows."""
    return f"{BOT}{role}\n"


def assistant_prefix(speak: bool) -> str:
    """The open assistant turn that asks for an answer: spoken (``<tts_start>``) or text only."""
    return turn_open("assistant") + (TTS_START_TEXT if speak else "")


def system_prompt(persona: PersonaSettings, today: date, *, with_tools: bool) -> str:
    """The persona, the date, the household's dialect and speaking style.

    Only the date goes in, not the time: the system prompt heads the KV cache, so a clock that changed
    every turn would force the whole conversation to be recomputed. The clock skill answers the time.
    """
    lines = [f"你的名字叫做{persona.name}，是这个家里的语音助手，说话亲切、自然，像家里人一样。"]
    if with_tools:
        lines.append(_TOOL_LINE)
    lines.append(f"今天是{today.year}年{today.month}月{today.day}日，{_WEEKDAYS[today.weekday()]}。")
    if persona.location:
        lines.append(f"用户住在{persona.location}；用户没有说地点时，就是指这里。")
    lines.append(_DIALECT_LINES[persona.dialect])
    lines.append(_STYLE_LINES[persona.style])
    lines.append("请用默认女声与用户交流。")
    return "\n".join(lines)


def tool_schemas(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tools in OpenAI's function format, as the model (and vLLM's ``tools=``) expects them."""
    return [
        {
            "type": "function",
            "function": {"name": spec.name, "description": spec.description, "parameters": dict(spec.parameters)},
        }
        for spec in tools
    ]


def tools_turn(tools: Sequence[ToolSpec]) -> str:
    """The ``tool_json_schemas`` turn (non-ASCII kept, as the vLLM fork renders it)."""
    return turn("tool_json_schemas", json.dumps(tool_schemas(tools), ensure_ascii=False))


def tool_call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """A tool call as the model writes it, for replaying earlier answers."""
    return f"<tool_call>function\n{name}\n{json.dumps(dict(arguments), ensure_ascii=False)}</tool_call>"


def tool_results_text(results: Iterable[ToolResult]) -> str:
    """The content of the ``input`` turn that feeds tool results back."""
    items = list(results)
    # default=str: a value a tool forgot to make JSON (a date, a Decimal) is sent as text, not a crash.
    if len(items) == 1:
        body = json.dumps(dict(items[0].content), ensure_ascii=False, default=str)
    else:
        body = "\n".join(f"{r.name}: {json.dumps(dict(r.content), ensure_ascii=False, default=str)}" for r in items)
    return f"{body}\n\n\n{TOOL_RESULT_INSTRUCTION}"


def input_turn(results: Iterable[ToolResult]) -> str:
    """The whole ``input`` turn."""
    return turn("input", tool_results_text(results))
