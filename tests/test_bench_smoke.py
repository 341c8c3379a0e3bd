"""The benchmarks' core functions run end to end on two clips (their figures come from bench/, not tests)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from assistant.config import EndpointSettings
from bench import endpoint, soak, tool_dispatch, wakeword

spoken_clips = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the benchmark audio")


@pytest.mark.models
@spoken_clips
def test_wakeword_bench_counts_detections_and_false_accepts_on_two_clips() -> None:
    positives = wakeword.make_positives(voices=("en-gb",), speeds=(165,))[:1]  # "alexa", clean
    negatives = [wakeword.make_negatives(0.0)[0]]  # noise
    result = wakeword.evaluate("microwakeword", positives, negatives)
    assert result.detected == {"alexa": 1}
    assert result.false_accepts == 0
    assert result.cpu_per_audio_hour > 0
    assert "microwakeword" in wakeword.table([result])


@pytest.mark.models
@spoken_clips
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


@pytest.mark.broker
async def test_soak_bench_runs_some_turns_and_prints_a_row_per_sample_and_the_totals() -> None:
    result = await soak.run_soak(40, warmup=10, every=15)
    assert result.turns >= 40 and not result.books.open
    turns = [sample.turns for sample in result.samples]
    assert len(turns) >= 3 and turns == sorted(turns)
    assert soak.row(result.samples[0]).split()[0] == str(result.samples[0].turns)
    assert "turns/s" in soak.summary(result) and "growth per 1,000 turns" in soak.summary(result)
