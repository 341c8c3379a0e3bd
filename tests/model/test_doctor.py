"""``xiangyin doctor`` on the tiny checkpoint and token2wav: the report's shape, and its parts on their own.

The weights are random, so the figures mean nothing (the report says so); what is checked is that every
row is there with a verdict, that the JSON and the table carry them, and the exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.audio import join, silence, tone, write_wav
from assistant.config import EndpointSettings, WakeSettings
from assistant.doctor.machine import gpu_check, model_files_check, safetensors_problem
from assistant.doctor.report import Check, Report, exit_code, render_table, to_json
from assistant.doctor.room import room_check
from assistant.doctor.selftest import character_error_rate, self_test, shipped_question
from assistant.model.stepaudio2 import tokens as t
from tests.model.conftest import EngineFactory, Speech
from tests.voice.conftest import PROMPT_WAV, make_token2wav_dir

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    "gpu",
    "model files",
    "precision",
    "token2wav",
    "model",
    "self-test: spoken answer",
    "self-test: transcript",
    "self-test: dialect",
    "self-test: tool call",
    "microphone",
]


def test_doctor_on_the_tiny_checkpoint_reports_every_row_and_says_its_figures_mean_nothing(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    token2wav = make_token2wav_dir(tmp_path / "token2wav")
    room = tmp_path / "room.wav"
    write_wav(room, join([silence(2.0), tone(300, 1.0, rate_hz=16_000, level=0.2), silence(1.0)]))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
model:
  backend: local
  local: {{path: "{tiny_checkpoint}", device: cpu, max_new_tokens: 48}}
voice:
  mode: model
  prompt_wav: "{PROMPT_WAV}"
  token2wav: {{path: "{token2wav}", device: cpu, cache_dir: "{tmp_path / "voices"}"}}
scheduler: {{database: "{tmp_path / "jobs.sqlite"}"}}
""",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "doctor", "--config", str(config), "--json", "--mic-wav", str(room)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    report = json.loads(done.stdout)
    assert report["version"] == 1 and report["ok"] is True
    assert report["release"] is False and "mean nothing" in report["note"]
    rows = {row["name"]: row for row in report["checks"]}
    assert list(rows) == ROWS
    assert all(row["status"] in ("ok", "warn", "skip") for row in rows.values())
    assert all(isinstance(row["detail"], str) and row["detail"] for row in rows.values())
    assert rows["gpu"]["status"] == "warn" and rows["gpu"]["detail"].startswith("no GPU")
    assert rows["model files"]["status"] == "warn" and "another size" in rows["model files"]["detail"]
    assert rows["precision"]["figures"]["device"] == "cpu" and rows["precision"]["figures"]["dtype"] == "float32"
    assert "not the released size" in rows["token2wav"]["detail"]
    answer = rows["self-test: spoken answer"]["figures"]
    assert set(answer) >= {"first_speech_token_seconds", "first_sound_seconds", "decode_tokens_per_second"}
    assert rows["microphone"]["figures"]["peak_dbfs"] > rows["microphone"]["figures"]["background_dbfs"]


async def test_the_self_test_hears_its_own_answer_judges_the_dialect_and_calls_a_tool(
    engine_factory: EngineFactory, speech: Speech, tmp_path: Path
) -> None:
    from assistant.voice.speech import TokenSpeaker
    from assistant.voice.token2wav.engine import Token2Wav

    said = "我系小音，系你屋企嘅语音助手。"
    script = [
        [*speech.spoken(said, [int(c) for c in range(100, 160)]), t.EOT],  # the spoken answer: 2.4 s
        [*speech.text(said.replace("，", "")), t.EOT],  # what it hears back: the same words
        [*speech.text("粤语"), t.EOT],
        [*speech.tool_call("get_weather", '{"city": "广州"}'), t.EOT],
    ]
    engine = engine_factory(script)
    folder = make_token2wav_dir(tmp_path / "token2wav")
    speaker = TokenSpeaker(Token2Wav.load(folder, device="cpu", cache_dir=tmp_path), PROMPT_WAV)
    try:
        rows = await self_test(engine, speaker, "cantonese", decode_rate=lambda: 12.5)
    finally:
        speaker.close()
    assert [(r.name, r.status) for r in rows] == [
        ("self-test: spoken answer", "ok"),
        ("self-test: transcript", "ok"),
        ("self-test: dialect", "ok"),
        ("self-test: tool call", "ok"),
    ]
    answer = rows[0].figures
    assert answer["speech_tokens"] == 60 and answer["decode_tokens_per_second"] == 12.5
    assert 0 < answer["first_speech_token_seconds"] <= answer["first_sound_seconds"]  # type: ignore[operator]
    assert rows[1].figures["cer"] == 0.0
    assert "get_weather" in rows[3].detail


async def test_a_self_test_answer_without_speech_fails_and_a_wrong_transcript_warns(
    engine_factory: EngineFactory, speech: Speech
) -> None:
    engine = engine_factory([[*speech.text("好"), t.EOT], [*speech.text("好"), t.EOT]])
    rows = await self_test(engine, None, "mandarin")
    assert [(r.name, r.status) for r in rows] == [
        ("self-test: spoken answer", "fail"),
        ("self-test: transcript", "skip"),
        ("self-test: dialect", "skip"),
        ("self-test: tool call", "fail"),
    ]


def test_a_report_with_a_failure_exits_non_zero_and_renders_as_a_table() -> None:
    report = Report(
        (Check("gpu", "warn", "no GPU: ..."), Check("model files", "fail", "missing: config.json")), release=True
    )
    assert exit_code(report) == 1 and to_json(report)["ok"] is False
    table = render_table(report)
    assert "model files  fail    missing: config.json" in table
    assert table.endswith("verdict: FAILED")
    assert exit_code(Report((Check("gpu", "ok", "H200"),), release=True)) == 0


def test_without_a_gpu_the_gpu_row_says_so_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    row = gpu_check()
    assert (row.status, row.detail.split(":")[0]) == ("warn", "no GPU")


def test_a_truncated_weight_file_fails_the_files_row(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, copy)
    shard = next(copy.glob("*.safetensors"))
    assert safetensors_problem(shard) is None
    with shard.open("r+b") as handle:
        handle.truncate(shard.stat().st_size - 1000)
    assert "interrupted download" in (safetensors_problem(shard) or "")
    row, parameters, release = model_files_check(copy, hashes=False)
    assert row.status == "fail" and parameters is None and not release


def test_a_hugging_face_download_is_hashed_against_its_blob_names(tmp_path: Path) -> None:
    import hashlib

    from assistant.doctor.machine import hub_hash_problem

    data = b"weights" * 1000
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    blob = blobs / hashlib.sha256(data).hexdigest()
    blob.write_bytes(data)
    (snapshot / "model-00001.safetensors").symlink_to(blob)
    assert hub_hash_problem(snapshot / "model-00001.safetensors") is None
    blob.write_bytes(data[:-1] + b"X")  # a flipped byte on disk
    assert "SHA-256" in (hub_hash_problem(snapshot / "model-00001.safetensors") or "")
    plain = tmp_path / "model.safetensors"
    plain.write_bytes(data)
    assert hub_hash_problem(plain) is None  # not from the hub: nothing to compare with


def test_character_error_rate_ignores_punctuation_and_counts_edits() -> None:
    assert character_error_rate("广州今日廿一度。", "广州今日廿一度") == 0.0
    assert character_error_rate("广州今日廿一度", "广州今日二十一度") == pytest.approx(2 / 7)
    assert character_error_rate("", "") == 0.0 and character_error_rate("", "嗯") == 1.0


def test_the_room_row_suggests_settings_for_a_loud_background() -> None:
    loud = join([tone(120, 3.0, rate_hz=16_000, level=0.1), tone(300, 0.5, rate_hz=16_000, level=0.5)])
    row = room_check(loud, WakeSettings(), EndpointSettings())
    assert row.status == "warn" and "room_margin_db: 6" in row.detail
    quiet = join([silence(2.0), tone(300, 0.5, rate_hz=16_000, level=0.3)])
    assert room_check(quiet, WakeSettings(), EndpointSettings()).status == "ok"
    muted = room_check(silence(3.0), WakeSettings(), EndpointSettings())
    assert muted.status == "fail" and "muted" in muted.detail
    assert shipped_question().rate_hz == 16_000 and shipped_question().seconds > 1.0


async def test_with_a_vllm_backend_the_doctor_checks_token2wav_here_and_skips_the_model(tmp_path: Path) -> None:
    from assistant.config import Settings
    from assistant.doctor import DoctorOptions, examine

    folder = make_token2wav_dir(tmp_path / "token2wav")
    settings = Settings.model_validate(
        {
            "model": {"backend": "vllm"},
            "voice": {
                "mode": "model",
                "prompt_wav": str(PROMPT_WAV),
                "token2wav": {"path": str(folder), "device": "cpu", "cache_dir": str(tmp_path / "voices")},
            },
        }
    )
    report = await examine(settings, DoctorOptions(mic_seconds=0))
    assert [(c.name, c.status) for c in report.checks][1:] == [
        ("token2wav", "warn"),  # loaded, but not the released size
        ("model", "skip"),
        ("microphone", "skip"),
    ]
    assert not report.release and exit_code(report) == 0
