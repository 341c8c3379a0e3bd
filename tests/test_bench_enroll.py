"""bench.enroll and bench.wakeword with an enrolled word, on the test takes (real models, a few seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.cli import main as cli
from assistant.listen.contours import pitch_contour
from bench import enroll, wakeword
from bench.retune import retuned

DATA = Path(__file__).parent / "data" / "enroll"
NEGATIVES = Path(__file__).parents[1] / "assistant" / "listen" / "data" / "negatives"


def test_an_enrolled_word_is_evaluable_by_bench_wakeword(tmp_path: Path) -> None:
    """A positives folder named as the enrolled word is scored for it."""
    config = tmp_path / "config.yaml"
    config.write_text(f"wake:\n  enrolled_dir: {tmp_path / 'words'}\n  words:\n    - enrolled: 小乡小乡\n")
    assert cli(["wake", "--config", str(config), "enroll", "小乡小乡", *map(str, sorted(DATA.glob("enroll_*")))]) == 0
    (tmp_path / "pos" / "小乡小乡").mkdir(parents=True)
    shutil.copy(DATA / "test_quiet_3.wav", tmp_path / "pos" / "小乡小乡")
    (tmp_path / "neg").mkdir()
    shutil.copy(DATA / "near_xiangyin.wav", tmp_path / "neg")
    out = tmp_path / "figures.json"
    args = ["--positives", str(tmp_path / "pos"), "--negatives", str(tmp_path / "neg"), "--config", str(config)]
    assert wakeword.main([*args, "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["words"]["小乡小乡"]["detected"] == 1
    assert figures["words"]["小乡小乡"]["false_accepts"] == 0


def test_bench_enroll_reports_each_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On a one-speaker set the figures cover positives, near misses, the homophone apart and negatives."""
    (tmp_path / "s").mkdir()
    for name in ("enroll_1", "enroll_2", "enroll_3", "test_quiet_1", "near_zhang", "near_tone"):
        shutil.copy(DATA / f"{name}.wav", tmp_path / "s")
    (tmp_path / "negatives").mkdir()
    shutil.copy(NEGATIVES / "tv_00.wav", tmp_path / "negatives")
    speakers = {"s": {"enroll": [f"s/enroll_{i}.wav" for i in (1, 2, 3)]}}
    (tmp_path / "speakers.json").write_text(json.dumps(speakers))
    truth = [
        {"file": "s/test_quiet_1.wav", "speaker": "s", "kind": "positive", "condition": "quiet"},
        {"file": "s/near_zhang.wav", "speaker": "s", "kind": "near_miss", "condition": "quiet", "text": "小张小张"},
        {"file": "s/near_tone.wav", "speaker": "s", "kind": "near_miss", "condition": "quiet", "text": "晓翔晓翔"},
        {"file": "negatives/tv_00.wav", "speaker": None, "kind": "negative", "condition": "tv", "seconds": 22.0},
    ]
    (tmp_path / "truth.jsonl").write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in truth))
    out = tmp_path / "figures.json"
    args = ["--drops", "0.2,0.3", "--louder-tv", "10", "--retune", "0.75,1.3", "--rooms", "0.3:6", "--json", str(out)]
    assert enroll.main([str(tmp_path), *args]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert [r["drop"] for r in results] == [0.2, 0.3]
    assert "percent_accepted" in capsys.readouterr().out
    assert results[0]["counts"]["positive/quiet"] == "1/1"
    assert results[0]["counts"]["near_miss/小张小张"] in ("0/1", "1/1")
    assert results[0]["false_accepts_per_hour"] == 0.0
    assert results[0]["contours"] is True
    assert results[0]["counts"]["near_miss/晓翔晓翔"] == "0/1"
    assert results[0]["counts"]["positive/tv10_shipped"] in ("0/1", "1/1")  # the quiet positive, TV mixed in
    # The word with a narrower and a wider tune: the contour check takes both (it did not before the scales).
    assert (results[0]["counts"]["positive/retuned0.75"], results[0]["counts"]["positive/retuned1.3"]) == ("1/1", "1/1")
    assert results[0]["counts"]["positive/room0.3s6dB"] == "1/1", "heard through a small room"


def test_bench_enroll_refuses_a_room_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        enroll.main(["somewhere", "--rooms", "0.5"])
    assert exited.value.code == 2
    assert "'0.5' is not RT60:DRR" in capsys.readouterr().err


@pytest.mark.parametrize("k", [0.6, 1.5])
def test_retuning_scales_the_pitch_range_and_keeps_the_length(k: float) -> None:
    """A voice gliding over 7 semitones, retuned by k, glides over about 7 k semitones, as long as before."""
    rate = 16_000
    hz = 120 * 2 ** (np.linspace(0.0, 7.0, rate) / 12)
    phase = 2 * np.pi * np.cumsum(hz) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 12)) * np.hanning(rate) ** 0.2
    pcm = (0.3 * voice * 32767).astype("<i2").tobytes()
    before = pitch_contour(np.frombuffer(pcm, dtype="<i2"))
    after = pitch_contour(np.frombuffer(retuned(pcm, k), dtype="<i2"))
    spread = float(np.percentile(after, 90) - np.percentile(after, 10))
    assert spread == pytest.approx(k * float(np.percentile(before, 90) - np.percentile(before, 10)), rel=0.15)
    assert len(retuned(pcm, k)) == len(pcm)


def test_bench_enroll_without_contours_scores_the_template_match_alone(tmp_path: Path) -> None:
    """--no-contours gives the figures of the template match alone, which takes the tone-changed word."""
    (tmp_path / "s").mkdir()
    for name in ("enroll_1", "enroll_2", "enroll_3", "enroll_4", "near_tone"):
        shutil.copy(DATA / f"{name}.wav", tmp_path / "s")
    (tmp_path / "negatives").mkdir()
    shutil.copy(NEGATIVES / "tv_00.wav", tmp_path / "negatives")
    speakers = {"s": {"enroll": [f"s/enroll_{i}.wav" for i in (1, 2, 3, 4)]}}
    (tmp_path / "speakers.json").write_text(json.dumps(speakers))
    truth = [
        {"file": "s/near_tone.wav", "speaker": "s", "kind": "near_miss", "condition": "quiet", "text": "晓翔晓翔"},
        {"file": "negatives/tv_00.wav", "speaker": None, "kind": "negative", "condition": "tv", "seconds": 22.0},
    ]
    (tmp_path / "truth.jsonl").write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in truth))
    checked, alone = (enroll.evaluate(tmp_path, drops=[0.12], variant="mean", contours=c)[0] for c in (True, False))
    assert (checked["counts"]["near_miss/晓翔晓翔"], alone["counts"]["near_miss/晓翔晓翔"]) == ("0/1", "1/1")
    assert (checked["contours"], alone["contours"]) == (True, False)
