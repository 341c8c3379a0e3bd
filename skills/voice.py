"""Voice control: say the last answer again, and speak slower or faster, without asking the model twice."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from assistant.errors import ConfigError
from assistant.events import SpeakingSpeedChanged
from assistant.skills import Skill, SkillDeps
from assistant.tools import tool
from assistant.voice.replay import ReplayTools


class VoiceSkill(Skill):
    """Repeat the last answer and change the speaking speed."""

    name = "voice"

    def __init__(self, config: Skill.Config, deps: SkillDeps) -> None:
        super().__init__(config, deps)
        voice = deps.voice
        if voice is None:
            raise ConfigError("skills.voice: needs the assistant's voice, which is not running")
        self._voice = voice
        self._tools = ReplayTools(voice)

    @tool(timeout_seconds=2)
    async def repeat_last_answer(
        self, slower: Annotated[bool, Field(description="True when the user asks to hear it more slowly")] = False
    ) -> dict[str, Any]:
        """Say your last answer again, word for word. Use it when the user says "say that again" or "what?"."""
        return await self._tools.repeat_last_answer(slower)

    @tool(timeout_seconds=2)
    async def set_speaking_speed(
        self,
        speed: Annotated[Literal["slower", "normal", "faster"], Field(description="How fast to speak from now on")],
    ) -> dict[str, Any]:
        """Change how fast you speak from now on, when the user asks you to talk slower or faster."""
        result = await self._tools.set_speaking_speed(speed)
        if result.get("ok"):
            # Kept across restarts (assistant.preference_store), like a volume set from Home Assistant.
            self.deps.publish(SpeakingSpeedChanged(speed=self._voice.speed))
        return result
