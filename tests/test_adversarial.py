"""bench.adversarial: near misses generated from an enrolled word, and the LDA second stage's pure parts."""

from __future__ import annotations

import numpy as np
from pypinyin import Style, lazy_pinyin

from bench import make_sets
from bench.adversarial import GENERATOR_VOICES, lda_direction, variants, window_features


def _pinyin(text: str) -> list[str]:
    return lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)


def test_variants_swap_initials_change_tones_and_cut_the_word() -> None:
    """Each kind of near miss is there, a repeated syllable changes at every place, and the word is not."""
    out = variants("小乡小乡")
    readings = [_pinyin(text) for text in out]
    assert ["xiao3", "zhang1", "xiao3", "zhang1"] in readings  # x -> zh
    assert ["xiao3", "xiang2", "xiao3", "xiang2"] in readings  # a tone
    assert "小乡" in out  # half the word
    assert all(r != _pinyin("小乡小乡") for r in readings)  # neither the word nor a homophone (小香小香)
    assert len(out) == len(set(out))


def test_variants_of_an_unrepeated_word_change_one_syllable_at_a_time() -> None:
    out = variants("你好")
    assert out and all(len(text) <= 2 for text in out)
    assert any(_pinyin(text)[1] == "hao3" and _pinyin(text)[0] != "ni3" for text in out)


def test_generator_voices_are_not_the_enroll_sets() -> None:
    """The figures are only honest if the bench's speakers are voices the generator never used."""
    enrolled, others = make_sets.enroll_speakers()
    bench = {(v.name, v.semitones) for v, _ in enrolled + others}
    assert not bench & {(v.name, v.semitones) for v in GENERATOR_VOICES}


def test_lda_separates_two_clouds_and_features_keep_order() -> None:
    rng = np.random.default_rng(0)
    positives = rng.normal(0, 1, (40, 6)) + np.array([3, 0, 0, 0, 0, 0])
    negatives = rng.normal(0, 1, (60, 6))
    w = lda_direction(positives, negatives)
    assert (positives @ w).mean() > (negatives @ w).max() - 1
    a, b = np.eye(4)[0] + 0.1, np.eye(4)[1] + 0.1
    ab = window_features(np.stack([a, a, b, b]), np.zeros(4), 4)[-1]
    ba = window_features(np.stack([b, b, a, a]), np.zeros(4), 4)[-1]
    assert not np.allclose(ab, ba)  # a mean over the window would be the same
