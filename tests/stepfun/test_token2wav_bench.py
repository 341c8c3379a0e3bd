"""bench/token2wav.py runs end to end at the tests' tiny widths (its figures come from the bench, not tests)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from assistant.voice.token2wav.engine import StreamSchedule
from bench import token2wav
from bench.voice import made_up_prompt
from tests.stepfun.reference import Reference

pytestmark = [pytest.mark.models, pytest.mark.slow]


def test_both_arms_render_the_same_chunks_of_the_same_length(reference: Reference) -> None:
    pair = token2wav.build(token2wav.TINY_FLOW, token2wav.TINY_HIFT, StreamSchedule())
    features = made_up_prompt(2.0)
    tokens = np.random.default_rng(1).integers(0, 6561, 40).tolist()
    ours, theirs = token2wav.Arm("ours"), token2wav.Arm("StepFun")

    mine = token2wav.run_ours(pair, features, tokens, ours)
    reference_pcm = token2wav.run_theirs(pair, features, tokens, theirs, seed=0)

    assert len(ours.chunk_s[0]) == len(theirs.chunk_s[0]) == 3  # 10 + look-ahead, 25 + look-ahead, the rest
    assert len(mine) == len(reference_pcm) == 2 * 40 * 2 * 480  # int16, two mel frames of 480 samples a token
    assert len(ours.prepare_s) == len(theirs.prepare_s) == 1


def test_the_bench_prints_first_chunk_later_chunks_and_real_time_factors(
    reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    token2wav.main(["--tiny", "--repeats", "1", "--answer-tokens", "40", "--threads", "1"])

    out = capsys.readouterr().out
    assert "chunks (tokens with look-ahead) [13, 28, 5]" in out
    for label in ("prompt preparation", "first chunk", "chunk 2", "chunk 3", "real-time factor"):
        assert re.search(rf"^  {label} .*ours ×\d+\.\d\d$", out, re.MULTILINE), label
    assert re.search(r"load \d+\.\d\d \(5 min", out)
