"""Recorded rooms (tests/data/listen/rooms) through the daemon's own listening path, as bench.endpoint hears them."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from bench import endpoint

ROOMS = Path(__file__).parent / "data" / "listen" / "rooms"


def settings(**endpointing: object) -> Settings:
    return Settings.model_validate({"endpointing": endpointing})


@pytest.mark.models
def test_a_tv_talking_through_the_question_does_not_hold_the_turn_open() -> None:
    results, problems, _ = endpoint.run(ROOMS, settings())
    assert problems == []
    tv = [r for r in results if r.condition == "tv10"]
    assert tv and all(r.outcome == "ended" and not r.cut_off for r in tv)
    assert all(r.delay_s is not None and r.delay_s < 1.0 for r in tv), [r.delay_s for r in tv]


@pytest.mark.models
def test_without_the_room_gate_the_tv_holds_the_turn_open_long_after_the_question() -> None:
    normal, _, _ = endpoint.run(ROOMS, settings(room_gate=False))
    assert all(r.delay_s is not None and r.delay_s > 2.0 for r in normal if r.condition == "tv10")
    patient, _, _ = endpoint.run(ROOMS, settings(room_gate=False, profile="patient"))
    assert all(r.outcome == "max_speech" for r in patient if r.condition == "tv10")
    gated, _, _ = endpoint.run(ROOMS, settings(profile="patient"))
    assert all(r.outcome == "ended" for r in gated if r.condition == "tv10"), "the gate saves the patient profile too"


@pytest.mark.models
def test_quiet_questions_end_within_half_a_second_and_are_not_cut_off() -> None:
    results, _, _ = endpoint.run(ROOMS, settings())
    quiet = [r for r in results if r.condition == "quiet"]
    assert quiet and all(r.delay_s is not None and 0.0 <= r.delay_s < 0.5 for r in quiet), quiet
