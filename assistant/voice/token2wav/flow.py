"""The causal flow: 25 Hz speech tokens + a voice prompt → 50 Hz 80-bin mel frames.

``Flow`` is ``CausalMaskedDiffWithXvec`` of the released ``flow.pt``: token embedding, speaker projection,
:class:`~.encoder.TokenEncoder`, projection to 80 channels, and a conditional flow-matching decoder whose
estimator is a :class:`~.dit.DiT`. Ten Euler steps on a cosine schedule with classifier-free guidance.

Both paths compute what StepFun's ``token2wav`` computes, since the weights were trained and checked with it
(``tests/stepfun`` runs the two side by side on identical weights):

- streaming (:meth:`Flow.stream`) keeps per-step caches (:class:`FlowState`). After each chunk the DiT's
  attention cache, newest first, keeps its first P entries and its last ``window_frames`` (P = the
  prompt's mel frames): the latest P frames plus the end of the voice prompt. A chunk's starting noise is
  read at the kept cache's length, not at its absolute frame;
- offline (:meth:`Flow.inference`) runs prompt and answer as one sequence with full attention, so the
  prompt frames also see the answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dit import DiT, DiTCache
from .encoder import EncoderCache, TokenEncoder
from .flowyaml import FlowYamlError, read_flow_yaml


class SynthesisCancelled(Exception):
    """Raised inside the synthesis thread when the listener no longer wants the audio."""


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Sizes of the flow; the defaults are the released Step-Audio 2 mini ``flow.yaml``."""

    vocab_size: int = 6561
    """Speech token codes."""
    input_size: int = 512
    """Token embedding width."""
    mel_bins: int = 80
    """Mel channels out."""
    spk_embed_dim: int = 192
    """CAM++ speaker embedding width."""
    encoder_size: int = 512
    """Conformer width."""
    encoder_heads: int = 8
    """Conformer attention heads."""
    encoder_hidden: int = 2048
    """Conformer feed-forward width."""
    encoder_blocks: int = 6
    """Conformer layers at 25 Hz."""
    encoder_up_blocks: int = 4
    """Conformer layers at 50 Hz."""
    lookahead: int = 3
    """Future tokens each position needs."""
    up_stride: int = 2
    """Mel frames per token."""
    dit_depth: int = 16
    """DiT blocks."""
    dit_size: int = 512
    """DiT width."""
    dit_heads: int = 8
    """DiT attention heads."""
    dit_head_dim: int = 64
    """DiT attention head width."""
    dit_mlp_ratio: float = 4.0
    """DiT MLP width over model width."""
    cfg_rate: float = 0.7
    """Classifier-free guidance strength."""

    @classmethod
    def from_yaml(cls, text: str) -> FlowConfig:
        """Read the sizes from a ``flow.yaml``; raises :class:`~.flowyaml.FlowYamlError` naming what is wrong."""
        root = read_flow_yaml(text)
        flow = _section(root, "flow") if "flow" in root else root
        encoder = _section(flow, "encoder")
        decoder = _section(flow, "decoder")
        estimator = _section(decoder, "estimator")
        base = cls()

        def pick(section: dict[str, Any], key: str, default: Any) -> Any:
            value = section.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FlowYamlError(f"{key} is {value!r}, not a number")
            return type(default)(value)

        return cls(
            vocab_size=pick(flow, "vocab_size", base.vocab_size),
            input_size=pick(flow, "input_size", base.input_size),
            mel_bins=pick(flow, "output_size", base.mel_bins),
            spk_embed_dim=pick(flow, "spk_embed_dim", base.spk_embed_dim),
            encoder_size=pick(encoder, "output_size", base.encoder_size),
            encoder_heads=pick(encoder, "attention_heads", base.encoder_heads),
            encoder_hidden=pick(encoder, "linear_units", base.encoder_hidden),
            encoder_blocks=pick(encoder, "num_blocks", base.encoder_blocks),
            encoder_up_blocks=pick(encoder, "num_up_blocks", base.encoder_up_blocks),
            lookahead=pick(encoder, "pre_lookahead_len", base.lookahead),
            up_stride=pick(encoder, "up_stride", base.up_stride),
            dit_depth=pick(estimator, "depth", base.dit_depth),
            dit_size=pick(estimator, "hidden_size", base.dit_size),
            dit_heads=pick(estimator, "num_heads", base.dit_heads),
            dit_head_dim=pick(estimator, "head_dim", base.dit_head_dim),
            dit_mlp_ratio=pick(estimator, "mlp_ratio", base.dit_mlp_ratio),
            cfg_rate=pick(decoder, "inference_cfg_rate", base.cfg_rate),
        )


def _section(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key) or {}
    if not isinstance(value, dict):
        raise FlowYamlError(f"{key} is {type(value).__name__}, not a mapping of arguments")
    return value


NOISE_FRAMES = 50 * 600
"""Length of the fixed noise table, as StepFun's: 600 s of mel frames; a longer offline answer wraps around."""


class _Decoder(nn.Module):
    """Holds the estimator under the checkpoint's name ``decoder.estimator``, and the fixed noise."""

    def __init__(self, config: FlowConfig) -> None:
        super().__init__()
        self.estimator = DiT(
            in_channels=4 * config.mel_bins,
            out_channels=config.mel_bins,
            mlp_ratio=config.dit_mlp_ratio,
            depth=config.dit_depth,
            num_heads=config.dit_heads,
            head_dim=config.dit_head_dim,
            hidden_size=config.dit_size,
        )
        generator = torch.Generator().manual_seed(0)
        # One fixed table, as StepFun's CFM draws once at start-up: offline reads it from frame 0, a stream
        # at the kept cache's length (FlowState.noise_offset).
        noise = torch.randn(1, config.mel_bins, NOISE_FRAMES, generator=generator)
        self.register_buffer("noise", noise, persistent=False)

    def noise_at(self, start: int, frames: int) -> Tensor:
        """Starting noise for table positions ``start … start+frames``."""
        noise = self.get_buffer("noise")
        index = torch.arange(start, start + frames, device=noise.device) % NOISE_FRAMES
        return noise[:, :, index]


@dataclass(frozen=True)
class FlowState:
    """A stream in progress: the voice and the caches after the frames so far; each chunk makes a new one."""

    speaker: Tensor
    """Projected speaker embedding, (1, 80)."""
    prompt_frames: int
    """Mel frames of the voice prompt, kept in the attention window for good."""
    encoder: EncoderCache
    """Conformer caches."""
    steps: list[DiTCache]
    """DiT caches, one per Euler step, batch 2 (guided and unguided)."""

    @property
    def noise_offset(self) -> int:
        """Where the next chunk's noise starts in the noise table: the kept attention cache's length."""
        return self.steps[0].frames


class Flow(nn.Module):
    """``CausalMaskedDiffWithXvec`` with streaming and offline inference."""

    def __init__(self, config: FlowConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FlowConfig()
        self.input_embedding = nn.Embedding(config.vocab_size, config.input_size)
        self.spk_embed_affine_layer = nn.Linear(config.spk_embed_dim, config.mel_bins)
        self.encoder = TokenEncoder(
            size=config.encoder_size,
            heads=config.encoder_heads,
            hidden=config.encoder_hidden,
            blocks=config.encoder_blocks,
            up_blocks=config.encoder_up_blocks,
            lookahead=config.lookahead,
            stride=config.up_stride,
        )
        self.encoder_proj = nn.Linear(config.encoder_size, config.mel_bins)
        self.decoder = _Decoder(config)

    @property
    def lookahead(self) -> int:
        """Future tokens a chunk needs beyond the ones it renders."""
        return self.config.lookahead

    @property
    def dtype(self) -> torch.dtype:
        """Precision of the weights."""
        return self.encoder_proj.weight.dtype

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.encoder_proj.weight.device

    def _speaker(self, embedding: Tensor) -> Tensor:
        out: Tensor = self.spk_embed_affine_layer(F.normalize(embedding.to(self.device, self.dtype), dim=1))
        return out

    def _tokens(self, tokens: Sequence[int] | Tensor) -> Tensor:
        ids = torch.as_tensor(tokens, dtype=torch.long, device=self.device).reshape(1, -1)
        outside = ids[(ids < 0) | (ids >= self.config.vocab_size)]
        if outside.numel():
            # StepFun's flow fails here too (an embedding index error): a code it cannot voice is not guessed.
            raise ValueError(f"speech codes must be 0..{self.config.vocab_size - 1}; got {int(outside[0])}")
        out: Tensor = self.input_embedding(ids)
        return out

    def _t_span(self, steps: int) -> Tensor:
        t = torch.linspace(0, 1, steps + 1, device=self.device, dtype=torch.float32)
        return 1 - torch.cos(t * 0.5 * math.pi)

    def _solve(
        self,
        start: int,
        mu: Tensor,
        speaker: Tensor,
        cond: Tensor,
        mask: Tensor | None,
        caches: list[DiTCache] | None,
        steps: int,
        should_stop: Callable[[], bool] | None,
    ) -> tuple[Tensor, list[DiTCache]]:
        """Euler-integrate from noise to mel for frames ``start …``; returns mel (1, 80, n) and new caches."""
        x = self.decoder.noise_at(start, mu.shape[2]).to(mu.dtype)
        t_span = self._t_span(steps)
        mu_in = torch.cat([mu, torch.zeros_like(mu)])
        spk_in = torch.cat([speaker, torch.zeros_like(speaker)])
        cond_in = torch.cat([cond, torch.zeros_like(cond)])
        mask_in = None if mask is None else mask.expand(2, -1, -1)
        rate = self.config.cfg_rate
        new_caches: list[DiTCache] = []
        for step in range(steps):
            if should_stop is not None and should_stop():
                raise SynthesisCancelled
            t = t_span[step].to(mu.dtype).expand(2)
            velocity, cache = self.decoder.estimator(
                torch.cat([x, x]), mu_in, t, spk_in, cond_in, mask_in, caches[step] if caches else None
            )
            guided, free = velocity.chunk(2)
            x = x + (t_span[step + 1] - t_span[step]).to(mu.dtype) * ((1 + rate) * guided - rate * free)
            new_caches.append(cache)
        return x, new_caches

    @torch.inference_mode()
    def prepare(
        self, prompt_tokens: Sequence[int], prompt_mel: Tensor, embedding: Tensor, *, steps: int = 10
    ) -> FlowState:
        """Run the voice prompt through the flow once; the returned state starts every answer in that voice.

        ``prompt_mel`` is (frames, 80) with exactly ``up_stride`` frames per prompt token.
        """
        count = len(prompt_tokens)
        if count < self.lookahead or prompt_mel.shape[0] != count * self.config.up_stride:
            raise ValueError(
                f"prompt needs ≥{self.lookahead} tokens and {self.config.up_stride} mel frames per token, "
                f"got {count} tokens and {prompt_mel.shape[0]} frames"
            )
        speaker = self._speaker(embedding)
        # The prompt has no real continuation yet: its last positions look ahead at its own first tokens.
        tokens = self._tokens(list(prompt_tokens) + list(prompt_tokens[: self.lookahead]))
        h, encoder_cache = self.encoder.forward_chunk(tokens, None)
        mu = self.encoder_proj(h).transpose(1, 2)
        cond = prompt_mel.to(self.device, self.dtype).T.unsqueeze(0)
        _, caches = self._solve(0, mu, speaker, cond, None, None, steps, None)
        return FlowState(speaker, count * self.config.up_stride, encoder_cache, caches)

    @torch.inference_mode()
    def stream(
        self,
        state: FlowState,
        tokens: Sequence[int],
        *,
        last: bool = False,
        steps: int = 10,
        window_frames: int = 100,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[Tensor, FlowState]:
        """Render the next chunk: ``tokens`` carries ``lookahead`` extra tokens unless ``last``.

        Returns mel (1, 80, frames) for the rendered tokens and the advanced state. The estimator's
        attention caches keep the latest P frames and the prompt's last ``window_frames`` (P = prompt frames).
        """
        rendered = len(tokens) if last else len(tokens) - self.lookahead
        if rendered <= 0:
            raise ValueError(f"a chunk needs more than {self.lookahead} look-ahead tokens, got {len(tokens)}")
        h, encoder_cache = self.encoder.forward_chunk(self._tokens(tokens), state.encoder, last=last)
        mu = self.encoder_proj(h).transpose(1, 2)
        mel, caches = self._solve(
            state.noise_offset, mu, state.speaker, torch.zeros_like(mu), None, state.steps, steps, should_stop
        )
        caches = [c.keep(state.prompt_frames, window_frames) for c in caches]
        return mel.float(), FlowState(state.speaker, state.prompt_frames, encoder_cache, caches)

    @torch.inference_mode()
    def inference(
        self,
        tokens: Sequence[int],
        prompt_tokens: Sequence[int],
        prompt_mel: Tensor,
        embedding: Tensor,
        *,
        steps: int = 10,
    ) -> Tensor:
        """Render a whole answer at once: mel (1, 80, up_stride·len(tokens)).

        Prompt and answer are one sequence with full attention in the encoder and the estimator, the
        prompt looking ahead at the answer's first tokens and the answer's end at zeros.
        """
        count = len(prompt_tokens)
        stride = self.config.up_stride
        speaker = self._speaker(embedding)
        total = count + len(tokens)
        h = self.encoder([self._tokens([*prompt_tokens, *tokens])], [total])
        mu = self.encoder_proj(h).transpose(1, 2)
        cond = torch.zeros_like(mu)
        cond[:, :, : count * stride] = prompt_mel.to(self.device, self.dtype).T
        mel, _ = self._solve(0, mu, speaker, cond, None, None, steps, None)
        return mel[:, :, count * stride :].float()
