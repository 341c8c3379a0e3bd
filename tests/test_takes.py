"""TakeCutter: one take out of a live stream, from scripted speech probabilities."""

from __future__ import annotations

import pytest

from assistant.audio import AudioChunk, silence
from assistant.listen.takes import TakeCutter


def _feed(cutter: TakeCutter, probabilities: list[float]) -> AudioChunk | None:
    for p in probabilities:
        take = cutter.push(silence(0.1), p)
        if take is not None:
            return take
    return None


def test_a_take_is_the_speech_with_preroll_and_the_ending_pause() -> None:
    """2 s of quiet, 1 s of speech, then 0.6 s of pause: 0.4 s preroll + 1 s + 0.6 s."""
    take = _feed(TakeCutter(), [0.0] * 20 + [0.9] * 10 + [0.0] * 10)
    assert take is not None and take.seconds == pytest.approx(2.0)


def test_nobody_speaking_times_out() -> None:
    """No speech within the start timeout raises TimeoutError."""
    with pytest.raises(TimeoutError):
        _feed(TakeCutter(start_timeout_seconds=1.0), [0.0] * 20)


def test_a_take_that_runs_on_is_cut_at_the_maximum() -> None:
    """Speech without a pause ends at max_seconds (the checks then refuse it as too long)."""
    take = _feed(TakeCutter(max_seconds=2.0, preroll_seconds=0.0), [0.9] * 50)
    assert take is not None and take.seconds == pytest.approx(2.0)
