"""WAV files as microphone and speaker, device lookup, resampling: no sound server needed."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio import AudioChunk, read_wav, tone, write_wav
from hardware.devices import DeviceError, DeviceInfo, find_device
from hardware.files import FileSink, FileSource
from hardware.microphone import PyAudioMicrophone
from hardware.resample import Resampler, apply_gain
from support.fakes import FakeClock, freeze_this_process

DATA = Path(__file__).parent / "data" / "listen"


async def collect(source: FileSource) -> list[AudioChunk]:
    return [chunk async for chunk in source.chunks()]


async def test_file_source_yields_fixed_chunks_then_trailing_silence_and_ends() -> None:
    source = FileSource(DATA / "alexa__en-gb__s165__clean.wav", realtime=False, trailing_silence_seconds=1.0)
    chunks = await collect(source)
    assert {len(c.pcm) for c in chunks} == {2560}
    assert {c.rate_hz for c in chunks} == {16_000}
    audio = read_wav(DATA / "alexa__en-gb__s165__clean.wav")
    assert b"".join(c.pcm for c in chunks).startswith(audio.pcm)
    assert len(chunks) == -(-audio.samples // 1280) + round(1.0 / 0.08)
    assert not any(chunks[-1].pcm)


async def test_file_source_paces_in_real_time_on_the_clock() -> None:
    import asyncio

    clock = FakeClock()
    source = FileSource(
        DATA / "alexa__en-gb__s165__clean.wav", realtime=True, trailing_silence_seconds=0.8, clock=clock
    )
    driver = asyncio.create_task(clock.drive())
    try:
        chunks = await collect(source)
    finally:
        driver.cancel()
    assert clock.now() == pytest.approx(len(chunks) * 0.08)


async def test_file_source_resamples_other_rates_to_16k(tmp_path: Path) -> None:
    write_wav(tmp_path / "44k.wav", tone(440, 1.0, rate_hz=44_100))
    chunks = await collect(FileSource(tmp_path / "44k.wav", realtime=False, trailing_silence_seconds=0))
    samples = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    assert abs(len(samples) - 16_000) <= 1280
    spectrum = np.abs(np.fft.rfft(samples[:16_000]))
    assert abs(np.fft.rfftfreq(16_000, 1 / 16_000)[np.argmax(spectrum)] - 440) < 2


async def test_file_source_hears_a_stereo_file_as_mono(tmp_path: Path) -> None:
    left = np.frombuffer(tone(440, 0.5).pcm, dtype="<i2")
    with wave.open(str(tmp_path / "stereo.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(np.stack([left, left], axis=1).astype("<i2").tobytes())
    source = FileSource(tmp_path / "stereo.wav", realtime=False, trailing_silence_seconds=0)
    assert source.audio.rate_hz == 16_000 and source.audio.samples == len(left)
    assert np.abs(np.frombuffer(source.audio.pcm, dtype="<i2").astype(np.int32) - left).max() <= 1


async def stream(*chunks: AudioChunk) -> AsyncIterator[AudioChunk]:
    for chunk in chunks:
        yield chunk


async def test_file_sink_writes_everything_played_at_24k(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "reply.wav")
    assert await sink.play(stream(tone(500, 0.5, rate_hz=24_000), tone(500, 0.5, rate_hz=16_000)))
    assert await sink.play(stream(tone(700, 0.25, rate_hz=24_000)))
    sink.close()
    written = read_wav(tmp_path / "reply.wav")
    assert written.rate_hz == 24_000
    assert written.seconds == pytest.approx(1.25, abs=0.01)


async def test_file_sink_is_a_valid_wav_while_still_open(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "reply.wav")
    await sink.play(stream(tone(500, 0.5, rate_hz=24_000)))
    assert read_wav(tmp_path / "reply.wav").seconds == pytest.approx(0.5, abs=0.01)
    sink.close()


async def test_file_sink_reports_a_stopped_stream(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "reply.wav")

    async def stopped() -> AsyncIterator[AudioChunk]:
        yield tone(500, 0.1)
        sink.stop()
        yield tone(500, 0.1)

    assert await sink.play(stopped()) is False
    sink.close()
    assert read_wav(tmp_path / "reply.wav").seconds == pytest.approx(0.1, abs=0.01)


def test_streaming_resampler_keeps_duration_and_pitch() -> None:
    resampler = Resampler(24_000, 16_000)
    source = tone(500, 2.0, rate_hz=24_000)
    out = b"".join(resampler.process(source.pcm[i : i + 9600]) for i in range(0, len(source.pcm), 9600))
    out += resampler.process(b"", last=True)
    samples = np.frombuffer(out, dtype="<i2")
    assert len(samples) == pytest.approx(32_000, abs=2)
    assert abs(np.fft.rfftfreq(len(samples), 1 / 16_000)[np.argmax(np.abs(np.fft.rfft(samples)))] - 500) < 1


def test_gain_scales_and_clips() -> None:
    pcm = np.array([1000, -1000, 30000], dtype="<i2").tobytes()
    assert np.frombuffer(apply_gain(pcm, 0.5), dtype="<i2").tolist() == [500, -500, 15000]
    assert np.frombuffer(apply_gain(pcm, 2.0), dtype="<i2").tolist() == [2000, -2000, 32767]


DEVICES = [
    DeviceInfo(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA", 2, 2, 44100, False, False),
    DeviceInfo(1, "ReSpeaker 4 Mic Array (UAC1.0): USB Audio (hw:1,0)", "ALSA", 6, 0, 16000, False, False),
    DeviceInfo(2, "pulse", "ALSA", 32, 32, 44100, False, False),
    DeviceInfo(3, "default", "ALSA", 32, 32, 44100, True, True),
]


@pytest.mark.parametrize(
    ("spec", "direction", "index"),
    [
        (None, "input", 3),
        ("respeaker", "input", 1),
        (1, "input", 1),
        ("2", "output", 2),
        ("Default", "output", 3),
    ],
)
def test_devices_are_found_by_index_name_part_or_default(spec: str | int | None, direction: str, index: int) -> None:
    assert find_device(DEVICES, spec, direction).index == index  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "direction", "message"),
    [
        ("respeaker", "output", "no output device matches 'respeaker'"),
        (7, "input", "no input device with index 7"),
        ("a", "input", "ambiguous"),
    ],
)
def test_a_device_that_is_missing_or_ambiguous_is_named_in_the_error(
    spec: str | int, direction: str, message: str
) -> None:
    with pytest.raises(DeviceError, match=message):
        find_device(DEVICES, spec, direction)  # type: ignore[arg-type]


def test_no_devices_at_all_says_the_sound_server_may_be_down() -> None:
    with pytest.raises(DeviceError, match="sound server"):
        find_device([], None, "input")


async def test_file_sink_keeps_the_reply_at_full_scale_whatever_the_volume(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "reply.wav")
    sink.set_volume(0.2)
    await sink.play(stream(tone(500, 0.2, rate_hz=24_000, level=0.5)))
    sink.close()
    peak = np.max(np.abs(np.frombuffer(read_wav(tmp_path / "reply.wav").pcm, dtype="<i2"))) / 32767
    assert peak == pytest.approx(0.5, abs=0.02)
    assert sink.volume == 0.2


def test_speaker_falls_back_to_the_device_rate_when_the_stream_rate_is_refused() -> None:
    from hardware.speaker import PyAudioSpeaker

    class RefusesAllBut48k:
        def is_format_supported(self, rate: int, **_: object) -> bool:
            if rate != 48_000:
                raise ValueError("Invalid sample rate")
            return True

    usb = DeviceInfo(5, "USB speaker", "ALSA", 0, 2, 48_000, False, True)
    assert PyAudioSpeaker._pick_rate(RefusesAllBut48k(), usb, 24_000) == 48_000
    assert PyAudioSpeaker._pick_rate(RefusesAllBut48k(), usb, 48_000) == 48_000


def test_a_pactl_that_hangs_is_killed_not_left_behind(tmp_path: Path) -> None:
    """A wedged sound server must not leave one stuck pactl per turn."""
    import asyncio
    import stat

    from hardware.ducking import PulseDucker

    pids = tmp_path / "pids"
    hanging = tmp_path / "pactl"
    hanging.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 30\n")
    hanging.chmod(hanging.stat().st_mode | stat.S_IXUSR)

    async def duck_then_give_up() -> None:
        ducked = asyncio.create_task(PulseDucker(0.3, pactl=str(hanging)).duck())
        for _ in range(500):  # until pactl runs, however busy the machine
            if pids.exists():
                break
            await asyncio.sleep(0.02)
        ducked.cancel()
        await asyncio.gather(ducked, return_exceptions=True)

    asyncio.run(duck_then_give_up())
    pid = int(pids.read_text().split()[0])
    status = Path(f"/proc/{pid}/stat")
    running = status.exists() and status.read_text().split()[2] != "Z"
    assert not running, f"pactl {pid} is still running"


def test_a_48_khz_capture_becomes_exact_16_khz_chunks() -> None:
    """A USB microphone that only takes 48 kHz still feeds the wake word 80 ms chunks at 16 kHz."""
    import math

    from assistant.audio import AudioChunk as Chunk
    from assistant.audio import rms
    from hardware.resample import Rechunker

    seconds, rate = 2.0, 48_000
    wave_48k = b"".join(
        round(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
        for i in range(int(seconds * rate))
    )
    rechunk = Rechunker(rate, 16_000, 1280)
    out: list[bytes] = []
    # The device hands over buffers whose size has nothing to do with ours.
    for start in range(0, len(wave_48k), 2 * 1001):
        out.extend(rechunk.feed(wave_48k[start : start + 2 * 1001]))
    assert {len(piece) for piece in out} == {2560}
    assert len(out) in (24, 25)  # 2 s = 25 chunks of 80 ms, less the filter's delay
    assert abs(rms(Chunk(out[10])) - 8000 / 32768 / math.sqrt(2)) < 0.01


async def listening_to_a_silent_device(
    microphone: PyAudioMicrophone, heard: list[AudioChunk]
) -> tuple[asyncio.Task[None], Any]:
    """Start ``microphone`` on a device that opens at once and delivers only what the test hands its capture.

    Returns the listening task and the capture, once the microphone waits for its first buffer.
    """
    opened: list[object] = []
    was_opened = threading.Event()

    def open_silent_stream(capture: object) -> None:
        opened.append(capture)
        was_opened.set()

    microphone._open = open_silent_stream  # type: ignore[method-assign]

    async def listen() -> None:
        async for chunk in microphone.chunks():
            heard.append(chunk)

    listening = asyncio.create_task(listen())
    assert await asyncio.to_thread(was_opened.wait, 5)
    await asyncio.sleep(0.05)
    return listening, opened[0]


async def test_a_microphone_cancelled_just_as_audio_arrives_stops_instead_of_listening_on() -> None:
    """Python 3.11's ``asyncio.wait_for`` returns the result and drops the cancel when both land together.

    A live microphone delivers every 80 ms, so at shutdown that race is routine; losing it hung the daemon.
    """
    listening, capture = await listening_to_a_silent_device(PyAudioMicrophone(stall_seconds=30), [])
    capture._deliver(bytes(2560))  # PortAudio's callback, as it lands on the loop
    listening.cancel()
    done, _ = await asyncio.wait({listening}, timeout=2)
    assert done, "the microphone swallowed the cancel and kept listening"
    assert listening.cancelled()


async def test_a_microphone_whose_buffers_wait_behind_a_busy_loop_is_not_taken_for_stalled() -> None:
    """The stall timer and the buffers that arrived meanwhile fall due together; the buffers win, none is lost."""
    microphone = PyAudioMicrophone(stall_seconds=0.2)
    heard: list[AudioChunk] = []
    listening, capture = await listening_to_a_silent_device(microphone, heard)
    asyncio.get_running_loop().call_soon(capture._deliver, bytes(2560))
    time.sleep(0.4)  # noqa: ASYNC251 - the loop busy past the stall time, on purpose
    await asyncio.sleep(0.05)
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    assert len(heard) == 1
    assert microphone.reconnects == 0


async def test_a_microphone_frozen_with_its_process_past_the_stall_time_is_not_taken_for_stalled() -> None:
    """The process stopped (the extreme of CPU starvation) while the device goes on recording: its buffers
    come after the overdue stall timer, and time we were not running does not count toward a stall."""
    from hardware.microphone import PyAudioMicrophone

    microphone = PyAudioMicrophone(stall_seconds=0.3)
    opened: list[Any] = []
    was_opened, stop = threading.Event(), threading.Event()

    def open_fake_device(capture: Any) -> None:
        opened.append(capture)
        was_opened.set()

    def record(capture: Any) -> None:  # the device's thread: a buffer every 80 ms, whatever happens to us
        while not stop.wait(0.08):
            capture.callback(bytes(2560), 1280, None, 0)

    microphone._open = open_fake_device  # type: ignore[method-assign]
    heard: list[AudioChunk] = []

    async def listen() -> None:
        async for chunk in microphone.chunks():
            heard.append(chunk)

    listening = asyncio.create_task(listen())
    assert await asyncio.to_thread(was_opened.wait, 5)
    device = threading.Thread(target=record, args=(opened[0],), daemon=True)
    device.start()
    wakers: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(3):
            await asyncio.sleep(0.3)
            wakers.append(freeze_this_process(1.0))
        await asyncio.sleep(0.3)
    finally:
        for waker in wakers:
            waker.wait(10)
        stop.set()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
    assert microphone.reconnects == 0
    assert len(heard) >= 10
