"""The benchmarks' core functions run end to end on two clips (their figures come from bench/, not tests)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import read_wav, write_wav
from bench import endpoint, idle, soak, synth, tool_dispatch, wake_generated, wakeword
from bench.wake_scoring import ClipRun, score

DATA = Path(__file__).parent / "data" / "listen"

spoken_clips = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the benchmark audio")


@pytest.mark.models
@spoken_clips
def test_wakeword_bench_counts_detections_and_false_accepts_on_two_clips() -> None:
    positives = wake_generated.make_positives(voices=("en-gb",), speeds=(165,))[:1]  # "alexa", clean
    negatives = [wake_generated.make_negatives(0.0)[0]]  # noise
    result = wake_generated.evaluate("microwakeword", positives, negatives)
    assert result.detected == {"alexa": 1}
    assert result.false_accepts == 0
    assert result.cpu_per_audio_hour > 0
    assert "microwakeword" in wake_generated.table([result])


def raw_wav(path: Path, *, channels: int, rate_hz: int, seconds: float = 0.1) -> None:
    """16-bit silence in any layout."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(bytes(2 * channels * round(rate_hz * seconds)))


def phone_recording(source: Path, path: Path) -> None:
    """``source`` as a phone writes it: 44.1 kHz, stereo, 24-bit."""
    import soundfile
    import soxr

    samples = np.frombuffer(read_wav(source).pcm, dtype="<i2").astype(np.float32) / 32768
    resampled = soxr.resample(samples, 16_000, 44_100)
    soundfile.write(path, np.stack([resampled, 0.5 * resampled], axis=1), 44_100, subtype="PCM_24")


def folder_sets(root: Path) -> tuple[Path, Path]:
    """Tiny sets from the test clips, with the bad input the benchmark must name instead of crashing."""
    positives, negatives = root / "positives", root / "negatives" / "zh"
    for word, clip, end in (
        ("hey_jarvis", "hey_jarvis__en-us__s165__clean.wav", 1.9),
        ("alexa", "alexa__en-gb__s165__clean.wav", None),
    ):
        (positives / word).mkdir(parents=True)
        shutil.copy(DATA / clip, positives / word / clip)
        if end is not None:
            truth = [{"file": clip, "word_end_s": end}, {"file": "gone.wav", "word_end_s": 1.0}]
            (positives / word / "truth.jsonl").write_text("\n".join(json.dumps(t) for t in truth) + "\nnot json\n")
    shutil.copy(DATA / "okay_nabu__en-us_m3__s165__clean.wav", positives / "hey_jarvis" / "no_truth_line.wav")
    phone_recording(DATA / "alexa__en-gb__s165__clean.wav", positives / "alexa" / "phone.wav")
    raw_wav(positives / "alexa" / "empty.wav", channels=1, rate_hz=16_000, seconds=0.0)
    (positives / "alexa" / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage")
    (positives / "hey_computer").mkdir()
    negatives.mkdir(parents=True)
    shutil.copy(DATA / "neg_zh_cmn_10s.wav", negatives / "cmn.wav")
    return positives, root / "negatives"


@pytest.mark.models
def test_wakeword_bench_on_folders_scores_each_word_and_names_every_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    positives, negatives = folder_sets(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("wake:\n  words:\n    - model: hey_jarvis\n    - model: alexa\n")
    out = tmp_path / "figures.json"
    code = wakeword.main(
        ["--positives", str(positives), "--negatives", str(negatives), "--config", str(config), "--json", str(out)]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    figures = json.loads(out.read_text())
    assert figures["words"]["hey_jarvis"]["detected"] == 1 and figures["words"]["hey_jarvis"]["total"] == 2
    assert figures["words"]["alexa"]["detected"] == 2 and figures["words"]["alexa"]["total"] == 2, "phone.wav heard"
    assert figures["words"]["hey_jarvis"]["latencies_known"] == 1
    assert 0.0 < figures["words"]["hey_jarvis"]["latency_median_seconds"] < 1.0
    assert figures["words"]["alexa"]["false_accepts"] == 0 and figures["negative_hours"] > 0
    assert figures["cpu_seconds_per_audio_hour"] > 0 and figures["quiet_gate"] is True
    problems = {Path(p["file"]).name: p["problem"] for p in figures["problems"]}
    assert "holds no audio" in problems["empty.wav"]
    assert "not a readable WAV file" in problems["corrupt.wav"]
    assert "no line in truth.jsonl" in problems["no_truth_line.wav"]
    assert "gone.wav" in problems["truth.jsonl"]
    assert "not a {" in problems["truth.jsonl:3"]
    assert "hey_computer" in problems["hey_computer"]
    assert "| hey_jarvis | 1/2 (50%)" in printed.out
    assert "Traceback" not in printed.err and "empty.wav" in printed.err


def test_wakeword_bench_says_what_is_wrong_with_its_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wakeword.main(["--positives", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("wake: {engine: snowboy}\n")
    assert wakeword.main(["--positives", str(tmp_path), "--config", str(bad)]) == 2
    assert "config error" in capsys.readouterr().err
    assert wakeword.main(["--positives", str(tmp_path), "--config", str(bad.with_name("absent.yaml"))]) == 2
    assert wakeword.main(["--negatives", str(tmp_path)]) == 2


def test_wake_scoring_counts_detections_cross_fires_false_accepts_and_latency() -> None:
    runs = [
        ClipRun("a1", "alexa", 3.0, (("alexa", 1.6),), 1.4),
        ClipRun("a2", "alexa", 3.0, (), 1.5),
        ClipRun("j1", "hey_jarvis", 3.0, (("alexa", 1.0), ("hey_jarvis", 2.0)), 1.7),
        ClipRun("j2", "hey_jarvis", 3.0, (("hey_jarvis", 2.2),), None),
        ClipRun("n1", None, 1800.0, (("hey_jarvis", 100.0),)),
    ]
    report = score(["alexa", "hey_jarvis"], runs, cpu_seconds=18.12)
    alexa, jarvis = report.words["alexa"], report.words["hey_jarvis"]
    assert (alexa.detected, alexa.total, alexa.missed, alexa.cross_fires) == (1, 2, ["a2"], 1)
    assert (jarvis.detected, jarvis.total, jarvis.false_accepts) == (2, 2, 1)
    assert alexa.latency_median == pytest.approx(0.2) and jarvis.latencies == pytest.approx([0.3])
    assert report.false_accepts_per_hour("hey_jarvis") == pytest.approx(2.0)
    assert report.cpu_seconds_per_audio_hour == pytest.approx(36.0)
    assert report.false_accept_clips == ["n1: hey_jarvis at 100.00 s"]


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
def test_endpoint_bench_converts_a_phone_recording_and_names_the_file_of_every_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _room_clip(tmp_path, "quiet", tv_db=None)
    phone_recording(tmp_path / "quiet.wav", tmp_path / "phone.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not a wave")
    lines = [good, *({**good, "file": name} for name in ("phone.wav", "corrupt.wav", "missing.wav"))]
    (tmp_path / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in lines))
    results, problems, _ = endpoint.run(tmp_path, endpoint.load_settings(None, None))
    quiet, phone = results
    assert (quiet.file, phone.file) == ("quiet.wav", "phone.wav"), "44.1 kHz stereo is converted, not refused"
    assert phone.outcome == quiet.outcome == "ended" and phone.decided_s == pytest.approx(quiet.decided_s, abs=0.1)
    assert len(problems) == 2
    for name, words in (("corrupt", "not a readable"), ("missing", "missing")):
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


def test_idle_bench_counts_the_cpu_of_a_process_and_its_children() -> None:
    import os
    import subprocess
    import sys
    import time

    fields = idle.stat_fields("1234 (a (tricky) name) S 1 1234 1234 0 -1 4194560 1 0 0 0 250 50 7 3 20 0 1")
    assert idle.process_cpu_ticks(fields) == (300, 10)
    child = subprocess.Popen([sys.executable, "-c", "import time; sum(range(10**7)); time.sleep(30)"])
    try:
        for _ in range(100):
            if idle.tree_cpu_seconds(child.pid) > 0:
                break
            time.sleep(0.05)
        assert idle.tree_cpu_seconds(os.getpid()) >= idle.tree_cpu_seconds(child.pid) > 0
    finally:
        child.kill()
        child.wait()


def test_idle_bench_audio_is_a_quiet_room_and_a_band_limited_tv() -> None:
    import numpy as np

    from assistant.listen.gate import speech_band_level_db

    room = idle.quiet_room(2.0, np.random.default_rng(0))
    assert -70 < 20 * np.log10(np.sqrt(np.mean(room**2)) / 32768) < -58
    tone = np.sin(2 * np.pi * 100 * np.arange(16_000) / 16_000) + np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000)
    spectrum = np.abs(np.fft.rfft(idle.band_limit(tone)))
    assert spectrum[100] < 1e-6 * spectrum[1000]
    assert speech_band_level_db(room.astype("<i2").tobytes()) < -50


@pytest.mark.pulse
@pytest.mark.models
@pytest.mark.slow
@spoken_clips
def test_idle_bench_measures_the_real_daemon_in_a_quiet_room_and_with_the_tv(tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load((Path(__file__).parent.parent / "config.yaml").read_text())
    run = idle.run_variant("as configured", config, seconds=2.0, settle=1.0, work=tmp_path / "run")
    assert run.startup_seconds > 0
    # A process tree may use more than one core; the bound is the machine, not a timing target.
    cores = 100 * (os.cpu_count() or 1)
    assert 0 < run.quiet_core_percent < cores and 0 < run.tv_core_percent < cores
    assert run.log_counts["microphone reopened"] == 0
    assert "microphone open" in (tmp_path / "run" / "daemon.log").read_text()
