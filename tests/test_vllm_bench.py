"""bench/serving.py still runs end to end against the fake server and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_serving_bench_prints_a_row_per_room_count() -> None:
    result = subprocess.run(
        [sys.executable, "bench/serving.py", "--rooms", "1,3", "--turns", "2", "--codes", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\s+\d+\s+\d+\s", line)]
    assert [(row[0], row[1]) for row in rows] == [("1", "2"), ("3", "6")]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
