"""Timers, alarms and reminders: "remind me to take my medicine every day at 8", listing and cancelling.

They live in the scheduler's SQLite store (:mod:`assistant.scheduler`), so they survive restarts and power
cuts, and fire as spoken announcements; optionally also as Home Assistant notifications or MQTT messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import Field

from assistant.errors import AssistantError, ConfigError, StorageError, ToolError
from assistant.scheduler import Reminder, ReminderScheduler
from assistant.skills import Skill, SkillConfig, SkillDeps
from assistant.tools import tool

from ._notify import SERVICE_PATTERN, notify_service, notify_topic

_LOGGER = logging.getLogger(__name__)

_CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3])[:：]([0-5]\d)$")
_MAX_LISTED = 10

Said = Annotated[
    str,
    Field(min_length=1, max_length=200, description="What to say when it is due, in the user's language"),
]


class TimersSkill(Skill):
    """Timers, alarms and reminders that survive restarts."""

    name = "timers"

    class Config(SkillConfig):
        """Settings of the timers skill."""

        notify_services: tuple[Annotated[str, Field(pattern=SERVICE_PATTERN)], ...] = ()
        """Home Assistant notify services that also get every reminder, e.g. notify.mobile_app_li."""
        notify_topic: str = ""
        """MQTT topic that also gets every reminder as JSON; empty for none."""
        max_pending: Annotated[int, Field(ge=1, le=500)] = 50
        """Most timers and reminders kept at once."""

    def __init__(self, config: Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        self.settings = config
        if deps.scheduler is None:
            raise ConfigError("skills.timers: needs the scheduler, which is not running")
        self._scheduler: ReminderScheduler = deps.scheduler
        if config.notify_services or config.notify_topic:
            self._scheduler.add_listener(self._notify)

    # --- tools ------------------------------------------------------------------------------------

    @tool(timeout_seconds=5)
    async def set_timer(
        self,
        announcement: Said,
        minutes: Annotated[float, Field(ge=0, le=1440, description="Minutes from now")] = 0,
        seconds: Annotated[int, Field(ge=0, le=86400, description="Extra seconds from now")] = 0,
    ) -> dict[str, object]:
        """Start a countdown timer, e.g. for cooking. Give its length in minutes and/or seconds."""
        total = minutes * 60 + seconds
        if total < 1:
            raise ToolError("the timer needs a length of at least one second")
        self._check_room()
        with _saving():
            reminder = self._scheduler.add_after("timer", announcement, total)
        return {"set": _describe(reminder, self.deps.now()), "seconds": round(total)}

    @tool(timeout_seconds=5)
    async def set_reminder(
        self,
        text: Said,
        time_of_day: Annotated[str, Field(description="Local time as HH:MM, 24-hour clock, e.g. 08:00 or 19:30")],
        day: Annotated[str, Field(description="Date as YYYY-MM-DD; empty for the next time the clock shows it")] = "",
        repeat: Annotated[
            Literal["none", "daily", "weekdays", "weekends", "weekly"], Field(description="How it recurs")
        ] = "none",
        kind: Annotated[Literal["reminder", "alarm"], Field(description="alarm to wake someone up")] = "reminder",
    ) -> dict[str, object]:
        """Set a reminder or an alarm at a clock time, once or repeating, e.g. take medicine every day at 8."""
        match = _CLOCK_TIME.match(time_of_day.strip())
        if match is None:
            raise ToolError(f"time_of_day {time_of_day!r} is not HH:MM")
        at = time(int(match.group(1)), int(match.group(2)))
        now = self.deps.now()
        when = _when(now, at, day.strip())
        self._check_room()
        if repeat == "none" and when <= now:
            raise ToolError(f"{when:%Y-%m-%d %H:%M} has already passed")
        with _saving():
            if repeat == "none":
                reminder = self._scheduler.add_once(kind, text, when)
            else:
                reminder = self._scheduler.add_repeating(
                    kind, text, hour=at.hour, minute=at.minute, repeat=repeat, weekday=when.weekday()
                )
        return {"set": _describe(reminder, now)}

    @tool(timeout_seconds=5, untrusted_output=True)
    async def list_reminders(self) -> dict[str, object]:
        """List the pending timers, alarms and reminders with their ids, soonest first."""
        pending = self._scheduler.pending()
        now = self.deps.now()
        return {"count": len(pending), "pending": [_describe(r, now) for r in pending[:_MAX_LISTED]]}

    @tool(timeout_seconds=5)
    async def cancel_reminder(
        self, reminder_id: Annotated[str, Field(min_length=1, description="Id from list_reminders")]
    ) -> dict[str, object]:
        """Cancel a timer, alarm or reminder by its id (call list_reminders first to find it)."""
        with _saving():
            removed = self._scheduler.cancel(reminder_id.strip())
        if removed is None:
            raise ToolError(f"there is no timer or reminder with id {reminder_id!r}; call list_reminders")
        return {"cancelled": _describe(removed, self.deps.now())}

    # --- helpers ----------------------------------------------------------------------------------

    def _check_room(self) -> None:
        if len(self._scheduler.pending()) >= self.settings.max_pending:
            raise ToolError(f"there are already {self.settings.max_pending} pending; cancel some first")

    async def _notify(self, reminder: Reminder) -> None:
        sends = [notify_service(self.deps, s, reminder.kind, reminder.text) for s in self.settings.notify_services]
        if self.settings.notify_topic:
            payload: dict[str, object] = {"id": reminder.id, "kind": reminder.kind, "text": reminder.text}
            sends.append(notify_topic(self.deps, self.settings.notify_topic, payload))
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, AssistantError):
                _LOGGER.warning("reminder %s: notification failed: %s", reminder.id, outcome)
            elif isinstance(outcome, BaseException):
                _LOGGER.error("reminder %s: notification failed", reminder.id, exc_info=outcome)


@contextlib.contextmanager
def _saving() -> Iterator[None]:
    """Tell the model plainly when the store could not write: nothing was set or cancelled."""
    try:
        yield
    except StorageError as err:
        raise ToolError(f"{err}; nothing was changed, tell the user it could not be saved") from None


def _when(now: datetime, at: time, day: str) -> datetime:
    if day:
        try:
            on = date.fromisoformat(day)
        except ValueError:
            raise ToolError(f"day {day!r} is not YYYY-MM-DD") from None
        return datetime.combine(on, at, tzinfo=now.tzinfo)
    today = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    return today if today > now else today + timedelta(days=1)


def _describe(reminder: Reminder, now: datetime) -> dict[str, object]:
    described: dict[str, object] = {"id": reminder.id, "kind": reminder.kind, "text": reminder.text}
    if reminder.repeat != "none":
        described["repeat"] = reminder.repeat
    if reminder.next_run is not None:
        described["next"] = f"{reminder.next_run:%Y-%m-%d %H:%M}"
        described["in_minutes"] = max(0, round((reminder.next_run - now).total_seconds() / 60))
    return described
