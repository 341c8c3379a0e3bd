"""Log-mel features: the same numbers as Whisper's reference feature extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from assistant.audio import AudioChunk, tone
from assistant.model.stepaudio2.features import log_mel, samples, utterance_mels
from assistant.model.stepaudio2.frontend import N_MELS, PAD_SAMPLES, mel_frames, placeholder_count

pytestmark = pytest.mark.models


def test_log_mel_matches_whispers_extractor_on_the_padded_wave() -> None:
    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(20_800) * 0.1).astype(np.float32)
    ours = log_mel(torch.from_numpy(wave)).numpy()
    whisper = WhisperFeatureExtractor(feature_size=N_MELS)
    padded = np.concatenate([wave, np.zeros(PAD_SAMPLES, dtype=np.float32)])
    reference = whisper._np_extract_fbank_features(padded[None], "cpu")[0]
    assert ours.shape == reference.shape == (N_MELS, mel_frames(wave.shape[0]))
    assert np.abs(ours - reference).max() < 1e-3


def test_an_utterance_over_25_seconds_becomes_two_chunks_with_the_reference_sizes() -> None:
    mels = utterance_mels(tone(300, 27.3, rate_hz=16_000))
    assert [m.shape[-1] for m in mels] == [2502, 232]
    assert [placeholder_count(m.shape[-1]) for m in mels] == [313, 29]


def test_pcm_is_scaled_to_plus_minus_one() -> None:
    pcm = np.array([-32768, 0, 16384], dtype="<i2").tobytes()
    assert samples(AudioChunk(pcm)).tolist() == [-1.0, 0.0, 0.5]
