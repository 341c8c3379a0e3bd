"""Token2wav: load the released ``token2wav/`` folder and turn speech tokens into 24 kHz PCM, in chunks.

A :class:`Token2Wav` holds the flow and the vocoder on one device. :meth:`Token2Wav.voice` prepares a
voice once (prompt features from disk cache or ONNX, then the flow's prompt caches). :meth:`Token2Wav.open`
starts one answer: a :class:`SpeechStream` that takes tokens as they come and returns PCM whenever a chunk
(and its look-ahead) is complete. The first chunk is smaller, to cut the time to first sound.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import VoiceUnavailable
from .flow import Flow, FlowConfig, FlowState
from .flowyaml import FlowYamlError
from .hift import SAMPLE_RATE_HZ, Hift, HiftConfig, load_hift_state
from .prompt import SPEAKER_FILE, TOKENIZER_FILE, PromptFeatures, PromptProcessor

_LOGGER = logging.getLogger(__name__)

REQUIRED_FILES = ("flow.pt", "hift.pt", TOKENIZER_FILE, SPEAKER_FILE)
"""What a ``token2wav/`` folder must hold; ``flow.yaml`` is read when present."""


@dataclass(frozen=True, slots=True)
class StreamSchedule:
    """How tokens are cut into chunks."""

    first_chunk_tokens: int = 10
    """Tokens in the first chunk (0.4 s of speech), small to start sound early."""
    chunk_tokens: int = 25
    """Tokens in every later chunk (1 s of speech)."""
    window_frames: int = 100
    """Mel frames at the end of the voice prompt that every chunk keeps attending to (StepFun's 100)."""
    steps: int = 10
    """Euler steps of the flow."""
    crossfade_frames: int = 8
    """Mel frames (20 ms each) re-vocoded and cross-faded at each chunk boundary (StepFun's 8)."""


@dataclass(frozen=True, slots=True)
class VoiceProfile:
    """A prepared voice: prompt features and the flow state every answer in that voice starts from."""

    name: str
    """The prompt WAV, for logs."""
    features: PromptFeatures
    """Tokens, embedding and mel of the prompt."""
    state: FlowState
    """Flow caches after the prompt."""


def pick_device(preference: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; or exactly what was asked."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise VoiceUnavailable("token2wav is configured for CUDA but no CUDA device is available")
    return torch.device(preference)


class Token2Wav:
    """Flow + HiFT on one device, with prepared voices."""

    def __init__(
        self,
        flow: Flow,
        hift: Hift,
        prompts: PromptProcessor,
        *,
        schedule: StreamSchedule | None = None,
        seed: int = 0,
    ) -> None:
        self.flow = flow
        hift.fold_weight_norm()
        self.hift = hift
        self.prompts = prompts
        self.schedule = schedule or StreamSchedule()
        self.seed = seed
        self._voices: dict[Path, VoiceProfile] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        device: str = "auto",
        fp16: bool | None = None,
        cache_dir: Path | None = None,
        schedule: StreamSchedule | None = None,
    ) -> Token2Wav:
        """Load ``flow.pt`` and ``hift.pt`` from ``model_dir``; fp16 defaults to on for CUDA.

        Raises :class:`VoiceUnavailable` naming what is missing or broken.
        """
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise VoiceUnavailable(f"token2wav folder {model_dir} lacks {', '.join(missing)}")
        target = pick_device(device)
        half = (target.type == "cuda") if fp16 is None else fp16
        config_path = model_dir / "flow.yaml"
        try:
            config = FlowConfig.from_yaml(config_path.read_text("utf-8")) if config_path.is_file() else FlowConfig()
        except (FlowYamlError, OSError, UnicodeDecodeError) as err:
            raise VoiceUnavailable(f"token2wav config {config_path} does not load: {err}") from err
        try:
            flow = Flow(config)
            flow.load_state_dict(_load(model_dir / "flow.pt"), strict=True)
            hift_state = load_hift_state(_load(model_dir / "hift.pt"))
            hift = Hift(HiftConfig.from_state_dict(hift_state))
            hift.load_state_dict(hift_state, strict=True)
        except (RuntimeError, KeyError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
            raise VoiceUnavailable(f"token2wav weights in {model_dir} do not load: {err}") from err
        # The vocoder stays in fp32 (its iSTFT and source are sensitive); the flow may run in fp16.
        flow = flow.to(target, torch.float16 if half else torch.float32).eval()
        hift = hift.to(target).eval()
        _LOGGER.info("token2wav loaded from %s on %s (%s)", model_dir, target, "fp16" if half else "fp32")
        return cls(flow, hift, PromptProcessor(model_dir, cache_dir), schedule=schedule)

    @property
    def device(self) -> torch.device:
        """Where synthesis runs."""
        return self.flow.device

    def voice(self, prompt_wav: Path) -> VoiceProfile:
        """Prepare (once) and return the voice of ``prompt_wav``; blocking, call it off the event loop."""
        with self._lock:
            profile = self._voices.get(prompt_wav)
            if profile is None:
                features = self.prompts.features(prompt_wav)
                profile = self.prepare(prompt_wav.name, features)
                self._voices[prompt_wav] = profile
            return profile

    def prepare(self, name: str, features: PromptFeatures) -> VoiceProfile:
        """Run the flow over prompt features (used directly by tests with made-up features)."""
        state = self.flow.prepare(
            features.tokens,
            torch.from_numpy(features.mel),
            torch.from_numpy(features.embedding),
            steps=self.schedule.steps,
        )
        return VoiceProfile(name, features, state)

    def open(self, voice: VoiceProfile) -> SpeechStream:
        """Start one answer in ``voice``."""
        return SpeechStream(self, voice)

    @torch.inference_mode()
    def synthesize(self, voice: VoiceProfile, tokens: Sequence[int]) -> bytes:
        """The whole answer at once (offline), as int16 PCM at 24 kHz."""
        mel = self.offline_mel(voice, tokens)
        audio, _ = self.hift(mel.to(self.device), None, torch.Generator().manual_seed(self.seed))
        return to_pcm(audio[0])

    def offline_mel(self, voice: VoiceProfile, tokens: Sequence[int]) -> Tensor:
        """Mel for a whole answer, prompt and answer in one pass with full attention (StepFun's offline)."""
        features = voice.features
        return self.flow.inference(
            tokens,
            features.tokens,
            torch.from_numpy(features.mel),
            torch.from_numpy(features.embedding),
            steps=self.schedule.steps,
        )


class SpeechStream:
    """One answer being synthesised: feed tokens, collect PCM; not thread-safe, use from one thread."""

    def __init__(self, engine: Token2Wav, voice: VoiceProfile) -> None:
        self._engine = engine
        self._state = voice.state
        self._pending: list[int] = []
        self._chunks: list[int] = []
        self._generator = torch.Generator().manual_seed(engine.seed)
        hop = engine.hift.config.samples_per_frame
        self._fade_samples = engine.schedule.crossfade_frames * hop
        self._mel_tail: Tensor | None = None
        self._source_tail: Tensor | None = None
        self._speech_tail: Tensor | None = None
        # StepFun's seam: the two halves of a Hamming window over twice the overlap.
        window = torch.from_numpy(np.hamming(2 * self._fade_samples)).to(engine.device, torch.float32)
        self._fade_in = window[: self._fade_samples]
        self._fade_out = window[self._fade_samples :]
        self.should_stop: Callable[[], bool] | None = None

    @property
    def chunks(self) -> list[int]:
        """Token counts of the chunks rendered so far."""
        return list(self._chunks)

    def _next_size(self) -> int:
        schedule = self._engine.schedule
        return schedule.first_chunk_tokens if not self._chunks else schedule.chunk_tokens

    def push(self, tokens: Sequence[int]) -> list[bytes]:
        """Add tokens; return PCM for every chunk that is now complete with its look-ahead."""
        self._pending.extend(tokens)
        out: list[bytes] = []
        lookahead = self._engine.flow.lookahead
        while len(self._pending) >= self._next_size() + lookahead:
            size = self._next_size()
            out.append(self._render(self._pending[: size + lookahead], size, last=False))
            del self._pending[:size]
        return out

    def finish(self) -> bytes:
        """Render whatever is left and the held-back tail; the stream is done after this."""
        if self._pending:
            pcm = self._render(list(self._pending), len(self._pending), last=True)
            self._pending.clear()
            return pcm
        if self._speech_tail is not None:
            tail = self._speech_tail
            self._speech_tail = None
            return to_pcm(tail)
        return b""

    @torch.inference_mode()
    def _render(self, tokens: list[int], size: int, *, last: bool) -> bytes:
        engine = self._engine
        mel, self._state = engine.flow.stream(
            self._state,
            tokens,
            last=last,
            steps=engine.schedule.steps,
            window_frames=engine.schedule.window_frames,
            should_stop=self.should_stop,
        )
        self._chunks.append(size)
        return self._vocode(mel.to(engine.device), last=last)

    def _vocode(self, mel: Tensor, *, last: bool) -> bytes:
        hift = self._engine.hift
        frames = self._engine.schedule.crossfade_frames
        if self._mel_tail is not None:
            mel = torch.cat([self._mel_tail, mel], dim=2)
        speech, source = hift(mel, self._source_tail, self._generator)
        speech = speech[0]
        fade = self._fade_samples
        if self._speech_tail is not None:
            speech[:fade] = speech[:fade] * self._fade_in + self._speech_tail * self._fade_out
        self._mel_tail = mel[:, :, -frames:]
        self._source_tail = source[:, :, -fade:]
        if last:
            self._speech_tail = None
            return to_pcm(speech)
        # The last frames are re-vocoded with the next chunk's context and cross-faded then.
        self._speech_tail = speech[-fade:].clone()
        return to_pcm(speech[:-fade])


def to_pcm(audio: Tensor) -> bytes:
    """Float audio in [-1, 1] → little-endian int16 bytes."""
    values = np.clip(audio.detach().float().cpu().numpy(), -1.0, 1.0)
    pcm: bytes = (values * 32767.0).astype("<i2").tobytes()
    return pcm


def _load(path: Path) -> dict[str, Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path.name} is not a state dict")
    return state


__all__ = ["SAMPLE_RATE_HZ", "SpeechStream", "StreamSchedule", "Token2Wav", "VoiceProfile"]
