"""Sending a short message to people through Home Assistant notify services or MQTT."""

from __future__ import annotations

import json
import logging
import re

from assistant.errors import AssistantError
from assistant.skills import SkillDeps

_LOGGER = logging.getLogger(__name__)

SERVICE_PATTERN = r"^notify\.[a-z0-9_]+$"
_SERVICE = re.compile(SERVICE_PATTERN)


async def notify_service(deps: SkillDeps, service: str, title: str, message: str) -> None:
    """Call a Home Assistant ``notify.<name>`` service; raise AssistantError if it fails."""
    if not _SERVICE.match(service):
        raise AssistantError(f"{service!r} is not a notify service")
    if deps.home_assistant is None:
        raise AssistantError("Home Assistant is not set up")
    domain, name = service.split(".", 1)
    await deps.home_assistant.call_service(domain, name, {"title": title, "message": message})


async def notify_topic(deps: SkillDeps, topic: str, payload: dict[str, object]) -> None:
    """Publish a JSON notification; raise AssistantError if MQTT is not set up."""
    if deps.mqtt is None:
        raise AssistantError("MQTT is not set up")
    await deps.mqtt.publish(topic, json.dumps(payload, ensure_ascii=False), qos=1)
