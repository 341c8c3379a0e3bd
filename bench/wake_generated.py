"""``bench.wakeword`` without folders: clips made on the spot, each engine with three words compared.

    python -m bench.wakeword [--negative-minutes 32] [--engines openwakeword,microwakeword] [--write-sets DIR]

Positives: "alexa", "hey jarvis", "okay nabu" by espeak-ng in six English voices at three speeds, clean and
in white (20 dB) and pink (10 dB) noise. Negatives: the GPL-3 and Apache-2.0 texts read by three English
voices (clean, pink 10 dB, white 15 dB), Chinese prose in Mandarin and Cantonese, and noise only. Every
model listens at its default threshold; a hit counts once per 2 s refractory period.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.audio import AudioChunk, split, write_wav
from assistant.config import WakeWordModel
from assistant.listen.wakeword import WakeWordDetector, build_engine, rules_for
from bench.synth import RATE, espeak, mix, noise, pad, speech_end, to_chunk

WORDS = {"alexa": "Alexa", "hey_jarvis": "Hey Jarvis", "okay_nabu": "Okay Nabu"}
VOICES = ("en-us", "en-gb", "en-us+m3", "en-gb+f2", "en-gb-scotland", "en-029")
SPEEDS = (130, 165, 200)
CONDITIONS: tuple[tuple[str | None, float], ...] = ((None, 0.0), ("white", 20.0), ("pink", 10.0))
CHINESE = (
    "今天早上我去市场买了一些新鲜的蔬菜和水果。天气很好，阳光明媚，街上有很多人在散步。"
    "我的奶奶住在乡下，她每天早上都会在院子里种花，喝茶，听收音机里的新闻。"
    "下个星期我们全家要去广州看望亲戚，顺便尝一尝那里有名的早茶和点心。"
    "孩子们放学以后喜欢在公园里踢足球，玩到天黑才肯回家吃晚饭。"
    "这个城市的地铁很方便，从东边到西边只需要四十分钟，票价也不贵。"
    "晚上大家一起看电视，聊聊一天发生的事情，然后早早地睡觉。"
)


@dataclass
class Clip:
    name: str
    audio: AudioChunk
    word: str | None
    """The word spoken in it; None for negatives."""
    speech_end_seconds: float = 0.0


@dataclass
class EngineResult:
    engine: str
    detected: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)
    cross_fires: int = 0
    false_accepts: int = 0
    negative_hours: float = 0.0
    cpu_seconds: float = 0.0
    audio_hours: float = 0.0
    latencies: list[float] = field(default_factory=list)
    false_accept_clips: list[str] = field(default_factory=list)

    @property
    def cpu_per_audio_hour(self) -> float:
        return self.cpu_seconds / self.audio_hours if self.audio_hours else 0.0

    @property
    def false_accepts_per_hour(self) -> float:
        return self.false_accepts / self.negative_hours if self.negative_hours else 0.0


def make_positives(voices: tuple[str, ...] = VOICES, speeds: tuple[int, ...] = SPEEDS) -> list[Clip]:
    rng = np.random.default_rng(1)
    clips = []
    for (word, phrase), voice, wpm, (kind, snr) in itertools.product(WORDS.items(), voices, speeds, CONDITIONS):
        speech = pad(espeak(phrase, voice, wpm), 1.0, 1.5)
        end = speech_end(speech)
        clips.append(Clip(f"{word}/{voice}/{wpm}/{kind or 'clean'}", to_chunk(mix(speech, kind, snr, rng)), word, end))
    return clips


def make_negatives(minutes: float) -> list[Clip]:
    """About ``minutes`` of speech without any wake word, in English and Chinese, plus noise."""
    rng = np.random.default_rng(2)
    english = " ".join(
        Path(f"/usr/share/common-licenses/{name}").read_text(encoding="utf-8") for name in ("GPL-3", "Apache-2.0")
    ).split()
    paragraphs = [" ".join(english[i : i + 120]) for i in range(0, len(english), 120)]
    english_plan = [("en-us", 175, None, 0.0), ("en-gb+f2", 160, "pink", 10.0), ("en-us+m3", 200, "white", 15.0)]
    chinese_plan = [
        ("cmn-latn-pinyin", 150, None, 0.0),
        ("yue", 150, "brown", 10.0),
        ("cmn-latn-pinyin", 190, "white", 15.0),
        ("yue", 190, None, 0.0),
    ]
    target = minutes * 60 * RATE
    clips: list[Clip] = []
    total = 0
    # Noise only: two minutes of white, pink and brown at three levels.
    for kind, level in itertools.product(("white", "pink", "brown"), (300.0, 1000.0, 3000.0)):
        samples = noise(kind, round(120 / 9 * RATE), rng) * level
        clips.append(Clip(f"noise/{kind}/{level:.0f}", to_chunk(samples), None))
        total += len(samples)
    for index, (voice, wpm, kind, snr) in enumerate(chinese_plan):
        speech = mix(pad(espeak(CHINESE, voice, wpm), 0.5, 0.5), kind, snr, rng)
        clips.append(Clip(f"zh/{voice}/{wpm}/{kind or 'clean'}/{index}", to_chunk(speech), None))
        total += len(speech)
    for index, paragraph in enumerate(paragraphs):
        if total >= target:
            break
        voice, wpm, kind, snr = english_plan[index % len(english_plan)]
        speech = mix(pad(espeak(paragraph, voice, wpm), 0.3, 0.3), kind, snr, rng)
        clips.append(Clip(f"en/{voice}/{wpm}/{kind or 'clean'}/{index}", to_chunk(speech), None))
        total += len(speech)
    return clips


def evaluate(engine_name: str, positives: list[Clip], negatives: list[Clip]) -> EngineResult:
    """Run one engine (all three words loaded, default thresholds) over every clip."""
    engine = build_engine(engine_name, list(WORDS))
    detector = WakeWordDetector(engine, rules_for(engine, [WakeWordModel(model=w) for w in WORDS]))
    result = EngineResult(engine_name)
    cpu = 0.0
    for clip in [*positives, *negatives]:
        hits = []
        started = time.process_time()
        for index, chunk in enumerate(split(clip.audio, 0.08)):
            hit = detector.process(chunk)
            if hit is not None:
                hits.append((hit.name, (index + 1) * 0.08))
        cpu += time.process_time() - started
        result.audio_hours += clip.audio.seconds / 3600
        detector.reset()
        if clip.word is None:
            result.negative_hours += clip.audio.seconds / 3600
            result.false_accepts += len(hits)
            result.false_accept_clips += [f"{clip.name}:{name}@{at:.1f}s" for name, at in hits]
            continue
        result.positives[clip.word] = result.positives.get(clip.word, 0) + 1
        own = [at for name, at in hits if name == clip.word]
        if own:
            result.detected[clip.word] = result.detected.get(clip.word, 0) + 1
            result.latencies.append(own[0] - clip.speech_end_seconds)
        result.cross_fires += sum(name != clip.word for name, _ in hits)
    result.cpu_seconds = cpu
    return result


def table(results: list[EngineResult]) -> str:
    columns = [
        *(f"{w} detected" for w in WORDS),
        "cross-fires",
        "false accepts / hour (n, hours)",
        "latency after speech end (median)",
        "CPU s per audio hour",
    ]
    header = "| engine | " + " | ".join(columns) + " |"
    lines = [header, "|" + " --- |" * (len(WORDS) + 5)]
    for r in results:
        rates = []
        for w in WORDS:
            hit, total = r.detected.get(w, 0), r.positives.get(w, 0)
            rates.append(f"{hit}/{total} ({100 * hit / max(1, total):.0f}%)")
        latency = f"{statistics.median(r.latencies):.2f} s" if r.latencies else "-"
        lines.append(
            f"| {r.engine} | {' | '.join(rates)} | {r.cross_fires} | {r.false_accepts_per_hour:.2f} "
            f"({r.false_accepts}, {r.negative_hours:.2f} h) | {latency} | {r.cpu_per_audio_hour:.0f} |"
        )
    return "\n".join(lines)


def write_sets(root: Path, positives: list[Clip], negatives: list[Clip]) -> None:
    """Save the clips as folder sets: ``root/positives/<word>/*.wav`` with truth.jsonl, ``root/negatives/*.wav``."""
    truth: dict[str, list[str]] = {}
    for clip in positives:
        assert clip.word is not None
        folder = root / "positives" / clip.word
        folder.mkdir(parents=True, exist_ok=True)
        name = clip.name.split("/", 1)[1].replace("/", "__").replace("+", "_") + ".wav"
        write_wav(folder / name, clip.audio)
        truth.setdefault(clip.word, []).append(json.dumps({"file": name, "word_end_s": clip.speech_end_seconds}))
    for word, lines in truth.items():
        (root / "positives" / word / "truth.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "negatives").mkdir(parents=True, exist_ok=True)
    for clip in negatives:
        write_wav(root / "negatives" / (clip.name.replace("/", "__").replace("+", "_") + ".wav"), clip.audio)


def run(args: argparse.Namespace) -> None:
    """Make the clips, then write them as sets (``--write-sets``) or compare the engines on them."""
    started = time.perf_counter()
    positives = make_positives()
    negatives = make_negatives(args.negative_minutes)
    print(
        f"made {len(positives)} positive clips ({sum(c.audio.seconds for c in positives) / 60:.1f} min) and "
        f"{sum(c.audio.seconds for c in negatives) / 60:.1f} min of negatives in {time.perf_counter() - started:.0f} s"
    )
    if args.write_sets is not None:
        write_sets(args.write_sets, positives, negatives)
        print(f"wrote {args.write_sets}/positives and {args.write_sets}/negatives")
        return
    results = [evaluate(name, positives, negatives) for name in args.engines.split(",")]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    print(table(results))
    for r in results:
        for fa in r.false_accept_clips:
            print(f"false accept ({r.engine}): {fa}")
