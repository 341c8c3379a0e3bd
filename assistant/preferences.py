"""Settings the household changes while the daemon runs (volume, mute, dialect, wake word, speaking speed).

Pure logic: which bus fact changes which value, how the values read and write as JSON, and how they lay
over the config at start-up. :mod:`assistant.preference_store` keeps them in a file. A value never
changed at run time stays None, so the config's value counts for it.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import Dialect, Settings
from .events import Event, MuteChanged, SettingChanged, SpeakingSpeedChanged, VolumeChanged

_LOGGER = logging.getLogger(__name__)


class Preferences(BaseModel):
    """The values last set at run time; None where the config decides."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)

    volume: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Output gain, linear 0.0-1.0 (``audio.volume`` at start-up)."""
    muted: bool | None = None
    """True while the box does not listen for the wake word."""
    dialect: Dialect | None = None
    """Answer language (``persona.dialect``)."""
    wake_word: str | None = None
    """The one configured wake word listened for; None listens for every configured word."""
    speed: Annotated[float, Field(ge=0.5, le=1.5)] | None = None
    """Speaking speed factor, 0.5-1.5 (1.0 is ``voice.speed``'s normal)."""

    def after(self, event: Event) -> Preferences:
        """These preferences once ``event`` happened; the same object when it changes none of them."""
        match event:
            case VolumeChanged(level=level):
                update: dict[str, Any] = {"volume": round(min(1.0, max(0.0, level)), 3)}
            case MuteChanged(muted=muted):
                update = {"muted": muted}
            case SettingChanged(key="dialect", value=value):
                update = {"dialect": value}
            case SettingChanged(key="wake_word", value=value):
                update = {"wake_word": value}
            case SpeakingSpeedChanged(speed=speed):
                update = {"speed": round(min(1.5, max(0.5, speed)), 3)}
            case _:
                return self
        changed = self.model_copy(update=update)
        return self if changed == self else changed

    def to_json(self) -> str:
        """The file's text: only the values set at run time."""
        return json.dumps(self.model_dump(exclude_none=True), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> Preferences:
        """Read the file's text; a value that is wrong is left out with a warning naming it.

        ValueError when the text is no JSON object at all.
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise ValueError(f"{where} is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where} holds {type(data).__name__}, not a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            bad = {str(error["loc"][0]) for error in err.errors() if error["loc"]}
            for key in sorted(bad):
                _LOGGER.warning("%s: ignoring %s=%r, which is not a valid value", where, key, data.get(key))
            return cls.model_validate({k: v for k, v in data.items() if k not in bad})

    def over(self, settings: Settings) -> Settings:
        """``settings`` with the start-up volume and the dialect taken from these preferences."""
        audio, persona = settings.audio, settings.persona
        if self.volume is not None:
            audio = audio.model_copy(update={"volume": self.volume})
        if self.dialect is not None:
            persona = persona.model_copy(update={"dialect": self.dialect})
        return settings.model_copy(update={"audio": audio, "persona": persona})

    def wake_word_among(self, names: tuple[str, ...]) -> str | None:
        """The kept wake word if the config still has it; None (every word) otherwise, with a warning."""
        if self.wake_word is None or self.wake_word in names:
            return self.wake_word
        _LOGGER.warning(
            "the wake word %r chosen before the restart is no longer configured; listening for %s",
            self.wake_word,
            ", ".join(names) or "none",
        )
        return None
