"""The microphone's level and the room's background, with suggested wake and endpoint settings.

The analysis is pure (chunk levels in, a row out); :func:`record` is the only I/O: a few seconds from the
configured microphone, or a WAV given instead.
"""

from __future__ import annotations

import asyncio

from ..audio import AudioChunk, join, level_db, split
from ..config import EndpointSettings, WakeSettings
from ..room import quantile
from .report import Check, Status

CHUNK_SECONDS = 0.08
"""Level resolution, as the microphone delivers chunks."""
QUIET_DB = -55.0
"""A background under this is a quiet room."""
LOUD_DB = -35.0
"""A background over this (a TV, a fan next to the microphone) hurts wake words and endpoints."""
CLIPPING_DB = -1.0
"""Chunks louder than this are clipping."""
SILENT_DB = -85.0
"""A microphone whose loudest chunk stays under this delivers nothing."""


def room_check(audio: AudioChunk, wake: WakeSettings, endpoint: EndpointSettings) -> Check:
    """Levels of ``audio`` (a quiet moment of the room, perhaps a word said in it) and what to set."""
    levels = [level_db(chunk) for chunk in split(audio, CHUNK_SECONDS)]
    if not levels:
        return Check("microphone", "skip", "no audio was heard")
    background, loudest = quantile(levels, 0.5), max(levels)
    figures: dict[str, float | int | str | None] = {
        "seconds": audio.seconds,
        "background_dbfs": background,
        "background_p90_dbfs": quantile(levels, 0.9),
        "peak_dbfs": loudest,
    }
    if loudest < SILENT_DB:
        return Check("microphone", "fail", f"the microphone delivers silence ({loudest:.0f} dBFS): muted?", figures)
    advice = _advice(background, loudest, wake, endpoint)
    figures["suggest"] = "; ".join(advice) or None
    status: Status = "warn" if advice else "ok"
    summary = f"background {background:.0f} dBFS, peak {loudest:.0f} dBFS"
    return Check("microphone", status, summary + (f"; suggest {'; '.join(advice)}" if advice else ""), figures)


def _advice(background: float, loudest: float, wake: WakeSettings, endpoint: EndpointSettings) -> list[str]:
    advice: list[str] = []
    if loudest > CLIPPING_DB:
        advice.append("lower the microphone gain (it clips)")
    if background > LOUD_DB:
        if endpoint.room_margin_db < 6.0:
            advice.append("endpoint.room_margin_db: 6 (a loud background)")
        if all((word.threshold or 0.5) < 0.6 for word in wake.words):
            advice.append("wake.words[].threshold: 0.6 (fewer false wakes over the noise)")
    elif background < QUIET_DB and endpoint.room_margin_db > 3.0:
        advice.append("endpoint.room_margin_db: 3 (a quiet room)")
    return advice


async def record(device: str | int | None, seconds: float) -> AudioChunk:
    """``seconds`` of the configured microphone (PyAudio); raises ``OSError`` when it cannot be opened."""
    from hardware.microphone import PyAudioMicrophone

    microphone = PyAudioMicrophone(device=device)
    chunks: list[AudioChunk] = []
    heard = 0.0

    async def take() -> None:
        nonlocal heard
        async for chunk in microphone.chunks():
            chunks.append(chunk)
            heard += chunk.seconds
            if heard >= seconds:
                return

    await asyncio.wait_for(take(), timeout=seconds + 10.0)
    return join(chunks)
