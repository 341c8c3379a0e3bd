"""bench.make_sets writes endpoint clips whose truth file matches the audio (espeak-ng only, a dozen clips)."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from bench import make_sets

spoken = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng speaks the clips")


def read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def level_db(samples: np.ndarray) -> float:
    return 20 * float(np.log10(np.sqrt(np.mean(samples**2)) / 32768 + 1e-12))


@pytest.fixture(scope="module")
def endpoint_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    out = tmp_path_factory.mktemp("sets") / "endpoint"
    make_sets.main(["endpoint", str(out), "--quick", "--engines", "espeak"])
    rows = [json.loads(line) for line in (out / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    return out, rows


@spoken
def test_quick_endpoint_set_has_two_clips_of_each_condition_in_every_language(
    endpoint_set: tuple[Path, list[dict[str, object]]],
) -> None:
    out, rows = endpoint_set
    assert sorted(str(r["condition"]) for r in rows) == sorted(make_sets.CONDITIONS * 2)
    assert {r["language"] for r in rows} == {"en", "cmn", "yue"}
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(str(r["file"]) for r in rows)
    assert "python -m bench.make_sets endpoint" in (out / "README.md").read_text(encoding="utf-8")


@spoken
def test_truth_times_fit_the_audio(endpoint_set: tuple[Path, list[dict[str, object]]]) -> None:
    out, rows = endpoint_set
    for row in rows:
        samples = read(out / str(row["file"]))
        listen, end = float(row["listen_start_s"]), float(row["speech_end_s"])  # type: ignore[arg-type]
        assert 2.5 <= float(row["wake_start_s"]) <= 4.0  # type: ignore[arg-type]
        assert listen == pytest.approx(float(row["wake_end_s"]) + 0.1, abs=0.002)  # type: ignore[arg-type]
        assert listen + 0.2 <= float(row["question_start_s"]) <= listen + 0.8  # type: ignore[arg-type]
        assert end > listen + 0.5
        assert len(samples) / 16_000 - end >= 4.5
        # The question is there: the second after its start is far louder than the tail's last second.
        start = round(float(row["question_start_s"]) * 16_000)  # type: ignore[arg-type]
        assert level_db(samples[start : start + 16_000]) > level_db(samples[-16_000:]) + 5


@spoken
def test_slow_speakers_pause_mid_sentence(endpoint_set: tuple[Path, list[dict[str, object]]]) -> None:
    _, rows = endpoint_set
    slow = [r for r in rows if str(r["condition"]).startswith("slow")]
    for row in slow:
        pauses = row["pauses_s"]
        assert isinstance(pauses, list) and 1 <= len(pauses) <= 3
        assert all(1.0 <= p <= 2.5 for p in pauses)
        spoken = float(row["speech_end_s"]) - float(row["question_start_s"])  # type: ignore[arg-type]
        assert spoken > sum(pauses)
    assert all(r["pauses_s"] == [] for r in rows if r not in slow)


@spoken
def test_the_tv_talks_before_the_wake_word_and_quiet_rooms_are_quiet(
    endpoint_set: tuple[Path, list[dict[str, object]]],
) -> None:
    out, rows = endpoint_set
    for row in rows:
        samples = read(out / str(row["file"]))
        lead = samples[: round(float(row["wake_start_s"]) * 16_000)]  # type: ignore[arg-type]
        below_speech = float(row["speech_dbfs"]) - level_db(lead)  # type: ignore[arg-type]
        condition = str(row["condition"])
        if condition in make_sets.TV_DB:
            assert row["tv"]["voices"]  # type: ignore[index]
            assert make_sets.TV_DB[condition] - 6 < below_speech < make_sets.TV_DB[condition] + 6, row
        elif condition == "low":
            assert 12 < below_speech < 30, row
        else:
            assert below_speech > 18, row


@spoken
def test_the_same_seed_gives_the_same_clips_and_another_seed_other_ones(tmp_path: Path) -> None:
    def clip(folder: str, seed: int) -> bytes:
        args = ["endpoint", str(tmp_path / folder), "--engines", "espeak", "--conditions", "tv10:1"]
        make_sets.main([*args, "--seed", str(seed)])
        return (tmp_path / folder / "truth.jsonl").read_bytes() + next((tmp_path / folder).glob("*.wav")).read_bytes()

    assert clip("a", 0) == clip("b", 0) != clip("c", 1)


@spoken
def test_a_missing_engine_is_skipped_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sets.main(["endpoint", str(tmp_path / "e"), "--engines", "espeak,nosuch", "--conditions", "quiet:1"])
    said = capsys.readouterr().out.splitlines()
    assert [line for line in said if "nosuch" in line] == ["skipping nosuch: unknown engine nosuch"]
    assert len(list((tmp_path / "e").glob("*.wav"))) == 1


def test_it_will_not_write_into_a_folder_that_holds_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SystemExit, match="not empty"):
        make_sets.main(["endpoint", str(tmp_path), "--quick"])
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_checked_in_rooms_match_their_truth() -> None:
    rooms = Path(__file__).parent / "data" / "listen" / "rooms"
    rows = [json.loads(line) for line in (rooms / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["condition"] for r in rows} == {"quiet", "tv10", "slow"}
    assert sum(p.stat().st_size for p in rooms.iterdir()) < 2_000_000
    for row in rows:
        samples = read(rooms / row["file"])
        assert row["listen_start_s"] < row["speech_end_s"] <= len(samples) / 16_000 - 4.4
