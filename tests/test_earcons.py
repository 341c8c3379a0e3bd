"""Earcons: short generated sounds, each synthesized once (sample-by-sample synthesis costs the loop ms)."""

from __future__ import annotations

from assistant.earcons import Earcon, render


def test_each_earcon_is_a_distinct_short_sound() -> None:
    sounds = {earcon: render(earcon) for earcon in Earcon}
    assert all(0.1 < sound.seconds < 0.5 and any(sound.pcm) for sound in sounds.values())
    assert len({sound.pcm for sound in sounds.values()}) == len(Earcon)


def test_an_earcon_played_again_is_not_synthesized_again() -> None:
    assert render(Earcon.WAKE) is render(Earcon.WAKE)
