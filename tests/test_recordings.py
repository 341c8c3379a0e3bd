"""Recordings from elsewhere (phones, PCs) are read as 16 kHz mono, or refused with the file's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from assistant.audio import AudioChunk, AudioFormatError, write_wav
from assistant.recordings import read_recording

RATE = 16_000


def _tone(rate_hz: int, seconds: float = 1.0, hz: float = 440.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _peak_hz(audio: AudioChunk) -> float:
    samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / audio.rate_hz)[spectrum.argmax()])


def _level(audio: AudioChunk) -> float:
    return float(np.sqrt(np.mean((np.frombuffer(audio.pcm, dtype="<i2") / 32768.0) ** 2)))


@pytest.mark.parametrize(
    ("rate_hz", "channels", "subtype", "fmt"),
    [
        (48_000, 2, "PCM_16", "WAV"),  # a phone
        (44_100, 2, "PCM_24", "WAV"),  # a PC's recorder, written as WAVE_FORMAT_EXTENSIBLE
        (44_100, 1, "FLOAT", "WAV"),  # Audacity's default export
        (22_050, 1, "PCM_U8", "WAV"),
        (8_000, 1, "PCM_16", "WAV"),  # a telephone
        (48_000, 1, "PCM_16", "FLAC"),
    ],
)
def test_any_rate_layout_and_format_reads_as_16_khz_mono_with_its_pitch_length_and_level(
    tmp_path: Path, rate_hz: int, channels: int, subtype: str, fmt: str
) -> None:
    path = tmp_path / f"take.{fmt.lower()}"
    tone = _tone(rate_hz)
    soundfile.write(path, np.stack([tone] * channels, axis=1), rate_hz, subtype=subtype, format=fmt)
    audio = read_recording(path)
    assert audio.rate_hz == RATE
    assert audio.samples == pytest.approx(RATE, abs=2)
    assert _peak_hz(audio) == pytest.approx(440.0, abs=2.0)
    assert _level(audio) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)


def test_a_16_khz_mono_16_bit_wav_comes_back_bit_for_bit(tmp_path: Path) -> None:
    pcm = np.random.default_rng(0).integers(-32768, 32767, RATE, dtype=np.int16).astype("<i2").tobytes()
    write_wav(tmp_path / "ours.wav", AudioChunk(pcm))
    assert read_recording(tmp_path / "ours.wav") == AudioChunk(pcm)


def test_stereo_channels_are_averaged(tmp_path: Path) -> None:
    """A recorder that puts the voice on one channel only still gives the voice, at half the level."""
    tone = _tone(RATE)
    soundfile.write(tmp_path / "left.wav", np.stack([tone, np.zeros_like(tone)], axis=1), RATE, subtype="PCM_16")
    assert _level(read_recording(tmp_path / "left.wav")) == pytest.approx(0.25 / np.sqrt(2), rel=0.03)


def test_a_float_file_louder_than_full_scale_is_clipped_not_wrapped(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "hot.wav", _tone(RATE, level=2.0), RATE, subtype="FLOAT")
    samples = np.frombuffer(read_recording(tmp_path / "hot.wav").pcm, dtype="<i2")
    assert samples.max() == 32767 and samples.min() == -32768
    assert (np.diff(samples.astype(np.int32)) > -20000).all(), "no jump from +full scale to -full scale"


def test_a_float_file_holding_nan_is_refused(tmp_path: Path) -> None:
    samples = _tone(RATE)
    samples[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", samples, RATE, subtype="FLOAT")
    with pytest.raises(AudioFormatError, match="nan.wav: holds samples that are not numbers"):
        read_recording(tmp_path / "nan.wav")


def test_an_empty_file_is_empty_audio(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 2), dtype=np.float32), 44_100, subtype="PCM_16")
    assert read_recording(tmp_path / "empty.wav") == AudioChunk(b"")


@pytest.mark.parametrize(
    "content", [b"RIFF\x00\x00garbage", b"", b"\x89PNG\r\n\x1a\n" + bytes(100)], ids=["riff-garbage", "empty", "png"]
)
def test_a_file_that_is_not_audio_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFormatError, match="broken.wav: not a readable WAV file"):
        read_recording(path)


def test_a_wav_cut_short_is_refused_as_truncated(tmp_path: Path) -> None:
    write_wav(tmp_path / "cut.wav", AudioChunk(bytes(2 * RATE)))
    (tmp_path / "cut.wav").write_bytes((tmp_path / "cut.wav").read_bytes()[:3000])
    with pytest.raises(AudioFormatError, match="cut.wav: truncated"):
        read_recording(tmp_path / "cut.wav")


def test_a_missing_file_or_a_folder_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="gone.wav: cannot be read: No such file"):
        read_recording(tmp_path / "gone.wav")
    with pytest.raises(AudioFormatError, match="cannot be read: Is a directory"):
        read_recording(tmp_path)


def test_a_header_claiming_an_impossible_rate_is_refused_before_resampling(tmp_path: Path) -> None:
    """1 Hz would be resampled into 16,000 times the samples."""
    write_wav(tmp_path / "odd.wav", AudioChunk(bytes(2 * RATE), rate_hz=1))
    with pytest.raises(AudioFormatError, match="odd.wav: a sample rate of 1 Hz is not a recording"):
        read_recording(tmp_path / "odd.wav")


def test_a_file_longer_than_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    write_wav(tmp_path / "long.wav", AudioChunk(bytes(2 * RATE * 10)))
    with pytest.raises(AudioFormatError, match="long.wav: 10 s long; at most 5 s"):
        read_recording(tmp_path / "long.wav", max_seconds=5.0)
    assert read_recording(tmp_path / "long.wav", max_seconds=10.0).seconds == 10.0
