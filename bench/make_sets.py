"""Synthetic evaluation sets for the listening benchmarks, made on the spot from the offline TTS voices found here.

    python -m bench.make_sets endpoint OUT_DIR   # for python -m bench.endpoint --clips OUT_DIR
    python -m bench.make_sets wakeword OUT_DIR   # positives/, negatives/, confusables/ for bench.wakeword
    python -m bench.make_sets enroll OUT_DIR     # a Chinese wake word enrolled by several speakers

Voices: espeak-ng (English, Mandarin cmn-latn-pinyin, Cantonese yue, with variants and pitches), Piper with the
joe voice from PyPI, flite and festival where installed; a missing engine is skipped with one printed line.
More speakers come from shifting pitch with sox. The same --seed (default 0) and the same engines give the same
files. --quick makes about a dozen clips for smoke tests. OUT_DIR must not exist or be empty; each set gets a
README.md that says how it was made.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.audio import write_wav
from bench import texts
from bench.synth import (
    RATE,
    Voice,
    active_rms,
    at_level,
    band_limit,
    dbfs,
    engine_missing,
    fan,
    joe_piper_model,
    music_bed,
    noise,
    reverb,
    speech_end,
    to_chunk,
)

ENGINES = ("espeak", "piper", "flite", "festival")
LANGUAGES = ("en", "cmn", "yue")


def espeak_voices() -> list[Voice]:
    out = []
    for name, pitch in (
        ("en-us", None),
        ("en-gb", None),
        ("en-gb+f2", None),
        ("en-us+m3", None),
        ("en-gb-scotland", None),
        ("en-029", None),
        ("en-us+f3", 60),
        ("en-gb-x-rp+m5", None),
        ("en-us-nyc+f4", None),
        ("en-gb+m7", 35),
        ("en-us+grandpa", None),
    ):
        out.append(Voice("espeak", name, "en", pitch))
    for lang, base in (("cmn", "cmn-latn-pinyin"), ("yue", "yue")):
        for variant, pitch in (
            ("", None),
            ("+f2", 60),
            ("+m3", 40),
            ("+f3", None),
            ("+f4", 70),
            ("+m1", 45),
            ("+m7", None),
            ("+f5", 55),
            ("+grandpa", None),
        ):
            out.append(Voice("espeak", base + variant, lang, pitch))
    out.append(Voice("espeak", "cmn-latn-pinyin+f2", "cmn", 55, semitones=-2.5))
    out.append(Voice("espeak", "yue+m3", "yue", 45, semitones=2.0))
    return out


def voice_pool(engines: Sequence[str], skipped: list[str]) -> list[Voice]:
    """Every voice of the chosen engines that speaks here; one printed line per engine or voice skipped."""

    def skip(what: str, why: object) -> None:
        skipped.append(f"{what} ({why})")
        print(f"skipping {what}: {why}")

    voices: list[Voice] = []
    for engine in engines:
        why = engine_missing(engine)
        if why:
            skip(engine, why)
        elif engine == "espeak":
            voices += espeak_voices()
        elif engine == "piper":
            model = str(joe_piper_model())
            voices += [Voice("piper", model, "en", semitones=shift) for shift in (0.0, -3.0, 2.5)]
        elif engine == "flite":
            voices += [Voice("flite", name, "en") for name in ("kal16", "awb", "rms", "slt")]
        elif engine == "festival":
            voices += [Voice("festival", name, "en") for name in ("kal", "slt-hts")]
    sox_missing = engine_missing("sox")
    working = []
    for voice in voices:
        if voice.semitones and sox_missing:
            skip(voice.id, sox_missing)
            continue
        try:
            probe = voice.say("one" if voice.language == "en" else "一")
        except (subprocess.CalledProcessError, OSError, ValueError, IndexError) as err:
            skip(voice.id, err)
            continue
        if len(probe) < RATE // 20:
            skip(voice.id, "it said nothing")
            continue
        working.append(voice)
    return working


REFERENCE_DBFS = -26.0


def interleaved(voices: list[Voice]) -> list[Voice]:
    """Engines in turn (espeak, piper, flite, festival, espeak...), so that any few clips mix engines."""
    queues = {engine: [v for v in voices if v.engine == engine] for engine in dict.fromkeys(v.engine for v in voices)}
    out: list[Voice] = []
    while any(queues.values()):
        out += [queue.pop(0) for queue in queues.values() if queue]
    return out


class Studio:
    """The voices and a cache of what they said (TV lines repeat across clips)."""

    def __init__(self, engines: Sequence[str]) -> None:
        self.skipped: list[str] = []
        self.voices = voice_pool(engines, self.skipped)
        self.by_language = {lang: interleaved([v for v in self.voices if v.language == lang]) for lang in LANGUAGES}
        # festival starts a process of half a second per sentence: it reads questions, not television.
        self.tv_voices = [v for v in self.voices if v.engine != "festival"]
        self._cache: dict[tuple[Voice, str, float], np.ndarray] = {}
        self.engines = sorted({v.engine for v in self.voices})

    def say(self, voice: Voice, text: str, rate: float = 1.0) -> np.ndarray:
        key = (voice, text, round(rate, 3))
        if key not in self._cache:
            self._cache[key] = at_level(voice.say(text, rate), REFERENCE_DBFS)
        return self._cache[key]


def seconds(value: float) -> int:
    return round(value * RATE)


def rounded(value: float) -> float:
    return round(float(value), 3)


def write(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, to_chunk(samples))


def safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name).strip("_")


def fade(samples: np.ndarray, ms: float = 8.0) -> np.ndarray:
    n = min(len(samples) // 2, round(ms * RATE / 1000))
    out = samples.copy()
    if n:
        ramp = np.linspace(0, 1, n)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def protect_peaks(samples: np.ndarray, limit: float = 30000.0) -> tuple[np.ndarray, float]:
    """Scale down if the loudest sample would clip; returns the gain applied."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    gain = min(1.0, limit / peak) if peak else 1.0
    return samples * gain, gain


# ---------------------------------------------------------------- television


@dataclass
class Tv:
    samples: np.ndarray
    info: dict[str, object]


def tv_babble(studio: Studio, length: int, rng: np.random.Generator, asker: Voice | None = None) -> Tv:
    """A TV in the room: 1-3 voices (other than the asker) reading unrelated lines with natural gaps, sometimes a
    music bed, band-limited to 120 Hz-7 kHz and usually reverberant. Unit active RMS."""
    candidates = [v for v in studio.tv_voices if asker is None or (v.engine, v.name) != (asker.engine, asker.name)]
    count = min(len(candidates), int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25])))
    chosen = [candidates[i] for i in rng.choice(len(candidates), count, replace=False)]
    lines = {lang: list(rng.permutation(texts.TV[lang])) for lang in LANGUAGES}
    start = seconds(rng.uniform(0.2, 2.0))

    def stream(voices: list[Voice]) -> np.ndarray:
        gains = {v: 10 ** (rng.uniform(-4, 2) / 20) for v in voices}
        pieces = [np.zeros(seconds(rng.uniform(0.0, 0.6)))]
        total = len(pieces[0])
        turn = 0
        while total < start + length:
            voice = voices[turn % len(voices)]
            queue = lines[voice.language]
            text = queue.pop(0)
            queue.append(text)
            said = studio.say(voice, text) * gains[voice]
            gap = np.zeros(seconds(rng.uniform(0.15, 0.5) if len(voices) == 1 else rng.uniform(0.2, 0.9)))
            pieces += [said, gap]
            total += len(said) + len(gap)
            turn += 1 if len(voices) == 1 or rng.random() < 0.8 else 0
        return np.concatenate(pieces)[start : start + length]

    out = stream(chosen[:2])
    if count == 3:
        out = out + stream(chosen[2:]) * 10 ** (-rng.uniform(6, 12) / 20)
    info: dict[str, object] = {"voices": [v.id for v in chosen], "music_db": None, "reverb_rt60_s": None}
    if rng.random() < 0.4:
        music_db = rng.uniform(-14, -6)
        out = out + music_bed(length, rng) * active_rms(out) * 10 ** (music_db / 20)
        info["music_db"] = rounded(music_db)
    # The set's own hiss, so that the gaps between lines are not digital silence.
    out = out + noise("pink", length, rng) * active_rms(out) * 10 ** (-rng.uniform(35, 45) / 20)
    out = band_limit(out)
    if rng.random() < 0.65:
        rt60 = rng.uniform(0.25, 0.7)
        out = reverb(out, rng, rt60, rng.uniform(0, 8))
        info["reverb_rt60_s"] = rounded(rt60)
    return Tv(out / max(active_rms(out), 1e-9), info)


def room(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background of one kind: white, pink, brown or fan."""
    return fan(length, rng) if kind == "fan" else noise(kind, length, rng)


def quiet_room(length: int, speech_level: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Digital silence, a very low noise floor (-60..-50 dBFS) or a light fan (25..30 dB SNR)."""
    choice = rng.random()
    if choice < 0.25:
        return np.zeros(length), "digital silence"
    if choice < 0.6:
        kind = str(rng.choice(["white", "pink"]))
        floor = rng.uniform(-60, -50)
        return room(kind, length, rng) * 32768 * 10 ** (floor / 20), f"{kind} noise at {floor:.0f} dBFS"
    kind = str(rng.choice(["fan", "brown", "pink"]))
    snr = rng.uniform(25, 30)
    return room(kind, length, rng) * speech_level / 10 ** (snr / 20), f"{kind} noise at {snr:.0f} dB SNR"


# ---------------------------------------------------------------- endpoint set

CONDITIONS = ("quiet", "tv10", "tv20", "slow", "slow_tv", "low")
TV_DB = {"tv10": 10.0, "tv20": 20.0, "slow_tv": 15.0}
COMMA = {"en": ",", "cmn": "，", "yue": "，"}


def joined(language: str, phrases: Sequence[str]) -> str:
    return " ".join(phrases) if language == "en" else "".join(phrases)


def without_stop(phrase: str) -> str:
    return phrase.rstrip(".?!。？！，,")


@dataclass
class Slow:
    samples: np.ndarray
    pauses_s: list[float]
    spoken: str
    method: str
    fillers: list[str] = field(default_factory=list)


def cut_point(full: np.ndarray, estimate: int) -> int | None:
    """A word boundary near ``estimate`` (where the phrase alone ends): among the 10 ms frames from 350 ms before
    to 120 ms after, the quiet ones (within 6 dB of the quietest) closest to 80 ms before. None when no frame there
    is 25 dB under the loudest: a cut would fall inside a syllable."""
    frames = full[: len(full) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
    level = 20 * np.log10(np.convolve(energy, np.ones(3) / 3, mode="same") / energy.max())
    centre = estimate // 160
    lo = max(round(len(level) * 0.1), centre - 35)
    hi = min(round(len(level) * 0.92), centre + 12)
    if hi <= lo or level[lo:hi].min() > -25:
        return None
    quiet = lo + np.flatnonzero(level[lo:hi] <= level[lo:hi].min() + 6)
    return int(quiet[np.argmin(np.abs(quiet - (centre - 8)))]) * 160 + 80


def slow_question(studio: Studio, voice: Voice, phrases: list[str], rate: float, rng: np.random.Generator) -> Slow:
    """A slow speaker's request with 1-3 pauses of 1.0-2.5 s between its phrases, some after a filler.

    Mostly the whole sentence is synthesized and cut at the word boundary (kept prosody: the voice does not fall
    as at a sentence end); otherwise each part is synthesized on its own ending in a comma, which in espeak-ng's
    English gives a rising continuation contour (its Mandarin and Cantonese voices ignore it)."""
    lang = voice.language
    wanted = int(rng.choice([1, 2, 3], p=[0.3, 0.35, 0.35]))
    cuts: dict[int, int] = {}
    if rng.random() < 0.65:
        full = studio.say(voice, joined(lang, phrases), rate)
        for b in range(len(phrases) - 1):
            cut = cut_point(full, len(studio.say(voice, without_stop(joined(lang, phrases[: b + 1])), rate)))
            if cut is not None and all(abs(cut - other) > seconds(0.3) for other in cuts.values()):
                cuts[b] = cut
    method = "split" if cuts else "comma"
    candidates = sorted(cuts) if cuts else list(range(len(phrases) - 1))
    boundaries = sorted(int(b) for b in rng.choice(candidates, min(len(candidates), wanted), replace=False))
    groups = [phrases[a + 1 : b + 1] for a, b in zip([-1, *boundaries], [*boundaries, len(phrases) - 1], strict=True)]
    if method == "split":
        parts = [fade(p) for p in np.split(full, sorted(cuts[b] for b in boundaries))]
    else:
        parts = []
        for i, group in enumerate(groups):
            text = joined(lang, group)
            parts.append(studio.say(voice, without_stop(text) + COMMA[lang] if i < len(groups) - 1 else text, rate))
    pieces = [parts[0]]
    pauses: list[float] = []
    fillers: list[str] = []
    spoken = joined(lang, groups[0])
    for part, group in zip(parts[1:], groups[1:], strict=True):
        if rng.random() < 0.45:
            filler = str(rng.choice(texts.FILLERS[lang]))
            said = studio.say(voice, filler, rate * 0.75) * 10 ** (rng.uniform(-6, -2) / 20)
            pieces += [np.zeros(seconds(rng.uniform(0.05, 0.25))), said]
            fillers.append(filler)
            spoken += f" {filler}"
        pause = rng.uniform(1.0, 2.5)
        pauses.append(rounded(pause))
        pieces += [np.zeros(seconds(pause)), part]
        spoken += f" [{pause:.1f} s] " + joined(lang, group)
    return Slow(np.concatenate(pieces), pauses, spoken, method, fillers)


@dataclass
class EndpointOptions:
    conditions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONDITIONS, 24))
    """Clips per condition."""
    per_condition: int = 24
    """Clips per condition the voices are spread over."""
    lead: tuple[float, float] = (2.5, 4.0)
    tail: tuple[float, float] = (4.5, 6.0)


def endpoint_clip(
    studio: Studio, condition: str, index: int, seed: int, options: EndpointOptions
) -> tuple[np.ndarray, dict[str, object]]:
    c = CONDITIONS.index(condition)
    rng = np.random.default_rng([seed, 1, c, index])
    lang = LANGUAGES[(index + c) % 3]
    pool = studio.by_language[lang]
    per_language = math.ceil(options.per_condition / 3)
    voice = pool[(c * per_language + index // 3) % len(pool)]
    slow = condition.startswith("slow")
    if slow:
        if voice.engine == "espeak":
            rate = rng.uniform(100, 130) / (165 if lang == "en" else 150)
        else:
            rate = 1 / rng.uniform(1.3, 1.6)
        phrases = texts.SLOW_QUESTIONS[lang][(index // 3 + 5 * c) % len(texts.SLOW_QUESTIONS[lang])]
        asked = slow_question(studio, voice, phrases, rate, rng)
        question, text = asked.samples, joined(lang, phrases)
    else:
        rate = rng.uniform(0.9, 1.15)
        text = texts.QUESTIONS[lang][(index // 3 + 7 * c) % len(texts.QUESTIONS[lang])]
        question = studio.say(voice, text, rate)
        asked = None
    level = rng.uniform(-45, -38) if condition == "low" else rng.uniform(-30, -20)
    question = at_level(question, level)
    wake = at_level(studio.say(voice, texts.WAKE_WORDS[lang], min(1.0, rate * 1.15)), level + rng.uniform(-2, 2))

    lead = seconds(rng.uniform(*options.lead))
    wake_end = lead + seconds(speech_end(wake))
    listen_start = wake_end + seconds(0.1)
    question_start = listen_start + seconds(rng.uniform(0.2, 0.8))
    tail = seconds(rng.uniform(*options.tail))
    length = question_start + len(question) + tail
    clean = np.zeros(length)
    clean[lead : lead + len(wake)] = wake
    only_question = np.zeros(length)
    only_question[question_start : question_start + len(question)] = question
    end = speech_end(only_question)
    clean += only_question
    speech_level = active_rms(question)

    truth: dict[str, object] = {}
    if condition in TV_DB:
        tv = tv_babble(studio, length, rng, voice)
        background = tv.samples * speech_level / 10 ** (TV_DB[condition] / 20)
        floor = rng.uniform(-70, -60)
        background = background + noise("pink", length, rng) * 32768 * 10 ** (floor / 20)
        described = f"TV {TV_DB[condition]:.0f} dB below the question, pink floor at {floor:.0f} dBFS"
        truth["tv"] = tv.info
    elif condition == "low":
        kind = str(rng.choice(["white", "pink", "brown", "fan"]))
        background = room(kind, length, rng) * speech_level / 10
        described = f"{kind} noise 20 dB below the question"
    else:
        background, described = quiet_room(length, speech_level, rng)
    mixed, gain = protect_peaks(clean + background)
    truth = {
        "listen_start_s": rounded(listen_start / RATE),
        "speech_end_s": rounded(end),
        "condition": condition,
        "voice": voice.id,
        "language": lang,
        "text": text,
        "pauses_s": asked.pauses_s if asked else [],
        "wake_start_s": rounded(lead / RATE),
        "wake_end_s": rounded(wake_end / RATE),
        "question_start_s": rounded(question_start / RATE),
        "speech_dbfs": rounded(dbfs(speech_level * gain)),
        "background": described,
        "rate": rounded(rate),
        **truth,
    }
    if asked:
        truth |= {"spoken": asked.spoken, "pause_method": asked.method, "fillers": asked.fillers}
    return mixed, truth


def make_endpoint(out: Path, studio: Studio, seed: int, options: EndpointOptions) -> list[dict[str, object]]:
    rows = []
    for condition, count in options.conditions.items():
        for index in range(count):
            samples, truth = endpoint_clip(studio, condition, index, seed, options)
            name = f"{condition}_{index:02d}_{truth['language']}_{safe(str(truth['voice']))}.wav"
            write(out / name, samples)
            rows.append({"file": name, **truth})
    write_jsonl(out / "truth.jsonl", rows)
    return rows


# ---------------------------------------------------------------- wake-word set

WAKE_PHRASES = {"hey_jarvis": "Hey Jarvis", "alexa": "Alexa", "okay_nabu": "Okay Nabu"}
WAKE_RATES = (0.85, 1.0, 1.2)
WAKE_CONDITIONS = ("clean", "white20", "pink10", "tv10")
WAKE_NOISE = {"white20": ("white", 20.0), "pink10": ("pink", 10.0)}


def word_clip(
    studio: Studio, voice: Voice, speech: np.ndarray, condition: str, rng: np.random.Generator
) -> tuple[np.ndarray, float, dict[str, object]]:
    """1.0 s lead, the phrase, 1.5 s tail, in one of WAKE_CONDITIONS; returns the clip and the end of the phrase."""
    speech = at_level(speech, rng.uniform(-30, -18))
    clip = np.concatenate([np.zeros(RATE), speech, np.zeros(seconds(1.5))])
    end = speech_end(clip)
    level = active_rms(speech)
    extra: dict[str, object] = {}
    if condition in WAKE_NOISE:
        kind, snr = WAKE_NOISE[condition]
        clip = clip + noise(kind, len(clip), rng) * level / 10 ** (snr / 20)
    elif condition == "tv10":
        tv = tv_babble(studio, len(clip), rng, voice)
        clip = clip + tv.samples * level / 10**0.5
        extra["tv"] = tv.info
    return protect_peaks(clip)[0], end, extra


def make_wakeword(out: Path, studio: Studio, seed: int, quick: bool) -> dict[str, object]:
    english = studio.by_language["en"]
    counts: Counter[str] = Counter()
    for w, (word, phrase) in enumerate(WAKE_PHRASES.items()):
        rows = []
        plan = [
            (v, r, c) for v in range(len(english)) for r in range(len(WAKE_RATES)) for c in range(len(WAKE_CONDITIONS))
        ]
        if quick:
            plan = [(w * 5 % len(english), 1, 0), ((w * 5 + 3) % len(english), 0, 3)]
        for v, r, c in plan:
            voice, rate, condition = english[v], WAKE_RATES[r], WAKE_CONDITIONS[c]
            rng = np.random.default_rng([seed, 2, w, v, r, c])
            clip, end, extra = word_clip(studio, voice, studio.say(voice, phrase, rate), condition, rng)
            name = f"{safe(voice.id)}__r{rate:.2f}__{condition}.wav"
            write(out / "positives" / word / name, clip)
            rows.append(
                {
                    "file": name,
                    "word_end_s": rounded(end),
                    "voice": voice.id,
                    "rate": rate,
                    "condition": condition,
                    **extra,
                }
            )
            counts[f"positives/{word}/{condition}"] += 1
        write_jsonl(out / "positives" / word / "truth.jsonl", rows)
    rows = []
    for w, (word, phrases) in enumerate(texts.CONFUSABLES.items()):
        for p, phrase in enumerate(phrases[:1] if quick else phrases):
            for k in range(1 if quick else 5):
                voice = english[(p * 5 + k * 3 + w) % len(english)]
                rng = np.random.default_rng([seed, 3, w, p, k])
                condition = "clean" if k < 3 else ("white20", "tv10")[k - 3]
                clip, end, extra = word_clip(studio, voice, studio.say(voice, phrase), condition, rng)
                name = f"{safe(phrase.lower())}__{safe(voice.id)}__{condition}.wav"
                write(out / "confusables" / name, clip)
                rows.append(
                    {
                        "file": name,
                        "text": phrase,
                        "near": word,
                        "voice": voice.id,
                        "condition": condition,
                        "speech_end_s": rounded(end),
                        **extra,
                    }
                )
                counts["confusables"] += 1
    write_jsonl(out / "confusables" / "truth.jsonl", rows)
    negatives = negative_plan(studio, 1.0 if quick else 25.0, seed, studio.by_language, chinese_only=False)
    write_negatives(out / "negatives", negatives, counts)
    return dict(counts)


# ---------------------------------------------------------------- negatives (wake-word and enroll sets)


def english_reading() -> list[str]:
    """Paragraphs for the English readers: the project's prose and TV lines, plus license texts Debian ships."""
    paragraphs = list(texts.PROSE["en"])
    lines = texts.TV["en"]
    paragraphs += [" ".join(lines[i : i + 7]) for i in range(0, len(lines), 7)]
    for name in ("GPL-3", "Apache-2.0", "LGPL-2.1"):
        path = Path("/usr/share/common-licenses") / name
        if path.is_file():
            words = path.read_text(encoding="utf-8").split()
            paragraphs += [" ".join(words[i : i + 110]) for i in range(400, min(len(words), 4000), 110)]
    return paragraphs


def chinese_reading(lang: str) -> list[str]:
    lines = texts.TV[lang]
    return list(texts.PROSE[lang]) + ["".join(lines[i : i + 5]) for i in range(0, len(lines), 5)]


@dataclass
class Negative:
    name: str
    kind: str
    seconds: float
    make: object
    """A callable(rng) -> (samples, info)."""


def reading(
    studio: Studio, voices: list[Voice], paragraphs: list[str], target: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, object]]:
    """Voices taking turns reading paragraphs until ``target`` seconds, with an everyday background."""
    pieces: list[np.ndarray] = []
    total = 0
    start = int(rng.integers(len(paragraphs)))
    used = []
    i = 0
    while total < seconds(target):
        voice = voices[i % len(voices)]
        said = at_level(studio.say(voice, paragraphs[(start + i) % len(paragraphs)], rng.uniform(0.9, 1.15)), 0)
        said *= 10 ** (rng.uniform(-3, 3) / 20)
        gap = np.zeros(seconds(rng.uniform(0.3, 1.2)))
        pieces += [said, gap]
        total += len(said) + len(gap)
        used.append(voice.id)
        i += 1
    speech = np.concatenate(pieces)[: seconds(target)]
    speech = speech * 32768 * 10 ** (rng.uniform(-32, -22) / 20)
    kind = str(rng.choice(["clean", "pink", "white", "fan", "tv"]))
    info: dict[str, object] = {"voices": sorted(set(used)), "background": kind}
    level = active_rms(speech)
    if kind in ("pink", "white", "fan"):
        snr = rng.uniform(10, 20)
        speech = speech + room(kind, len(speech), rng) * level / 10 ** (snr / 20)
        info["snr_db"] = rounded(snr)
    elif kind == "tv":
        tv = tv_babble(studio, len(speech), rng)
        speech = speech + tv.samples * level / 10**1.5
        info |= {"tv": tv.info, "snr_db": 15.0}
    return speech, info


def negative_plan(
    studio: Studio, minutes: float, seed: int, readers: dict[str, list[Voice]], *, chinese_only: bool
) -> list[tuple[str, object]]:
    """(file stem, maker) pairs; each maker takes nothing and returns (samples, row) with the row's kind."""
    share = {
        "speech_en": 0.0 if chinese_only else 0.32,
        "speech_zh": 0.6 if chinese_only else 0.26,
        "tv": 0.4 if chinese_only else 0.2,
    }
    if not chinese_only:
        share |= {"music": 0.08, "noise": 0.07, "quiet": 0.07}
    plan: list[tuple[str, object]] = []
    clip_s = 20.0 if minutes < 5 else 45.0
    n = 0
    for kind, fraction in share.items():
        count = max(1, round(minutes * 60 * fraction / clip_s)) if fraction else 0
        for i in range(count):
            rng = np.random.default_rng([seed, 4, n])
            n += 1
            length = rng.uniform(0.8, 1.2) * clip_s
            plan.append((f"{kind}_{i:02d}", _negative_maker(studio, readers, kind, i, length, rng)))
    return plan


def _negative_maker(
    studio: Studio, readers: dict[str, list[Voice]], kind: str, i: int, length: float, rng: np.random.Generator
) -> object:
    def make() -> tuple[np.ndarray, dict[str, object]]:
        if kind == "speech_en":
            english = readers["en"]
            voices = [english[(i * 3 + k) % len(english)] for k in range(1 + i % 3)]
            samples, info = reading(studio, voices, english_reading(), length, rng)
            return samples, {"kind": kind, "language": "en", **info}
        if kind == "speech_zh":
            lang = ("cmn", "yue")[i % 2]
            pool = readers[lang]
            voices = [pool[(i * 2 + k) % len(pool)] for k in range(1 + i % 2)]
            samples, info = reading(studio, voices, chinese_reading(lang), length, rng)
            return samples, {"kind": kind, "language": lang, **info}
        if kind == "tv":
            tv = tv_babble(studio, seconds(length), rng)
            level = rng.uniform(-34, -22)
            return tv.samples * 32768 * 10 ** (level / 20), {"kind": kind, "dbfs": rounded(level), "tv": tv.info}
        if kind == "music":
            level = rng.uniform(-34, -22)
            return music_bed(seconds(length), rng) * 32768 * 10 ** (level / 20), {"kind": kind, "dbfs": rounded(level)}
        if kind == "noise":
            sort = ("fan", "pink", "brown", "white")[i % 4]
            level = rng.uniform(-45, -25)
            return room(sort, seconds(length), rng) * 32768 * 10 ** (level / 20), {
                "kind": kind,
                "noise": sort,
                "dbfs": rounded(level),
            }
        level = (-200.0, -70.0, -62.0, -55.0)[i % 4]
        samples = noise("pink", seconds(length), rng) * 32768 * 10 ** (level / 20)
        return samples, {"kind": kind, "dbfs": level if level > -100 else None}

    return make


def write_negatives(folder: Path, plan: list[tuple[str, object]], counts: Counter[str]) -> list[dict[str, object]]:
    rows = []
    for stem, make in plan:
        samples, info = make()  # type: ignore[operator]
        samples = protect_peaks(samples)[0]
        name = f"{stem}.wav"
        write(folder / name, samples)
        rows.append({"file": name, "seconds": rounded(len(samples) / RATE), **info})
        counts[f"negatives/{info['kind']}"] += 1
        counts["negatives seconds"] += round(len(samples) / RATE)
    write_jsonl(folder / "truth.jsonl", rows)
    return rows


# ---------------------------------------------------------------- enroll set


def enroll_speakers() -> tuple[list[tuple[Voice, float]], list[tuple[Voice, float]]]:
    """(voice, speaking rate) of the enrolled speakers and of the speakers who never enrolled."""
    enrolled = [
        (Voice("espeak", "cmn-latn-pinyin+f2", "cmn", 60, label="cmn_f2"), 1.0),
        (Voice("espeak", "cmn-latn-pinyin+m3", "cmn", 40, label="cmn_m3"), 0.9),
        (Voice("espeak", "cmn-latn-pinyin+f4", "cmn", 70, label="cmn_f4_fast"), 1.15),
        (Voice("espeak", "cmn-latn-pinyin+grandpa", "cmn", 35, label="cmn_grandpa_slow"), 0.75),
        (Voice("espeak", "yue+f3", "yue", 55, label="yue_f3"), 1.0),
        (Voice("espeak", "yue+m3", "yue", 35, label="yue_m3_slow"), 0.85),
        (Voice("espeak", "yue+f2", "yue", 65, label="yue_f2_fast"), 1.15),
        (Voice("espeak", "cmn-latn-pinyin", "cmn", 50, semitones=-3.0, label="cmn_m_low"), 0.95),
    ]
    others = [
        (Voice("espeak", "cmn-latn-pinyin+m7", "cmn", 50, label="other_cmn_m7"), 1.0),
        (Voice("espeak", "cmn-latn-pinyin+f5", "cmn", 62, label="other_cmn_f5"), 1.05),
        (Voice("espeak", "yue+m1", "yue", 45, label="other_yue_m1"), 1.0),
        (Voice("espeak", "yue+f4", "yue", 58, semitones=1.5, label="other_yue_f4_high"), 0.95),
    ]
    return enrolled, others


def enroll_word(studio: Studio, voice: Voice, rate: float, rng: np.random.Generator, text: str) -> np.ndarray:
    """One take: tempo within ±10 %, espeak pitch ±4 around the speaker's."""
    take = Voice(
        voice.engine, voice.name, voice.language, (voice.pitch or 50) + int(rng.integers(-4, 5)), voice.semitones
    )
    return studio.say(take, text, rate * rng.uniform(0.9, 1.1))


def enroll_test_clip(
    studio: Studio, voice: Voice, rate: float, rng: np.random.Generator, condition: str, layout: int, text: str
) -> tuple[np.ndarray, dict[str, object]]:
    """4-8 s: the word alone in silence, the word then a request, or other speech then the word."""
    level = rng.uniform(-30, -20)
    word = at_level(enroll_word(studio, voice, rate, rng, text), level)
    context = at_level(studio.say(voice, str(rng.choice(texts.ENROLL_CONTEXT[voice.language])), rate), level)
    lead = seconds(rng.uniform(0.6, 1.5))
    if layout == 0:
        parts = [(lead, word, True)]
    elif layout == 1:
        parts = [(lead, word, True), (lead + len(word) + seconds(rng.uniform(0.2, 0.6)), context, False)]
    else:
        word_at = lead + len(context) + seconds(rng.uniform(0.8, 1.6))
        parts = [(lead, context, False), (word_at, word, True)]
    spoken_end = max(at + len(s) for at, s, _ in parts)
    length = max(seconds(rng.uniform(4.0, 8.0)), spoken_end + seconds(1.0))
    clean = np.zeros(length)
    word_track = np.zeros(length)
    for at, samples, is_word in parts:
        (word_track if is_word else clean)[at : at + len(samples)] += samples
    word_start = next(at for at, _, is_word in parts if is_word)
    end = speech_end(word_track)
    speech_level = active_rms(word)
    if condition == "tv15":
        tv = tv_babble(studio, length, rng, voice)
        background = tv.samples * speech_level / 10**1.5
        extra: dict[str, object] = {"tv": tv.info}
    else:
        background, described = quiet_room(length, speech_level, rng)
        extra = {"background": described}
    mixed = protect_peaks(clean + word_track + background)[0]
    return mixed, {
        "word_start_s": rounded(word_start / RATE),
        "word_end_s": rounded(end),
        "layout": ("alone", "word then request", "speech then word")[layout],
        **extra,
    }


def make_enroll(out: Path, studio: Studio, seed: int, quick: bool) -> dict[str, object]:
    enrolled, others = enroll_speakers()
    sox_missing = engine_missing("sox")
    enrolled = [(v, r) for v, r in enrolled if not (v.semitones and sox_missing)]
    others = [(v, r) for v, r in others if not (v.semitones and sox_missing)]
    if quick:
        enrolled, others = enrolled[:1], others[:1]
    rows = []
    speakers: dict[str, object] = {}
    counts: Counter[str] = Counter()
    takes = 5
    tests = 1 if quick else 3
    for s, (voice, rate) in enumerate(enrolled):
        folder = out / voice.id
        files = []
        for take in range(1, takes + 1):
            rng = np.random.default_rng([seed, 5, s, take])
            word = at_level(enroll_word(studio, voice, rate, rng, texts.ENROLL_WORD), rng.uniform(-28, -20))
            clip = np.concatenate(
                [np.zeros(seconds(rng.uniform(0.25, 0.35))), word, np.zeros(seconds(rng.uniform(0.25, 0.35)))]
            )
            kind = str(rng.choice(["white", "pink", "fan"]))
            clip = clip + room(kind, len(clip), rng) * active_rms(word) / 10 ** (rng.uniform(30, 40) / 20)
            write(folder / f"enroll_{take}.wav", protect_peaks(clip)[0])
            files.append(f"{voice.id}/enroll_{take}.wav")
            counts["enroll"] += 1
        speakers[voice.id] = {"voice": voice.name, "language": voice.language, "rate": rate, "enroll": files}
        for condition in ("quiet", "tv15"):
            for t in range(1, tests + 1):
                rng = np.random.default_rng([seed, 6, s, t, condition == "tv15"])
                clip, truth = enroll_test_clip(studio, voice, rate, rng, condition, (t - 1 + s) % 3, texts.ENROLL_WORD)
                name = f"{voice.id}/test_{condition}_{t}.wav"
                write(out / name, clip)
                rows.append({"file": name, "speaker": voice.id, "kind": "positive", "condition": condition, **truth})
                counts[f"positive/{condition}"] += 1
        for m, (text, why) in enumerate(list(texts.NEAR_MISSES.items())[: 2 if quick else None]):
            rng = np.random.default_rng([seed, 7, s, m])
            clip, truth = enroll_test_clip(studio, voice, rate, rng, "quiet", m % 2, text)
            name = f"{voice.id}/near_miss_{m + 1}.wav"
            write(out / name, clip)
            truth["near_end_s"] = truth.pop("word_end_s")
            truth["near_start_s"] = truth.pop("word_start_s")
            rows.append(
                {
                    "file": name,
                    "speaker": voice.id,
                    "kind": "near_miss",
                    "condition": "quiet",
                    "text": text,
                    "why": why,
                    **truth,
                }
            )
            counts["near_miss"] += 1
    for o, (voice, rate) in enumerate(others):
        for t, condition in enumerate(("quiet",) if quick else ("quiet", "quiet", "quiet", "tv15", "tv15")):
            rng = np.random.default_rng([seed, 8, o, t])
            clip, truth = enroll_test_clip(studio, voice, rate, rng, condition, t % 3, texts.ENROLL_WORD)
            name = f"others/{voice.id}_{t + 1}_{condition}.wav"
            write(out / name, clip)
            rows.append({"file": name, "speaker": voice.id, "kind": "other_speaker", "condition": condition, **truth})
            counts[f"other_speaker/{condition}"] += 1
    readers = {
        lang: [v for v, _ in enrolled + others if v.language == lang] or studio.by_language[lang] for lang in LANGUAGES
    }
    plan = negative_plan(studio, 0.7 if quick else 10.0, seed, readers, chinese_only=True)
    negative_rows = write_negatives(out / "negatives", plan, counts)
    for row in negative_rows:
        rows.append(
            {**row, "file": f"negatives/{row['file']}", "kind": "negative", "condition": row["kind"], "speaker": None}
        )
    write_jsonl(out / "truth.jsonl", rows)
    (out / "speakers.json").write_text(json.dumps(speakers, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return dict(counts)


# ---------------------------------------------------------------- files and main


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def check_texts() -> None:
    """No wake word hides in what the negative readers and the TV say."""
    spoken = [
        *texts.PROSE["en"],
        *texts.TV["en"],
        *(s for lang in ("cmn", "yue") for s in texts.PROSE[lang] + texts.TV[lang]),
    ]
    for line in spoken:
        lowered = line.lower()
        assert not any(w in lowered for w in ("jarvis", "alexa", "nabu", "小乡", "小鄉", "小香")), line


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", choices=("endpoint", "wakeword", "enroll"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="about a dozen clips, for smoke tests")
    parser.add_argument("--engines", default=",".join(ENGINES), help="TTS engines to use (default: all found)")
    parser.add_argument(
        "--conditions", default=",".join(CONDITIONS), help="endpoint: which conditions, each as NAME or NAME:COUNT"
    )
    parser.add_argument("--per-condition", type=int, help="endpoint: clips per condition (default 24, quick 2)")
    parser.add_argument("--lead", type=float, help="endpoint: fixed lead before the wake word (default 2.5-4 s)")
    parser.add_argument("--tail", type=float, help="endpoint: fixed tail after the question (default 4.5-6 s)")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"{args.out} is not empty: remove it or choose another folder")
    check_texts()
    started = time.perf_counter()
    studio = Studio([e for e in args.engines.split(",") if e])
    for lang in LANGUAGES:
        if not studio.by_language[lang]:
            sys.exit(f"no {lang} voice works here (espeak-ng is needed: apt-get install espeak-ng)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.set == "endpoint":
        per_condition = args.per_condition or (2 if args.quick else 24)
        conditions = {}
        for item in filter(None, args.conditions.split(",")):
            name, _, count = item.partition(":")
            if name not in CONDITIONS:
                sys.exit(f"unknown condition {name}; known: {', '.join(CONDITIONS)}")
            conditions[name] = int(count) if count else per_condition
        options = EndpointOptions(
            conditions=conditions,
            per_condition=per_condition,
            lead=(args.lead, args.lead) if args.lead else (2.5, 4.0),
            tail=(args.tail, args.tail) if args.tail else (4.5, 6.0),
        )
        rows = make_endpoint(args.out, studio, args.seed, options)
        counts: dict[str, object] = dict(Counter(f"{r['condition']}/{r['language']}" for r in rows))
    elif args.set == "wakeword":
        counts = make_wakeword(args.out, studio, args.seed, args.quick)
    else:
        counts = make_enroll(args.out, studio, args.seed, args.quick)
    elapsed = time.perf_counter() - started
    command = " ".join(["python -m bench.make_sets", *(sys.argv[1:] if argv is None else argv)])
    (args.out / "README.md").write_text(readme(command, args, studio, counts, elapsed), encoding="utf-8")
    wavs = list(args.out.rglob("*.wav"))
    audio_s = sum((p.stat().st_size - 44) / 2 / RATE for p in wavs)
    print(f"{args.set}: {len(wavs)} clips, {audio_s / 60:.1f} min of audio in {args.out} ({elapsed:.0f} s)")


ABOUT = {
    "endpoint": """Clips for `python -m bench.endpoint --clips DIR`; one line per clip in `truth.jsonl`.

Each clip: 2.5-4 s of background only, the wake word said by the same voice as the question ("Hey Jarvis" in
English, 小乡小乡 / 小鄉小鄉 in Mandarin / Cantonese), `listen_start_s` = end of the wake word + 0.1 s, 0.2-0.8 s,
the question, then at least 4.5 s of tail. Everything before `listen_start_s` is what the box heard before it
listened. `speech_end_s` is the end of the last 10 ms frame of the question alone (as placed in the clip) within
40 dB of its loudest frame (`bench.synth.speech_end`). Other keys: `wake_start_s`, `wake_end_s`,
`question_start_s`, `speech_dbfs` (active RMS of the question), `background`, `rate` (speaking rate against the
voice's normal), `tv` (voices, music bed level, reverberation), and for slow speakers `spoken` (with fillers and
pauses), `pause_method` and `fillers`; `pauses_s` lists the silences inserted mid-sentence.

Conditions:
- `quiet`: fluent requests at -30..-20 dBFS in digital silence, a -60..-50 dBFS white/pink floor, or fan-like
  (brown/pink noise, blade hum, slow swell) noise at 25-30 dB SNR.
- `tv10`, `tv20`: a TV through the whole clip, its active RMS 10 / 20 dB below the question's. The TV is 1-3 other
  voices (never the asker's voice, any language) reading unrelated news, weather, cooking, drama, advert, quiz and
  sport lines with 0.2-0.9 s gaps, the third voice quieter and overlapping; 40 % have a music-like bed (chords,
  bass, kick, hi-hat) 6-14 dB under the speech; a hiss 35-45 dB under it; band-limited to 120 Hz-7 kHz; 65 %
  reverberant (exponentially decaying noise impulse response, RT60 0.25-0.7 s). A pink floor at -70..-60 dBFS
  lies under it all.
- `slow`: elderly-style speakers (espeak-ng 100-130 wpm, Piper length_scale and flite/festival duration stretch
  1.3-1.6) with 1-3 pauses of 1.0-2.5 s between phrases, 45 % of them after a trailing filler (um, uh, er / 嗯, 呃,
  那个, 就是 / 嗯, 呃, 嗰個, 即係). `pause_method` `split`: the whole sentence was synthesized and cut at the word
  boundary (the quietest 10 ms frame near where the phrase alone ends), keeping its prosody; `comma`: each part
  was synthesized on its own ending in a comma (espeak-ng English then rises as in continuation; its Mandarin and
  Cantonese voices give the same contour as at a full stop). Quiet backgrounds as in `quiet`.
- `slow_tv`: the same with the TV 15 dB below.
- `low`: fluent requests at -45..-38 dBFS with white, pink, brown or fan noise 20 dB below.
""",
    "wakeword": """Clips for `python -m bench.wakeword --positives DIR/positives --negatives DIR/negatives`.

- `positives/<word>/` (hey_jarvis, alexa, okay_nabu): the phrase alone with 1.0 s lead and 1.5 s tail, by every
  English voice at 0.85, 1.0 and 1.2 times its normal rate, at -30..-18 dBFS, clean, in white noise at 20 dB SNR,
  pink noise at 10 dB SNR, or a TV 10 dB below (see the endpoint set's README for how the TV is made).
  `truth.jsonl`: `{"file", "word_end_s", "voice", "rate", "condition"}`; `word_end_s` is the end of the last 10 ms
  frame within 40 dB of the loudest.
- `confusables/`: near-miss phrases ("Hey Travis", "A Lexus", "Okay now"...), each by 5 voices (3 clean, one in
  white noise at 20 dB, one with a TV at 10 dB); `truth.jsonl` names the word each is near.
- `negatives/`: no wake word. English reading (the project's prose, TV lines and Debian's license texts) by 1-3
  voices taking turns, Mandarin and Cantonese reading, TV babble alone, music-like beds, fan and noise, and quiet
  rooms (digital silence, pink floors at -70..-55 dBFS). Speech is at -32..-22 dBFS, clean or with pink, white,
  fan noise at 10-20 dB SNR or a TV 15 dB below. `truth.jsonl` says what each file holds.
""",
    "enroll": """Clips for the enrolled wake word: a household says its own Chinese word, 小乡小乡, 3-5 times.

- `<speaker>/enroll_1..5.wav`: the word alone with 0.25-0.35 s margins; takes differ in tempo (±10 %), espeak-ng
  pitch (±4 of 99) and light white/pink/fan noise at 30-40 dB SNR. `speakers.json` lists them.
- `<speaker>/test_quiet_N.wav`, `test_tv15_N.wav`: 4-8 s with the word once, alone in silence, followed by a
  request, or after other speech; quiet rooms as in the endpoint set, or a TV 15 dB below the word.
  `truth.jsonl` (kind `positive`): `word_start_s`, `word_end_s` (end of the last 10 ms frame within 40 dB of the
  word's loudest), `layout`.
- `<speaker>/near_miss_N.wav` (kind `near_miss`, with `near_start_s`/`near_end_s`): 小香小香, 小张小张, 小乡,
  晓翔晓翔, 乡音. Note that espeak-ng says 小香小香 exactly like the word (xiao3 xiang1, siu2 hoeng1): a homophone
  no acoustic detector can reject.
- `others/` (kind `other_speaker`): speakers who never enrolled saying the word.
- `negatives/` (kind `negative`): Mandarin and Cantonese reading by the same speakers (no wake word), and TV babble.
""",
}


def tool_versions(engines: list[str]) -> str:
    found = []
    if "espeak" in engines:
        line = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split()
        found.append(f"espeak-ng {line[3] if len(line) > 3 else '?'}")
    if "piper" in engines:
        found.append(f"piper-tts {importlib.metadata.version('piper-tts')}")
    for engine, command in (("flite", ["flite", "--version"]), ("festival", ["festival", "--version"])):
        if engine in engines:
            said = subprocess.run(command, capture_output=True, text=True).stdout
            version = re.search(r"(?:flite-|: )(\d+\.\d+(?:\.\d+)?)", said)
            found.append(f"{engine} {version.group(1) if version else '?'}")
    return ", ".join(found)


def readme(command: str, args: argparse.Namespace, studio: Studio, counts: dict[str, object], elapsed: float) -> str:
    about = ABOUT[args.set]
    if args.set == "endpoint" and args.lead:
        about = about.replace("2.5-4 s of background only", f"{args.lead:g} s of background only")
    if args.set == "endpoint" and args.tail:
        about = about.replace("at least 4.5 s of tail", f"{args.tail:g} s of tail")
    lines = [
        f"# Synthetic {args.set} set",
        "",
        f"Made by `{command}` (seed {args.seed}) in {elapsed:.0f} s on {platform.machine()}, Python "
        f"{platform.python_version()}. Same seed and same engines, same files. Everything was synthesized locally;",
        "all WAVs are 16 kHz mono 16-bit.",
        "",
        about,
        "## Voices",
        "",
        f"Engines used: {tool_versions(studio.engines)}. Skipped: {'; '.join(studio.skipped) or 'none'}.",
        "Piper runs with noise scales 0 so that it is deterministic. `/±Nst` voices were pitch-shifted with sox;",
        "`/pN` is espeak-ng's pitch. Voice per language:",
        "",
    ]
    for lang in LANGUAGES:
        lines.append(f"- {lang}: {', '.join(v.id for v in studio.by_language[lang])}")
    lines += ["", "## Counts", "", "| what | n |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in sorted(counts.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
