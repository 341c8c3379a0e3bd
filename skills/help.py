"""Call for help: tell the family at once, through Home Assistant notify services or MQTT.

Meant for elderly people living alone: "help, I fell" reaches every configured contact in parallel,
without a confirmation question, and the assistant says who was told (or that nobody could be reached,
so the user phones instead).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from pydantic import Field, model_validator

from assistant.errors import AssistantError, ToolError
from assistant.skills import Skill, SkillConfig, SkillDeps
from assistant.tools import tool

from ._notify import SERVICE_PATTERN, notify_service, notify_topic

_LOGGER = logging.getLogger(__name__)


class Contact(SkillConfig):
    """Someone to tell."""

    name: Annotated[str, Field(min_length=1)]
    """How the assistant refers to them, e.g. 女儿 or Li Wei."""
    notify_service: Annotated[str, Field(pattern=SERVICE_PATTERN)] | None = None
    """Home Assistant notify service reaching their phone, e.g. notify.mobile_app_li_wei."""
    mqtt_topic: str | None = None
    """MQTT topic that reaches them (a pager, a bridge to a messenger)."""

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if not (self.notify_service or self.mqtt_topic):
            raise ValueError("give notify_service, mqtt_topic or both")
        return self


class HelpSkill(Skill):
    """Asks the family for help."""

    name = "help"

    class Config(SkillConfig):
        """Settings of the call-for-help skill."""

        contacts: Annotated[tuple[Contact, ...], Field(min_length=1)]
        """Who is told."""
        person: str = "家里的老人"
        """Who lives here, as named in the message."""
        title: str = "紧急求助"
        """Title of the notification."""
        message: str = "{person}在{time}通过语音助手呼叫求助。{details}"
        """Message template; {person}, {time} (HH:MM) and {details} (what the user said) are filled in."""

    def __init__(self, config: Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        self.settings = config

    @tool(timeout_seconds=15, cancel_on_interrupt=False)
    async def call_for_help(
        self,
        details: Annotated[str, Field(max_length=300, description="What happened, in the user's words")] = "",
    ) -> dict[str, object]:
        """Alert the family at once when the user asks for help, has fallen, feels ill or is in danger."""
        settings = self.settings
        message = settings.message.format(person=settings.person, time=f"{self.deps.now():%H:%M}", details=details)
        names: list[str] = []
        sends = []
        for contact in settings.contacts:
            if contact.notify_service:
                names.append(contact.name)
                sends.append(notify_service(self.deps, contact.notify_service, settings.title, message))
            if contact.mqtt_topic:
                names.append(contact.name)
                payload: dict[str, object] = {"title": settings.title, "message": message, "to": contact.name}
                sends.append(notify_topic(self.deps, contact.mqtt_topic, payload))
        reached: list[str] = []
        for name, outcome in zip(names, await asyncio.gather(*sends, return_exceptions=True), strict=True):
            if outcome is None:
                if name not in reached:
                    reached.append(name)
            elif isinstance(outcome, AssistantError):
                _LOGGER.error("could not alert %s: %s", name, outcome)
            else:
                _LOGGER.error("could not alert %s", name, exc_info=outcome)
        if not reached:
            raise ToolError("nobody could be reached; tell the user to phone for help (120 or 110) right now")
        return {"alerted": reached, "not_reached": [c.name for c in settings.contacts if c.name not in reached]}
