"""End-of-speech decisions from (seconds, probability) tables."""

from __future__ import annotations

import pytest

from assistant.config import EndpointSettings
from assistant.endpointing import Cues, Decision, Endpointer, PauseMemory, Room

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


NORMAL = EndpointSettings(start_seconds=0.2, end_silence_seconds=0.7, no_speech_timeout_seconds=2.0, learn_pauses=False)


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


def test_patient_profile_tolerates_a_one_and_a_quarter_second_pause_after_a_finished_phrase() -> None:
    patient = EndpointSettings(profile="patient")
    pattern = "SSSSS" + "." * 13 + "SSSS" + "." * 20
    decision, index = final(patient, pattern)
    assert decision is Decision.ENDED
    assert index > 5 + 13 + 4, "the pause mid-sentence must not end the utterance"
    assert final(EndpointSettings(), pattern)[1] < 5 + 13, "the normal profile would have cut it off"


def test_explicit_value_overrides_the_profile() -> None:
    assert EndpointSettings(profile="patient", end_silence_seconds=2.5).end_silence_seconds == 2.5
    assert EndpointSettings(profile="patient").end_silence_seconds == 1.5


def test_a_longer_end_silence_set_alone_lengthens_the_hold_with_it() -> None:
    settings = EndpointSettings(end_silence_seconds=2.0)
    assert settings.hold_silence_seconds == 2.0
    with pytest.raises(ValueError, match="hold_silence_seconds"):
        EndpointSettings(end_silence_seconds=2.0, hold_silence_seconds=1.0)


# --- how the phrase ended -------------------------------------------------------------------------

FLAT = EndpointSettings(
    start_seconds=0.2, end_silence_seconds=0.3, hold_silence_seconds=1.0, learn_pauses=False, pitch_cues=True
)


def spoken(endpointer: Endpointer, pitches: list[float | None], *, nasal: bool = False) -> None:
    for pitch in pitches:
        endpointer.process(CHUNK, 1.0, Cues(-20.0, pitch, nasal))


def silent_chunks_until_the_end(endpointer: Endpointer) -> int:
    for count in range(1, 100):
        if endpointer.process(CHUNK, 0.0, Cues(-60.0)) is Decision.ENDED:
            return count
    raise AssertionError("never ended")


def test_a_falling_end_sounds_finished_and_ends_after_the_short_silence() -> None:
    endpointer = Endpointer(FLAT)
    spoken(endpointer, [200, 210, 205, 200, 190, 170, 160])
    assert silent_chunks_until_the_end(endpointer) == 3
    assert endpointer.sounded_finished


@pytest.mark.parametrize(
    "pitches",
    [
        [200, 210, 205, 200, 200, 202, 201],  # level, as before a comma
        [200, 205, 200, 190, 200, 215, 225],  # rising
        [200, 210, 205, 180, 175, 190, 205],  # low, but rising again at the very end
    ],
)
def test_a_level_or_rising_end_holds_the_turn_open_longer(pitches: list[float | None]) -> None:
    endpointer = Endpointer(FLAT)
    spoken(endpointer, pitches)
    assert silent_chunks_until_the_end(endpointer) == 10
    assert not endpointer.sounded_finished


def test_a_nasal_murmur_is_a_hesitation_even_when_its_pitch_falls() -> None:
    endpointer = Endpointer(FLAT)
    spoken(endpointer, [200, 210, 205, 200])
    spoken(endpointer, [180, 170, 160], nasal=True)
    assert silent_chunks_until_the_end(endpointer) == 10


def test_a_short_nasal_coda_is_not_a_hesitation() -> None:
    endpointer = Endpointer(FLAT)
    spoken(endpointer, [200, 210, 205, 200, 190])
    spoken(endpointer, [170, 160], nasal=True)
    assert silent_chunks_until_the_end(endpointer) == 3


def test_without_pitch_every_phrase_counts_as_finished() -> None:
    endpointer = Endpointer(FLAT)
    spoken(endpointer, [None] * 6)
    assert silent_chunks_until_the_end(endpointer) == 3


# --- the household ---------------------------------------------------------------------------------


def test_pauses_the_household_made_lengthen_the_wait_of_later_turns() -> None:
    settings = FLAT.model_copy(update={"learn_pauses": True, "end_silence_seconds": 0.5})
    memory = PauseMemory()
    first = Endpointer(settings, memory=memory)
    spoken(first, [200, 210, 205, 200, 190, 170, 160])
    for _ in range(3):
        first.process(CHUNK, 0.0, Cues(-60.0))  # 0.3 s after a phrase that sounded finished…
    spoken(first, [200, 200, 210, 205, 200])  # …then the user went on, and ended level…
    for _ in range(8):
        first.process(CHUNK, 0.0, Cues(-60.0))
    spoken(first, [200, 200, 190, 170, 160])  # …paused 0.8 s, and went on again
    assert memory.waits(settings) == pytest.approx((0.7, 1.2))
    later = Endpointer(settings, memory=memory)
    spoken(later, [200, 210, 205, 200, 190, 170, 160])
    assert silent_chunks_until_the_end(later) == 7


def test_learning_can_be_turned_off() -> None:
    memory = PauseMemory()
    memory.record(2.0, sounded_finished=True)
    memory.record(3.0, sounded_finished=False)
    assert memory.waits(FLAT) == (0.3, 1.0)
    assert memory.waits(FLAT.model_copy(update={"learn_pauses": True})) == pytest.approx((1.0, 2.0))


# --- the room --------------------------------------------------------------------------------------

TV = Room(background_db=-30.0, voice_db=-18.0)


def test_speech_no_louder_than_the_tv_before_the_wake_word_does_not_keep_the_turn_open() -> None:
    endpointer = Endpointer(FLAT, room=TV)
    assert endpointer.gate_db == pytest.approx(-27.0)
    for _ in range(5):
        endpointer.process(CHUNK, 1.0, Cues(-18.0))
    decisions = [endpointer.process(CHUNK, 1.0, Cues(-29.0)) for _ in range(3)]
    assert decisions[-1] is Decision.ENDED, "the TV talks on, but the user has stopped"


def test_without_the_room_the_tv_would_hold_the_turn_open() -> None:
    endpointer = Endpointer(FLAT)
    for _ in range(5):
        endpointer.process(CHUNK, 1.0, Cues(-18.0))
    assert all(endpointer.process(CHUNK, 1.0, Cues(-29.0)) is Decision.SPEAKING for _ in range(50))


def test_a_user_quieter_than_the_tv_is_still_heard() -> None:
    endpointer = Endpointer(FLAT, room=Room(background_db=-30.0, voice_db=-33.0))
    assert endpointer.gate_db == pytest.approx(-39.0), "never more than voice_margin_db under the user"
    assert endpointer.process(CHUNK, 1.0, Cues(-34.0)) is Decision.WAITING
    assert endpointer.process(CHUNK, 1.0, Cues(-34.0)) is Decision.STARTED


def test_a_lone_loud_chunk_in_a_pause_neither_resumes_nor_ends_the_utterance() -> None:
    endpointer = Endpointer(FLAT.model_copy(update={"end_silence_seconds": 0.5}), room=TV)
    for _ in range(5):
        endpointer.process(CHUNK, 1.0, Cues(-18.0))
    for _ in range(3):
        endpointer.process(CHUNK, 1.0, Cues(-40.0))
    assert endpointer.process(CHUNK, 1.0, Cues(-20.0)) is Decision.SPEAKING
    assert endpointer.trailing_silence_seconds == pytest.approx(0.3), "the pause is held, not reset"
    endpointer.process(CHUNK, 1.0, Cues(-40.0))
    assert endpointer.process(CHUNK, 1.0, Cues(-40.0)) is Decision.ENDED


def test_a_loud_chunk_after_a_gap_between_words_goes_on_at_once() -> None:
    endpointer = Endpointer(FLAT, room=TV)
    for _ in range(5):
        endpointer.process(CHUNK, 1.0, Cues(-18.0))
    endpointer.process(CHUNK, 1.0, Cues(-40.0))
    endpointer.process(CHUNK, 1.0, Cues(-40.0))
    endpointer.process(CHUNK, 1.0, Cues(-20.0))
    assert endpointer.trailing_silence_seconds == 0.0


def test_syllables_loud_and_soft_by_turns_under_a_tv_go_on_after_a_pause() -> None:
    endpointer = Endpointer(FLAT, room=TV)
    for _ in range(5):
        endpointer.process(CHUNK, 1.0, Cues(-18.0))
    endpointer.process(CHUNK, 1.0, Cues(-40.0))
    for level in (-20.0, -29.0, -20.0, -29.0, -20.0):
        assert endpointer.process(CHUNK, 1.0, Cues(level)) is Decision.SPEAKING
    assert endpointer.trailing_silence_seconds < 0.3


def test_without_pitch_cues_only_a_hesitation_holds_the_turn_open() -> None:
    settings = FLAT.model_copy(update={"pitch_cues": False})
    level = Endpointer(settings)
    spoken(level, [200, 210, 205, 200, 200, 202, 201])
    assert silent_chunks_until_the_end(level) == 3
    hesitant = Endpointer(settings)
    spoken(hesitant, [200, 210, 205, 200])
    spoken(hesitant, [180, 170, 160], nasal=True)
    assert silent_chunks_until_the_end(hesitant) == 10


def test_the_patient_profile_listens_to_pitch_and_the_normal_one_does_not() -> None:
    assert EndpointSettings(profile="patient").pitch_cues
    assert not EndpointSettings().pitch_cues
