"""The synthetic room the contour check hears its takes through, and the benchmark's rooms."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.audio import MIC_RATE_HZ
from assistant.listen.reverb import reverberant, room_impulse


@pytest.mark.parametrize(("rt60", "drr"), [(0.3, 6.0), (0.5, 0.0), (0.8, -3.0)])
def test_the_impulse_has_its_direct_to_reverberant_ratio_and_decays_60_db_in_rt60(rt60: float, drr: float) -> None:
    impulse = room_impulse(rt60, drr, seed=3)
    tail = impulse[1:]
    assert 10 * np.log10(impulse[0] ** 2 / np.sum(tail**2)) == pytest.approx(drr, abs=0.01)
    # The envelope's fall over the tail, from its first tenth to its last, is 60 dB * 0.8 (decay of the
    # noise's energy, averaged over 20 ms), within a few dB for one random tail.
    energy = np.convolve(tail**2, np.ones(320) / 320, mode="same")
    n = len(energy)
    fall_db = 10 * np.log10(energy[n // 10] / energy[9 * n // 10])
    assert fall_db == pytest.approx(60 * 0.8, abs=6)
    assert len(impulse) == int(rt60 * MIC_RATE_HZ)


def test_the_same_seed_gives_the_same_room_and_another_seed_another() -> None:
    assert np.array_equal(room_impulse(0.4, 2.0, seed=1), room_impulse(0.4, 2.0, seed=1))
    assert not np.array_equal(room_impulse(0.4, 2.0, seed=1), room_impulse(0.4, 2.0, seed=2))


def test_a_recording_heard_in_the_room_keeps_its_length_and_level_and_gains_a_tail() -> None:
    click = np.zeros(8000)
    click[100] = 10_000.0
    heard = reverberant(click, room_impulse(0.4, 0.0))
    assert len(heard) == len(click)
    assert np.sqrt(np.mean(heard**2)) == pytest.approx(np.sqrt(np.mean(click**2)))
    assert np.abs(heard[2000:4000]).max() > 0, "the room rings on after the click"
    assert reverberant(np.zeros(0), room_impulse(0.4, 0.0)).size == 0
