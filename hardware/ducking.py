"""Ducking: other applications' playback (music, TV) is lowered while the assistant listens or speaks.

Works with any PulseAudio-compatible server (PulseAudio, PipeWire's pipewire-pulse) through ``pactl``; the
daemon's own streams are left alone. Failures are logged and ignored: ducking is a nicety, never a reason
for a turn to fail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from typing import Any

from assistant.bus import Bus
from assistant.events import ListeningStarted, PlaybackStarted, ShutdownRequested, TurnEnded
from assistant.tasks import finish_despite_cancel

_LOGGER = logging.getLogger(__name__)

_RESTORE_AT_EXIT_SECONDS = 2.0
"""Longest a stopping daemon waits to give other applications their volume back."""


class PulseDucker:
    """Lowers every other sink input to ``level`` × its volume and puts it back afterwards."""

    def __init__(self, level: float, *, own_pid: int | None = None, pactl: str = "pactl") -> None:
        self._level = min(1.0, max(0.0, level))
        self._own_pid = str(own_pid if own_pid is not None else os.getpid())
        self._pactl = shutil.which(pactl)
        self._saved: dict[int, list[int]] = {}
        self._warned = False

    @property
    def ducked(self) -> bool:
        """True while other streams are lowered."""
        return bool(self._saved)

    async def _run(self, *args: str) -> str | None:
        if self._pactl is None:
            return None
        try:
            process = await asyncio.create_subprocess_exec(
                self._pactl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as error:
            self._warn(f"pactl failed: {error}")
            return None
        try:
            async with asyncio.timeout(5):  # not wait_for: on 3.11 it can drop a cancel that lands as pactl exits
                out, err = await process.communicate()
        except TimeoutError:
            self._warn("pactl did not answer within 5 s")
            return None
        finally:
            # A wedged sound server must not leave a pactl behind for every turn.
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            self._warn(err.decode(errors="replace").strip())
            return None
        return out.decode(errors="replace")

    def _warn(self, detail: str) -> None:
        if not self._warned:
            self._warned = True
            _LOGGER.warning("cannot duck other audio (%s); going on without", detail)

    async def duck(self) -> None:
        """Lower the other applications' streams (idempotent)."""
        if self._saved or self._level >= 1.0:
            return
        listing = await self._run("--format=json", "list", "sink-inputs")
        if listing is None:
            return
        try:
            inputs: list[dict[str, Any]] = json.loads(listing)
        except json.JSONDecodeError as err:
            self._warn(f"unreadable pactl output: {err}")
            return
        for item in inputs:
            if item.get("properties", {}).get("application.process.id") == self._own_pid:
                continue
            volumes = [int(channel["value"]) for channel in item.get("volume", {}).values()]
            if not volumes:
                continue
            self._saved[int(item["index"])] = volumes
            lowered = [str(round(v * self._level)) for v in volumes]
            await self._run("set-sink-input-volume", str(item["index"]), *lowered)
        if self._saved:
            _LOGGER.debug("ducked %d stream(s) to %.0f %%", len(self._saved), 100 * self._level)

    async def restore(self) -> None:
        """Put the ducked streams back to their volumes (streams that ended meanwhile are skipped).

        A stream is forgotten only once its volume was set back, so a restore cut short is finished by the next.
        """
        for index, volumes in list(self._saved.items()):
            await self._run("set-sink-input-volume", str(index), *(str(v) for v in volumes))
            self._saved.pop(index, None)

    async def run(self, bus: Bus) -> None:
        """Duck from ListeningStarted or a reply's first sound until TurnEnded; restore on shutdown."""
        events = bus.subscribe("ducker", ListeningStarted, PlaybackStarted, TurnEnded, ShutdownRequested)
        try:
            async for envelope in events:
                match envelope.event:
                    case ListeningStarted() | PlaybackStarted(kind="reply" | "announce"):
                        await self.duck()
                    case TurnEnded():
                        await self.restore()
                    case ShutdownRequested():
                        return
        finally:
            bus.unsubscribe(events)
            # Music must not stay quiet after we stop.
            await finish_despite_cancel(self.restore(), _RESTORE_AT_EXIT_SECONDS)
