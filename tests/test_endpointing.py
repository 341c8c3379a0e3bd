"""End-of-speech decisions from (seconds, probability) tables."""

from __future__ import annotations

import pytest

from assistant.config import EndpointSettings
from assistant.endpointing import Decision, Endpointer

CHUNK = 0.1


def run(settings: EndpointSettings, pattern: str) -> list[Decision]:
    """Feed one 100 ms chunk per character: 'S' speech, '.' silence."""
    endpointer = Endpointer(settings)
    return [endpointer.process(CHUNK, 1.0 if c == "S" else 0.0) for c in pattern]


def final(settings: EndpointSettings, pattern: str) -> tuple[Decision, int]:
    decisions = run(settings, pattern)
    for i, decision in enumerate(decisions):
        if decision in (Decision.ENDED, Decision.TIMED_OUT):
            return decision, i
    return decisions[-1], len(decisions) - 1


NORMAL = EndpointSettings(start_seconds=0.2, end_silence_seconds=0.7, no_speech_timeout_seconds=2.0)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("...SSSSS........", (Decision.ENDED, 14)),  # 0.7 s of silence after speech
        ("SSS....SSS.......", (Decision.ENDED, 16)),  # a 0.4 s pause does not end it
        ("....................", (Decision.TIMED_OUT, 19)),  # 2.0 s of nothing
        ("S.S.S.S.S.S.S.S.S.S.S", (Decision.TIMED_OUT, 19)),  # clicks never make a 0.2 s run
    ],
)
def test_normal_profile(pattern: str, expected: tuple[Decision, int]) -> None:
    assert final(NORMAL, pattern) == expected


def test_started_is_reported_once_after_the_start_window() -> None:
    assert run(NORMAL, "..SSSS") == [
        Decision.WAITING,
        Decision.WAITING,
        Decision.WAITING,
        Decision.STARTED,
        Decision.SPEAKING,
        Decision.SPEAKING,
    ]


def test_maximum_cuts_a_never_ending_speaker() -> None:
    settings = EndpointSettings(start_seconds=0.1, max_speech_seconds=1.0)
    assert final(settings, "S" * 30) == (Decision.ENDED, 9)


def test_patient_profile_tolerates_a_one_and_a_half_second_pause() -> None:
    patient = EndpointSettings(profile="patient")
    pattern = "SSSSS" + "." * 15 + "SSSS" + "." * 20
    decision, index = final(patient, pattern)
    assert decision is Decision.ENDED
    assert index > 5 + 15 + 4, "the pause mid-sentence must not end the utterance"
    assert final(EndpointSettings(), pattern)[1] < 5 + 15, "the normal profile would have cut it off"


def test_explicit_value_overrides_the_profile() -> None:
    assert EndpointSettings(profile="patient", end_silence_seconds=2.5).end_silence_seconds == 2.5
    assert EndpointSettings(profile="patient").end_silence_seconds == 1.8
