"""The contour check of an enrolled word, on synthetic voices with a known tune and hiss (no models)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import MIC_RATE_HZ, AudioChunk
from assistant.listen.contours import (
    MAX_HELD_EMBEDDINGS,
    PITCH_SCALES,
    CheckGate,
    pitch_contour,
    pitch_track,
    tilt_contour,
    track,
    word_check,
)
from assistant.listen.enrolment import WordStore
from assistant.listen.reverb import reverberant, room_impulse

Tune = Callable[[np.ndarray], np.ndarray]
"""Pitch in semitones about the voice's own pitch, at each point (0 to 1) of a syllable."""


def _low(x: np.ndarray) -> np.ndarray:
    return -3.0 - 2.0 * np.sin(np.pi * x)  # a dipping low tone


def _high(x: np.ndarray) -> np.ndarray:
    return 3.0 + 0.0 * x  # a high level tone


def _rising(x: np.ndarray) -> np.ndarray:
    return -1.0 + 4.0 * x


HISS = "hiss"
"""A fricative before the syllable (x, h): 120 ms of noise over 3 kHz."""
BURST = "burst"
"""An affricate before the syllable (zh, z): 50 ms of closure, then 40 ms of duller noise."""


WORD = (_low, _high, _low, _high)
"""The tune of 小乡小乡: low, high, low, high."""
TONE_CHANGED = (_low, _rising, _low, _rising)
"""The same syllables with the second and fourth rising (晓翔晓翔)."""
HISSES = (HISS, HISS, HISS, HISS)
"""x before every syllable: 小乡小乡 (xiao xiang)."""
BURSTS = (HISS, BURST, HISS, BURST)
"""zh before the second and fourth: 小张小张 (xiao zhang)."""


def _consonant(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == HISS:
        hiss = np.diff(rng.normal(size=int(0.12 * MIC_RATE_HZ) + 2), n=2)  # twice differenced: high-passed
        return 0.04 * hiss
    closure = np.zeros(int(0.05 * MIC_RATE_HZ))
    noise = rng.normal(size=int(0.04 * MIC_RATE_HZ) + 7)
    dull = np.convolve(noise, np.ones(8) / 8, mode="valid")  # a moving average: low-passed
    return np.concatenate((closure, 0.3 * dull))


def _voice(
    tunes: Sequence[Tune],
    *,
    consonants: Sequence[str | None] = (),
    base_hz: float = 140.0,
    syllable_s: float = 0.3,
    gap_s: float = 0.06,
    margin_s: float = 0.3,
    noise: float = 0.002,
    seed: int = 0,
) -> np.ndarray:
    """Int16 samples: one harmonic syllable per tune, after its consonant if one is given, short silences
    between, margins of room noise."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(margin_s * MIC_RATE_HZ))]
    for i, tune in enumerate(tunes):
        kind = consonants[i] if i < len(consonants) else None
        if kind is not None:
            parts.append(_consonant(kind, rng))
        n = int(syllable_s * MIC_RATE_HZ)
        hz = base_hz * 2 ** (tune(np.linspace(0.0, 1.0, n)) / 12)
        phase = 2 * np.pi * np.cumsum(hz) / MIC_RATE_HZ
        # Harmonics up to about 4 kHz, falling 6 dB an octave, as a voice's do.
        harmonics = range(1, int(4000 / (base_hz * 2 ** (5 / 12))))
        syllable = sum(np.sin(k * phase) / k for k in harmonics) * np.hanning(n) ** 0.3
        parts += [0.25 * syllable, np.zeros(int(gap_s * MIC_RATE_HZ))]
    parts.append(np.zeros(int(margin_s * MIC_RATE_HZ)))
    signal = np.concatenate(parts)
    signal = signal + noise * rng.normal(size=len(signal))
    return (np.clip(signal, -1, 1) * 32767).astype(np.int16)


def _takes() -> list[np.ndarray]:
    """Five takes of the word: a little higher or lower, faster or slower, each time."""
    return [
        _voice(WORD, base_hz=140 * 2 ** (shift / 12), syllable_s=s, seed=i)
        for i, (shift, s) in enumerate([(0, 0.3), (0.5, 0.28), (-0.5, 0.32), (0.3, 0.3), (-0.2, 0.29)])
    ]


def test_the_pitch_of_a_steady_voice_is_read_and_silence_is_unvoiced() -> None:
    """A 150 Hz voice reads as 150 Hz (within 2 %), a deep 60 Hz one as 60 Hz; silence has no pitch."""
    for hz in (150.0, 60.0):
        samples = _voice([lambda x: 0.0 * x], base_hz=hz, syllable_s=0.5, margin_s=0.2)
        pitch, _ = pitch_track(samples)
        voiced = pitch[np.isfinite(pitch)]
        assert len(voiced) > 30
        assert abs(np.median(voiced) / hz - 1) < 0.02
    pitch, _ = pitch_track(np.zeros(8000, dtype=np.int16))
    assert not np.isfinite(pitch).any()


def test_the_contour_is_in_semitones_about_its_median_so_any_voice_height_gives_one_tune() -> None:
    """The same tune said a fifth higher has the same contour."""
    low, high = pitch_contour(_voice(WORD, base_hz=120)), pitch_contour(_voice(WORD, base_hz=180))
    assert abs(np.median(low)) < 0.5 and abs(np.median(high)) < 0.5
    assert abs(np.percentile(low, 90) - np.percentile(high, 90)) < 0.5


def test_the_word_in_another_take_passes_and_its_tone_changed_twin_does_not() -> None:
    """A new take of the word, higher and slower, passes; the same syllables with rising tones do not."""
    check = word_check(_takes())
    assert check is not None
    assert check.pitch is not None
    word = check.pitch.distance(pitch_contour(_voice(WORD, base_hz=150, syllable_s=0.34, seed=9)))
    changed = check.pitch.distance(pitch_contour(_voice(TONE_CHANGED, base_hz=150, syllable_s=0.34, seed=9)))
    assert word is not None and changed is not None
    assert word <= check.pitch.limit < changed
    assert check.passes(_voice(WORD, base_hz=130, syllable_s=0.27, seed=10))


def _ranged(tunes: Sequence[Tune], k: float) -> list[Tune]:
    """The tune over a range ``k`` times as wide (in semitones)."""
    return [lambda x, tune=tune: k * tune(x) for tune in tunes]


@pytest.mark.parametrize("k", [0.75, 0.85, 1.18, 1.33])
def test_the_word_with_more_or_less_melody_passes_and_its_tone_changed_twin_never_does(k: float) -> None:
    """Called across the room (a wider range) or muttered (narrower), the word is still the word; the
    rising tones of its twin stay rising at any range."""
    check = word_check(_takes())
    assert check is not None and check.pitch is not None
    word = check.pitch.distance(pitch_contour(_voice(_ranged(WORD, k), base_hz=150, syllable_s=0.33, seed=11)))
    changed = check.pitch.distance(
        pitch_contour(_voice(_ranged(TONE_CHANGED, k), base_hz=150, syllable_s=0.33, seed=11))
    )
    assert word is not None and changed is not None
    assert word <= check.pitch.limit < changed


def test_the_word_is_found_inside_longer_audio_and_before_it_ends() -> None:
    """The candidate's window holds other sound before the word, and may stop before the word's last part."""
    check = word_check(_takes())
    assert check is not None
    before = _voice([lambda x: 5.0 - 8.0 * x] * 3, base_hz=110, seed=3)
    word = _voice(WORD, base_hz=140, seed=4)
    assert check.passes(np.concatenate((before, word)))
    assert check.passes(word[: int(len(word) * 0.85)])
    assert not check.passes(np.concatenate((before, _voice(TONE_CHANGED, base_hz=140, seed=4))))


def test_the_pitch_abstains_where_it_hears_no_voice() -> None:
    """Noise alone (a whisper, a fan) has no pitch to judge; takes without voice give no pitch track."""
    check = word_check(_takes())
    assert check is not None
    hiss = (np.random.default_rng(5).normal(size=MIC_RATE_HZ) * 3000).astype(np.int16)
    assert check.distances(hiss)[0] is None
    takes = word_check([hiss, hiss, hiss])
    assert takes is not None and takes.pitch is None and takes.tilt is not None


def test_takes_whose_tunes_disagree_give_no_pitch_track() -> None:
    """Takes whose tunes differ (one with every syllable on another tone: a voice whose pitch wanders, or
    creaks past the tracker) cannot tell tunes apart: there is no pitch track, rather than one that rejects
    the speaker's own word."""
    steady = [pitch_contour(_voice(WORD, seed=seed)) for seed in (0, 2)]
    wandering = pitch_contour(_voice((_rising, _low, _rising, _low), seed=1))
    assert track(steady, PITCH_SCALES) is not None
    assert track([*steady, wandering], PITCH_SCALES) is None


def test_a_changed_consonant_is_heard_in_the_tilt_though_the_tune_is_the_same() -> None:
    """小张小张 against 小乡小乡: the same tune passes the pitch, the burst where the hiss was fails the tilt;
    the word itself, in a louder voice, passes both."""
    takes = [_voice(WORD, consonants=HISSES, base_hz=140 + 4 * i, seed=i) for i in range(4)]
    check = word_check(takes)
    assert check is not None and check.pitch is not None and check.tilt is not None
    twin = _voice(WORD, consonants=BURSTS, base_hz=146, seed=20)
    pitch, tilt = check.distances(twin)
    assert pitch is not None and pitch <= check.pitch.limit
    assert tilt is not None and tilt > check.tilt.limit
    assert not check.passes(twin)
    louder = _voice(WORD, consonants=HISSES, base_hz=150, seed=21).astype(np.float64) * 2
    assert check.passes(louder.astype(np.int16))


@pytest.mark.parametrize(("rt60", "drr"), [(0.3, 6.0), (0.5, 0.0)], ids=["small-room", "across-the-room"])
def test_the_word_called_from_across_a_room_passes_and_its_twins_still_do_not(rt60: float, drr: float) -> None:
    """Takes said close to the box; the word heard through a room (its hiss smeared into the vowels) still
    passes, which the takes alone would not allow; the burst twin and the tone twin in that room do not."""
    takes = [_voice(WORD, consonants=HISSES, base_hz=140 + 4 * i, seed=i) for i in range(4)]
    check = word_check(takes)
    assert check is not None
    room = room_impulse(rt60, drr, seed=7)

    def heard(tunes: Sequence[Tune], consonants: Sequence[str]) -> np.ndarray:
        return reverberant(_voice(tunes, consonants=consonants, base_hz=146, seed=20), room).astype(np.int16)

    word = heard(WORD, HISSES)
    assert check.passes(word)
    close_takes_only = track([tilt_contour(t) for t in takes])
    assert close_takes_only is not None
    assert (close_takes_only.distance(tilt_contour(word)) or 0.0) > close_takes_only.limit
    assert not check.passes(heard(WORD, BURSTS))
    assert not check.passes(heard(TONE_CHANGED, HISSES))


def test_the_tilt_is_in_steps_of_6_db_and_keeps_only_loud_frames() -> None:
    """Noise over 3 kHz tilts far up, a vowel far down; the room's quiet frames are left out."""
    rng = np.random.default_rng(3)
    hiss = (_consonant(HISS, rng) * 32767 * 4).astype(np.int16)
    vowel = _voice([_high], margin_s=0.0, noise=0.0)
    assert np.median(tilt_contour(hiss)) > 1.0
    assert np.median(tilt_contour(vowel)) < -3.0
    padded = np.concatenate((np.zeros(8000, dtype=np.int16), vowel, np.zeros(8000, dtype=np.int16)))
    assert len(tilt_contour(padded)) <= len(tilt_contour(vowel)) + 2


def _judged(gate: CheckGate, samples: np.ndarray, scores: Sequence[float]) -> list[float]:
    """Feed the audio in 80 ms chunks beside one score each (the last scores with the whole audio)."""
    chunk = 1280
    out = []
    for i, score in enumerate(scores):
        gate.hear(samples[i * chunk : (i + 1) * chunk].tobytes())
        out.append(gate.judge(score))
    return out


def test_the_gate_lets_the_word_through_when_it_crosses() -> None:
    """Scores under the threshold pass unchanged; the word's crossing passes at once."""
    check = word_check(_takes())
    assert check is not None
    samples = _voice(WORD, seed=7)
    n = len(samples) // 1280
    scores = [0.5] * (n - 2) + [0.9, 0.95]
    assert _judged(CheckGate(check, 0.8), samples, scores) == scores


def test_the_gate_holds_a_rising_score_then_rejects_the_crossing_until_the_score_falls() -> None:
    """A tone-changed word is held while its score rises, then rejected; the next crossing is judged anew."""
    check = word_check(_takes())
    assert check is not None
    samples = _voice(TONE_CHANGED, seed=7)
    n = len(samples) // 1280
    rising = [0.81 + 0.01 * i for i in range(MAX_HELD_EMBEDDINGS + 3)]
    scores = [0.5] * (n - len(rising)) + rising
    rejections: list[tuple[float | None, float | None]] = []
    gate = CheckGate(check, 0.8, rejections.append)
    assert max(_judged(gate, samples, scores)) == 0.5
    assert rejections == [gate.last_distances]
    pitch = gate.last_distances[0]
    assert check.pitch is not None and pitch is not None and pitch > check.pitch.limit
    assert gate.judge(0.99) == 0.0  # still the same crossing
    assert gate.judge(0.3) == 0.3
    word = _voice(WORD, seed=8)
    assert _judged(gate, word, [0.5] * (len(word) // 1280 - 1) + [0.9])[-1] == 0.9


def test_the_gate_waits_for_the_end_of_the_word() -> None:
    """A crossing that comes with half of the word's last syllables unsaid is held while the score rises, and
    passes once the rest of the word has been heard."""
    fast = {"syllable_s": 0.15, "gap_s": 0.03}
    check = word_check([_voice(WORD, base_hz=140 + 3 * i, seed=i, **fast) for i in range(4)])
    assert check is not None
    samples = _voice(WORD, seed=11, **fast)
    n = len(samples) // 1280
    early = int((0.3 + 2.5 * 0.18) * MIC_RATE_HZ) // 1280 - 1  # the audio heard ends in the third syllable
    scores = [0.5] * early + [0.85 + 0.01 * i for i in range(n - early)]
    out = _judged(CheckGate(check, 0.8), samples, scores)
    assert out[early] == 0.0
    assert max(out[early : early + MAX_HELD_EMBEDDINGS + 1]) >= 0.85


def test_a_stored_word_gets_its_contour_check_from_its_takes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Loading a word builds the check from the take WAVs; a take that cannot be read leaves the word
    without one, with a warning, rather than without the word."""

    def embed(pcm: bytes) -> np.ndarray:
        frames = max(8, len(pcm) // 2 // 1280)
        return np.resize(np.linspace(-1, 1, 96, dtype=np.float32), (frames, 96))

    def frames(pcm: bytes) -> list[float]:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
        blocks = samples[: len(samples) // 512 * 512].reshape(-1, 512)
        return [1.0 if np.sqrt(np.mean(b**2)) > 0.05 else 0.0 for b in blocks]

    store = WordStore(tmp_path / "wake")
    takes = [(f"{i}.wav", AudioChunk(t.tobytes(), MIC_RATE_HZ)) for i, t in enumerate(_takes())]
    result = store.enrol("小乡小乡", takes, embed=embed, speech_frames=frames)
    assert result.word.check is not None
    assert store.load("小乡小乡").check is not None
    (store.root / "小乡小乡" / "take_2.wav").write_bytes(b"not a wav")
    with caplog.at_level(logging.WARNING):
        word = store.load("小乡小乡")
    assert word.check is None and len(word.templates) == 5
    assert "no contour check" in caplog.text
