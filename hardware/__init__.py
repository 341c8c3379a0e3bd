"""Hardware adapters: PyAudio microphone and speaker, device listing, WAV file sources and sinks.

The factories below are what ``assistant/app.py`` calls; PyAudio is imported only when a device opens.
"""

from __future__ import annotations

from assistant.bus import Bus
from assistant.config import AudioSettings

from .aec import EchoCanceller, EchoCancellingSource
from .devices import DeviceError, DeviceInfo, list_devices
from .ducking import PulseDucker
from .files import FileSink, FileSource
from .microphone import PyAudioMicrophone
from .speaker import PyAudioSpeaker

__all__ = [
    "DeviceError",
    "EchoCanceller",
    "EchoCancellingSource",
    "DeviceInfo",
    "FileSink",
    "FileSource",
    "PyAudioMicrophone",
    "PulseDucker",
    "PyAudioSpeaker",
    "build_ducker",
    "build_echo_canceller",
    "build_microphone",
    "build_speaker",
    "list_devices",
]


def build_echo_canceller(settings: AudioSettings) -> EchoCanceller | None:
    """The echo canceller shared by microphone and speaker, if ``audio.echo_cancel`` asks for one."""
    if settings.echo_cancel == "none":
        return None
    return EchoCanceller(noise_suppression=settings.noise_suppression)


def build_microphone(
    settings: AudioSettings, bus: Bus, *, echo: EchoCanceller | None = None
) -> PyAudioMicrophone | EchoCancellingSource:
    """The configured microphone (publishing ConnectionChanged(service="microphone")), echo-cancelled if given."""
    microphone = PyAudioMicrophone(
        device=settings.input_device,
        chunk_ms=settings.chunk_ms,
        publish=bus.publish,
        reconnect_max_seconds=settings.reconnect_max_seconds,
        stall_seconds=settings.stall_seconds,
    )
    return microphone if echo is None else EchoCancellingSource(microphone, echo)


def build_speaker(settings: AudioSettings, bus: Bus, *, echo: EchoCanceller | None = None) -> PyAudioSpeaker:
    """The configured speaker; pass its ``monitor`` to ``build_wake_detector`` for the echo guard."""
    return PyAudioSpeaker(
        device=settings.output_device,
        publish=bus.publish,
        volume=settings.volume,
        output_rate_hz=settings.output_rate_hz,
        block_ms=settings.output_block_ms,
        stall_seconds=settings.stall_seconds,
        echo=echo,
    )


def build_ducker(settings: AudioSettings) -> PulseDucker | None:
    """Lowers other applications while the assistant listens or speaks; run ``ducker.run(bus)`` as a task.

    None when ``audio.duck_level`` is 1.0 (ducking off).
    """
    return PulseDucker(settings.duck_level) if settings.duck_level < 1.0 else None
