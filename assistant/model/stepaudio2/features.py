"""16 kHz PCM → Whisper-style 128-bin log-mel chunks, in torch (imported only by the engine).

The mel filter bank is the Slaney-normalised one Whisper and StepFun use (librosa's default), built by
``transformers.audio_utils`` so librosa is not needed.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from ...audio import AudioChunk
from .frontend import HOP, MIN_SAMPLES, N_FFT, N_MELS, PAD_SAMPLES, SAMPLE_RATE_HZ, chunk_bounds, mel_frames


@functools.cache
def _filters() -> torch.Tensor:
    bank = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=N_MELS,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE_HZ / 2,
        sampling_rate=SAMPLE_RATE_HZ,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.ascontiguousarray(bank.T, dtype=np.float32))


def samples(audio: AudioChunk) -> torch.Tensor:
    """The chunk as float32 samples in [-1, 1]; it must already be 16 kHz mono."""
    if audio.rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(f"the model hears {SAMPLE_RATE_HZ} Hz audio, got {audio.rate_hz} Hz")
    values = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float32) / 32768.0
    return torch.from_numpy(values)


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """``(n_mels, frames)`` log-mel of float samples, normalised as Whisper does."""
    padded = torch.nn.functional.pad(wave, (0, PAD_SAMPLES))
    window = torch.hann_window(N_FFT, device=wave.device)
    stft = torch.stft(padded, N_FFT, HOP, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = _filters().to(wave.device) @ power
    logs = torch.clamp(mel, min=1e-10).log10()
    logs = torch.maximum(logs, logs.max() - 8.0)
    result = (logs + 4.0) / 4.0
    if result.shape[-1] != mel_frames(wave.shape[-1]):  # pragma: no cover - a torch behaviour change
        raise AssertionError(f"{result.shape[-1]} frames, expected {mel_frames(wave.shape[-1])}")
    return result


def utterance_mels(audio: AudioChunk, *, even_tail: bool = False) -> list[torch.Tensor]:
    """Log-mel of each ≤25 s chunk of an utterance (``even_tail``: see :func:`.frontend.chunk_bounds`)."""
    wave = samples(audio)
    if wave.shape[0] < MIN_SAMPLES:
        seconds, least = wave.shape[0] / SAMPLE_RATE_HZ, MIN_SAMPLES / SAMPLE_RATE_HZ
        raise ValueError(f"the utterance is {seconds:.3f} s long; the model needs at least {least:.2f} s")
    return [log_mel(wave[start:end]) for start, end in chunk_bounds(wave.shape[0], even_tail=even_tail)]
