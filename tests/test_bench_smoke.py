"""The benchmarks' core functions run end to end on two clips (their figures come from bench/, not tests)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from assistant.config import EndpointSettings
from bench import endpoint, tool_dispatch, wakeword

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the benchmark audio"),
]


def test_wakeword_bench_counts_detections_and_false_accepts_on_two_clips() -> None:
    positives = wakeword.make_positives(voices=("en-gb",), speeds=(165,))[:1]  # "alexa", clean
    negatives = [wakeword.make_negatives(0.0)[0]]  # noise
    result = wakeword.evaluate("microwakeword", positives, negatives)
    assert result.detected == {"alexa": 1}
    assert result.false_accepts == 0
    assert result.cpu_per_audio_hour > 0
    assert "microwakeword" in wakeword.table([result])


def test_endpoint_bench_measures_delay_and_cut_offs_on_two_utterances() -> None:
    fluent = endpoint.make_utterances(paused=False, limit=1)
    paused = endpoint.make_utterances(paused=True, limit=1)
    assert len(endpoint.measure(EndpointSettings(), fluent, "fluent").delays) == 1
    assert len(endpoint.measure(EndpointSettings(), paused, "paused").early) == 1
    assert len(endpoint.measure(EndpointSettings(profile="patient"), paused, "paused").delays) == 1


def test_tool_dispatch_bench_builds_every_skill_it_can_and_prints_its_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(tool_dispatch.main(calls=50))
    out = capsys.readouterr().out
    assert "through ToolRegistry.call" in out
    assert "built-in tools" in out
