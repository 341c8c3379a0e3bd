"""Every event class: constructs, is frozen, has a unique wire name."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from assistant import events
from assistant.events import Event, StopRequested, all_event_types, wire_name

_SAMPLES: dict[type, object] = {str: "x", bool: True, float: 0.5, int: 1, dict: {}}


def _build(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls, vars(events))
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        hint = hints[f.name]
        if typing.get_origin(hint) is typing.Literal:
            kwargs[f.name] = typing.get_args(hint)[0]
        else:
            kwargs[f.name] = _SAMPLES[typing.get_origin(hint) or hint]
    return cls(**kwargs)


@pytest.mark.parametrize("cls", all_event_types(), ids=lambda c: c.__name__)
def test_event_is_frozen_and_keyword_only(cls: type[Event]) -> None:
    event = _build(cls)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.turn_id = "other"  # type: ignore[misc]
    assert _build(cls) == event, "events compare by value (no timestamps inside)"


def test_wire_names_are_unique_kebab_case() -> None:
    names = [wire_name(cls) for cls in all_event_types()]
    assert len(names) == len(set(names))
    assert wire_name(StopRequested) == "stop-requested"
    assert all(name == name.lower() and " " not in name for name in names)


def test_requests_that_stop_or_mute_are_urgent() -> None:
    assert events.StopRequested.urgent and events.MuteRequested.urgent and events.ShutdownRequested.urgent
    assert not events.TurnEnded.urgent and not events.AnnounceRequested.urgent
