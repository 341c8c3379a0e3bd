"""Skills: groups of tools with their own config, found through the entry-point group ``xiangyin.skills``.

A skill is a class with a ``name``, a nested ``Config`` (pydantic, frozen, unknown keys refused) and
``@tool`` methods. It receives its validated config and the few collaborators it needs
(:class:`SkillDeps`); it never reads global settings. Built-in skills register themselves in
``pyproject.toml`` exactly as third-party packages do::

    [project.entry-points."xiangyin.skills"]
    weather = "skills.weather:WeatherSkill"

``config.yaml`` switches skills on by name (``skills: {weather: {units: metric}}``). A skill that cannot be
imported, is misconfigured or fails to start is reported and skipped; the others load.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError
from .events import AnnounceRequested, Event
from .ports import Clock, HomeAssistantApi, HouseRegistry, MessagePublisher, VoiceControls
from .redact import Redactor
from .tools import ToolRegistry, tools_of

if TYPE_CHECKING:
    import httpx

    from .scheduler import ReminderScheduler

_LOGGER = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "xiangyin.skills"


class SkillConfig(BaseModel):
    """Base of every skill's settings: frozen, and a typo is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SkillDeps:
    """What skills may use; each takes only the parts it needs, and a missing part disables a tool."""

    publish: Callable[[Event], None]
    """The bus's publish (announcements go out as AnnounceRequested)."""
    clock: Clock
    """Monotonic time."""
    timezone: str = "Asia/Shanghai"
    """IANA time zone of the household."""
    home_location: str = ""
    """Home town, used when the user names no place."""
    region: str = ""
    """ISO 3166-1 code of where the household is (CN for mainland China, HK, TW …); empty when unknown."""
    http: httpx.AsyncClient | None = None
    """Shared HTTP client for web APIs (weather, search)."""
    home_assistant: HomeAssistantApi | None = None
    """Home Assistant, when it is enabled."""
    house: HouseRegistry | None = None
    """Home Assistant's areas, aliases and Assist exposure, when it is enabled."""
    box_device_id: str = ""
    """This box's MQTT device id: its own entities in Home Assistant are never a tool target."""
    mqtt: MessagePublisher | None = None
    """MQTT publishing, when the broker is enabled."""
    mqtt_command_topics: tuple[str, ...] = ()
    """Topics (wildcards allowed) that skills may publish commands to."""
    scheduler: ReminderScheduler | None = None
    """Timers and reminders that survive restarts."""
    wall_clock: Callable[[], datetime] | None = None
    """Aware wall-clock time; None means the system clock in ``timezone``."""
    voice: VoiceControls | None = None
    """The assistant's voice, for "say that again" and "speak slower"; None when no voice runs."""

    def now(self) -> datetime:
        """Return the current local time in the household's time zone."""
        if self.wall_clock is not None:
            return self.wall_clock().astimezone(ZoneInfo(self.timezone))
        return datetime.now(ZoneInfo(self.timezone))

    def announce(self, text: str) -> None:
        """Ask the supervisor to speak ``text`` without listening first."""
        self.publish(AnnounceRequested(text=text, source="scheduler"))


class Skill:
    """Base class of skills; subclasses set ``name``, may nest a ``Config`` and declare ``@tool`` methods."""

    name: ClassVar[str] = ""
    """How config.yaml switches it on; also the entry-point name."""
    needs_network: ClassVar[bool] = False
    """True when its tools need the internet (so a failure can be explained as such)."""

    class Config(SkillConfig):
        """A skill without settings."""

    def __init__(self, config: SkillConfig, deps: SkillDeps) -> None:
        self.config = config
        self.deps = deps

    async def start(self) -> None:
        """Prepare what needs the event loop (connections, subscriptions); raise to be skipped."""

    async def aclose(self) -> None:
        """Release what :meth:`start` took."""


def discover(group: str = ENTRY_POINT_GROUP) -> dict[str, EntryPoint]:
    """Return the skills installed in this environment by name (not imported yet)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def validate_config(skill: type[Skill], raw: Any) -> SkillConfig:
    """Validate one skill's settings; ConfigError names ``skills.<name>.<key>``."""
    name = skill.name
    try:
        return skill.Config.model_validate({} if raw is None else raw)
    except ValidationError as err:
        lines = []
        for item in err.errors():
            key = ".".join(str(p) for p in item["loc"])
            where = f"skills.{name}.{key}" if key else f"skills.{name}"
            if item["type"] == "extra_forbidden":
                known = list(skill.Config.model_fields)
                close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(known)})"
                lines.append(f"{where}: unknown key{hint}")
            else:
                lines.append(f"{where}: {item['msg']}")
        raise ConfigError("\n".join(lines)) from None


def _load_class(name: str, entry: EntryPoint) -> type[Skill]:
    try:
        loaded = entry.load()
    except Exception as err:
        raise ConfigError(f"skills.{name}: cannot import {entry.value}: {type(err).__name__}: {err}") from err
    if not (isinstance(loaded, type) and issubclass(loaded, Skill)):
        raise ConfigError(f"skills.{name}: {entry.value} is not a Skill class")
    if loaded.name != name:
        raise ConfigError(f"skills.{name}: {entry.value} calls itself {loaded.name!r}")
    return loaded


def check_skills(enabled: Mapping[str, Any], available: Mapping[str, EntryPoint] | None = None) -> list[str]:
    """Return one line per problem in the ``skills`` section (for ``xiangyin check``); empty if fine."""
    available = discover() if available is None else available
    problems: list[str] = []
    for name, raw in enabled.items():
        entry = available.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(available), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (installed: {', '.join(sorted(available))})"
            problems.append(f"skills.{name}: no such skill{hint}")
            continue
        try:
            validate_config(_load_class(name, entry), raw)
        except ConfigError as err:
            problems.extend(str(err).splitlines())
    return problems


async def load_skills(
    enabled: Mapping[str, Any],
    deps: SkillDeps,
    *,
    available: Mapping[str, EntryPoint] | None = None,
    confirm_seconds: float = 30.0,
    redact: Redactor | None = None,
) -> ToolRegistry:
    """Build, start and register every enabled skill; report and skip those that fail.

    ``enabled`` is ``Settings.skills``: skill name → its raw settings. Call :meth:`ToolRegistry.aclose`
    at shutdown to close the skills again.
    """
    available = discover() if available is None else available
    registry = ToolRegistry(deps.clock, confirm_seconds=confirm_seconds, redact=redact)
    for name, raw in enabled.items():
        skill: Skill | None = None
        try:
            entry = available.get(name)
            if entry is None:
                raise ConfigError(f"skills.{name}: no such skill (installed: {', '.join(sorted(available))})")
            skill_class = _load_class(name, entry)
            skill = skill_class(validate_config(skill_class, raw), deps)
            definitions = tools_of(skill, owner=name)
            registry.check_names(definitions)
            await skill.start()
        except Exception as err:
            # ConfigError and a clash of names explain themselves; anything else is a bug worth a traceback.
            _LOGGER.error("skill %s is skipped: %s", name, err, exc_info=not isinstance(err, ConfigError | ValueError))
            registry.skipped[name] = str(err)
            if skill is not None:
                await _close_quietly(skill)
            continue
        registry.add_all(definitions)
        registry.on_close(skill.aclose)
        _LOGGER.info("skill %s loaded with tools %s", name, ", ".join(d.name for d in definitions) or "none")
    return registry


async def _close_quietly(skill: Skill) -> None:
    try:
        await skill.aclose()
    except Exception:
        _LOGGER.exception("closing skill %s failed", skill.name)
