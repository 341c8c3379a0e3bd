"""token2wav against StepFun's own ``token2wav.py`` on identical random weights, noise and excitation (fp32).

Both load the same tiny checkpoint of the released layout (StepFun's classes from ``flow.yaml`` through
HyperPyYAML, strict loads). The flow's noise table is copied across; the vocoder's random excitation is
made identical by seeding (one call) or by giving both the same excitation (streams).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from assistant.voice.token2wav.engine import StreamSchedule, Token2Wav, VoiceProfile
from assistant.voice.token2wav.prompt import PromptFeatures
from support.stepfun import stream_pieces
from tests.stepfun.reference import Reference, load_token2wav

pytestmark = [pytest.mark.models, pytest.mark.slow]

HIFT_CHANNELS, F0_CHANNELS = 64, 32  # the tiny hift.pt of tests/voice/conftest.py
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def ours(token2wav_dir: Path) -> Token2Wav:
    return Token2Wav.load(token2wav_dir, device="cpu", fp16=False, schedule=StreamSchedule())


@pytest.fixture(scope="module")
def theirs(token2wav_dir: Path, ours: Token2Wav, reference: Reference) -> Any:
    engine = load_token2wav(token2wav_dir, hift_channels=HIFT_CHANNELS, f0_channels=F0_CHANNELS)
    # StepFun draws its noise table from the global RNG at construction; give it ours.
    engine.flow.decoder.rand_noise.copy_(ours.flow.decoder.get_buffer("noise"))
    return engine


def _voice(ours: Token2Wav, theirs: Any, seconds: int, seed: int) -> tuple[VoiceProfile, str]:
    """A made-up voice prompt of ``seconds`` given to both: tokens, mel and speaker embedding."""
    rng = np.random.default_rng(seed)
    count = 25 * seconds
    features = PromptFeatures(
        tuple(int(t) for t in rng.integers(0, 6561, count)),
        rng.normal(size=(1, 192)).astype(np.float32),
        rng.normal(-4.0, 2.0, size=(2 * count, 80)).astype(np.float32),
    )
    key = f"prompt-{seconds}s-{seed}"
    tokens = torch.tensor([features.tokens], dtype=torch.int32)
    mel = torch.from_numpy(features.mel).unsqueeze(0)
    theirs.cache[key] = (
        tokens,
        torch.tensor([count], dtype=torch.int32),
        torch.from_numpy(features.embedding),
        mel,
        torch.tensor([mel.shape[1]], dtype=torch.int32),
    )
    return ours.prepare(key, features), key


def _answer(count: int, seed: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(0, 6561, count)]


def test_offline_mel_equals_stepfuns_offline_inference(ours: Token2Wav, theirs: Any) -> None:
    voice, key = _voice(ours, theirs, seconds=2, seed=1)
    tokens = _answer(90, seed=2)
    prompt_tokens, prompt_lens, embedding, prompt_mel, mel_lens = theirs.cache[key]
    expected = theirs.flow.inference(
        torch.tensor([tokens], dtype=torch.int32),
        torch.tensor([len(tokens)], dtype=torch.int32),
        prompt_tokens,
        prompt_lens,
        prompt_mel,
        mel_lens,
        embedding,
        10,
    )
    actual = ours.offline_mel(voice, tokens)
    assert actual.shape == expected.shape == (1, 80, 180)
    torch.testing.assert_close(actual, expected.float(), **TOLERANCE)


def _recording(function: Callable[..., tuple[torch.Tensor, Any]], into: list[torch.Tensor]) -> Callable[..., Any]:
    def record(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        mel, state = function(*args, **kwargs)
        into.append(mel.float().clone())
        return mel, state

    return record


class _SharedExcitation(torch.nn.Module):
    """StepFun's source module replaced by ours driven by a generator seeded as our stream's is."""

    def __init__(self, ours: Token2Wav) -> None:
        super().__init__()
        self.source = ours.hift.m_source
        self.generator = torch.Generator().manual_seed(ours.seed)

    def forward(self, f0: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return self.source(f0, self.generator), None, None


@pytest.mark.parametrize(("prompt_seconds", "answer_tokens"), [(2, 260), (4, 300)])
def test_streaming_equals_stepfuns_stream_chunk_by_chunk(
    ours: Token2Wav, theirs: Any, monkeypatch: pytest.MonkeyPatch, prompt_seconds: int, answer_tokens: int
) -> None:
    # 260 tokens after a 2 s prompt and 300 after a 4 s one: the attention caches are trimmed many times.
    voice, key = _voice(ours, theirs, seconds=prompt_seconds, seed=prompt_seconds)
    tokens = _answer(answer_tokens, seed=10 + prompt_seconds)
    our_mels: list[torch.Tensor] = []
    their_mels: list[torch.Tensor] = []
    monkeypatch.setattr(ours.flow, "stream", _recording(ours.flow.stream, our_mels))
    monkeypatch.setattr(theirs.flow, "inference_chunk", _recording(theirs.flow.inference_chunk, their_mels))
    their_source = theirs.hift.m_source
    theirs.hift.m_source = _SharedExcitation(ours)
    try:
        theirs.set_stream_cache(key)
        their_pcm = [
            theirs.stream(chunk, key, last_chunk=last) for chunk, last in stream_pieces(tokens, ours.schedule, 3)
        ]
    finally:
        theirs.hift.m_source = their_source
    stream = ours.open(voice)
    our_pcm = [*stream.push(tokens), stream.finish()]

    assert stream.chunks[:2] == [10, 25]  # the small first chunk, then StepFun's 25
    assert len(our_mels) == len(their_mels) == len(stream.chunks)
    for index, (mine, reference) in enumerate(zip(our_mels, their_mels, strict=True)):
        assert mine.shape == reference.shape, index
        torch.testing.assert_close(mine, reference, **TOLERANCE, msg=lambda m, i=index: f"chunk {i}: {m}")
    assert [len(p) for p in our_pcm] == [len(p) for p in their_pcm]
    mine_pcm = np.frombuffer(b"".join(our_pcm), dtype="<i2").astype(np.int32)
    their_samples = np.frombuffer(b"".join(their_pcm), dtype="<i2").astype(np.int32)
    assert np.abs(mine_pcm).max() > 300  # not silence
    # The same audio to the last bit of int16, give or take one rounding step.
    assert np.abs(mine_pcm - their_samples).max() <= 1


def test_the_vocoder_equals_stepfuns_hift_given_identical_excitation(
    ours: Token2Wav, theirs: Any, reference: Reference
) -> None:
    mel = torch.from_numpy(np.random.default_rng(5).normal(-4.0, 2.0, size=(1, 80, 40)).astype(np.float32))
    with torch.inference_mode():
        torch.testing.assert_close(ours.hift.f0_predictor(mel), theirs.hift.f0_predictor(mel), **TOLERANCE)
        # The excitation: StepFun draws from the global generator, we from our own, seeded alike.
        f0 = torch.nn.functional.interpolate(ours.hift.f0_predictor(mel)[:, None], scale_factor=480.0).transpose(1, 2)
        torch.manual_seed(7)
        expected_source, _, _ = theirs.hift.m_source(f0)
        source = ours.hift.m_source(f0, torch.Generator().manual_seed(7))
        torch.testing.assert_close(source, expected_source, **TOLERANCE)
        excitation = source.transpose(1, 2)
        torch.testing.assert_close(ours.hift.decode(mel, excitation), theirs.hift.decode(mel, excitation), **TOLERANCE)
        # And the whole forward, the start of the excitation pinned to a cached one as streams do.
        cached = excitation[:, :, :3840].clone()
        torch.manual_seed(8)
        expected_audio, expected_excitation = theirs.hift(mel, cached)
        audio, our_excitation = ours.hift(mel, cached, torch.Generator().manual_seed(8))
    torch.testing.assert_close(our_excitation, expected_excitation, **TOLERANCE)
    torch.testing.assert_close(audio, expected_audio, **TOLERANCE)


def test_the_seam_is_stepfuns_hamming_crossfade(ours: Token2Wav, reference: Reference) -> None:
    stream = ours.open(_voice_only(ours))
    overlap = ours.schedule.crossfade_frames * ours.hift.config.samples_per_frame
    new, old = torch.rand(1, 2 * overlap), torch.rand(1, overlap)
    window = torch.from_numpy(np.hamming(2 * overlap))
    expected = reference.token2wav.fade_in_out(new.double(), old.double(), window)[0, :overlap].float()
    actual = new[0, :overlap] * stream._fade_in + old[0] * stream._fade_out
    torch.testing.assert_close(actual, expected, **TOLERANCE)


def _voice_only(ours: Token2Wav) -> VoiceProfile:
    rng = np.random.default_rng(0)
    features = PromptFeatures(
        tuple(int(t) for t in rng.integers(0, 6561, 10)),
        rng.normal(size=(1, 192)).astype(np.float32),
        rng.normal(size=(20, 80)).astype(np.float32),
    )
    return ours.prepare("seam", features)


def test_the_prompt_mel_equals_stepfuns(reference: Reference) -> None:
    from assistant.voice.token2wav.prompt import prompt_mel

    audio = np.random.default_rng(3).uniform(-0.5, 0.5, 24_000 * 2 + 123).astype(np.float32)
    expected = reference.audio.mel_spectrogram(torch.from_numpy(audio).unsqueeze(0)).squeeze(0).T
    torch.testing.assert_close(torch.from_numpy(prompt_mel(audio)), expected.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("frames", [37, 40, 44])
def test_the_prompt_mel_is_fitted_to_two_frames_a_token_as_stepfun_pads_it(frames: int) -> None:
    from assistant.voice.token2wav.prompt import fit_mel

    mel = np.random.default_rng(frames).normal(size=(frames, 80)).astype(np.float32)
    tokens = 20
    # StepFun: F.pad(prompt_mels, (0, 0, 0, tokens * up_rate - frames), mode="replicate"), cropping when negative.
    expected = torch.nn.functional.pad(torch.from_numpy(mel)[None], (0, 0, 0, 2 * tokens - frames), mode="replicate")
    torch.testing.assert_close(torch.from_numpy(fit_mel(mel, 2 * tokens)), expected[0])


def test_the_speech_pad_6561_is_a_code_neither_flow_can_voice(ours: Token2Wav, theirs: Any) -> None:
    # StepFun's split hands the pad to token2wav; its flow has 6561 codes (0..6560) and fails on it, offline
    # and streaming, so its code has no audio to equal. Ours refuses it too; by default the voice drops it.
    voice, key = _voice(ours, theirs, seconds=2, seed=5)
    padded = [*_answer(40, seed=6), 6561, *_answer(20, seed=7)]
    prompt_tokens, prompt_lens, embedding, mel, mel_lens = theirs.cache[key]
    tokens = torch.tensor([padded], dtype=torch.int32)
    with pytest.raises(IndexError):
        theirs.flow.inference(
            tokens,
            torch.tensor([len(padded)], dtype=torch.int32),
            prompt_tokens,
            prompt_lens,
            mel,
            mel_lens,
            embedding,
            10,
        )
    theirs.set_stream_cache(key)
    with pytest.raises(IndexError):
        theirs.flow.inference_chunk(
            token=tokens, spk=embedding, cache=theirs.stream_cache, last_chunk=True, n_timesteps=10
        )
    stream = ours.open(voice)
    with pytest.raises(ValueError, match=r"speech codes must be 0\.\.6560; got 6561"):
        stream.push(padded)
        stream.finish()
