"""bench/model.py runs both parts at tiny size on the CPU and prints every arm and ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _bench(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench.model", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_decode_part_prints_each_arm_against_the_measured_bandwidth() -> None:
    out = _bench("decode", "--size", "tiny", "--contexts", "40,300", "--steps", "2", "--allocation", "512")
    assert re.search(r"^load [\d.]+ \(5 min [\d.]+\) on \d+ CPUs", out, re.MULTILINE), out  # the load is named
    for context in (40, 300):
        for arm in ("dynamic", "static 512"):
            row = (
                rf"^  context +{context}  {arm} +[\d.]+ ms/token \(best +[\d.]+\)  ×[\d.]+ of dynamic +[\d.]+ GB/s"
                r" = +\d+ % of the best read .* +\d+ % of the median read, +\d+ % of the read beside each step$"
            )
            assert re.search(row, out, re.MULTILINE), out
    assert re.search(r"read bandwidth measured between the steps: [\d.]+ GB/s", out), out
    assert re.search(r"^sampling after 300 tokens, 158720 logits: [\d.]+ ms/token", out, re.MULTILINE), out


def test_the_conversation_part_compares_one_fixed_prompt_with_and_without_the_cache() -> None:
    out = _bench("conversation", "--size", "tiny", "--turns", "1", "--repeat", "2", "--answer-tokens", "20")
    kept = re.search(r"next turn, cache kept +prompt +(\d+) +reused +(\d+) +computed +(\d+)", out)
    cold = re.search(r"next turn, no cache +prompt +(\d+) +reused +0 +computed +(\d+)", out)
    assert kept and cold, out
    assert kept[1] == cold[1] == cold[2] and int(kept[3]) < int(cold[2]) // 10  # same prompt, mostly reused
    assert re.search(r"KV reuse: \d+ instead of \d+ prompt tokens computed .* prefill ×[\d.]+ faster", out), out
