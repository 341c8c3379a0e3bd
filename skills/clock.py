"""Clock and date: what time and day it is, here or in another time zone."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from assistant.errors import ToolError
from assistant.skills import Skill
from assistant.tools import tool

_WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


class ClockSkill(Skill):
    """The time and the date."""

    name = "clock"

    @tool(timeout_seconds=2)
    async def get_date_time(
        self,
        timezone: Annotated[
            str,
            Field(description="IANA time zone such as Europe/London, only when the user asks about another place"),
        ] = "",
    ) -> dict[str, object]:
        """Get the current time, date and weekday. Use it for any question about the time or the date."""
        now = self.deps.now()
        if timezone:
            try:
                now = now.astimezone(ZoneInfo(timezone))
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
                raise ToolError(f"unknown time zone {timezone!r}; use an IANA name like Asia/Shanghai") from None
        return {
            "time": now.strftime("%H:%M"),
            "date": now.date().isoformat(),
            "weekday": now.strftime("%A"),
            "weekday_zh": _WEEKDAYS_ZH[now.weekday()],
            "timezone": str(now.tzinfo),
        }
