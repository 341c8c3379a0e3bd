"""StepFun's own Step-Audio 2 code (PyPI ``step-audio2==1.0.0``), loaded beside ours for tests and benchmarks.

The wheel lives in its own folder (``scripts/stepfun-reference``), appended to the *end* of ``sys.path`` so
the project's venv always wins. Its top-level ``utils``, ``token2wav`` and ``stepaudio2`` modules are loaded
under private names and never enter ``sys.modules`` under their generic ones. What it needs but CI lacks is
shimmed here, and only that: ``torchaudio`` and ``s3tokenizer`` (used only by prompt preparation, which
callers replace with identical prompt features), CUDA placement (everything runs on the CPU) and the
real-size scratch buffers StepFun's DiT hard-codes (refitted to the checkpoint's widths).
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from assistant.voice.token2wav.engine import StreamSchedule

ROOT = Path(__file__).resolve().parents[1]


class StepFunUnavailable(RuntimeError):
    """StepFun's reference could not be installed (no wheel mirror, no network)."""


def reference_dir() -> Path:
    """The installed reference, built by scripts/stepfun-reference if needed."""
    script = ROOT / "scripts" / "stepfun-reference"
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise StepFunUnavailable(f"could not install StepFun's reference with {script}:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


class _Unavailable(types.ModuleType):
    """A stand-in module: importing it works, using it says why it is not there."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"{self.__name__}.{name} is shimmed out beside StepFun's reference")


class _CpuTorch(types.ModuleType):
    """``torch`` as StepFun's ``token2wav`` module sees it: ``device='cuda'`` lands on the CPU, no autocast."""

    def __init__(self) -> None:
        super().__init__("torch")
        self.amp = types.SimpleNamespace(autocast=lambda *args, **kwargs: contextlib.nullcontext())

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(torch, name)
        if name in {"tensor", "zeros"}:

            def on_cpu(*args: Any, **kwargs: Any) -> Any:
                if kwargs.get("device") == "cuda":
                    kwargs["device"] = "cpu"
                return attribute(*args, **kwargs)

            return on_cpu
        return attribute


def _load_as(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _modules(**stand_ins: types.ModuleType) -> Iterator[None]:
    """Put modules into ``sys.modules`` for the duration of an import, then take them out again."""
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@contextlib.contextmanager
def cuda_is_cpu() -> Iterator[None]:
    """``tensor.cuda()`` stays on the CPU while StepFun's ``StepAudio2.__call__`` runs."""
    tensor_cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = tensor_cuda  # type: ignore[method-assign]


@dataclass(frozen=True)
class Reference:
    """StepFun's modules, loaded once per process."""

    token2wav: types.ModuleType
    """``token2wav.py``: ``Token2wav`` (offline and ``stream``) and ``fade_in_out``."""
    utils: types.ModuleType
    """``utils.py``: the LLM's log-mel front end and ``compute_token_num``."""
    stepaudio2: types.ModuleType
    """``stepaudio2.py``: ``StepAudio2.apply_chat_template`` and the output split."""
    hifigan: types.ModuleType
    """``flashcosyvoice.modules.hifigan``."""
    audio: types.ModuleType
    """``flashcosyvoice.utils.audio``: the flow's prompt mel."""


@cache
def load_reference() -> Reference:
    """Import StepFun's code from its own folder (once); raises :class:`StepFunUnavailable`."""
    folder = reference_dir()
    # transformers probes for torchaudio when first imported: it must meet the real absence, not the shim.
    import transformers  # noqa: F401

    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    torchaudio = _Unavailable("torchaudio")
    torchaudio.compliance = _Unavailable("torchaudio.compliance")  # type: ignore[attr-defined]
    kaldi = _Unavailable("torchaudio.compliance.kaldi")
    torchaudio.compliance.kaldi = kaldi  # type: ignore[attr-defined]
    stand_ins = {
        "torchaudio": torchaudio,
        "torchaudio.compliance": torchaudio.compliance,
        "torchaudio.compliance.kaldi": kaldi,
        "s3tokenizer": _Unavailable("s3tokenizer"),
    }
    with _modules(**stand_ins):
        from cosyvoice2.transformer import upsample_encoder_v2
        from flashcosyvoice.modules import hifigan
        from flashcosyvoice.utils import audio

        utils = _load_as("stepfun_utils", folder / "utils.py")
        with _modules(utils=utils):
            stepaudio2 = _load_as("stepfun_stepaudio2", folder / "stepaudio2.py")
        token2wav = _load_as("stepfun_token2wav", folder / "token2wav.py")
    token2wav.torch = _CpuTorch()  # type: ignore[attr-defined]
    # forward_chunk is wrapped in torch.compile(backend="eager"): same numbers, but seconds of tracing.
    encoder = upsample_encoder_v2.UpsampleConformerEncoderV2
    encoder.forward_chunk = encoder.forward_chunk._torchdynamo_orig_callable  # type: ignore[attr-defined]
    return Reference(token2wav, utils, stepaudio2, hifigan, audio)


def flow_yaml(config: Any) -> str:
    """A ``flow.yaml`` in the released HyperPyYAML layout (StepFun's classes) for a :class:`FlowConfig`."""
    return f"""\
spk_embed_dim: {config.spk_embed_dim}
flow: !new:cosyvoice2.flow.flow.CausalMaskedDiffWithXvec
    input_size: {config.input_size}
    output_size: {config.mel_bins}
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: {config.vocab_size}
    encoder: !new:cosyvoice2.transformer.upsample_encoder_v2.UpsampleConformerEncoderV2
        input_size: {config.input_size}
        output_size: {config.encoder_size}
        input_layer: 'linear'
        pre_lookahead_len: {config.lookahead}
        num_blocks: {config.encoder_blocks}
        num_up_blocks: {config.encoder_up_blocks}
        up_stride: {config.up_stride}
        up_scale_factor: {config.up_stride}
        attention_heads: {config.encoder_heads}
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        key_bias: true
        linear_units: {config.encoder_hidden}
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: true
    decoder: !new:cosyvoice2.flow.flow_matching.CausalConditionalCFM
        inference_cfg_rate: {config.cfg_rate}
        estimator: !new:cosyvoice2.flow.decoder_dit.DiT
            in_channels: {4 * config.mel_bins}
            out_channels: {config.mel_bins}
            mlp_ratio: {config.dit_mlp_ratio}
            depth: {config.dit_depth}
            num_heads: {config.dit_heads}
            head_dim: {config.dit_head_dim}
            hidden_size: {config.dit_size}
"""


def legacy_weight_norm(state: Mapping[str, Any]) -> dict[str, Any]:
    """Rename parametrized weight-norm keys to the older ``weight_g``/``weight_v`` StepFun's HiFT loads."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        renamed[key] = value
    return renamed


def build_token2wav(
    yaml_text: str,
    flow_state: Mapping[str, torch.Tensor],
    hift_state: Mapping[str, torch.Tensor],
    *,
    hift_channels: int,
    f0_channels: int,
) -> Any:
    """StepFun's ``Token2wav`` on the CPU from a ``flow.yaml`` and both state dicts, set up as its constructor does.

    The constructor builds ``HiFTGenerator()`` at the released widths, so the same class is built here at
    the checkpoint's widths; the flow comes from ``flow.yaml`` through HyperPyYAML as StepFun reads it.
    ``hift_state`` has no ``generator.`` prefix and legacy weight-norm names.
    """
    import numpy as np

    reference = load_reference()
    from hyperpyyaml import load_hyperpyyaml  # from the reference's folder, on sys.path now

    hifigan = reference.hifigan
    engine = object.__new__(reference.token2wav.Token2wav)
    engine.float16 = False
    engine.flow = load_hyperpyyaml(yaml_text)["flow"]
    engine.flow.load_state_dict(flow_state, strict=True)
    engine.flow.eval()
    _fit_scratch_buffers(engine.flow)
    engine.hift = hifigan.HiFTGenerator(
        base_channels=hift_channels, f0_predictor=hifigan.ConvRNNF0Predictor(cond_channels=f0_channels)
    )
    engine.hift.load_state_dict(hift_state, strict=True)
    engine.hift.eval()
    engine.cache = {}
    engine.mel_cache_len = 8
    engine.source_cache_len = engine.mel_cache_len * 480
    engine.speech_window = torch.from_numpy(np.hamming(2 * engine.source_cache_len))
    engine.hift_cache_dict = {}
    engine.stream_cache = None
    return engine


def load_token2wav(model_dir: Path, *, hift_channels: int, f0_channels: int) -> Any:
    """StepFun's ``Token2wav`` over a token2wav folder (``flow.yaml``, ``flow.pt``, ``hift.pt``)."""
    flow_state = torch.load(model_dir / "flow.pt", map_location="cpu", weights_only=True)
    raw = torch.load(model_dir / "hift.pt", map_location="cpu", weights_only=True)
    return build_token2wav(
        (model_dir / "flow.yaml").read_text("utf-8"),
        flow_state,
        {k.replace("generator.", ""): v for k, v in raw.items()},
        hift_channels=hift_channels,
        f0_channels=f0_channels,
    )


def stream_pieces(tokens: Sequence[int], schedule: StreamSchedule, lookahead: int) -> Iterator[tuple[list[int], bool]]:
    """The pieces our stream renders, each with its look-ahead, the rest last: StepFun's ``stream`` calls."""
    start, size = 0, schedule.first_chunk_tokens
    while len(tokens) - start >= size + lookahead:
        yield list(tokens[start : start + size + lookahead]), False
        start += size
        size = schedule.chunk_tokens
    yield list(tokens[start:]), True


def _fit_scratch_buffers(flow: Any) -> None:
    """StepFun's CFM and DiT preallocate cache buffers for the released sizes (16 blocks of 512): refit them."""
    decoder, estimator = flow.decoder, flow.decoder.estimator
    depth, width = len(estimator.blocks), estimator.in_proj.out_features
    attention = estimator.blocks[0].attn
    heads, head_dim = attention.num_heads, attention.head_dim
    frames = decoder.att_cache_buffer.shape[4]
    steps = decoder.att_cache_buffer.shape[0]
    decoder.cnn_cache_buffer = torch.zeros(steps, depth, 2, 2 * width, 2)
    decoder.att_cache_buffer = torch.zeros(steps, depth, 2, heads, frames, 2 * head_dim)
    estimator.cnn_cache_buffer = torch.zeros(depth, 2, 2 * width, 2)
    estimator.att_cache_buffer = torch.zeros(depth, 2, heads, frames, 2 * head_dim)
