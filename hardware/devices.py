"""PortAudio device listing and lookup by index or by part of a name (``xiangyin devices``)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from assistant.errors import AssistantError

_LOGGER = logging.getLogger(__name__)

Direction = Literal["input", "output"]


class DeviceError(AssistantError):
    """A sound device is missing, refused the format, or failed while open."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device as ``xiangyin devices`` lists it."""

    index: int
    """PortAudio device index (changes when devices come and go)."""
    name: str
    """Device name, e.g. ``pulse`` or ``USB Audio: - (hw:1,0)``."""
    host_api: str
    """PortAudio host API, e.g. ``ALSA``."""
    max_input_channels: int
    """Capture channels; 0 for playback-only devices."""
    max_output_channels: int
    """Playback channels; 0 for capture-only devices."""
    default_rate_hz: int
    """The device's preferred sample rate."""
    is_default_input: bool
    """True for the system's default microphone."""
    is_default_output: bool
    """True for the system's default speaker."""


_NATIVE_HANDLERS: list[Any] = []
"""ctypes callbacks kept alive for as long as the C libraries may call them."""


def _quiet_native_libraries() -> None:
    """Route ALSA's and JACK's own error printing to nowhere (once).

    PortAudio probes every ALSA and JACK device on start-up, and those libraries print a dozen lines to
    stderr each time ("Unknown PCM cards.pcm.rear", "jack server is not running"); a daemon that reopens a
    vanished microphone every few seconds would fill its journal with them. With DEBUG logging they stay.
    """
    if _NATIVE_HANDLERS or _LOGGER.isEnabledFor(logging.DEBUG):
        return
    alsa_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
    jack_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
    with contextlib.suppress(OSError, AttributeError):
        handler = alsa_handler(lambda *_: None)
        ctypes.CDLL("libasound.so.2").snd_lib_error_set_handler(handler)
        _NATIVE_HANDLERS.append(handler)
    with contextlib.suppress(OSError, AttributeError):
        jack = ctypes.CDLL("libjack.so.0")
        handler = jack_handler(lambda _: None)
        jack.jack_set_error_function(handler)
        jack.jack_set_info_function(handler)
        _NATIVE_HANDLERS.append(handler)
    _NATIVE_HANDLERS.append(None)  # tried, whatever the outcome


def new_portaudio() -> Any:
    """A fresh PyAudio instance (PortAudio lists the devices anew), without the native libraries' noise."""
    import pyaudio

    _quiet_native_libraries()
    return pyaudio.PyAudio()


@contextlib.contextmanager
def portaudio() -> Iterator[Any]:
    """A PyAudio instance for the duration of a block (PortAudio re-reads the devices on each one)."""
    pa = new_portaudio()
    try:
        yield pa
    finally:
        pa.terminate()


def _default_index(pa: Any, direction: Direction) -> int | None:
    try:
        info = pa.get_default_input_device_info() if direction == "input" else pa.get_default_output_device_info()
    except OSError:
        return None
    return int(info["index"])


def describe(pa: Any) -> list[DeviceInfo]:
    """List the devices an open PyAudio instance sees."""
    default_in, default_out = _default_index(pa, "input"), _default_index(pa, "output")
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        devices.append(
            DeviceInfo(
                index=index,
                name=str(info["name"]),
                host_api=str(api),
                max_input_channels=int(info["maxInputChannels"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_rate_hz=int(info["defaultSampleRate"]),
                is_default_input=index == default_in,
                is_default_output=index == default_out,
            )
        )
    return devices


def list_devices() -> list[DeviceInfo]:
    """Return every capture and playback device PortAudio sees now."""
    with portaudio() as pa:
        return describe(pa)


def find_device(devices: list[DeviceInfo], spec: str | int | None, direction: Direction) -> DeviceInfo:
    """Pick the device a config value names: an index, a case-insensitive part of a name, or None for the default.

    An exact name wins over a partial match; several partial matches are an error naming them all.
    """
    usable = [d for d in devices if (d.max_input_channels if direction == "input" else d.max_output_channels) > 0]
    if not usable:
        raise DeviceError(f"no {direction} device is available (is the sound server running?)")
    if spec is None:
        default = next(
            (d for d in usable if (d.is_default_input if direction == "input" else d.is_default_output)), None
        )
        return default or usable[0]
    if isinstance(spec, int) or spec.isdigit():
        index = int(spec)
        match = next((d for d in usable if d.index == index), None)
        if match is None:
            raise DeviceError(f"no {direction} device with index {index}; run `xiangyin devices` to list them")
        return match
    exact = [d for d in usable if d.name.lower() == spec.lower()]
    partial = exact or [d for d in usable if spec.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        names = ", ".join(repr(d.name) for d in usable)
        raise DeviceError(f"no {direction} device matches {spec!r}; available: {names}")
    names = ", ".join(f"{d.index}: {d.name!r}" for d in partial)
    raise DeviceError(f"{direction} device {spec!r} is ambiguous ({names}); give more of the name or the index")
