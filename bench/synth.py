"""Test audio made on the spot with espeak-ng and numpy noise: nothing is downloaded, nothing is checked in."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from assistant.audio import MIC_RATE_HZ, AudioChunk, read_wav
from hardware.resample import Resampler

RATE = MIC_RATE_HZ


def espeak(text: str, voice: str, wpm: int = 165) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return 16 kHz float samples (int16 scale)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-a", "80", "-w", str(path), text], check=True)
        audio = read_wav(path)
    pcm = Resampler(audio.rate_hz, RATE).process(audio.pcm, last=True)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


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


def mix(speech: np.ndarray, kind: str | None, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise at ``snr_db`` against the RMS of the frames that hold speech."""
    if kind is None:
        return speech
    frames = speech[: len(speech) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    active = energy[energy > energy.max() / 100]
    level = float(np.sqrt(np.mean(active**2))) / (10 ** (snr_db / 20))
    return speech + noise(kind, len(speech), rng) * level


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
