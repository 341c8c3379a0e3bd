"""Engines from other packages: wake-word engines, TTS voices and model backends, found by entry point.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."xiangyin.wake_engines"]
    clap = "my_package:clap_engine"        # (options, words) -> WakeEngine

    [project.entry-points."xiangyin.tts"]
    beep = "my_package:beep_voice"         # (options, persona, speed) -> TextToSpeech

    [project.entry-points."xiangyin.models"]
    echo = "my_package:echo_model"         # (options, persona, publish) -> SpeechModel

and the config names it: ``wake.engine: clap`` (with ``wake.engine_options``), ``voice.tts.engine: beep``
(``voice.tts.options``), ``model.backend: echo`` (``model.options``). Skills have their own group,
``xiangyin.skills`` (:mod:`assistant.skills`). ``examples/xiangyin-example-plugins`` is a working package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import ConfigError

WAKE_ENGINES = "xiangyin.wake_engines"
"""Entry-point group of wake-word engines: ``(options: Mapping, words: Sequence[str]) -> WakeEngine``."""
TTS = "xiangyin.tts"
"""Entry-point group of TTS voices: ``(options: Mapping, persona: PersonaSettings, speed: float) -> TextToSpeech``."""
MODELS = "xiangyin.models"
"""Entry-point group of model backends: ``(options: Mapping, persona: PersonaSettings, publish) -> SpeechModel``;
a model with an async ``aclose`` is closed at shutdown."""

BUILT_IN: dict[str, tuple[str, ...]] = {
    WAKE_ENGINES: ("openwakeword", "microwakeword"),
    TTS: ("espeak-ng", "piper"),
    MODELS: ("local", "vllm"),
}
"""Names each group's built-in engines take; a plugin cannot take them."""


def installed(group: str) -> dict[str, EntryPoint]:
    """The plugins of ``group`` installed in this environment, by name."""
    return {entry.name: entry for entry in entry_points(group=group) if entry.name not in BUILT_IN[group]}


def check_name(group: str, name: str) -> str:
    """``name`` if it is built in or installed; else a ValueError listing what is (for config validation)."""
    if name in BUILT_IN[group] or name in installed(group):
        return name
    known = [*BUILT_IN[group], *sorted(installed(group))]
    raise ValueError(f"{name!r} is neither built in nor an installed {group} plugin (known: {', '.join(known)})")


def factory(group: str, name: str, *, key: str) -> Callable[..., Any]:
    """Load plugin ``name`` of ``group``; a ConfigError naming ``key`` if it cannot be loaded."""
    entry = installed(group).get(name)
    if entry is None:
        raise ConfigError(f"{key}: no {group} plugin named {name!r} is installed")
    try:
        loaded = entry.load()
    except Exception as err:  # noqa: BLE001 - a broken plugin is the user's config problem, reported as one
        raise ConfigError(f"{key}: plugin {name!r} ({entry.value}) cannot be imported: {err}") from err
    if not callable(loaded):
        raise ConfigError(f"{key}: plugin {name!r} ({entry.value}) is not a factory (not callable)")
    made: Callable[..., Any] = loaded
    return made


def build(group: str, name: str, *args: Any, key: str, options: Mapping[str, Any]) -> Any:
    """Call plugin ``name``'s factory with ``options`` first; any failure becomes a ConfigError naming ``key``."""
    make = factory(group, name, key=key)
    try:
        return make(dict(options), *args)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a plugin raises, the message names it and the key
        raise ConfigError(f"{key}: plugin {name!r} failed to start: {type(err).__name__}: {err}") from err
