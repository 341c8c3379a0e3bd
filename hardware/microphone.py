"""The PyAudio microphone: 16 kHz mono int16 in fixed chunks, surviving devices that come and go.

PortAudio calls back on its own thread; each buffer crosses into the event loop through
``call_soon_threadsafe`` and an asyncio queue, so nothing blocks the loop. A stream that stops
delivering (unplugged, sound server restarted) is closed and reopened with jittered backoff, and every
change is published as ``ConnectionChanged(service="microphone")``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from assistant.audio import MIC_RATE_HZ, AudioChunk
from assistant.events import ConnectionChanged, Event
from assistant.tasks import backoff, close_within

from .devices import DeviceError, describe, find_device, new_portaudio
from .resample import Rechunker

_LOGGER = logging.getLogger(__name__)

SERVICE = "microphone"
_MAX_QUEUED_SECONDS = 5.0
_STALL_TICK_SECONDS = 0.25
"""Step of the stall count while no audio comes (only then: buffers end each wait every chunk)."""
_LATE_SECONDS = 0.1
"""A tick that ends this much (or a tick's length, if longer) past its time means we were not running."""


class _Capture:
    """One open input stream and the queue its callback fills."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_chunks: int) -> None:
        self._loop = loop
        self.queue: collections.deque[bytes] = collections.deque(maxlen=max_chunks)
        self.ready = asyncio.Event()
        self.dropped = 0
        self.pa: Any = None
        self.stream: Any = None
        self.device_name = ""
        self.rate_hz = MIC_RATE_HZ
        """Rate the device was opened at; other than 16 kHz when the device refuses 16 kHz."""

    def callback(self, in_data: bytes | None, frames: int, time_info: Any, status: int) -> tuple[None, int]:
        import pyaudio

        if in_data is not None:
            try:
                self._loop.call_soon_threadsafe(self._deliver, in_data)
            except RuntimeError:  # the event loop is closed: the daemon is exiting
                return None, pyaudio.paAbort
        return None, pyaudio.paContinue

    def _deliver(self, pcm: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(pcm)
        self.ready.set()

    def close(self) -> None:
        # Pa_CloseStream discards what is buffered, like Pa_AbortStream; terminate releases the host API.
        stream, pa, self.stream, self.pa = self.stream, self.pa, None, None
        try:
            if stream is not None:
                stream.close()
        except OSError as err:
            _LOGGER.debug("closing the input stream failed: %s", err)
        finally:
            if pa is not None:
                pa.terminate()


class PyAudioMicrophone:
    """An :class:`~assistant.ports.AudioSource` over PyAudio."""

    def __init__(
        self,
        *,
        device: str | int | None = None,
        chunk_ms: int = 80,
        publish: Callable[[Event], None] | None = None,
        reconnect_max_seconds: float = 30.0,
        stall_seconds: float = 2.0,
    ) -> None:
        self._device = device
        self._frames = MIC_RATE_HZ * chunk_ms // 1000
        self._publish = publish or (lambda event: None)
        self._reconnect_max_seconds = reconnect_max_seconds
        self._stall_seconds = stall_seconds
        self._connected: bool | None = None
        self.reconnects = 0
        """Times the stream was lost and reopened."""

    def _announce(self, connected: bool, detail: str) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        self._publish(ConnectionChanged(service=SERVICE, connected=connected, detail=detail))

    def _open(self, capture: _Capture) -> None:
        """Open the configured device (blocking; runs in a worker thread)."""
        import pyaudio

        capture.pa = new_portaudio()
        try:
            device = find_device(describe(capture.pa), self._device, "input")
            capture.device_name = device.name
            # Raw ALSA hw: devices often take only 44.1 or 48 kHz; then we resample to 16 kHz ourselves.
            capture.rate_hz = MIC_RATE_HZ if _takes(capture.pa, device.index, MIC_RATE_HZ) else device.default_rate_hz
            capture.stream = capture.pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=capture.rate_hz,
                input=True,
                input_device_index=device.index,
                frames_per_buffer=round(self._frames * capture.rate_hz / MIC_RATE_HZ),
                stream_callback=capture.callback,
            )
        except (OSError, ValueError) as err:
            capture.close()
            raise DeviceError(f"cannot open the microphone: {err}") from err
        except BaseException:
            capture.close()
            raise

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """Yield chunks of ``chunk_ms`` forever, reopening the device whenever it is lost."""
        loop = asyncio.get_running_loop()
        delays = backoff(0.5, self._reconnect_max_seconds)
        max_chunks = max(1, round(_MAX_QUEUED_SECONDS * MIC_RATE_HZ / self._frames))
        while True:
            capture = _Capture(loop, max_chunks)
            opening = asyncio.ensure_future(asyncio.to_thread(self._open, capture))
            try:
                await asyncio.shield(opening)
            except asyncio.CancelledError:
                # The thread finishes opening regardless; close what it opens instead of leaking it.
                opening.add_done_callback(functools.partial(_close_when_opened, capture))
                raise
            except DeviceError as err:
                delay = next(delays)
                if self._connected is not False:
                    _LOGGER.warning("%s; retrying in %.1f s", err, delay)
                self._announce(False, str(err))
                await asyncio.sleep(delay)
                continue
            _LOGGER.debug("microphone opened: %s at %d Hz", capture.device_name, capture.rate_hz)
            # Connected means audio arrives: a device that opens but stays silent (suspended, hung) must not
            # flap connected/disconnected at every stall, nor be reopened without backing off.
            delivering = False
            try:
                async for chunk in self._drain(capture):
                    if not delivering:
                        delivering = True
                        _LOGGER.info(
                            "microphone open: %s at %d Hz, delivered as %d Hz in %d-sample chunks",
                            capture.device_name,
                            capture.rate_hz,
                            MIC_RATE_HZ,
                            self._frames,
                        )
                        self._announce(True, capture.device_name)
                        delays = backoff(0.5, self._reconnect_max_seconds)
                    yield chunk
            finally:
                # A stream whose sound server vanished can hang in close; never let it hang us.
                await close_within(capture.close, "microphone")
            self.reconnects += 1
            if delivering:
                _LOGGER.warning("microphone %s stopped delivering audio; reopening", capture.device_name)
                self._announce(False, f"{capture.device_name} stopped delivering audio")
                continue
            delay = next(delays)
            if self._connected is not False:
                _LOGGER.warning(
                    "microphone %s opens but delivers no audio; retrying in %.1f s", capture.device_name, delay
                )
            self._announce(False, f"{capture.device_name} delivers no audio")
            await asyncio.sleep(delay)

    async def _drain(self, capture: _Capture) -> AsyncIterator[AudioChunk]:
        """Yield what the callback delivers until the stream stalls."""
        rechunk = Rechunker(capture.rate_hz, MIC_RATE_HZ, self._frames) if capture.rate_hz != MIC_RATE_HZ else None
        while True:
            if not capture.queue and not await self._await_audio(capture):
                return
            if capture.dropped:
                _LOGGER.warning("the daemon fell behind the microphone; dropped %d chunks", capture.dropped)
                capture.dropped = 0
            pcm = capture.queue.popleft()
            if rechunk is None:
                yield AudioChunk(pcm, MIC_RATE_HZ)
                continue
            for piece in rechunk.feed(pcm):
                yield AudioChunk(piece, MIC_RATE_HZ)

    async def _await_audio(self, capture: _Capture) -> bool:
        """Wait for the next buffer; False once none came for ``stall_seconds`` of time we were running.

        Time the process was not running does not count (stopped, starved of CPU, or the loop held up): the
        device may have recorded all along, its buffers held up with us. The wait goes in short ticks, and a
        tick that ends well past its time starts the count again.
        """
        loop = asyncio.get_running_loop()
        waited = 0.0
        while not capture.queue:
            if waited >= self._stall_seconds:
                return False
            tick = min(_STALL_TICK_SECONDS, self._stall_seconds - waited)
            capture.ready.clear()
            started = loop.time()
            with contextlib.suppress(TimeoutError):
                # Not asyncio.wait_for: on 3.11 it drops a cancel that lands as a buffer arrives.
                async with asyncio.timeout(tick):
                    await capture.ready.wait()
            elapsed = loop.time() - started
            waited = 0.0 if elapsed - tick > max(_LATE_SECONDS, tick) else waited + elapsed
        return True


def _takes(pa: Any, index: int, rate_hz: int) -> bool:
    """True when the input device can capture mono int16 at ``rate_hz``."""
    import pyaudio

    try:
        return bool(pa.is_format_supported(rate_hz, input_device=index, input_channels=1, input_format=pyaudio.paInt16))
    except ValueError:
        return False


def _close_when_opened(capture: _Capture, _: object) -> None:
    capture.close()
