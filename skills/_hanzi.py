"""Chinese script helpers shared by the web skills: spotting Chinese, and Traditional → Simplified."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import opencc

_CJK = re.compile(r"[\u3400-\u9fff]")


def has_chinese(text: str) -> bool:
    """Whether ``text`` holds any Chinese character."""
    return _CJK.search(text) is not None


@functools.cache
def _to_simplified() -> opencc.OpenCC:
    import opencc

    return opencc.OpenCC("t2s.json")


def simplified(text: str) -> str:
    """``text`` in Simplified characters (廣州 → 广州); text without Chinese comes back unchanged."""
    return _to_simplified().convert(text) if has_chinese(text) else text
