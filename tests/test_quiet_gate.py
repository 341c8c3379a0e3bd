"""The quiet gate: noise floor, margin, hold, the kept audio fed first when sound starts; and on real clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.audio import AudioChunk, read_wav, split
from assistant.listen.gate import SILENCE_DB, GatedEngine, GateSettings, QuietGate, speech_band_level_db

DATA = Path(__file__).parent / "data" / "listen"
CHUNK = 0.08
SETTINGS = GateSettings(margin_db=6.0, floor_seconds=1.0, hold_seconds=0.4)


def warmed(level_db: float = -60.0, settings: GateSettings = SETTINGS) -> QuietGate:
    """A gate that has measured ``level_db`` for its whole floor window and let its hold run out."""
    gate = QuietGate(settings)
    for _ in range(round((settings.floor_seconds + settings.hold_seconds) / CHUNK) + 1):
        gate.admit(level_db, CHUNK)
    return gate


def test_every_chunk_is_heard_until_the_floor_has_been_measured_for_a_whole_window() -> None:
    gate = QuietGate(SETTINGS)
    assert all(gate.admit(-60.0, CHUNK) for _ in range(round(SETTINGS.floor_seconds / CHUNK)))


def test_a_steady_quiet_room_is_skipped_once_the_hold_has_run_out() -> None:
    gate = warmed()
    assert not any(gate.admit(-60.0 + jitter, CHUNK) for jitter in (0.0, 2.0, 5.9, 3.0, 1.0))


def test_a_chunk_a_margin_above_the_floor_is_heard_and_so_is_the_hold_after_it() -> None:
    gate = warmed()
    assert gate.admit(-54.0, CHUNK)
    after = [gate.admit(-60.0, CHUNK) for _ in range(10)]
    assert after == [True] * 5 + [False] * 5  # 0.4 s of hold: the chunks that start within it


def test_a_chunk_just_under_the_margin_is_skipped() -> None:
    assert not warmed().admit(-54.1, CHUNK)


def test_the_floor_is_the_quietest_chunk_of_the_window() -> None:
    gate = warmed(-60.0)
    gate.admit(-70.0, CHUNK)
    assert gate.floor_db == -70.0
    assert gate.admit(-63.0, CHUNK), "7 dB over the new floor"


def test_a_louder_steady_background_becomes_the_floor_after_one_window() -> None:
    """A fan switched on: heard for one floor window plus the hold, then skipped again."""
    gate = warmed(-60.0)
    heard = [gate.admit(-40.0, CHUNK) for _ in range(round(3.0 / CHUNK))]
    assert heard[0] and not heard[-1]
    assert gate.floor_db == -40.0
    assert sum(heard) == pytest.approx((SETTINGS.floor_seconds + SETTINGS.hold_seconds) / CHUNK, abs=1)


def test_speech_between_pauses_keeps_the_floor_at_the_pauses() -> None:
    """A talking TV: words 20 dB over the pauses between them never become the floor."""
    gate = warmed(-60.0)
    pattern = [-40.0] * 6 + [-60.0] * 2  # 0.48 s of words, 0.16 s of pause
    heard = [gate.admit(level, CHUNK) for _ in range(20) for level in pattern]
    assert all(heard)
    assert gate.floor_db == -60.0


def test_level_of_silence_tones_and_hum() -> None:
    t = np.arange(16_000) / 16_000
    assert speech_band_level_db(bytes(2560)) == SILENCE_DB
    assert speech_band_level_db(b"") == SILENCE_DB

    def level(hz: float) -> float:
        return speech_band_level_db((np.sin(2 * np.pi * hz * t) * 10_000).astype("<i2").tobytes())

    assert -30 < level(1000.0) < -10
    assert level(50.0) < level(1000.0) - 20, "mains hum must not set the level of the room"


class Recorder:
    """A wake engine that records what it hears and scores each call by a script."""

    names = ("w",)
    default_thresholds = (0.5,)

    def __init__(self) -> None:
        self.heard: list[bytes] = []
        self.resets = 0

    def scores(self, pcm: bytes) -> list[float]:
        self.heard.append(pcm)
        return [0.9 if pcm.startswith(b"\x01") else 0.1]

    def reset(self) -> None:
        self.resets += 1


def quiet(tag: int) -> bytes:
    """An 80 ms chunk of very low noise, tagged in its first sample so the tests can follow it."""
    samples = np.full(1280, 100, dtype="<i2")
    samples[1::2] = -100
    samples[0] = tag
    return samples.tobytes()


def loud() -> bytes:
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(1280) * 3000).astype("<i2")
    samples[0] = 1
    return samples.tobytes()


def settled() -> tuple[GatedEngine, Recorder, bytes]:
    """A gated recorder fed quiet chunks until it skipped one (returned); the recorder then forgets."""
    engine = Recorder()
    wrapped = GatedEngine(engine, 0.24, QuietGate(GateSettings(floor_seconds=0.4, hold_seconds=0.24)))
    tag = 2
    while wrapped.scores(quiet(tag)) != [0.0]:
        tag += 1
    engine.heard.clear()
    return wrapped, engine, quiet(tag)


def test_skipped_chunks_score_zero_and_never_reach_the_models() -> None:
    wrapped, engine, _ = settled()
    assert [wrapped.scores(quiet(100 + i)) for i in range(5)] == [[0.0]] * 5
    assert engine.heard == []
    assert wrapped.skipped_seconds == pytest.approx(6 * CHUNK)


def test_when_sound_starts_the_models_first_hear_the_kept_audio_then_the_chunk() -> None:
    wrapped, engine, _ = settled()
    for i in range(6):
        wrapped.scores(quiet(100 + i))
    assert wrapped.scores(loud()) == [0.9]  # the catch-up's own scores are not reported
    catch_up, chunk = engine.heard
    assert chunk == loud()
    assert catch_up == b"".join(quiet(100 + i) for i in range(3, 6)), "the last 0.24 s (3 chunks), in order"
    assert wrapped.skipped_seconds == pytest.approx(4 * CHUNK), "7 skipped, 3 of them heard after all"


def test_short_gaps_are_caught_up_whole_and_reset_reaches_the_engine() -> None:
    wrapped, engine, first = settled()
    wrapped.scores(quiet(100))
    wrapped.scores(loud())
    assert engine.heard == [first + quiet(100), loud()]
    wrapped.reset()
    assert engine.resets == 1


# --- on the real models -------------------------------------------------------------------------


def in_room(pcm: bytes, rng: np.random.Generator) -> bytes:
    """The audio as heard in a quiet room: white noise at about -66 dBFS added throughout."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return np.clip(samples + rng.standard_normal(len(samples)) * 16, -32768, 32767).astype("<i2").tobytes()


@pytest.mark.models
def test_on_real_clips_the_gate_changes_no_score_that_matters_and_skips_the_quiet() -> None:
    """Clips with words and speech in a quiet room: every score the gate computes is the ungated one, the
    ones it skips are far under threshold, the same words fire at the same chunks, and most quiet is skipped."""
    from assistant.listen.oww import CONTEXT_SECONDS
    from assistant.listen.wakeword import build_engine

    rng = np.random.default_rng(3)
    clips = [
        "hey_jarvis__en-us__s165__clean.wav",
        "neg_zh_cmn_10s.wav",
        "alexa__en-gb__s165__clean.wav",
        "vad_00_en-us_silence.wav",
        "okay_nabu__en-us_m3__s165__clean.wav",
        "alexa__en-gb__s165__pink5.wav",
    ]
    pause = bytes(6 * 32_000)
    stream = in_room(pause + b"".join(read_wav(DATA / clip).pcm + pause for clip in clips), rng)
    words = ("alexa", "hey_jarvis", "okay_nabu")
    plain = build_engine("openwakeword", words)
    wrapped = GatedEngine(build_engine("openwakeword", words), CONTEXT_SECONDS)
    fired_plain, fired_gated = [], []
    chunks = list(split(AudioChunk(stream), CHUNK))
    for index, chunk in enumerate(chunks):
        ours, theirs = wrapped.scores(chunk.pcm), plain.scores(chunk.pcm)
        if ours == [0.0] * 3:
            assert max(theirs) < 0.3, f"skipped chunk {index} scores {theirs}"
        else:
            assert ours == pytest.approx(theirs, abs=1e-6), f"chunk {index}"
        fired_plain += [(index, w) for w, score in zip(words, theirs, strict=True) if score >= 0.5]
        fired_gated += [(index, w) for w, score in zip(words, ours, strict=True) if score >= 0.5]
    assert fired_gated == fired_plain
    assert {w for _, w in fired_plain} == set(words)
    total = len(chunks) * CHUNK
    assert wrapped.skipped_seconds > 0.25 * total, f"skipped only {wrapped.skipped_seconds:.1f} of {total:.1f} s"


@pytest.mark.models
def test_the_gate_is_on_for_openwakeword_by_default_and_never_on_microwakeword() -> None:
    from assistant.config import WakeSettings
    from assistant.listen import build_wake_engine

    settings = WakeSettings()
    assert isinstance(build_wake_engine(settings, settings.words), GatedEngine)
    off = settings.model_copy(update={"quiet_gate": False})
    assert not isinstance(build_wake_engine(off, off.words), GatedEngine)
    micro = settings.model_copy(update={"engine": "microwakeword"})
    assert not isinstance(build_wake_engine(micro, micro.words), GatedEngine)
