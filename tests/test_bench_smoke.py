"""The benchmarks' core functions run end to end on two clips (their figures come from bench/, not tests)."""

from __future__ import annotations

import asyncio
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import write_wav
from bench import endpoint, soak, synth, tool_dispatch, wakeword

spoken_clips = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the benchmark audio")


@pytest.mark.models
@spoken_clips
def test_wakeword_bench_counts_detections_and_false_accepts_on_two_clips() -> None:
    positives = wakeword.make_positives(voices=("en-gb",), speeds=(165,))[:1]  # "alexa", clean
    negatives = [wakeword.make_negatives(0.0)[0]]  # noise
    result = wakeword.evaluate("microwakeword", positives, negatives)
    assert result.detected == {"alexa": 1}
    assert result.false_accepts == 0
    assert result.cpu_per_audio_hour > 0
    assert "microwakeword" in wakeword.table([result])


def _room_clip(directory: Path, name: str, *, tv_db: float | None, pause: float = 0.0) -> dict[str, object]:
    """Background, the wake word, then a question (optionally with a pause), as bench.endpoint reads them."""
    wake = synth.trim(synth.espeak("hey jarvis", "en-us"))
    first = synth.trim(synth.espeak("what is the weather like", "en-us"))
    second = synth.trim(synth.espeak("tomorrow in Beijing", "en-us"))
    question = np.concatenate([first, np.zeros(round(pause * synth.RATE)), second])
    lead = np.zeros(3 * synth.RATE)
    gap = np.zeros(round(0.4 * synth.RATE))
    clean = np.concatenate([lead, wake, gap, question, np.zeros(5 * synth.RATE)])
    mixed = clean.copy()
    if tv_db is not None:
        tv = synth.trim(synth.espeak("the news tonight is about the weather and the markets " * 6, "en-gb+f2", 180))
        tv = np.resize(tv, len(clean))
        mixed += tv / np.sqrt(np.mean(tv**2)) * np.sqrt(np.mean(question**2)) * 10 ** (-tv_db / 20)
    write_wav(directory / f"{name}.wav", synth.to_chunk(mixed))
    start = len(lead) + len(wake) + 0.1 * synth.RATE
    end = (len(lead) + len(wake) + len(gap)) / synth.RATE + synth.speech_end(question)
    return {"file": f"{name}.wav", "listen_start_s": start / synth.RATE, "speech_end_s": end, "condition": name}


@pytest.mark.models
@spoken_clips
def test_endpoint_bench_hears_clips_through_the_daemons_listening_path(tmp_path: Path) -> None:
    truths = [
        _room_clip(tmp_path, "quiet", tv_db=None),
        _room_clip(tmp_path, "tv", tv_db=10.0),
        _room_clip(tmp_path, "paused", tv_db=None, pause=2.0),
    ]
    (tmp_path / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truths))
    normal, problems, cpu = endpoint.run(tmp_path, endpoint.load_settings(None, "normal"))
    assert problems == [] and cpu > 0
    by_name = {r.condition: r for r in normal}
    assert by_name["quiet"].outcome == "ended" and not by_name["quiet"].cut_off
    assert by_name["tv"].outcome == "ended", "the TV talking on does not hold the turn open to max_speech"
    assert by_name["paused"].cut_off, "the normal profile does not wait 2 s"
    patient, _, _ = endpoint.run(tmp_path, endpoint.load_settings(None, "patient"))
    summary = endpoint.report(patient)
    assert summary["conditions"]["quiet"]["cut_off"] == 0
    assert "| tv |" in endpoint.table(summary, "set")


@pytest.mark.models
@spoken_clips
def test_endpoint_bench_names_the_file_of_every_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _room_clip(tmp_path, "quiet", tv_db=None)
    (tmp_path / "stereo.wav").write_bytes((tmp_path / "quiet.wav").read_bytes()[:44])
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(64000))
    with wave.open(str(tmp_path / "cd.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(44100)
        wav.writeframes(bytes(176400))
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not a wave")
    lines = [good, *({**good, "file": name} for name in ("stereo.wav", "cd.wav", "corrupt.wav", "missing.wav"))]
    (tmp_path / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in lines))
    results, problems, _ = endpoint.run(tmp_path, endpoint.load_settings(None, None))
    assert [r.file for r in results] == ["quiet.wav"]
    assert len(problems) == 4
    for name, words in (("stereo", "mono"), ("cd", "44100 Hz"), ("corrupt", "not a readable"), ("missing", "missing")):
        assert any(f"{name}.wav" in p and words in p for p in problems), (name, problems)
    write_wav(tmp_path / "unlisted.wav", synth.to_chunk(np.zeros(1600)))
    _, problems, _ = endpoint.run(tmp_path, endpoint.load_settings(None, None))
    assert any("unlisted.wav" in p and "no line in" in p for p in problems)
    (tmp_path / "truth.jsonl").write_text('{"file": "quiet.wav", "listen_start_s": 3.0}\n')
    assert endpoint.main(["--clips", str(tmp_path)]) == 2
    assert "truth.jsonl:1" in capsys.readouterr().err


def test_tool_dispatch_bench_builds_every_skill_it_can_and_prints_its_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(tool_dispatch.main(calls=50))
    out = capsys.readouterr().out
    assert "through ToolRegistry.call" in out
    assert "built-in tools" in out


@pytest.mark.broker
async def test_soak_bench_runs_some_turns_and_prints_a_row_per_sample_and_the_totals() -> None:
    result = await soak.run_soak(40, warmup=10, every=15)
    assert result.turns >= 40 and not result.books.open
    turns = [sample.turns for sample in result.samples]
    assert len(turns) >= 3 and turns == sorted(turns)
    assert soak.row(result.samples[0]).split()[0] == str(result.samples[0].turns)
    assert "turns/s" in soak.summary(result) and "growth per 1,000 turns" in soak.summary(result)
