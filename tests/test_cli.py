"""The command line: check validates, errors exit 2 with the message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import EXIT_CONFIG, main

ROOT = Path(__file__).resolve().parent.parent


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
