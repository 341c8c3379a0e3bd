"""HiFT: the neural-source-filter + iSTFT vocoder that turns 50 Hz mel frames into 24 kHz speech.

Parameter names follow the released ``hift.pt`` (after its ``generator.`` prefix is stripped). Weight
norm uses ``torch.nn.utils.parametrizations``, whose loader also accepts the older ``weight_g/weight_v``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

SAMPLE_RATE_HZ = 24_000
"""Output rate."""


class _Snake(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class _ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)) for _ in dilations
        )
        self.activations1 = nn.ModuleList(_Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(_Snake(channels) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for conv1, conv2, act1, act2 in zip(
            self.convs1, self.convs2, self.activations1, self.activations2, strict=True
        ):
            x = x + conv2(act2(conv1(act1(x))))
        return x


class _F0Predictor(nn.Module):
    """``ConvRNNF0Predictor``: five conv+ELU layers and a linear head; returns F0 in Hz, (b, t)."""

    def __init__(self, in_channels: int = 80, channels: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [weight_norm(nn.Conv1d(in_channels if i == 0 else channels, channels, 3, padding=1)), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, 1)

    def forward(self, mel: Tensor) -> Tensor:
        f0: Tensor = self.classifier(self.condnet(mel).transpose(1, 2))
        return torch.abs(f0.squeeze(-1))


class _SourceModule(nn.Module):
    """Harmonic sine source from F0 (``SourceModuleHnNSF`` with the 24 kHz ``SineGen2``)."""

    def __init__(self, harmonics: int, upsample: int, sine_amp: float = 0.1, noise_std: float = 0.003) -> None:
        super().__init__()
        self.harmonics = harmonics
        self.upsample = upsample
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = 10.0
        self.l_linear = nn.Linear(harmonics + 1, 1)

    def forward(self, f0: Tensor, generator: torch.Generator | None) -> Tensor:
        """F0 (b, samples, 1) in Hz → source (b, samples, 1)."""
        b, n, _ = f0.shape
        multiples = torch.arange(1, self.harmonics + 2, device=f0.device, dtype=f0.dtype)
        rad = (f0 * multiples / SAMPLE_RATE_HZ) % 1
        initial = torch.rand(b, self.harmonics + 1, generator=generator, device="cpu").to(f0.device, f0.dtype)
        initial[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + initial
        # Integrate the phase at frame rate, then interpolate, so it stays smooth at any F0.
        down = F.interpolate(rad.transpose(1, 2), scale_factor=1 / self.upsample, mode="linear").transpose(1, 2)
        phase = torch.cumsum(down, dim=1) * 2 * math.pi
        phase = F.interpolate(
            phase.transpose(1, 2) * self.upsample, scale_factor=float(self.upsample), mode="linear"
        ).transpose(1, 2)
        sines = torch.sin(phase) * self.sine_amp
        voiced = (f0 > self.voiced_threshold).to(f0.dtype)
        noise_amp = voiced * self.noise_std + (1 - voiced) * self.sine_amp / 3
        # Filled in the sines' own memory order, as StepFun's randn_like is: the same seed gives the same noise.
        noise = torch.empty_like(sines, device="cpu").normal_(generator=generator).to(f0.device, f0.dtype)
        sines = sines * voiced + noise_amp * noise
        return torch.tanh(self.l_linear(sines))


@dataclass(frozen=True, slots=True)
class HiftConfig:
    """HiFT sizes; the defaults are the released vocoder."""

    mel_bins: int = 80
    """Mel channels in."""
    base_channels: int = 512
    """Width after the first convolution; halves at each upsampling."""
    f0_channels: int = 512
    """Width of the F0 predictor."""
    harmonics: int = 8
    """Harmonic overtones in the source."""
    upsample_rates: tuple[int, ...] = (8, 5, 3)
    """Transposed-convolution strides."""
    upsample_kernels: tuple[int, ...] = (16, 11, 7)
    """Transposed-convolution kernels."""
    n_fft: int = 16
    """iSTFT size."""
    hop: int = 4
    """iSTFT hop."""
    resblock_kernels: tuple[int, ...] = (3, 7, 11)
    """Kernels of the parallel residual blocks."""
    source_resblock_kernels: tuple[int, ...] = (7, 7, 11)
    """Kernels of the source residual blocks."""
    dilations: tuple[int, ...] = (1, 3, 5)
    """Dilations inside each residual block."""

    @property
    def samples_per_frame(self) -> int:
        """Output samples per mel frame (480 = 20 ms at 24 kHz)."""
        return math.prod(self.upsample_rates) * self.hop

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> HiftConfig:
        """Read the widths a checkpoint was trained with (the rest is fixed by the architecture)."""

        def weight(prefix: str) -> Tensor:
            for suffix in ("weight", "weight_v", "parametrizations.weight.original1"):
                if f"{prefix}.{suffix}" in state:
                    return state[f"{prefix}.{suffix}"]
            raise KeyError(f"{prefix}.weight")

        pre = weight("conv_pre")
        f0 = weight("f0_predictor.condnet.0")
        harmonics = state["m_source.l_linear.weight"].shape[1] - 1
        return cls(
            mel_bins=int(pre.shape[1]),
            base_channels=int(pre.shape[0]),
            f0_channels=int(f0.shape[0]),
            harmonics=int(harmonics),
        )


class Hift(nn.Module):
    """``HiFTGenerator``: mel (b, 80, frames) → 24 kHz audio (b, 480·frames) in [-0.99, 0.99]."""

    def __init__(self, config: HiftConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HiftConfig()
        base = config.base_channels
        self.m_source = _SourceModule(config.harmonics, config.samples_per_frame)
        self.conv_pre = weight_norm(nn.Conv1d(config.mel_bins, base, 7, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(base // 2**i, base // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernels, strict=True))
        )
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        down_rates = [1, *config.upsample_rates[::-1][:-1]]
        cumulative = [math.prod(down_rates[: i + 1]) for i in range(len(down_rates))][::-1]
        bins = config.n_fft + 2
        for i, (u, k) in enumerate(zip(cumulative, config.source_resblock_kernels, strict=True)):
            channels = base // 2 ** (i + 1)
            if u == 1:
                self.source_downs.append(nn.Conv1d(bins, channels, 1, 1))
            else:
                self.source_downs.append(nn.Conv1d(bins, channels, u * 2, u, padding=u // 2))
            self.source_resblocks.append(_ResBlock(channels, k, config.dilations))
        self.resblocks = nn.ModuleList(
            _ResBlock(base // 2 ** (i + 1), k, config.dilations)
            for i in range(len(self.ups))
            for k in config.resblock_kernels
        )
        self.conv_post = weight_norm(nn.Conv1d(base // 2 ** len(self.ups), bins, 7, padding=3))
        self.reflection_pad = nn.ReflectionPad1d((1, 0))
        self.f0_predictor = _F0Predictor(config.mel_bins, config.f0_channels)
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)

    def source(self, mel: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The excitation for ``mel``: (b, 1, 480·frames)."""
        f0 = self.f0_predictor(mel)
        f0 = F.interpolate(f0[:, None], scale_factor=float(self.config.samples_per_frame)).transpose(1, 2)
        excitation: Tensor = self.m_source(f0, generator)
        return excitation.transpose(1, 2)

    def decode(self, mel: Tensor, source: Tensor) -> Tensor:
        """Mel plus excitation → audio (b, samples)."""
        cfg = self.config
        window = self.get_buffer("window")
        stft = torch.stft(source.squeeze(1), cfg.n_fft, cfg.hop, cfg.n_fft, window, return_complex=True)
        spec = torch.view_as_real(stft)
        s_stft = torch.cat([spec[..., 0], spec[..., 1]], dim=1)
        x = self.conv_pre(mel)
        kernels = len(cfg.resblock_kernels)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            if i == len(self.ups) - 1:
                x = self.reflection_pad(x)
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            x = sum(self.resblocks[i * kernels + j](x) for j in range(kernels)) / kernels
        x = self.conv_post(F.leaky_relu(x))
        half = cfg.n_fft // 2 + 1
        magnitude = torch.exp(x[:, :half]).clamp(max=1e2)
        phase = torch.sin(x[:, half:])
        audio = torch.istft(torch.polar(magnitude, phase), cfg.n_fft, cfg.hop, cfg.n_fft, window)
        return audio.clamp(-0.99, 0.99)

    def fold_weight_norm(self) -> None:
        """Compute each weight-normed weight once, for inference, instead of at every call.

        The folded weight is what the norm computes per call (the same function on the same tensors), so
        the audio does not change; the first chunk no longer pays 164 norms (about 0.6 s on 2 CPU threads).
        Loading a state dict needs the unfolded module: fold after loading.
        """
        # Not under no_grad: the folded weight must stay a Parameter (so .to() and state_dict() see it).
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)

    @torch.inference_mode()
    def forward(
        self, mel: Tensor, cached_source: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Vocode mel (b, 80, frames); the start of the excitation may be pinned to ``cached_source``."""
        source = self.source(mel, generator)
        if cached_source is not None and cached_source.shape[2] > 0:
            source[:, :, : cached_source.shape[2]] = cached_source
        return self.decode(mel, source), source


def load_hift_state(raw: dict[str, Tensor]) -> dict[str, Tensor]:
    """Strip the training wrapper's ``generator.`` prefix from a ``hift.pt`` state dict."""
    return {k.removeprefix("generator."): v for k, v in raw.items()}
