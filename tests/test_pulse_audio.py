"""The real PyAudio path through a private PulseAudio daemon: microphone, speaker, device loss, a whole turn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import AudioChunk, join, read_wav, silence, split, tone, write_wav
from assistant.bus import Bus
from assistant.config import Settings
from assistant.events import (
    ConnectionChanged,
    Event,
    PlaybackStarted,
    ShutdownRequested,
    SpeechEnded,
    SpeechStarted,
    TurnEnded,
    WakeDetected,
)
from assistant.listen import build_prosody, build_vad, build_wake_detector
from assistant.supervisor import Supervisor, SupervisorOptions
from assistant.tasks import MonotonicClock
from assistant.turn import TurnDeps
from hardware import PyAudioMicrophone, PyAudioSpeaker, build_microphone, build_speaker, list_devices
from hardware.devices import find_device
from support.fakes import FakeTools, FakeVoice, ScriptedModel, after, freeze_this_process
from support.pulse import PulseServer, pulse_fixture  # noqa: F401 (the pulse fixture)

pytestmark = [pytest.mark.pulse, pytest.mark.models]

DATA = Path(__file__).parent / "data" / "listen"
REPLY_HZ = 500.0


def speech_end_seconds(audio: AudioChunk) -> float:
    """End of the last 10 ms frame within 40 dB of the loudest frame (how the clips were annotated)."""
    samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float64)
    frame = audio.rate_hz // 100
    energy = [float(np.sqrt(np.mean(samples[i : i + frame] ** 2))) + 1e-9 for i in range(0, len(samples), frame)]
    loudest = max(energy)
    last = max(i for i, e in enumerate(energy) if 20 * math.log10(e / loudest) > -40)
    return (last + 1) / 100


def level_db(pcm: bytes, start: float, end: float) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)[int(start * 16_000) : int(end * 16_000)]
    return float(10 * np.log10(np.mean(samples**2) + 1e-9))


def dominant_hz(pcm: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate_hz)[int(np.argmax(spectrum))])


def loud_seconds(wav: Path, level: float = 0.02) -> float:
    """Seconds of a recording whose 10 ms frames are above ``level`` RMS."""
    samples = np.frombuffer(read_wav(wav).pcm, dtype="<i2").astype(np.float64) / 32768
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > level) / 100)


@contextlib.contextmanager
def recording(pulse: PulseServer, path: Path) -> Iterator[Path]:
    recorder = pulse.record(path)
    try:
        yield path
    finally:
        recorder.terminate()
        recorder.wait(5)


async def first_chunks(mic: PyAudioMicrophone, seconds: float) -> AudioChunk:
    got: list[AudioChunk] = []
    async with contextlib.aclosing(mic.chunks()) as chunks:
        async for chunk in chunks:
            got.append(chunk)
            if sum(c.seconds for c in got) >= seconds:
                break
    return join(got)


def test_devices_are_listed_and_found_by_name(pulse: PulseServer) -> None:
    devices = list_devices()
    assert any(d.name == "pulse" for d in devices)
    assert find_device(devices, "PULSE", "input").name == "pulse"
    assert find_device(devices, None, "output").is_default_output


async def test_microphone_hears_the_virtual_microphone_bit_exact(pulse: PulseServer, tmp_path: Path) -> None:
    clip = read_wav(DATA / "alexa__en-gb__s165__clean.wav")
    mic = build_microphone(Settings().audio, Bus(MonotonicClock()))
    capture = asyncio.create_task(first_chunks(mic, clip.seconds + 1.5))
    await asyncio.sleep(0.3)
    # Waiting blocks the loop for the whole clip, past the stall time: the buffers must still all arrive.
    pulse.inject(DATA / "alexa__en-gb__s165__clean.wav").wait(10)
    heard = await asyncio.wait_for(capture, 15)
    assert all(len(c) == 1280 * 2 for c in [heard.pcm[i : i + 2560] for i in range(0, len(heard.pcm), 2560)])
    samples = np.frombuffer(heard.pcm, dtype="<i2")
    reference = np.frombuffer(clip.pcm, dtype="<i2")
    loud = int(np.argmax(np.abs(reference) > 1000))
    starts = [i for i in np.flatnonzero(samples == reference[loud]) if i >= loud]
    assert any(np.array_equal(samples[s - loud : s - loud + len(reference)], reference) for s in starts), (
        "the injected clip did not arrive unchanged"
    )


async def test_speaker_resamples_24k_and_stops_at_once(pulse: PulseServer, tmp_path: Path) -> None:
    bus = Bus(MonotonicClock())
    opened = asyncio.Event()
    bus.tap(lambda e: isinstance(e.event, ConnectionChanged) and e.event.connected and opened.set())
    speaker = build_speaker(Settings().audio.model_copy(update={"volume": 1.0}), bus)

    async def long_tone() -> AsyncIterator[AudioChunk]:
        for _ in range(30):
            yield tone(REPLY_HZ, 0.1, rate_hz=24_000, level=0.5)

    with recording(pulse, tmp_path / "out.wav") as out:
        playing = asyncio.create_task(speaker.play(long_tone()))
        await asyncio.wait_for(opened.wait(), 10)  # the 0.6 s count from the stream's opening, not its request
        await asyncio.sleep(0.6)
        speaker.stop()
        completed = await asyncio.wait_for(playing, 60)
        await asyncio.sleep(0.5)
    assert completed is False
    heard = loud_seconds(out)
    # Cut short: well under the tone's 3 s (a busy machine may let more than the 0.6 s through before the stop).
    assert 0.3 < heard < 2.5, f"{heard:.2f} s of the 3 s tone reached the speaker"
    samples = np.frombuffer(read_wav(out).pcm, dtype="<i2").astype(np.float64)
    loud = samples[np.argmax(np.abs(samples) > 3000) :][:4000]
    assert abs(dominant_hz(loud, 16_000) - REPLY_HZ) < 10
    assert speaker.monitor.audible_within(1.0)


async def test_speaker_volume_scales_the_output(pulse: PulseServer, tmp_path: Path) -> None:
    speaker = PyAudioSpeaker(volume=0.25)

    async def one_tone() -> AsyncIterator[AudioChunk]:
        yield tone(REPLY_HZ, 0.6, rate_hz=16_000, level=0.8)

    with recording(pulse, tmp_path / "out.wav") as out:
        await asyncio.sleep(0.3)
        assert await speaker.play(one_tone()) is True
        await asyncio.sleep(0.3)
    peak = np.max(np.abs(np.frombuffer(read_wav(out).pcm, dtype="<i2"))) / 32768
    assert 0.8 * 0.25 * 0.9 < peak < 0.8 * 0.25 * 1.1


async def test_microphone_survives_the_sound_server_restarting(pulse: PulseServer) -> None:
    events: list[Event] = []
    bus = Bus(MonotonicClock())
    bus.tap(lambda envelope: events.append(envelope.event))
    mic = PyAudioMicrophone(publish=bus.publish, stall_seconds=0.5, reconnect_max_seconds=1.0)
    seen = {"before": 0, "after": 0}

    async def listen() -> None:
        async with contextlib.aclosing(mic.chunks()) as chunks:
            async for _ in chunks:
                seen["after" if mic.reconnects else "before"] += 1
                if seen["after"] >= 5:
                    return

    task = asyncio.create_task(listen())
    await asyncio.sleep(1.0)
    await asyncio.to_thread(pulse.stop)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(pulse.start)
    await asyncio.wait_for(task, 15)
    changes = [(e.service, e.connected) for e in events if isinstance(e, ConnectionChanged)]
    assert seen["before"] >= 5
    assert changes[0] == ("microphone", True)
    assert ("microphone", False) in changes
    assert changes[-1] == ("microphone", True)


async def test_microphone_frozen_with_its_process_is_not_taken_for_stalled(pulse: PulseServer) -> None:
    """The process stopped past the stall time, three times, while PulseAudio goes on recording: no reopen."""
    events: list[Event] = []
    connected = asyncio.Event()
    bus = Bus(MonotonicClock())
    bus.tap(lambda envelope: events.append(envelope.event))
    bus.tap(lambda envelope: isinstance(envelope.event, ConnectionChanged) and connected.set())
    mic = PyAudioMicrophone(publish=bus.publish, stall_seconds=0.5, reconnect_max_seconds=1.0)
    heard: list[AudioChunk] = []

    async def listen() -> None:
        async with contextlib.aclosing(mic.chunks()) as chunks:
            async for chunk in chunks:
                heard.append(chunk)

    task = asyncio.create_task(listen())
    wakers: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.wait_for(connected.wait(), 10)
        for _ in range(3):
            await asyncio.sleep(0.5)
            wakers.append(freeze_this_process(1.5))
        before = len(heard)
        await asyncio.sleep(1.0)
    finally:
        for waker in wakers:
            waker.wait(10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    changes = [e.connected for e in events if isinstance(e, ConnectionChanged)]
    assert changes == [True], "reported lost while only this process was held up"
    assert mic.reconnects == 0
    assert len(heard) - before >= 6, "audio kept coming after the last freeze"


class Daemon:
    """The real supervisor and turn on the PulseAudio devices, with a scripted model that answers ``reply``."""

    def __init__(self, settings: Settings, reply: AudioChunk) -> None:
        from assistant.ports import ModelAudio, ModelDone, ModelTranscript
        from hardware import build_echo_canceller

        self.clock = MonotonicClock()
        self.bus = Bus(self.clock)
        self.events: list[tuple[float, Event]] = []
        self.bus.tap(lambda envelope: self.events.append((envelope.at, envelope.event)))
        self.connected, self.turn_ended = asyncio.Event(), asyncio.Event()
        self.bus.tap(lambda envelope: isinstance(envelope.event, ConnectionChanged) and self.connected.set())
        self.bus.tap(lambda envelope: isinstance(envelope.event, TurnEnded) and self.turn_ended.set())
        echo = build_echo_canceller(settings.audio)
        self.speaker = build_speaker(settings.audio, self.bus, echo=echo)
        answer = [after(0.1, ModelTranscript("what is the weather like tomorrow")), after(0.1, ModelAudio(reply))]
        self.model = ScriptedModel(self.clock, [[*answer, after(0, ModelDone())]] * 2)  # type: ignore[arg-type]
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=self.clock,
            vad=build_vad(),
            prosody=build_prosody(),
            model=self.model,
            voice=FakeVoice(),
            sink=self.speaker,
            tools=FakeTools(),
            endpoint=settings.endpointing,
            conversation=settings.conversation,
        )
        self.supervisor = Supervisor(
            bus=self.bus,
            source=build_microphone(settings.audio, self.bus, echo=echo),
            wake=build_wake_detector(settings.wake, monitor=self.speaker.monitor),
            deps=deps,
            options=SupervisorOptions(follow_up_seconds=settings.conversation.follow_up_seconds),
        )

    async def converse(self, pulse: PulseServer, spoken: Path, *, linger_seconds: float = 0.3) -> float:
        """Play ``spoken`` into the microphone, run until the first turn ends; return when injection began."""
        running = asyncio.create_task(self.supervisor.run())
        await asyncio.wait_for(self.connected.wait(), 10)
        await asyncio.sleep(0.5)  # let the wake-word front end settle on live audio
        injected_at = self.clock.now()
        pulse.inject(spoken)
        await asyncio.wait_for(self.turn_ended.wait(), 25)
        await asyncio.sleep(linger_seconds)
        self.bus.publish(ShutdownRequested(reason="test"))
        await asyncio.wait_for(running, 5)
        return injected_at

    def of(self, kind: type[Event]) -> list[tuple[float, Event]]:
        return [(at, e) for at, e in self.events if isinstance(e, kind)]


NO_FOLLOW_UP = {"conversation": {"follow_up_seconds": 0}}


async def test_the_daemon_wakes_captures_the_question_and_plays_the_reply(pulse: PulseServer, tmp_path: Path) -> None:
    """Wake word then a question go into the virtual mic; the reply comes out of the virtual speaker."""
    wake_clip = read_wav(DATA / "hey_jarvis__en-us__s165__clean.wav")
    question = read_wav(DATA / "vad_00_en-us_silence.wav")
    write_wav(tmp_path / "spoken.wav", join([wake_clip, question, silence(1.0)]))
    question_end = wake_clip.seconds + speech_end_seconds(question)
    daemon = Daemon(Settings.model_validate(NO_FOLLOW_UP), tone(REPLY_HZ, 1.0, rate_hz=24_000, level=0.5))

    with recording(pulse, tmp_path / "speaker.wav") as out:
        injected_at = await daemon.converse(pulse, tmp_path / "spoken.wav")

    kinds = [type(e) for _, e in daemon.events]
    [(_, wake)] = daemon.of(WakeDetected)
    assert isinstance(wake, WakeDetected) and wake.wake_word == "hey_jarvis"
    assert kinds.index(WakeDetected) < kinds.index(SpeechStarted) < kinds.index(SpeechEnded)
    assert [e.outcome for _, e in daemon.of(TurnEnded)] == ["completed"]  # type: ignore[attr-defined]
    ended_at = daemon.of(SpeechEnded)[0][0] - injected_at
    # 0.3 s of end silence after a phrase that sounds finished (1.0 s after one that does not) + Silero's ~0.1 s
    # tail + one chunk + capture latency.
    assert 0.25 < ended_at - question_end < 1.4, f"end of speech {ended_at - question_end:.2f} s after the true end"
    heard = daemon.model.requests[0].audio
    assert heard is not None and speech_end_seconds(question) - 0.5 < heard.seconds < question.seconds
    assert [e.kind for _, e in daemon.of(PlaybackStarted)] == ["earcon", "reply"]  # type: ignore[attr-defined]
    samples = np.frombuffer(read_wav(out).pcm, dtype="<i2").astype(np.float64)
    tail = samples[-int(16_000 * 2.5) :]
    assert abs(dominant_hz(tail, 16_000) - REPLY_HZ) < 10
    assert loud_seconds(out) > 1.0  # the wake earcon and the whole 1 s reply


@pytest.mark.parametrize(
    ("echo_cancel", "echo_threshold", "wakes"),
    [
        ("none", 0.0, 2),  # the control: nothing stops it from waking itself
        ("none", 1.0, 1),  # the echo guard
        ("webrtc", 0.0, 1),  # WebRTC AEC3 in the microphone path
    ],
)
async def test_the_assistant_does_not_wake_itself_when_its_reply_says_the_wake_word(
    pulse: PulseServer, tmp_path: Path, echo_cancel: str, echo_threshold: float, wakes: int
) -> None:
    """The speaker is heard back through a loopback "room"; the reply itself says "hey jarvis"."""
    loaded = pulse.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=mic", "latency_msec=40")
    assert loaded.returncode == 0, loaded.stderr
    wake_clip = read_wav(DATA / "hey_jarvis__en-us__s165__clean.wav")
    question = read_wav(DATA / "vad_00_en-us_silence.wav")
    write_wav(tmp_path / "spoken.wav", join([wake_clip, question]))
    settings = Settings.model_validate(
        {**NO_FOLLOW_UP, "audio": {"echo_cancel": echo_cancel}, "wake": {"echo_threshold": echo_threshold}}
    )
    daemon = Daemon(settings, wake_clip)
    await daemon.converse(pulse, tmp_path / "spoken.wav", linger_seconds=1.0)
    assert len(daemon.of(WakeDetected)) == wakes
    expected = "interrupted" if wakes > 1 else "completed"
    assert daemon.of(TurnEnded)[0][1].outcome == expected  # type: ignore[attr-defined]


def sink_input_volumes(pulse: PulseServer) -> dict[str, int]:
    listing = json.loads(pulse.pactl("--format=json", "list", "sink-inputs").stdout)
    return {item["properties"]["application.name"]: next(iter(item["volume"].values()))["value"] for item in listing}


async def test_other_applications_are_ducked_during_a_turn_and_restored_after(
    pulse: PulseServer, tmp_path: Path
) -> None:
    from assistant.events import ListeningStarted
    from hardware.ducking import PulseDucker

    write_wav(tmp_path / "music.wav", tone(300, 8.0, rate_hz=16_000, level=0.2))
    music = pulse.inject(tmp_path / "music.wav", device="speaker")  # another application playing music
    try:
        bus = Bus(MonotonicClock())
        ducker = PulseDucker(0.3)
        running = asyncio.create_task(ducker.run(bus))
        await asyncio.sleep(0.5)
        assert sink_input_volumes(pulse) == {"paplay": 65536}
        bus.publish(ListeningStarted(turn_id="t1"))
        await asyncio.sleep(0.5)
        assert sink_input_volumes(pulse) == {"paplay": round(65536 * 0.3)}
        bus.publish(TurnEnded(turn_id="t1", outcome="completed"))
        await asyncio.sleep(0.5)
        assert sink_input_volumes(pulse) == {"paplay": 65536}
        bus.publish(ShutdownRequested(reason="test"))
        await asyncio.wait_for(running, 5)
    finally:
        music.kill()
        music.wait()


async def test_other_applications_get_their_volume_back_when_the_daemon_stops_mid_restore(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """At shutdown the App cancels the edges right after the supervisor returns, while the ducker restores."""
    from assistant.events import ListeningStarted
    from hardware.ducking import PulseDucker

    write_wav(tmp_path / "music.wav", tone(300, 8.0, rate_hz=16_000, level=0.2))
    music = pulse.inject(tmp_path / "music.wav", device="speaker")
    try:
        bus = Bus(MonotonicClock())
        ducker = PulseDucker(0.3)
        running = asyncio.create_task(ducker.run(bus))
        await asyncio.sleep(0.5)
        bus.publish(ListeningStarted(turn_id="t1"))
        await asyncio.sleep(0.5)
        assert sink_input_volumes(pulse) == {"paplay": round(65536 * 0.3)}
        bus.publish(ShutdownRequested(reason="SIGTERM"))
        await asyncio.sleep(0)  # the ducker takes the event first and starts restoring
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        assert sink_input_volumes(pulse) == {"paplay": 65536}
    finally:
        music.kill()
        music.wait()


async def test_echo_canceller_removes_the_speakers_echo_heard_through_the_room(pulse: PulseServer) -> None:
    """A loopback from the speaker into the microphone is the room; WebRTC AEC3 takes the reply back out."""
    from hardware.aec import EchoCanceller

    loaded = pulse.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=mic", "latency_msec=40")
    assert loaded.returncode == 0, loaded.stderr
    echo = EchoCanceller()
    speaker = PyAudioSpeaker(echo=echo)
    microphone = PyAudioMicrophone()
    raw: list[bytes] = []
    cleaned: list[bytes] = []

    async def capture() -> None:
        async with contextlib.aclosing(microphone.chunks()) as chunks:
            async for chunk in chunks:
                raw.append(chunk.pcm)
                cleaned.append(echo.process(chunk).pcm)

    async def reply() -> AsyncIterator[AudioChunk]:
        for chunk in split(read_wav(DATA / "aec_far.wav"), 0.1):
            yield chunk

    listening = asyncio.create_task(capture())
    await asyncio.sleep(0.5)
    played_from = len(raw)
    assert await speaker.play(reply())
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    # Judge the second half of the reply, after AEC3 has converged.
    half = played_from + (len(raw) - played_from) // 2
    heard, left = b"".join(raw[half:]), b"".join(cleaned[half:])
    seconds = len(heard) / 32_000
    assert level_db(heard, 0, seconds) > 50, "the loopback did not carry the reply into the microphone"
    assert level_db(heard, 0, seconds) - level_db(left, 0, seconds) > 12  # 25-43 dB measured


async def test_speaker_reports_a_vanished_server_and_plays_again_when_it_returns(pulse: PulseServer) -> None:
    from assistant.errors import PlaybackError

    events: list[Event] = []
    bus = Bus(MonotonicClock())
    bus.tap(lambda envelope: events.append(envelope.event))
    speaker = PyAudioSpeaker(publish=bus.publish, stall_seconds=0.5)

    async def long_tone() -> AsyncIterator[AudioChunk]:
        for _ in range(40):
            yield tone(REPLY_HZ, 0.1, rate_hz=24_000)

    playing = asyncio.create_task(speaker.play(long_tone()))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(pulse.stop)
    with pytest.raises(PlaybackError):
        await asyncio.wait_for(playing, 5)
    await asyncio.to_thread(pulse.start)

    async def short_tone() -> AsyncIterator[AudioChunk]:
        yield tone(REPLY_HZ, 0.2, rate_hz=24_000)

    assert await speaker.play(short_tone()) is True
    changes = [(e.service, e.connected) for e in events if isinstance(e, ConnectionChanged)]
    assert changes == [("speaker", True), ("speaker", False), ("speaker", True)]


ENROLL = Path(__file__).parent / "data" / "enroll"
ENROLLED_WORD = "小乡小乡"


async def test_an_enrolled_word_wakes_the_daemon_through_the_virtual_microphone(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """小乡小乡, enrolled from five takes, then said into the virtual microphone before a question, wakes the daemon."""
    from assistant.config import WakeSettings
    from assistant.listen import embed_recording, speech_frames, word_store

    words = tmp_path / "words"
    takes = [(f"enroll_{n}.wav", read_wav(ENROLL / f"enroll_{n}.wav")) for n in range(1, 6)]
    word_store(WakeSettings(enrolled_dir=words)).enrol(
        ENROLLED_WORD, takes, embed=embed_recording, speech_frames=speech_frames
    )
    question = read_wav(DATA / "vad_00_en-us_silence.wav")
    write_wav(tmp_path / "spoken.wav", join([read_wav(ENROLL / "test_quiet_3.wav"), question, silence(1.0)]))
    wake = {"enrolled_dir": str(words), "words": [{"enrolled": ENROLLED_WORD}]}
    daemon = Daemon(Settings.model_validate({**NO_FOLLOW_UP, "wake": wake}), tone(REPLY_HZ, 0.5, rate_hz=24_000))
    await daemon.converse(pulse, tmp_path / "spoken.wav")
    assert [e.wake_word for _, e in daemon.of(WakeDetected)] == [ENROLLED_WORD]  # type: ignore[attr-defined]
    assert [e.outcome for _, e in daemon.of(TurnEnded)] == ["completed"]  # type: ignore[attr-defined]


def _recording_streams(pulse: PulseServer) -> set[int]:
    listing = pulse.pactl("--format=json", "list", "source-outputs")
    return {int(item["index"]) for item in json.loads(listing.stdout or "[]")} if listing.returncode == 0 else set()


def test_wake_enroll_without_files_records_the_takes_from_the_microphone(pulse: PulseServer, tmp_path: Path) -> None:
    """``xiangyin wake enroll NAME`` speaks, beeps, and cuts each take said into the virtual microphone."""
    config = tmp_path / "config.yaml"
    config.write_text(f"wake:\n  enrolled_dir: {tmp_path / 'words'}\n", encoding="utf-8")
    command = [sys.executable, "-u", "-m", "assistant", "wake", "--config", str(config), "enroll", ENROLLED_WORD]
    process = subprocess.Popen(command, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output: list[str] = []
    seen: set[int] = set()
    try:
        for line in process.stdout:
            output.append(line)
            match = re.match(r"take (\d)/4:", line)
            if match is None:
                continue
            # Say the take once the command's microphone for it is open (each take opens its own).
            deadline = time.monotonic() + 20
            while not (_recording_streams(pulse) - seen) and time.monotonic() < deadline:
                time.sleep(0.05)
            seen |= _recording_streams(pulse)
            pulse.inject(ENROLL / f"enroll_{match.group(1)}.wav").wait(20)
        assert process.wait(60) == 0, "".join(output)
    finally:
        process.kill()
    text = "".join(output)
    assert "nothing heard" not in text, text
    assert f"enrolled '{ENROLLED_WORD}': 4 takes added, 4 in all" in text, text
    assert (tmp_path / "words" / ENROLLED_WORD / "word.json").is_file()
