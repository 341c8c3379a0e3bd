"""The command line: check validates, errors exit 2 with the message."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.cli import EXIT_CONFIG, main

ROOT = Path(__file__).resolve().parent.parent
SILENCE = ROOT / "tests" / "data" / "listen" / "vad_00_en-us_silence.wav"


def test_check_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config.yaml")]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_rejects_a_typo_with_exit_2_and_the_dotted_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("wake:\n  words:\n    - model: alexa\n      treshold: 0.4\n")
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "check", "--config", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == EXIT_CONFIG
    assert f"{bad}: wake.words[0].treshold: unknown key (did you mean 'threshold'?)" in done.stderr


def test_run_with_a_broken_config_exits_2_before_touching_hardware(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("audio:\n  volume: loud\n")
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "run", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == EXIT_CONFIG
    assert "audio.volume: Input should be a valid number" in done.stderr


def test_check_validates_each_skills_own_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("skills:\n  weather: {unit: metric}\n  wether: {}\n")
    assert main(["check", "--config", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{bad}: skills.weather.unit: unknown key (did you mean 'units'?)" in err
    assert f"{bad}: skills.wether: no such skill (did you mean 'weather'?)" in err


def _xiangyin(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ours(stderr: str) -> list[str]:
    """The lines the daemon wrote: TensorFlow Lite's C library announces its XNNPACK delegate on its own."""
    return [line for line in stderr.splitlines() if not line.startswith("INFO: Created TensorFlow Lite")]


def _config(tmp_path: Path, body: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f'scheduler: {{database: "{tmp_path / "data" / "jobs.sqlite"}"}}\n{body}', encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("voice: {mode: tts, tts: {engine: piper, piper_model: /nowhere/voice.onnx}}\n", "voice.tts: Piper voice"),
        ("wake: {words: [{model: /nowhere/word.tflite}]}\n", "wake.words: wake word model file /nowhere/word.tflite"),
        (
            "wake: {words: [{model: alexa}], stop_words: [{enrolled: 停}], enrolled_dir: ENROLLED}\n",
            "wake.stop_words: enrolled: 停",
        ),
    ],
    ids=["missing-piper-voice", "missing-wake-model", "stop-word-never-enrolled"],
)
def test_check_and_run_both_refuse_what_cannot_load_with_exit_2_and_one_line(
    tmp_path: Path, body: str, message: str
) -> None:
    config = _config(tmp_path, body.replace("ENROLLED", str(tmp_path / "words")))
    checked = _xiangyin("check", "--config", str(config))
    assert checked.returncode == EXIT_CONFIG
    assert message in checked.stderr
    ran = _xiangyin("run", "--config", str(config), "--input", str(SILENCE), "--output", str(tmp_path / "out.wav"))
    assert ran.returncode == EXIT_CONFIG, ran.stderr[-2000:]
    [line] = _ours(ran.stderr)
    assert line.startswith(f"config error: {message}")
    assert "Traceback" not in ran.stdout + ran.stderr
    assert not (tmp_path / "out.wav").exists(), "nothing is written when the start is refused"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("wake: {words: [{model: alexa}, {model: alexa}]}\n", "words[1]: 'alexa' is already listed as words[0]"),
        ("wake: {words: [{model: alexa}], stop_words: [{model: alexa}]}\n", "stop_words[0]: 'alexa' is already"),
        ('home_assistant: {enabled: true, token: ""}\n', "home_assistant.enabled needs a token"),
    ],
    ids=["duplicate-wake-word", "wake-word-also-a-stop-word", "empty-ha-token"],
)
def test_check_refuses_duplicate_words_and_an_empty_token(tmp_path: Path, body: str, message: str) -> None:
    checked = _xiangyin("check", "--config", str(_config(tmp_path, body)))
    assert checked.returncode == EXIT_CONFIG
    assert message in checked.stderr


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _wav_with_rate(path: Path, rate_hz: int) -> Path:
    data = bytearray(SILENCE.read_bytes())
    struct.pack_into("<I", data, 24, rate_hz)  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _written(p, b""), "not a readable WAV file (it ends before its header does)"),
        (lambda p: _written(p, b"this is not audio, just text of some length\n" * 3), "not a readable WAV"),
        (lambda p: _written(p, SILENCE.read_bytes()[:3000]), "truncated: the header promises"),
        (lambda p: _wav_with_rate(p, 4_290_000_000), "a sample rate of 4290000000 Hz is not a recording"),
        (lambda p: p.parent / "missing.wav", "cannot be read: No such file or directory"),
    ],
    ids=["empty", "text", "truncated", "4.29-GHz-header", "missing"],
)
def test_a_bad_input_wav_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    bad = make(tmp_path / "in.wav")
    ran = _xiangyin("run", "--config", str(_config(tmp_path)), "--input", str(bad), "--output", str(tmp_path / "o.wav"))
    assert ran.returncode == EXIT_CONFIG
    [line] = ran.stderr.splitlines()
    assert line.startswith(f"xiangyin: {bad}: {message}")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize(
    ("output", "message"), [(".", "is a directory"), ("nowhere/reply.wav", "does not exist")], ids=["dir", "no-folder"]
)
def test_an_output_path_that_cannot_be_written_is_one_line_exit_2(tmp_path: Path, output: str, message: str) -> None:
    target = tmp_path / output
    ran = _xiangyin("run", "--config", str(_config(tmp_path)), "--input", str(SILENCE), "--output", str(target))
    assert ran.returncode == EXIT_CONFIG
    assert len(ran.stderr.splitlines()) == 1 and message in ran.stderr
    assert not (tmp_path / "nowhere").exists()
