"""`xiangyin run` end to end on the real adapters: a WAV in, the vLLM fake as the model, a WAV out.

The real command line builds everything from a config file: the WAV file source, openWakeWord, Silero
VAD, the vLLM client (against the scripted fake server), espeak-ng and the WAV file sink.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.audio import join, read_wav, rms, split, write_wav
from support.servers import free_port

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parent.parent
LISTEN = ROOT / "tests" / "data" / "listen"


def test_run_hears_a_wav_answers_through_the_model_and_writes_the_spoken_reply(tmp_path: Path) -> None:
    question = join(
        [read_wav(LISTEN / "hey_jarvis__en-us__s165__clean.wav"), read_wav(LISTEN / "vad_00_en-us_silence.wav")]
    )
    spoken = tmp_path / "question.wav"
    write_wav(spoken, question)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "support.vllm_fake",
            "--port",
            str(port),
            "--text",
            "Tomorrow will be sunny.",
            "--codes",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and "fake vLLM server" in server.stdout.readline()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
conversation: {{follow_up_seconds: 0, earcons: false}}
persona: {{dialect: english}}
model:
  backend: vllm
  vllm: {{base_url: "http://127.0.0.1:{port}/v1", model: step-audio-2-mini}}
voice: {{mode: tts}}
audio: {{duck_level: 1.0}}
scheduler: {{database: "{tmp_path / "jobs.sqlite"}"}}
""",
            encoding="utf-8",
        )
        reply = tmp_path / "reply.wav"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "assistant",
                "run",
                "--config",
                str(config),
                "--input",
                str(spoken),
                "--output",
                str(reply),
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    log = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + log[-3000:]
    for step in ("wake-detected", "speech-ended", "reply-text", "playback-started", "outcome='completed'"):
        assert step in log, f"{step} missing from:\n{log[-3000:]}"
    reply_text = "".join(
        line.split(" text=", 1)[1].strip("'") for line in log.splitlines() if "events: reply-text " in line
    )
    assert reply_text == "Tomorrow will be sunny."
    assert "shutdown-requested reason='input ended'" in log
    audio = read_wav(reply)
    voiced = [chunk for chunk in split(audio, 0.05) if rms(chunk) > 0.01]
    assert len(voiced) * 0.05 > 0.5, "the reply was spoken into the output file"
