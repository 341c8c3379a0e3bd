"""Recordings made elsewhere (a phone, a PC, an evaluation set), read as the 16 kHz mono audio we use.

People enrol their wake word from files their phone or PC wrote: 44.1 or 48 kHz, stereo, 24-bit or
float WAV, FLAC. Refusing those, or asking an elderly user's grandchild to run sox first, loses the
recording; so what the standard library's WAV reader cannot take goes to libsndfile, is mixed down to
mono, and everything is resampled with libsoxr.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from .audio import MIC_RATE_HZ, AudioChunk, AudioFormatError, NotPlainWavError, read_wav

MIN_RATE_HZ = 8000
"""Lowest sample rate, in Hz, of a file taken as a recording."""
MAX_RATE_HZ = 192_000
"""Highest sample rate, in Hz, of a file taken as a recording (a damaged header may claim GHz, or 1 Hz,
which resampling would blow up into gigabytes)."""


def read_recording(path: Path, rate_hz: int = MIC_RATE_HZ, *, max_seconds: float | None = None) -> AudioChunk:
    """The file's audio as mono 16-bit PCM at ``rate_hz``, or an :class:`AudioFormatError` naming the file.

    Channels are averaged. A file of 16-bit mono PCM already at ``rate_hz`` comes back bit for bit, and a
    WAV cut short is refused as :func:`read_wav` refuses it. ``max_seconds`` refuses a longer file before
    it is decoded, where libsndfile can read its header (seconds; None: no limit).
    """
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError, ValueError, TypeError):  # LibsndfileError is a RuntimeError
        info = None  # not a file libsndfile knows: read_wav below says what is wrong with it
    if info is not None and max_seconds is not None and info.duration > max_seconds:
        raise AudioFormatError(f"{path}: {info.duration:.0f} s long; at most {max_seconds:.0f} s is read")
    try:
        audio = read_wav(path)
    except NotPlainWavError:
        if info is None:
            raise
        _check_rate(path, info.samplerate)
        samples, rate = decode_mono(path)
    else:
        rate = audio.rate_hz
        _check_rate(path, rate)
        if rate == rate_hz:
            return audio
        samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float32) / 32768.0
    return AudioChunk(_to_pcm(resample(samples, rate, rate_hz)), rate_hz)


def decode_mono(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Any file libsndfile reads, as float samples in [-1, 1] (channels averaged) and its rate in Hz."""
    import soundfile

    try:
        decoded, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as err:  # LibsndfileError is a RuntimeError
        raise AudioFormatError(f"{path}: not a readable audio file ({err})") from err
    samples: npt.NDArray[np.float32] = np.ascontiguousarray(decoded.mean(axis=1), dtype=np.float32)
    if not np.isfinite(samples).all():
        raise AudioFormatError(f"{path}: holds samples that are not numbers (NaN or infinity)")
    return samples, int(rate)


def _check_rate(path: Path, rate_hz: int) -> None:
    if not MIN_RATE_HZ <= rate_hz <= MAX_RATE_HZ:
        raise AudioFormatError(
            f"{path}: a sample rate of {rate_hz} Hz is not a recording ({MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)"
        )


def resample(samples: npt.NDArray[np.float32], from_hz: int, to_hz: int) -> npt.NDArray[np.float32]:
    """High-quality resampling of a whole recording (libsoxr)."""
    if from_hz == to_hz:
        return samples
    import soxr

    out: npt.NDArray[np.float32] = soxr.resample(samples, from_hz, to_hz).astype(np.float32)
    return out


def _to_pcm(samples: npt.NDArray[np.float32]) -> bytes:
    """Floats in [-1, 1] as 16-bit PCM; louder samples are clipped, never wrapped."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
