"""Wake engines, TTS voices and model backends from other packages: the example package, installed with pip
into a folder of its own, is loaded by name from a config, by ``check`` and by a whole ``run``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.audio import AudioChunk, join, read_wav, rms, silence, write_wav
from assistant.config import parse_config
from assistant.errors import ConfigError
from assistant.plugins import MODELS, TTS, WAKE_ENGINES, installed

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "xiangyin-example-plugins"
CONFIG = """\
wake:
  engine: clap
  engine_options: {level: 0.6}
  words: [{model: clap}]
voice:
  mode: tts
  tts: {engine: beep, options: {hz: 880, seconds_per_char: 0.05}}
model:
  backend: echo
  options: {reply: 我听到了}
conversation: {follow_up_seconds: 0, earcons: false}
endpointing: {room_gate: false}
scheduler: {database: "DATA/jobs.sqlite"}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example package pip-installed (offline, no dependencies) into a folder put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield target


def _xiangyin(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(text.replace("DATA", str(tmp_path / "data")), encoding="utf-8")
    return config


def test_check_loads_the_plugins_named_in_the_config(site: Path, tmp_path: Path) -> None:
    checked = _xiangyin(site, "check", "--config", str(_config(tmp_path)))
    assert checked.returncode == 0, checked.stderr
    assert "wake words: clap; model: echo" in checked.stdout


def test_run_hears_a_clap_answers_through_the_plugin_model_and_speaks_with_the_plugin_voice(
    site: Path, tmp_path: Path
) -> None:
    clap = AudioChunk(b"\xff\x7f\x01\x80" * 800, 16_000)  # 0.1 s at full scale
    question = tmp_path / "clap.wav"
    speech = read_wav(ROOT / "tests" / "data" / "listen" / "vad_00_en-us_silence.wav")  # a spoken question
    write_wav(question, join([silence(1.0), clap, silence(0.3), speech]))
    reply = tmp_path / "reply.wav"
    ran = _xiangyin(site, "run", "--config", str(_config(tmp_path)), "--input", str(question), "--output", str(reply))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "wake-detected" in ran.stdout and "wake_word='clap'" in ran.stdout
    assert "reply-text" in ran.stdout and "我听到了" in ran.stdout
    spoken = read_wav(reply)
    assert spoken.samples >= 4 * 0.05 * spoken.rate_hz and rms(spoken) > 0.05, "four beeps, one per character"


@pytest.mark.parametrize(
    ("group", "data", "key"),
    [
        (WAKE_ENGINES, {"wake": {"engine": "clap"}}, "wake.engine"),
        (TTS, {"voice": {"tts": {"engine": "beep"}}}, "voice.tts.engine"),
        (MODELS, {"model": {"backend": "echo"}}, "model.backend"),
    ],
)
def test_a_plugin_that_is_not_installed_is_refused_naming_the_key_and_the_known_ones(
    group: str, data: dict[str, object], key: str
) -> None:
    if installed(group):
        pytest.skip(f"{group} plugins are installed in this environment")
    with pytest.raises(ConfigError, match=rf"{key}.*neither built in nor an installed {group} plugin \(known: "):
        parse_config(data, Path("config.yaml"))
