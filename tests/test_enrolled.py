"""Enrolled wake words: the template matcher, threshold calibration and the take checks (no models)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import MIC_RATE_HZ, AudioChunk, write_wav
from assistant.listen.enrolled import (
    DtwMatcher,
    EnrollmentError,
    MeanPoolMatcher,
    calibrate_threshold,
    leave_one_out,
    peak_score,
)
from assistant.listen.enrolment import TakeError, WordStore, read_take, trim_take

_RNG = np.random.default_rng(0)
_WORD = _RNG.normal(size=(12, 96)).astype(np.float32)


def _noisy(frames: np.ndarray, scale: float = 0.3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (frames + scale * rng.normal(size=frames.shape)).astype(np.float32)


def _stream(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def test_dtw_scores_the_word_inside_a_stream_near_one() -> None:
    """A noisy repeat of a template, between unrelated frames, scores far above the unrelated frames."""
    matcher = DtwMatcher([_WORD])
    other = _RNG.normal(size=(30, 96)).astype(np.float32)
    assert peak_score(matcher, _stream(other, _noisy(_WORD), other)) > 0.85
    assert peak_score(matcher, other) < 0.6


def test_dtw_follows_a_slower_repeat() -> None:
    """Said slower (each frame twice), the word still matches."""
    assert peak_score(DtwMatcher([_WORD]), np.repeat(_noisy(_WORD, 0.2), 2, axis=0)) > 0.8


def test_dtw_keeps_order_where_mean_pooling_does_not() -> None:
    """The halves swapped (乡小 for 小乡) fool the mean but not DTW."""
    swapped = np.concatenate((_WORD[6:], _WORD[:6]))
    assert peak_score(MeanPoolMatcher([_WORD]), swapped) > 0.99
    assert peak_score(DtwMatcher([_WORD]), swapped) < 0.8


def test_half_the_word_scores_below_the_whole() -> None:
    """The path must reach the template's last frame, so half the word is not enough."""
    matcher = DtwMatcher([_WORD])
    assert peak_score(matcher, _WORD[:6]) < peak_score(matcher, _WORD) - 0.2


def test_centering_removes_the_shared_part() -> None:
    """Embeddings with a large common offset look alike until the offset is subtracted."""
    offset = np.full(96, 20.0, dtype=np.float32)
    other = _RNG.normal(size=(12, 96)).astype(np.float32)
    assert peak_score(DtwMatcher([_WORD + offset]), other + offset) > 0.9
    assert peak_score(DtwMatcher([_WORD + offset], center=offset), other + offset) < 0.6


def test_reset_forgets_partial_paths() -> None:
    """After reset, the second half alone does not complete a path begun before."""
    matcher = DtwMatcher([_WORD])
    for row in _WORD[:6]:
        matcher.push(row)
    matcher.reset()
    assert max(matcher.push(row) for row in _WORD[6:]) < 0.8


def test_leave_one_out_scores_each_take_against_the_others() -> None:
    """Three noisy repeats of one word score high against each other."""
    takes = [_noisy(_WORD, 0.3, seed) for seed in (1, 2, 3)]
    scores = leave_one_out(takes, takes)
    assert len(scores) == 3 and min(scores) > 0.8


def test_calibration_sits_above_the_negatives_and_below_the_takes() -> None:
    """The threshold sits `drop` under the takes' median, above the negatives' peak, floored and capped."""
    assert calibrate_threshold([0.9, 0.94, 0.96], 0.55, drop=0.2).threshold == pytest.approx(0.74)
    assert calibrate_threshold([0.9, 0.94, 0.96], 0.8, drop=0.2, margin=0.03).threshold == pytest.approx(0.83)
    assert calibrate_threshold([0.7, 0.72, 0.96], 0.3, drop=0.2).threshold == pytest.approx(0.6)
    assert calibrate_threshold([0.9, 0.94, 0.96], 0.95, drop=0.2).threshold == pytest.approx(0.9)


def test_matchers_refuse_no_templates() -> None:
    """An empty word is a typed error."""
    with pytest.raises(EnrollmentError):
        DtwMatcher([])
    with pytest.raises(EnrollmentError):
        DtwMatcher([np.zeros((0, 96))])


# --- take checks, with a fake embedder and VAD -------------------------------------------------


def _tone(seconds: float, level: float = 0.3, noise: float = 0.001, margin: float = 0.4) -> AudioChunk:
    rng = np.random.default_rng(int(seconds * 1000))
    t = np.arange(int(seconds * MIC_RATE_HZ)) / MIC_RATE_HZ
    word = level * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    pad = np.zeros(int(margin * MIC_RATE_HZ))
    signal = np.concatenate((pad, word, pad)) + noise * rng.normal(size=len(pad) * 2 + len(word))
    return AudioChunk((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes(), MIC_RATE_HZ)


def _loud_frames(pcm: bytes) -> list[float]:
    """A stand-in VAD: a 512-sample frame is speech when it is louder than -16 dBFS."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    frames = samples[: len(samples) // 512 * 512].reshape(-1, 512)
    return [1.0 if np.sqrt(np.mean(f**2)) > 0.15 else 0.0 for f in frames]


def _fake_embed(pcm: bytes) -> np.ndarray:
    """Takes of the same length embed alike (the word), others as unrelated frames."""
    frames = max(8, len(pcm) // 2 // 1280)
    digest = hashlib.sha256(pcm).digest()
    noise = np.random.default_rng(int.from_bytes(digest[:4], "little")).normal(size=(frames, 96))
    if abs(len(pcm) - len(_tone(1.0).pcm)) < 2 * MIC_RATE_HZ * 0.05:
        return (np.resize(_WORD, (frames, 96)) + 0.2 * noise).astype(np.float32)
    return noise.astype(np.float32)


def _store(tmp_path: Path) -> WordStore:
    return WordStore(tmp_path / "wake", reserved=("hey_jarvis", "alexa"))


def _enrol(store: WordStore, name: str, takes: list[tuple[str, AudioChunk]]) -> object:
    return store.enrol(name, takes, embed=_fake_embed, speech_frames=_loud_frames)


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (AudioChunk(b"", MIC_RATE_HZ), "empty"),
        (AudioChunk(bytes(32000), MIC_RATE_HZ), "silent"),
        (_tone(1.0, level=1.5), "clipped"),
        (_tone(0.15), "too short"),
        (_tone(30.0), "too long"),
        (_tone(1.0, noise=0.1), "too noisy"),
    ],
)
def test_a_bad_take_is_refused_naming_it_and_why(audio: AudioChunk, reason: str) -> None:
    """Each bad take raises a TakeError with its label and the reason."""
    with pytest.raises(TakeError) as caught:
        trim_take("take3.wav", audio, _loud_frames)
    assert caught.value.take == "take3.wav"
    assert reason in str(caught.value)


def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    """A file that is not a WAV names itself."""
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(TakeError, match="broken.wav: not a readable WAV file"):
        read_take(path)


def test_a_take_at_another_rate_is_read_at_16_khz(tmp_path: Path) -> None:
    """A CD-rate take is resampled, keeping its length."""
    path = tmp_path / "cd.wav"
    write_wav(path, AudioChunk(bytes(2 * 44100), 44100))
    take = read_take(path)
    assert take.rate_hz == 16_000 and take.samples == 16_000


def test_a_take_file_too_long_to_be_a_take_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A file of minutes is named as too long, not decoded."""
    path = tmp_path / "meeting.wav"
    write_wav(path, AudioChunk(bytes(2 * 16_000 * 121)))
    with pytest.raises(TakeError, match="meeting.wav: 121 s long"):
        read_take(path)


def test_trimming_keeps_the_speech_and_margins() -> None:
    """A take with 2 s of silence around the word is cut to the word plus 0.3 s either side."""
    trimmed = trim_take("t.wav", _tone(1.0, margin=2.0), _loud_frames)
    assert 1.4 < trimmed.seconds < 1.8


def test_one_take_is_not_enough(tmp_path: Path) -> None:
    """Fewer than three takes are refused and nothing is written."""
    store = _store(tmp_path)
    with pytest.raises(EnrollmentError, match="at least 3 takes"):
        _enrol(store, "小乡小乡", [("a.wav", _tone(1.0))])
    assert store.names() == []


def test_a_bundled_name_is_refused(tmp_path: Path) -> None:
    """A name that clashes with a bundled word is refused."""
    with pytest.raises(EnrollmentError, match="bundled"):
        _enrol(_store(tmp_path), "hey_jarvis", [(f"{i}.wav", _tone(1.0)) for i in range(3)])


def test_a_take_unlike_the_others_is_refused(tmp_path: Path) -> None:
    """A take of another word (here: another length, so the fake embeds it differently) is named."""
    takes = [(f"{i}.wav", _tone(1.0)) for i in range(3)] + [("odd.wav", _tone(2.0))]
    with pytest.raises(TakeError, match="odd.wav: too unlike"):
        _enrol(_store(tmp_path), "小乡小乡", takes)


def test_enrolling_again_adds_takes(tmp_path: Path) -> None:
    """A second enrolment under the same name keeps the first takes and adds the new ones."""
    store = _store(tmp_path)
    _enrol(store, "小乡小乡", [(f"{i}.wav", _tone(1.0)) for i in range(3)])
    _enrol(store, "小乡小乡", [("more.wav", _tone(1.0))])
    info = store.info("小乡小乡")
    assert info["takes"] == ["take_1", "take_2", "take_3", "take_4"]
    assert len(store.load("小乡小乡").templates) == 4
    assert (store.root / "小乡小乡" / "take_4.wav").is_file()


def test_a_full_disk_leaves_no_half_written_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed write leaves no word.json and no temporary files; the word does not exist."""
    store = _store(tmp_path)

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError):
        _enrol(store, "小乡小乡", [(f"{i}.wav", _tone(1.0)) for i in range(3)])
    folder = store.root / "小乡小乡"
    assert store.names() == []
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))


def test_remove_deletes_the_word(tmp_path: Path) -> None:
    """Remove takes the folder away; removing an unknown word is an error."""
    store = _store(tmp_path)
    _enrol(store, "小乡小乡", [(f"{i}.wav", _tone(1.0)) for i in range(3)])
    store.remove("小乡小乡")
    assert store.names() == []
    with pytest.raises(EnrollmentError, match="no enrolled wake word"):
        store.remove("小乡小乡")


def test_a_damaged_word_is_a_clear_error(tmp_path: Path) -> None:
    """A word.json that lost its takes' files says to enrol again."""
    store = _store(tmp_path)
    _enrol(store, "w", [(f"{i}.wav", _tone(1.0)) for i in range(3)])
    (store.root / "w" / "take_1.npy").unlink()
    with pytest.raises(EnrollmentError, match="damaged"):
        store.load("w")
    json.loads((store.root / "w" / "word.json").read_text(encoding="utf-8"))
