"""bench/gpu.py runs end to end at tiny size on the CPU and prints every row of its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_bench_prints_every_row_at_tiny_size_on_the_cpu() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--size", "tiny", "--device", "cpu", "--repeat", "1"]
        + ["--history-tokens", "300", "--question-seconds", "1", "--answer-seconds", "1.2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "CPU" in out and "UTC" in out  # the device and the date are named
    measured = r"\| [\d.]+ GB \| [\d.]+ ms \(\d+ / \d+\) \| [\d.]+ \| \d+ ms \| \d+ ms \| [\d.]+ \|"
    for row in ("float32", "float32, static decode", "float32, naive (no KV cache)"):
        assert re.search(rf"^\| {re.escape(row)} {measured}", out, re.MULTILINE), out
    for weights in ("int8", "int4"):
        assert re.search(rf"^\| {weights} .*\| not available on cpu", out, re.MULTILINE), out
    for row in ("float32", "float32, static decode"):
        assert re.search(rf"^  {row}: decode [\d.]+x faster, prefill [\d.]+x faster, first PCM", out, re.MULTILINE), out
    assert "failed" not in out
