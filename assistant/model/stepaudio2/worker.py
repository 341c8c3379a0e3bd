"""The engine's one worker thread, and the bridge that streams what a round produces there to the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()

Emit = Callable[[object], None]
"""Hands one item (an event, or an exception to raise in the consumer) to the event loop; thread-safe."""


class RoundWorker:
    """Runs rounds one at a time on a thread of their own; closing the stream stops a round at its next check."""

    def __init__(self, name: str) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._active: set[threading.Event] = set()

    async def stream(self, work: Callable[[Emit, threading.Event], None]) -> AsyncGenerator[object, None]:
        """Run ``work(emit, cancel)`` on the worker; yield what it emits; raise an exception it emits.

        Leaving the iteration (closed, cancelled or done) sets ``cancel``, which ``work`` checks between steps.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed under us: stop generating
                cancel.set()

        def run() -> None:
            try:
                work(emit, cancel)
            finally:
                emit(_END)

        self._active.add(cancel)
        try:
            job = loop.run_in_executor(self._executor, run)
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
            await job
        finally:
            cancel.set()
            self._active.discard(cancel)

    def submit(self, work: Callable[[], Any]) -> None:
        """Queue ``work`` after the rounds already queued; nothing if the worker is closed."""
        try:
            self._executor.submit(work)
        except RuntimeError:  # closed: nothing will read the engine's state again
            pass

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the worker after the rounds already queued, and return its result."""
        return await asyncio.wrap_future(self._executor.submit(work))

    def close(self) -> None:
        """Stop every round at its next check and let the thread end; the worker is unusable after."""
        for cancel in list(self._active):
            cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
