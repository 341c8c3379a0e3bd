"""token2wav on a tiny random checkpoint of the released layout, loaded by the real loading code."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.voice.errors import VoiceUnavailable
from tests.voice.conftest import PROMPT_WAV

torch = pytest.importorskip("torch")

from assistant.voice.token2wav.engine import StreamSchedule, Token2Wav, VoiceProfile, to_pcm  # noqa: E402
from assistant.voice.token2wav.flow import Flow, SynthesisCancelled  # noqa: E402
from assistant.voice.token2wav.hift import Hift  # noqa: E402
from assistant.voice.token2wav.prompt import PromptProcessor  # noqa: E402

pytestmark = pytest.mark.models

SCHEDULE = StreamSchedule(first_chunk_tokens=6, chunk_tokens=12, window_frames=40)
SAMPLES_PER_TOKEN = 960  # 2 mel frames × 480 samples at 24 kHz


@pytest.fixture(scope="module")
def engine(token2wav_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Token2Wav:
    return Token2Wav.load(token2wav_dir, device="cpu", cache_dir=tmp_path_factory.mktemp("voices"), schedule=SCHEDULE)


def _tokens(count: int, seed: int = 3) -> list[int]:
    return np.random.default_rng(seed).integers(0, 6561, count).tolist()


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def test_full_size_modules_have_the_released_parameter_counts_and_names() -> None:
    with torch.device("meta"):
        flow, hift = Flow(), Hift()
    flow_shapes = {k: tuple(v.shape) for k, v in flow.state_dict().items()}
    assert sum(p.numel() for p in flow.parameters()) == 155_802_352  # flow.pt: 623 MB of fp32
    assert sum(p.numel() for p in hift.parameters()) == 20_821_295
    assert flow_shapes["input_embedding.weight"] == (6561, 512)
    assert flow_shapes["encoder.encoders.5.self_attn.pos_bias_u"] == (8, 64)
    assert flow_shapes["encoder.pre_lookahead_layer.conv1.weight"] == (512, 512, 4)
    assert flow_shapes["encoder.up_layer.conv.weight"] == (512, 512, 5)
    assert flow_shapes["encoder.up_encoders.3.feed_forward.w_1.weight"] == (2048, 512)
    assert flow_shapes["decoder.estimator.in_proj.weight"] == (512, 320)
    assert flow_shapes["decoder.estimator.blocks.15.adaLN_modulation.1.weight"] == (9 * 512, 512)
    assert flow_shapes["decoder.estimator.blocks.0.conv.block.6.weight"] == (512, 512, 3)
    assert flow_shapes["decoder.estimator.blocks.0.attn.q_norm.weight"] == (64,)
    assert "m_source.l_linear.weight" in hift.state_dict()
    assert not any("noise" in k or "window" in k for k in [*flow.state_dict(), *hift.state_dict()])


def test_folding_the_vocoders_weight_norm_keeps_its_audio_bit_for_bit_and_its_weights_parameters() -> None:
    from assistant.voice.token2wav.hift import HiftConfig

    torch.manual_seed(0)
    hift = Hift(HiftConfig(base_channels=64, f0_channels=32)).eval()
    mel, source = torch.randn(1, 80, 20), torch.randn(1, 1, 20 * 480)
    with torch.inference_mode():
        before = hift.decode(mel, source)
    hift.fold_weight_norm()
    with torch.inference_mode():
        after = hift.decode(mel, source)

    assert torch.equal(after, before)
    assert not any("parametrizations" in name for name, _ in hift.named_parameters())
    assert isinstance(hift.conv_pre.weight, torch.nn.Parameter)  # moved by .to(), kept by state_dict()


def test_missing_weights_raise_a_typed_error_naming_the_files(token2wav_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "token2wav"
    shutil.copytree(token2wav_dir, partial)
    (partial / "hift.pt").unlink()
    (partial / "campplus.onnx").unlink()
    with pytest.raises(VoiceUnavailable, match=r"hift\.pt, campplus\.onnx"):
        Token2Wav.load(partial, device="cpu")


def test_weights_of_another_shape_are_refused_clearly(token2wav_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "token2wav"
    shutil.copytree(token2wav_dir, broken)
    (broken / "flow.yaml").write_text((broken / "flow.yaml").read_text().replace("num_blocks: 2", "num_blocks: 3"))
    with pytest.raises(VoiceUnavailable, match="do not load"):
        Token2Wav.load(broken, device="cpu")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("spk_embed_dim: !ref <spk_embed_dim>", "spk_embed_dim: !ref <speaker_width>"), "no key 'speaker_width'"),
        (("spk_embed_dim: !ref <spk_embed_dim>", "spk_embed_dim: !ref <spk_embed_dim"), "names no <key>"),
        (("spk_embed_dim: 192", "spk_embed_dim: !ref <flow[spk_embed_dim]>"), "refers to itself"),
        (("depth: 2", "depth: !include:other.yaml"), "unsupported HyperPyYAML tag !include:other.yaml"),
        (("depth: 2", "depth: two"), "depth is 'two', not a number"),
        (("    vocab_size: 6561", "    vocab_size: [6561"), "not valid YAML"),
    ],
)
def test_a_flow_yaml_the_loader_cannot_follow_is_refused_naming_the_file(
    token2wav_dir: Path, tmp_path: Path, edit: tuple[str, str], reason: str
) -> None:
    broken = tmp_path / "token2wav"
    shutil.copytree(token2wav_dir, broken)
    text = (broken / "flow.yaml").read_text()
    assert edit[0] in text
    (broken / "flow.yaml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(VoiceUnavailable, match="flow.yaml does not load") as raised:
        Token2Wav.load(broken, device="cpu")
    assert str(broken / "flow.yaml") in str(raised.value) and reason in str(raised.value)


def test_the_released_flow_yaml_tags_and_references_are_read() -> None:
    from assistant.voice.token2wav.flow import FlowConfig
    from tests.voice.conftest import TINY_FLOW_YAML

    config = FlowConfig.from_yaml(TINY_FLOW_YAML.replace("spk_embed_dim: 192", "spk_embed_dim: 96", 1))
    assert config.spk_embed_dim == 96  # read through `!ref <spk_embed_dim>`
    # HyperPyYAML's arithmetic and nested references.
    text = TINY_FLOW_YAML.replace("spk_embed_dim: 192", "spk_embed_dim: 96\nwidth: 32", 1)
    text = text.replace("depth: 2", "depth: !ref <width> // 16").replace("head_dim: 32", "head_dim: !ref <width>")
    text = text.replace("vocab_size: 6561", "vocab_size: !ref <flow[spk_embed_dim]> * 2")
    config = FlowConfig.from_yaml(text)
    assert (config.dit_depth, config.dit_head_dim, config.vocab_size) == (2, 32, 192)
    assert (config.encoder_size, config.dit_depth, config.dit_mlp_ratio, config.cfg_rate) == (64, 2, 2.0, 0.7)


def test_a_corrupt_checkpoint_is_refused_clearly(token2wav_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "token2wav"
    shutil.copytree(token2wav_dir, broken)
    (broken / "hift.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VoiceUnavailable, match="do not load"):
        Token2Wav.load(broken, device="cpu")


def test_prompt_processing_runs_both_onnx_models_and_caches_on_disk(token2wav_dir: Path, tmp_path: Path) -> None:
    prompts = PromptProcessor(token2wav_dir, tmp_path)
    features = prompts.features(PROMPT_WAV)
    assert 60 <= len(features.tokens) <= 70  # 2.78 s at 25 Hz
    assert all(0 <= t < 6561 for t in features.tokens)
    assert features.embedding.shape == (1, 192)
    assert features.mel.shape == (2 * len(features.tokens), 80)
    assert np.isfinite(features.mel).all()
    assert len(list(tmp_path.glob("prompt-*.npz"))) == 1

    class NoModels(PromptProcessor):
        def compute(self, wav_path: Path) -> object:
            raise AssertionError("the cache should have answered")

    cached = NoModels(token2wav_dir, tmp_path).features(PROMPT_WAV)
    assert cached.tokens == features.tokens
    np.testing.assert_array_equal(cached.mel, features.mel)

    other = tmp_path / "other.wav"
    other.write_bytes(PROMPT_WAV.read_bytes()[:-3200])  # a different voice clip: 0.1 s shorter
    assert prompts.cache_key(other.read_bytes()) != prompts.cache_key(PROMPT_WAV.read_bytes())


def test_a_silent_prompt_is_refused(token2wav_dir: Path, tmp_path: Path) -> None:
    from assistant.audio import silence, write_wav
    from assistant.voice.token2wav.prompt import PromptError

    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, silence(2.0))
    with pytest.raises(PromptError, match="silent"):
        PromptProcessor(token2wav_dir, None).features(quiet)


def test_streaming_emits_a_small_first_chunk_then_full_ones_and_every_sample(engine: Token2Wav) -> None:
    voice = engine.voice(PROMPT_WAV)
    tokens = _tokens(35)
    stream = engine.open(voice)
    pieces: list[bytes] = []
    for start in range(0, len(tokens), 5):  # tokens arrive five at a time, as from the model
        pieces += stream.push(tokens[start : start + 5])
    pieces.append(stream.finish())
    assert stream.chunks == [6, 12, 12, 5]  # the rest, with no look-ahead left, goes out last
    assert sum(len(p) for p in pieces) // 2 == SAMPLES_PER_TOKEN * len(tokens)
    # The first chunk is short: 6 tokens minus the 160 ms held back for the cross-fade.
    assert len(pieces[0]) // 2 == 6 * SAMPLES_PER_TOKEN - 3840


def _streamed_mel(engine: Token2Wav, voice: VoiceProfile, tokens: list[int], chunks: list[int]) -> torch.Tensor:
    """The flow's mel for ``tokens`` rendered chunk by chunk as a SpeechStream renders them."""
    state, mels, rest = voice.state, [], list(tokens)
    for size in chunks[:-1]:
        mel, state = engine.flow.stream(state, rest[: size + 3], window_frames=SCHEDULE.window_frames)
        mels.append(mel)
        rest = rest[size:]
    mel, state = engine.flow.stream(state, rest, last=True, window_frames=SCHEDULE.window_frames)
    return torch.cat([*mels, mel], dim=2)


def test_the_stream_keeps_the_latest_frames_and_the_prompts_end_in_its_attention_cache(engine: Token2Wav) -> None:
    voice = engine.voice(PROMPT_WAV)
    prompt_frames = voice.state.prompt_frames
    window = SCHEDULE.window_frames
    state = voice.state
    offsets = []
    for start in range(0, 120, 12):  # 240 frames of answer: the caches are trimmed again and again
        offsets.append(state.noise_offset)
        _, state = engine.flow.stream(state, _tokens(15, seed=start), window_frames=window)
    assert offsets[:2] == [prompt_frames, prompt_frames + 24]  # the noise follows the kept cache's length
    assert offsets[-1] == prompt_frames + window
    for before, after in zip(voice.state.steps, state.steps, strict=True):
        assert after.frames == prompt_frames + window
        for prompt_cache, kept in zip(before.attention, after.attention, strict=True):
            # Newest first: the last entries are the end of the voice prompt, untouched by the answer.
            torch.testing.assert_close(kept[:, :, -window:], prompt_cache[:, :, -window:])


def test_offline_lets_the_prompt_see_the_answer_unlike_a_stream(engine: Token2Wav) -> None:
    voice = engine.voice(PROMPT_WAV)
    tokens = _tokens(30, seed=4)
    offline = engine.offline_mel(voice, tokens)
    streamed = _streamed_mel(engine, voice, tokens, [len(tokens)])
    assert offline.shape == streamed.shape == (1, 80, 60)
    # Same tokens, same noise, but full attention over prompt and answer: close, not equal.
    assert not torch.allclose(offline, streamed, atol=1e-3)
    assert (offline - streamed).abs().mean() < streamed.abs().mean()


def test_streamed_audio_matches_vocoding_the_streamed_mel_at_once_and_has_no_clicks(engine: Token2Wav) -> None:
    voice = engine.voice(PROMPT_WAV)
    tokens = _tokens(31, seed=5)
    stream = engine.open(voice)
    pieces = [*stream.push(tokens), stream.finish()]
    streamed = _samples(b"".join(pieces))
    mel = _streamed_mel(engine, voice, tokens, stream.chunks)
    audio, _ = engine.hift(mel, None, torch.Generator().manual_seed(engine.seed))
    offline = _samples(to_pcm(audio[0]))
    assert streamed.shape == offline.shape
    assert np.abs(streamed).max() > 0.01  # not silence
    # Same mel, vocoded in overlapping pieces: the waveforms agree closely away from the seams.
    error = streamed - offline
    snr_db = 10 * np.log10(np.sum(offline**2) / max(np.sum(error**2), 1e-12))
    assert snr_db > 10, snr_db
    # No gap or click at a seam: the jumps there are like those everywhere else.
    jumps = np.abs(np.diff(streamed))
    seams = np.cumsum([len(p) // 2 for p in pieces[:-1] if p])
    assert jumps[seams - 1].max() <= np.percentile(jumps, 99.9) + 1e-3


def test_cancelling_stops_synthesis_between_euler_steps(engine: Token2Wav) -> None:
    voice = engine.voice(PROMPT_WAV)
    stream = engine.open(voice)
    calls = 0

    def stop_on_third_check() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    stream.should_stop = stop_on_third_check
    with pytest.raises(SynthesisCancelled):
        stream.push(_tokens(30))
    assert calls == 3  # it gave up two Euler steps into the first chunk


def test_a_prepared_voice_is_reused_across_answers(engine: Token2Wav) -> None:
    first = engine.voice(PROMPT_WAV)
    assert engine.voice(PROMPT_WAV) is first
    one = engine.open(first)
    a = b"".join([*one.push(_tokens(12)), one.finish()])
    two = engine.open(first)
    b = b"".join([*two.push(_tokens(12)), two.finish()])
    assert a == b  # the second answer starts from the same prompt state, not from the first answer's


def test_a_half_precision_flow_stays_close_to_full_precision(token2wav_dir: Path, tmp_path: Path) -> None:
    mels = []
    for half in (False, True):
        engine = Token2Wav.load(token2wav_dir, device="cpu", fp16=half, cache_dir=tmp_path, schedule=SCHEDULE)
        voice = engine.voice(PROMPT_WAV)
        mel, _ = engine.flow.stream(voice.state, _tokens(20), last=True)
        assert engine.flow.dtype == (torch.float16 if half else torch.float32)
        mels.append(mel)
    assert mels[1].dtype == torch.float32  # the vocoder always gets fp32
    assert (mels[1] - mels[0]).abs().max() < 0.05 * mels[0].abs().mean()
