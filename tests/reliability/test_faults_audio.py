"""Audio faults on the real PyAudio path through a private PulseAudio daemon, with the whole daemon running.

The supervisor, turn, wake word (openWakeWord), VAD (Silero), microphone and speaker are real; the model
answers a tone (``tests/test_pulse_audio.py``'s ``Daemon``). Each fault is made with PulseAudio's own
tools: a suspended microphone, a removed source or sink, a killed stream, the sound server killed and
started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import join, read_wav, silence, tone, write_wav
from assistant.config import Settings
from assistant.events import (
    ConnectionChanged,
    Event,
    PlaybackStarted,
    ShutdownRequested,
    TurnEnded,
    TurnFailed,
    WakeDetected,
)
from support.pulse import PulseServer, pulse_fixture  # noqa: F401 (the pulse fixture)
from tests.test_pulse_audio import DATA, NO_FOLLOW_UP, REPLY_HZ, Daemon, dominant_hz, recording

pytestmark = [pytest.mark.pulse, pytest.mark.models, pytest.mark.slow]

# Quick stall detection and short backoff, so each fault plays out in seconds.
FAST = {**NO_FOLLOW_UP, "audio": {"stall_seconds": 0.5, "reconnect_max_seconds": 1.0}}


@pytest.fixture(name="question")
def question_fixture(tmp_path: Path) -> Path:
    """ "Hey Jarvis" and a short question, as one WAV to play into the virtual microphone."""
    wake_clip = read_wav(DATA / "hey_jarvis__en-us__s165__clean.wav")
    asked = read_wav(DATA / "vad_00_en-us_silence.wav")
    path = tmp_path / "question.wav"
    write_wav(path, join([wake_clip, asked, silence(1.0)]))
    return path


class Running:
    """A started daemon whose turns a test drives one at a time."""

    def __init__(self, daemon: Daemon, pulse: PulseServer) -> None:
        self.daemon = daemon
        self.pulse = pulse
        self.replying = asyncio.Event()
        daemon.bus.tap(
            lambda envelope: (
                isinstance(envelope.event, PlaybackStarted) and envelope.event.kind == "reply" and self.replying.set()
            )
        )

    async def ask(self, question: Path) -> TurnEnded:
        """Say the wake word and the question; return how the turn ended."""
        self.daemon.turn_ended.clear()
        self.replying.clear()
        ended = len(self.ended)
        self.pulse.inject(question)
        await asyncio.wait_for(self.daemon.turn_ended.wait(), 30)
        return self.ended[ended]

    async def ask_until_replying(self, question: Path) -> asyncio.Task[TurnEnded]:
        """Ask in the background; return the turn's task once its reply starts playing."""
        self.replying.clear()  # not the reply of an earlier turn
        turn = asyncio.create_task(self.ask(question))
        await asyncio.wait_for(self.replying.wait(), 30)
        return turn

    async def ask_and_record(self, question: Path, wav: Path) -> tuple[TurnEnded, bool]:
        """Ask while recording the speaker to ``wav``; return how the turn ended and whether its reply was heard."""
        with recording(self.pulse, wav) as out:
            await asyncio.sleep(0.5)  # the wake-word front end settles on live audio, also after a reconnect
            ended = await self.ask(question)
            await asyncio.sleep(0.5)  # the reply's last blocks reach the recording
        return ended, reply_heard(out)

    @property
    def ended(self) -> list[TurnEnded]:
        return [e for _, e in self.daemon.of(TurnEnded) if isinstance(e, TurnEnded)]

    def connections(self, service: str) -> list[bool]:
        return [e.connected for e in self.events if isinstance(e, ConnectionChanged) and e.service == service]

    async def until_connected(self, service: str) -> None:
        """Wait (at most 15 s) until ``service`` last reported itself connected."""
        reconnected = asyncio.Event()
        undo = self.daemon.bus.tap(lambda _: self.connections(service)[-1:] == [True] and reconnected.set())
        try:
            if self.connections(service)[-1:] != [True]:
                await asyncio.wait_for(reconnected.wait(), 15)
        finally:
            undo()

    @property
    def events(self) -> list[Event]:
        return [e for _, e in self.daemon.events]


@asynccontextmanager
async def running(pulse: PulseServer, *, reply_seconds: float = 1.0) -> AsyncIterator[Running]:
    daemon = Daemon(Settings.model_validate(FAST), tone(REPLY_HZ, reply_seconds, rate_hz=24_000, level=0.5))
    task = asyncio.create_task(daemon.supervisor.run())
    try:
        await asyncio.wait_for(daemon.connected.wait(), 10)
        await asyncio.sleep(0.5)  # let the wake-word front end settle on live audio
        yield Running(daemon, pulse)
    finally:
        daemon.bus.publish(ShutdownRequested(reason="test"))
        await asyncio.wait_for(task, 10)


def reply_heard(wav: Path) -> bool:
    """True when the recording of the speaker ends with the reply tone (the wake earcon comes before it)."""
    samples = np.frombuffer(read_wav(wav).pcm, dtype="<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(samples) > 3000)
    return len(loud) > 8000 and abs(dominant_hz(samples[loud[-1] - 4000 : loud[-1]], 16_000) - REPLY_HZ) < 10


def module_of(pulse: PulseServer, sink: str) -> str:
    for line in pulse.pactl("list", "short", "modules").stdout.splitlines():
        if f"sink_name={sink} " in f"{line} ":
            return line.split()[0]
    raise AssertionError(f"no module holds the sink {sink}")


def reload_sink(pulse: PulseServer, sink: str) -> None:
    options = (f"sink_name={sink}", "rate=16000", "channels=1", "norewinds=1")
    loaded = pulse.pactl("load-module", "module-null-sink", *options)
    assert loaded.returncode == 0, loaded.stderr


# --- microphone -----------------------------------------------------------------------------------


async def test_a_microphone_that_stops_delivering_is_reported_once_and_heard_again_when_it_delivers(
    pulse: PulseServer, question: Path
) -> None:
    """A suspended source opens fine but delivers nothing, like a hung USB microphone."""
    async with running(pulse) as daemon:
        assert pulse.pactl("suspend-sink", "mic", "1").returncode == 0
        await asyncio.sleep(3.0)
        assert pulse.pactl("suspend-sink", "mic", "0").returncode == 0
        await daemon.until_connected("microphone")
        ended = await daemon.ask(question)
    assert ended.outcome == "completed"
    # Reported gone once and back once: no connected/disconnected flapping at every reopen attempt.
    assert daemon.connections("microphone") == [True, False, True]


async def test_a_removed_microphone_source_is_heard_again_once_it_is_back(pulse: PulseServer, question: Path) -> None:
    """PulseAudio moves the stream to another source while the microphone is gone, and back when it returns."""
    async with running(pulse) as daemon:
        assert pulse.pactl("unload-module", module_of(pulse, "mic")).returncode == 0
        await asyncio.sleep(2.0)
        reload_sink(pulse, "mic")
        assert pulse.pactl("set-default-source", "mic.monitor").returncode == 0
        await asyncio.sleep(1.0)
        ended = await daemon.ask(question)
    assert ended.outcome == "completed"
    assert len(daemon.daemon.of(WakeDetected)) == 1


# --- speaker --------------------------------------------------------------------------------------


async def test_a_speaker_that_stops_taking_audio_mid_answer_ends_the_turn_with_a_clear_error_and_recovers(
    pulse: PulseServer, question: Path, tmp_path: Path
) -> None:
    async with running(pulse, reply_seconds=2.5) as daemon:
        first = await daemon.ask_until_replying(question)
        await asyncio.sleep(0.5)
        assert pulse.pactl("suspend-sink", "speaker", "1").returncode == 0  # the device hangs mid-answer
        failed = await first
        assert pulse.pactl("suspend-sink", "speaker", "0").returncode == 0
        second, heard = await daemon.ask_and_record(question, tmp_path / "after.wav")
    assert failed.outcome == "error"
    [(_, failure)] = daemon.daemon.of(TurnFailed)
    assert isinstance(failure, TurnFailed) and failure.code == "playback-failed"
    assert "speaker took no audio" in failure.message
    assert second.outcome == "completed"
    assert heard


async def test_a_removed_and_returned_speaker_sink_plays_the_next_answer(
    pulse: PulseServer, question: Path, tmp_path: Path
) -> None:
    async with running(pulse, reply_seconds=2.5) as daemon:
        first = await daemon.ask_until_replying(question)
        assert pulse.pactl("unload-module", module_of(pulse, "speaker")).returncode == 0
        done = await first  # PulseAudio moves the stream to what is left; the turn ends either way
        reload_sink(pulse, "speaker")
        assert pulse.pactl("set-default-sink", "speaker").returncode == 0
        second, heard = await daemon.ask_and_record(question, tmp_path / "after.wav")
    assert done.outcome in ("completed", "error")
    assert second.outcome == "completed"
    assert heard


# --- the sound server -----------------------------------------------------------------------------


async def test_pulseaudio_restarted_while_idle_both_microphone_and_speaker_recover(
    pulse: PulseServer, question: Path, tmp_path: Path
) -> None:
    async with running(pulse) as daemon:
        await asyncio.to_thread(pulse.stop)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(pulse.start)
        await daemon.until_connected("microphone")
        ended, heard = await daemon.ask_and_record(question, tmp_path / "after.wav")
    assert ended.outcome == "completed"
    assert daemon.connections("microphone") == [True, False, True]
    assert heard


async def test_pulseaudio_killed_during_an_answer_fails_that_turn_and_both_devices_recover_after_restart(
    pulse: PulseServer, question: Path, tmp_path: Path
) -> None:
    async with running(pulse, reply_seconds=2.5) as daemon:
        first = await daemon.ask_until_replying(question)
        await asyncio.sleep(0.5)
        assert pulse.process is not None
        pulse.process.kill()  # the sound server crashes: no goodbye to its clients
        await asyncio.to_thread(pulse.process.wait, 5)
        pulse.process = None
        failed = await first
        await asyncio.to_thread(pulse.start)
        await daemon.until_connected("microphone")
        second, heard = await daemon.ask_and_record(question, tmp_path / "after.wav")
    assert failed.outcome == "error"
    assert [e.code for _, e in daemon.daemon.of(TurnFailed)] == ["playback-failed"]  # type: ignore[attr-defined]
    assert second.outcome == "completed"
    assert daemon.connections("speaker")[-1] is True
    assert heard
