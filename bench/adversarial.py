"""Adversarial negatives for an enrolled Chinese wake word: phrases that sound close to it but are not it.

Derived from the word alone (its pinyin via pypinyin), never from the bench's near-miss list: each distinct
syllable's initial swapped for a near one (x -> j/q/s/sh/zh ...), each tone changed, and the word cut
(its first half, a syllable dropped). A changed syllable is written back as a common character with that
reading (GB2312 level 1), so Mandarin and Cantonese voices can both say it; a syllable changed in a word that
repeats itself (小乡小乡) changes at every place, as a speaker would say 小张小张.

The voices are espeak-ng variants the enroll set never uses (``GENERATOR_VOICES``), so the figures measure
voices the generator did not hear.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import numpy as np

from .synth import Voice, pad

NEAR_INITIALS: dict[str, tuple[str, ...]] = {
    "x": ("j", "q", "s", "sh", "zh"),
    "j": ("q", "x", "zh", "z"),
    "q": ("j", "x", "ch", "c"),
    "zh": ("z", "j", "ch"),
    "ch": ("c", "q", "zh"),
    "sh": ("s", "x", "zh"),
    "z": ("zh", "j", "c"),
    "c": ("ch", "q", "z"),
    "s": ("sh", "x", "z"),
    "b": ("p", "d", "m"),
    "p": ("b", "t"),
    "d": ("t", "b", "n"),
    "t": ("d", "p"),
    "g": ("k", "d", "h"),
    "k": ("g", "h"),
    "h": ("f", "k"),
    "f": ("h", "b"),
    "l": ("n", "r"),
    "n": ("l", "m"),
    "m": ("n", "b"),
    "r": ("l", "y"),
    "y": ("w", "l"),
    "w": ("y", "h"),
    "": ("y", "w"),
}
"""Initials a listener (or the embedding) easily confuses with each one."""

PALATAL = ("j", "q", "x")

GENERATOR_VOICES = (
    Voice("espeak", "cmn-latn-pinyin+m2", "cmn", label="gen_cmn_m2"),
    Voice("espeak", "cmn-latn-pinyin+f3", "cmn", label="gen_cmn_f3"),
    Voice("espeak", "cmn-latn-pinyin+m5", "cmn", label="gen_cmn_m5"),
    Voice("espeak", "yue+m2", "yue", label="gen_yue_m2"),
    Voice("espeak", "yue+f5", "yue", label="gen_yue_f5"),
    Voice("espeak", "yue+m6", "yue", label="gen_yue_m6"),
)
"""espeak-ng variants disjoint from bench.make_sets' enroll speakers (cmn f2 m3 f4 f5 m7 grandpa and the
base voice; yue f2 f3 f4 m1 m3)."""
RATES = (0.9, 1.15)
"""Speaking rates each phrase is said at."""


def _respell(initial: str, final: str) -> str:
    """Fix the final for the new initial: j/q/x take the i/ü medial, zh/ch/sh/z/c/s never do."""
    if initial in PALATAL:
        if final.startswith(("u", "o")) or not final.startswith(("i", "v")):
            final = ("v" + final[1:]) if final.startswith("u") else "i" + final
        return initial + final
    if final.startswith("v"):
        final = "u" + final[1:]
    if initial in ("zh", "ch", "sh", "z", "c", "s", "r") and final.startswith("i") and len(final) > 2:
        final = final[1:]
    if initial in ("y", "w") and final.startswith(("i", "u")) and len(final) > 2:
        final = final[1:]
    return initial + final


@cache
def _characters() -> dict[str, str]:
    """A common character for each tone-numbered pinyin reading (its first reading only)."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.pinyin_dict import pinyin_dict

    out: dict[str, str] = {}
    for code in sorted(pinyin_dict):
        char = chr(code)
        try:
            encoded = char.encode("gb2312")
        except UnicodeEncodeError:
            continue
        if not 0xB0 <= encoded[0] <= 0xD7:  # level 1: the 3755 common characters
            continue
        reading = lazy_pinyin(char, style=Style.TONE3, neutral_tone_with_five=True)[0]
        out.setdefault(reading, char)
    return out


def variants(word: str) -> list[str]:
    """Phrases close to ``word`` but not it (characters), each once, never the word or a homophone of it."""
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
    initials = lazy_pinyin(word, style=Style.INITIALS, strict=False)
    chars = _characters()
    out: list[str] = []

    def add(text: str) -> None:
        if text and text != word and text not in out:
            if lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True) != syllables:
                out.append(text)

    def replaced(old: str, reading: str) -> None:
        char = chars.get(reading)
        if char is not None:
            add(word.replace(old, char))

    for char, syllable, initial in dict.fromkeys(zip(word, syllables, initials, strict=True)):
        tone, final = syllable[-1], syllable[len(initial) : -1]
        for near in NEAR_INITIALS.get(initial, ()):
            replaced(char, _respell(near, final) + tone)
        for other in "1234":
            if other != tone:
                replaced(char, syllable[:-1] + other)
    half = len(word) // 2
    if half:
        add(word[:half])
        add(word[half:])
    for i in range(len(word)):
        add(word[:i] + word[i + 1 :])
    return out


def clips(word: str) -> Iterator[tuple[str, Voice, float, np.ndarray]]:
    """(text, voice, rate, samples padded with silence) for every variant, generator voice and rate."""
    for text in variants(word):
        for voice in GENERATOR_VOICES:
            for rate in RATES:
                yield text, voice, rate, pad(voice.say(text, rate), 0.5, 0.5)


SEGMENTS = 3
"""Parts a window is cut into for the second stage's features (keeps the order a mean would lose)."""


def window_features(stream: np.ndarray, center: np.ndarray, length: int) -> np.ndarray:
    """For every embedding: the window of ``length`` ending there cut in SEGMENTS, each part's unit mean."""
    from assistant.listen.enrolled import normalized

    x = normalized(stream, center).astype(np.float64)
    cumulative = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    ends = np.arange(1, len(x) + 1)
    bounds = [np.maximum(ends - length + round(k * length / SEGMENTS), 0) for k in range(SEGMENTS)] + [ends]
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        b = np.maximum(b, a + 1)
        part = (cumulative[np.minimum(b, len(x))] - cumulative[a]) / (b - a)[:, None]
        parts.append(part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-8))
    return np.hstack(parts)


def lda_direction(positives: np.ndarray, negatives: np.ndarray, shrink: float = 0.3) -> np.ndarray:
    """Fisher's direction between two sets of feature rows, the pooled covariance shrunk toward its trace."""
    within = np.cov(np.vstack([positives - positives.mean(0), negatives - negatives.mean(0)]).T)
    d = within.shape[0]
    within = (1 - shrink) * within + shrink * np.trace(within) / d * np.eye(d)
    w = np.linalg.solve(within, positives.mean(0) - negatives.mean(0))
    return np.asarray(w / np.linalg.norm(w))
