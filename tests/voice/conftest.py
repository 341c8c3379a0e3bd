"""A tiny random token2wav folder with the released layout: flow.yaml, flow.pt, hift.pt and two ONNX models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.stepfun import legacy_weight_norm

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

DATA = Path(__file__).parent.parent / "data" / "voice"
PROMPT_WAV = DATA / "prompt_yue_16k.wav"

# HyperPyYAML as in the released folder (the classes StepFun's token2wav builds), with tiny widths and a !ref.
TINY_FLOW_YAML = """\
spk_embed_dim: 192
flow: !new:cosyvoice2.flow.flow.CausalMaskedDiffWithXvec
    input_size: 64
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 6561
    encoder: !new:cosyvoice2.transformer.upsample_encoder_v2.UpsampleConformerEncoderV2
        input_size: 64
        output_size: 64
        input_layer: 'linear'
        pre_lookahead_len: 3
        num_blocks: 2
        num_up_blocks: 1
        up_stride: 2
        up_scale_factor: 2
        attention_heads: 2
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        key_bias: true
        linear_units: 128
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: true
    decoder: !new:cosyvoice2.flow.flow_matching.CausalConditionalCFM
        inference_cfg_rate: 0.7
        estimator: !new:cosyvoice2.flow.decoder_dit.DiT
            in_channels: 320
            out_channels: 80
            mlp_ratio: 2.0
            depth: 2
            num_heads: 2
            head_dim: 32
            hidden_size: 64
"""


def _campplus(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = __import__("numpy").random.default_rng(1)
    weight = numpy_helper.from_array(rng.normal(size=(80, 192)).astype("float32"), "w")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["output"]),
        ],
        "campplus_tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "T", 80])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 192])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _speech_tokenizer(path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    np = __import__("numpy")
    rng = np.random.default_rng(2)
    const = [
        numpy_helper.from_array(rng.normal(size=(128, 1)).astype("float32"), "w"),
        numpy_helper.from_array(np.array([0], dtype="int64"), "start"),
        numpy_helper.from_array(np.array([2**62], dtype="int64"), "end"),
        numpy_helper.from_array(np.array([2], dtype="int64"), "axis"),
        numpy_helper.from_array(np.array([4], dtype="int64"), "step"),
        numpy_helper.from_array(np.array([1000.0], dtype="float32"), "gain"),
        numpy_helper.from_array(np.array([6561], dtype="int64"), "codes"),
    ]
    graph = helper.make_graph(
        [
            # 100 Hz mel frames → every fourth (25 Hz) → a random projection → a code in 0..6560.
            helper.make_node("Slice", ["feats", "start", "end", "axis", "step"], ["sub"]),
            helper.make_node("Transpose", ["sub"], ["frames"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["frames", "w"], ["proj"]),
            helper.make_node("Squeeze", ["proj", "axis"], ["flat"]),
            helper.make_node("Abs", ["flat"], ["mag"]),
            helper.make_node("Mul", ["mag", "gain"], ["scaled"]),
            helper.make_node("Cast", ["scaled"], ["ints"], to=TensorProto.INT64),
            helper.make_node("Mod", ["ints", "codes"], ["indices"]),
        ],
        "speech_tokenizer_tiny",
        [
            helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, 128, "T"]),
            helper.make_tensor_value_info("feats_length", TensorProto.INT32, [1]),
        ],
        [helper.make_tensor_value_info("indices", TensorProto.INT64, [1, "N"])],
        const,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def make_token2wav_dir(folder: Path) -> Path:
    """Write a tiny random token2wav folder the real loader accepts."""
    from assistant.voice.token2wav.flow import Flow, FlowConfig
    from assistant.voice.token2wav.hift import Hift, HiftConfig

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    (folder / "flow.yaml").write_text(TINY_FLOW_YAML)
    flow = Flow(FlowConfig.from_yaml(TINY_FLOW_YAML))
    torch.save(flow.state_dict(), folder / "flow.pt")
    hift = Hift(HiftConfig(base_channels=64, f0_channels=32))
    torch.save({f"generator.{k}": v for k, v in legacy_weight_norm(hift.state_dict()).items()}, folder / "hift.pt")
    _campplus(folder / "campplus.onnx")
    _speech_tokenizer(folder / "speech_tokenizer_v2_25hz.onnx")
    shutil.copy(PROMPT_WAV, folder / "default_female.wav")
    return folder


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    # The test machines share two cores among several jobs; torch's thread pool only adds contention there.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def token2wav_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_token2wav_dir(tmp_path_factory.mktemp("token2wav"))
