"""Small asyncio helpers: the real clock, bounded cancellation, jittered backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

_LOGGER = logging.getLogger(__name__)


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Return monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        await asyncio.sleep(seconds)


async def cancel_and_wait(task: asyncio.Task[Any], timeout_seconds: float = 2.0) -> None:
    """Cancel a task and wait for it to finish, at most ``timeout_seconds``.

    ``asyncio.wait`` raises only if *we* are cancelled, so our own cancellation is never swallowed while
    the task's is absorbed here.
    """
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_seconds)
    if not done:
        _LOGGER.warning("task %s ignored cancellation for %.1f s", task.get_name(), timeout_seconds)


def backoff(
    initial_seconds: float = 0.5, max_seconds: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield retry delays that double up to ``max_seconds``, each with ±25 % jitter."""
    rng = rng or random.Random()
    delay = initial_seconds
    while True:
        yield delay * rng.uniform(0.75, 1.25)
        delay = min(delay * 2, max_seconds)
