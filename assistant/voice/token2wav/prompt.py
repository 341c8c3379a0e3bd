"""Voice prompt processing: a WAV of the voice → prompt speech tokens, a speaker embedding and a mel.

The two released ONNX models run through onnxruntime on the CPU: ``speech_tokenizer_v2_25hz.onnx``
(128-bin Whisper log-mel at 16 kHz → 25 Hz codes) and ``campplus.onnx`` (80-bin Kaldi fbank → a 192-d
CAM++ embedding). The results are small, so they are cached on disk, keyed by the WAV's content and the
models' identities: start-up does not repeat the work.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...audio import AudioFormatError
from ...recordings import decode_mono, resample

_LOGGER = logging.getLogger(__name__)

TOKENIZER_FILE = "speech_tokenizer_v2_25hz.onnx"
SPEAKER_FILE = "campplus.onnx"
_CACHE_VERSION = b"xiangyin-prompt-v2"
MAX_PROMPT_SECONDS = 20
"""Longer voice prompts are cut; StepFun's and vLLM-Omni's advice is a clean 3-10 s clip."""

FloatArray = npt.NDArray[np.float32]


class PromptError(ValueError):
    """The voice prompt cannot be used (unreadable, too short, silent)."""


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """Everything the flow needs from a voice prompt."""

    tokens: tuple[int, ...]
    """Speech codes of the prompt, 25 per second."""
    embedding: FloatArray
    """CAM++ speaker embedding, (1, 192)."""
    mel: FloatArray
    """24 kHz log-mel of the prompt, (2·len(tokens), 80)."""


@cache
def mel_filters(rate_hz: int, n_fft: int, bins: int, fmax_hz: float) -> FloatArray:
    """Slaney-style mel filterbank (librosa's default), (bins, n_fft//2+1)."""

    def hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        linear = hz / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz >= 1000.0, log, linear)

    def mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        linear = mel * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.where(mel >= 15.0, log, linear)

    fft_hz = np.linspace(0, rate_hz / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(fmax_hz)), bins + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:bins] / widths[:bins, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : bins + 2] - edges[:bins]))[:, None]
    return weights.astype(np.float32)


def whisper_log_mel(audio_16k: FloatArray) -> FloatArray:
    """The speech tokenizer's input: 128-bin Whisper log-mel at 100 frames per second, (128, frames)."""
    import torch

    samples = torch.from_numpy(audio_16k)
    window = torch.hann_window(400)
    stft = torch.stft(samples, 400, 160, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(mel_filters(16_000, 400, 128, 8_000.0)) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    out: FloatArray = ((log_spec + 4.0) / 4.0).numpy().astype(np.float32)
    return out


def prompt_mel(audio_24k: FloatArray) -> FloatArray:
    """The flow's mel: 80 bins, 50 frames per second, natural-log magnitude, (frames, 80)."""
    import torch

    n_fft, hop = 1920, 480
    samples = torch.from_numpy(audio_24k).unsqueeze(0).unsqueeze(0)
    padded = torch.nn.functional.pad(samples, ((n_fft - hop) // 2, (n_fft - hop) // 2), mode="reflect").squeeze(0)
    stft = torch.stft(padded, n_fft, hop, n_fft, torch.hann_window(n_fft), center=False, return_complex=True)
    magnitude = torch.sqrt(stft.real.pow(2) + stft.imag.pow(2) + 1e-9)
    mel = torch.from_numpy(mel_filters(24_000, n_fft, 80, 8_000.0)) @ magnitude
    out: FloatArray = torch.log(torch.clamp(mel, min=1e-5)).squeeze(0).T.numpy().astype(np.float32)
    return out


def fit_mel(mel: FloatArray, frames: int) -> FloatArray:
    """Exactly ``frames`` mel frames (two per prompt token): cut, or repeat the last frame, as StepFun does."""
    if mel.shape[0] >= frames:
        return np.ascontiguousarray(mel[:frames])
    return np.concatenate([mel, np.repeat(mel[-1:], frames - mel.shape[0], axis=0)]).astype(np.float32)


def kaldi_fbank(audio_16k: FloatArray) -> FloatArray:
    """80-bin Kaldi fbank (25 ms frames, 10 ms hop, no dither), mean-normalised over time: (frames, 80)."""
    import kaldi_native_fbank as knf  # type: ignore[import-untyped]

    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.samp_freq = 16_000
    options.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(16_000, audio_16k.tolist())
    fbank.input_finished()
    frames = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)
    out: FloatArray = frames - frames.mean(axis=0, keepdims=True)
    return out


def _model_identity(path: Path) -> bytes:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()


class PromptProcessor:
    """Runs the prompt models, with a disk cache in front of them."""

    def __init__(self, model_dir: Path, cache_dir: Path | None) -> None:
        self._model_dir = model_dir
        self._cache_dir = cache_dir
        self._sessions: dict[str, Any] = {}

    def _session(self, name: str) -> Any:
        if name not in self._sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = 1
            self._sessions[name] = onnxruntime.InferenceSession(
                str(self._model_dir / name), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[name]

    def cache_key(self, wav: bytes) -> str:
        """Hex digest of the WAV content and the identities of both models."""
        digest = hashlib.sha256(_CACHE_VERSION)
        digest.update(hashlib.sha256(wav).digest())
        for name in (TOKENIZER_FILE, SPEAKER_FILE):
            digest.update(_model_identity(self._model_dir / name))
        return digest.hexdigest()[:32]

    def features(self, wav_path: Path) -> PromptFeatures:
        """Return the prompt's features, from the disk cache when the same WAV and models were seen."""
        try:
            wav = wav_path.read_bytes()
        except OSError as err:
            raise PromptError(f"cannot read voice prompt {wav_path}: {err}") from err
        key = self.cache_key(wav)
        cached = self._load(key)
        if cached is not None:
            return cached
        features = self.compute(wav_path)
        self._store(key, features)
        return features

    def compute(self, wav_path: Path) -> PromptFeatures:
        """Run both models on the prompt."""
        audio, rate = _read_audio(wav_path)
        if audio.size > MAX_PROMPT_SECONDS * rate:
            # Every answer attends to the whole prompt: a long one costs time and memory, not quality.
            _LOGGER.warning("using the first %d s of the %.0f s voice prompt", MAX_PROMPT_SECONDS, audio.size / rate)
            audio = audio[: MAX_PROMPT_SECONDS * rate]
        audio_16k = resample(audio, rate, 16_000)
        if audio_16k.size < 16_000 * 0.5 or float(np.abs(audio_16k).max(initial=0.0)) < 1e-4:
            raise PromptError(f"voice prompt {wav_path} is shorter than 0.5 s or silent; use a clean 3-10 s clip")
        feats = whisper_log_mel(audio_16k)[None]
        tokenizer = self._session(TOKENIZER_FILE)
        inputs = tokenizer.get_inputs()
        codes = tokenizer.run(
            None, {inputs[0].name: feats, inputs[1].name: np.array([feats.shape[2]], dtype=np.int32)}
        )[0]
        tokens = [int(c) for c in np.asarray(codes).reshape(-1)]
        speaker = self._session(SPEAKER_FILE)
        embedding = np.asarray(
            speaker.run(None, {speaker.get_inputs()[0].name: kaldi_fbank(audio_16k)[None]})[0], dtype=np.float32
        ).reshape(1, -1)
        if len(tokens) < 4:
            raise PromptError(f"voice prompt {wav_path} gave only {len(tokens)} speech tokens")
        mel = fit_mel(prompt_mel(resample(audio, rate, 24_000)), 2 * len(tokens))
        return PromptFeatures(tuple(tokens), embedding, mel)

    def _path(self, key: str) -> Path | None:
        return None if self._cache_dir is None else self._cache_dir / f"prompt-{key}.npz"

    def _load(self, key: str) -> PromptFeatures | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as data:
                return PromptFeatures(
                    tuple(int(t) for t in data["tokens"]),
                    data["embedding"].astype(np.float32),
                    data["mel"].astype(np.float32),
                )
        except (OSError, ValueError, KeyError) as err:
            _LOGGER.warning("ignoring unreadable voice cache %s: %s", path, err)
            return None

    def _store(self, key: str, features: PromptFeatures) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp.npz")
            np.savez(
                partial,
                tokens=np.array(features.tokens, dtype=np.int32),
                embedding=features.embedding,
                mel=features.mel,
            )
            partial.replace(path)
        except OSError as err:
            _LOGGER.warning("could not write voice cache %s: %s", path, err)


def _read_audio(path: Path) -> tuple[FloatArray, int]:
    try:
        return decode_mono(path)
    except AudioFormatError as err:
        raise PromptError(f"voice prompt {err}") from err
