"""The PyAudio speaker: plays streams of any rate, stops at once, reports its output level.

PortAudio pulls audio on its own thread through a callback that takes small blocks from a byte buffer
the event loop fills. ``stop()`` empties that buffer, so sound ends within one block plus the device's
own latency. Gain is applied in the callback, so volume changes are heard at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from assistant.audio import AudioChunk
from assistant.errors import PlaybackError
from assistant.events import ConnectionChanged, Event
from assistant.output import OutputMonitor
from assistant.tasks import close_within

from .aec import EchoCanceller
from .devices import DeviceError, DeviceInfo, describe, find_device, new_portaudio
from .resample import RateFollower, apply_gain, rms

_LOGGER = logging.getLogger(__name__)

SERVICE = "speaker"
_BUFFER_SECONDS = 2.0
"""Audio read ahead of the device, seconds. The voice synthesises the next chunk only when asked for it, so
this is what lets synthesis overlap playback; stop() empties the whole buffer, so it costs no stop latency."""
_OPEN_ATTEMPTS = 3


class _Output:
    """One open output stream; the callback runs on PortAudio's thread."""

    def __init__(
        self,
        rate_hz: int,
        block_frames: int,
        gain: Callable[[], float],
        monitor: OutputMonitor,
        reference: Callable[[bytes, int], None] | None,
    ) -> None:
        self.rate_hz = rate_hz
        self.block_frames = block_frames
        self._gain = gain
        self._monitor = monitor
        self._reference = reference
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._ending = False
        self.consumed = 0
        """Bytes the device has taken so far (progress, for stall detection)."""
        self.stream: Any = None

    def write(self, pcm: bytes) -> None:
        with self._lock:
            self._buffer += pcm

    def end(self) -> None:
        with self._lock:
            self._ending = True

    def flush(self) -> None:
        with self._lock:
            self._buffer.clear()
            self._ending = True

    @property
    def buffered_seconds(self) -> float:
        with self._lock:
            return len(self._buffer) / 2 / self.rate_hz

    def callback(self, in_data: bytes | None, frames: int, time_info: Any, status: int) -> tuple[bytes, int]:
        import pyaudio

        need = frames * 2
        with self._lock:
            data = bytes(self._buffer[:need])
            del self._buffer[:need]
            last = self._ending and not self._buffer
        self.consumed += len(data)
        if len(data) < need:
            data += bytes(need - len(data))  # underrun or the end: pad with silence
        data = apply_gain(data, self._gain())
        self._monitor.note(rms(data), frames / self.rate_hz)
        if self._reference is not None:
            self._reference(data, self.rate_hz)
        return data, pyaudio.paComplete if last else pyaudio.paContinue


class PyAudioSpeaker:
    """An :class:`~assistant.ports.AudioSink` over PyAudio."""

    def __init__(
        self,
        *,
        device: str | int | None = None,
        publish: Callable[[Event], None] | None = None,
        volume: float = 1.0,
        output_rate_hz: int | None = None,
        block_ms: int = 20,
        stall_seconds: float = 2.0,
        monitor: OutputMonitor | None = None,
        echo: EchoCanceller | None = None,
    ) -> None:
        self._device = device
        self._echo = echo
        self._publish = publish or (lambda event: None)
        self._volume = volume
        self._duck = 1.0
        self._output_rate_hz = output_rate_hz
        self._block_ms = block_ms
        self._stall_seconds = stall_seconds
        self.monitor = monitor or OutputMonitor()
        """When this speaker last made sound; the echo guard reads it."""
        self._pa: Any = None
        self._reset_pending = False
        self._generation = 0
        self._current: _Output | None = None
        self._connected: bool | None = None

    # --- controls ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cut the current stream: drop everything queued (heard within one block)."""
        self._generation += 1
        current = self._current
        if current is not None:
            current.flush()

    def set_volume(self, level: float) -> None:
        """Set the linear output gain, 0.0 to 1.0 (applied from the next block)."""
        self._volume = min(1.0, max(0.0, level))

    def duck(self, level: float | None) -> None:
        """Lower this speaker to ``level`` × volume (e.g. while the user talks over an announcement); None restores."""
        self._duck = 1.0 if level is None else min(1.0, max(0.0, level))

    @property
    def gain(self) -> float:
        """The linear gain applied to what plays now."""
        return self._volume * self._duck

    # --- playing ----------------------------------------------------------------------------------

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        """Play a stream to its end; False if :meth:`stop` cut it short. Raises PlaybackError if the device fails."""
        generation = self._generation
        output: _Output | None = None
        rates: RateFollower | None = None
        try:
            async for chunk in audio:
                if generation != self._generation:
                    return False
                if not chunk.pcm:
                    continue
                if output is None:
                    output = await self._open(chunk.rate_hz)
                    self._current = output
                    if generation != self._generation:
                        return False
                rates = rates or RateFollower(output.rate_hz)
                output.write(rates.convert(chunk.pcm, chunk.rate_hz))
                await self._wait_below(output, _BUFFER_SECONDS, generation)
            if output is None or generation != self._generation:
                return generation == self._generation
            if rates is not None:
                output.write(rates.flush())
            output.end()
            await self._wait_below(output, 0.0, generation)
            await self._wait_inactive(output, generation)
            return generation == self._generation
        finally:
            if output is not None:
                if self._current is output:
                    self._current = None
                output.flush()
                await close_within(lambda: _close_stream(output), "speaker")
                if self._reset_pending:
                    # Only now, with the stream closed: terminating PortAudio under an open stream races it.
                    self._reset_pending = False
                    self._reset_portaudio()

    async def _wait_below(self, output: _Output, seconds: float, generation: int) -> None:
        """Wait until the device has taken all but ``seconds`` of the buffer; fail if it stops taking audio."""
        loop = asyncio.get_running_loop()
        progress, since = output.consumed, loop.time()
        while output.buffered_seconds > seconds and generation == self._generation:
            await asyncio.sleep(self._block_ms / 2000)
            if output.consumed != progress:
                progress, since = output.consumed, loop.time()
            elif loop.time() - since > self._stall_seconds:
                self._lost(f"the speaker took no audio for {self._stall_seconds:.1f} s")

    async def _wait_inactive(self, output: _Output, generation: int) -> None:
        """After the last block, let the device play out what it holds (its latency, at most a second)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while generation == self._generation and loop.time() < deadline:
            try:
                if not output.stream.is_active():
                    return
            except OSError:  # the server went away during the last block; nothing more will play
                return
            await asyncio.sleep(self._block_ms / 2000)

    def _lost(self, detail: str) -> None:
        _LOGGER.warning("speaker lost: %s", detail)
        self._reset_pending = True
        self._announce(False, detail)
        raise PlaybackError(detail)

    def _announce(self, connected: bool, detail: str) -> None:
        if connected != self._connected:
            self._connected = connected
            self._publish(ConnectionChanged(service=SERVICE, connected=connected, detail=detail))

    def _reset_portaudio(self) -> None:
        pa, self._pa = self._pa, None
        if pa is not None:
            threading.Thread(target=pa.terminate, name="speaker-terminate", daemon=True).start()

    async def _open(self, rate_hz: int) -> _Output:
        """Open the device, retrying briefly; a reply cannot wait for the long reconnect backoff."""
        delay = 0.1
        for attempt in range(1, _OPEN_ATTEMPTS + 1):
            try:
                output = await asyncio.to_thread(self._open_blocking, rate_hz)
            except DeviceError as err:
                self._reset_portaudio()
                if attempt == _OPEN_ATTEMPTS:
                    self._announce(False, str(err))
                    raise PlaybackError(str(err)) from err
                await asyncio.sleep(delay)
                delay *= 2
                continue
            self._announce(True, "")
            return output
        raise AssertionError("unreachable")

    def _open_blocking(self, rate_hz: int) -> _Output:
        import pyaudio

        try:
            if self._pa is None:
                self._pa = new_portaudio()
            pa = self._pa
            device = find_device(describe(pa), self._device, "output")
            rate = self._pick_rate(pa, device, self._output_rate_hz or rate_hz)
            block = max(1, rate * self._block_ms // 1000)
            reference = self._echo.reference if self._echo is not None else None
            output = _Output(rate, block, lambda: self.gain, self.monitor, reference)
            output.stream = pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=rate,
                output=True,
                output_device_index=device.index,
                frames_per_buffer=block,
                stream_callback=output.callback,
            )
        except (OSError, ValueError) as err:
            raise DeviceError(f"cannot open the speaker: {err}") from err
        _LOGGER.debug("speaker open: %s at %d Hz", device.name, rate)
        return output

    @staticmethod
    def _pick_rate(pa: Any, device: DeviceInfo, wanted: int) -> int:
        import pyaudio

        try:
            pa.is_format_supported(wanted, output_device=device.index, output_channels=1, output_format=pyaudio.paInt16)
            return wanted
        except ValueError:
            _LOGGER.info("%s refuses %d Hz; resampling to %d Hz", device.name, wanted, device.default_rate_hz)
            return device.default_rate_hz


def _close_stream(output: _Output) -> None:
    stream, output.stream = output.stream, None
    if stream is not None:
        try:
            stream.close()  # like Pa_AbortStream: what the device still holds is dropped
        except OSError as err:
            _LOGGER.debug("closing the output stream failed: %s", err)
