"""`xiangyin run` with the in-process engine: the real loader builds the model from a checkpoint directory
in the background, and a question heard from a WAV file reaches it.

The weights are random, so what the model says is noise; this checks the wiring from the config file to
the engine and back, not the answer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.audio import join, read_wav, silence, write_wav

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parents[2]
LISTEN = ROOT / "tests" / "data" / "listen"


def test_run_loads_a_local_checkpoint_and_answers_a_spoken_question(tiny_checkpoint: Path, tmp_path: Path) -> None:
    # Quiet first, so the model has loaded before the wake word: a file is heard at its own pace, and on a
    # 2-core machine beside a CPU hog importing torch and loading took over 10 s, so 25 s.
    heard = join(
        [
            silence(25.0),
            read_wav(LISTEN / "hey_jarvis__en-us__s165__clean.wav"),
            read_wav(LISTEN / "vad_00_en-us_silence.wav"),
        ]
    )
    question = tmp_path / "question.wav"
    write_wav(question, heard)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
conversation: {{follow_up_seconds: 0, earcons: false}}
model:
  backend: local
  local: {{path: "{tiny_checkpoint}", device: cpu, max_new_tokens: 16}}
voice: {{mode: tts}}
audio: {{duck_level: 1.0}}
skills: {{clock: {{}}}}
scheduler: {{database: "{tmp_path / "jobs.sqlite"}"}}
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "run", "--config", str(config), "--input", str(question)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + log[-3000:]
    loaded = log.find("connection-changed service='model' connected=True")
    woke = log.find("wake-detected")
    assert 0 <= loaded < woke, log[-3000:]
    assert "speech-ended" in log
    outcomes = re.findall(r"turn-ended turn_id='[^']+' outcome='(\w+)'", log)
    assert outcomes and outcomes[0] in ("completed", "error"), log[-3000:]
    assert "internal-error" not in log and "still loading" not in log, log[-3000:]
