"""Small asyncio helpers: the real clock, bounded cancellation, jittered backoff."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")

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


async def finish_despite_cancel(cleanup: Coroutine[Any, Any, Any], seconds: float) -> None:
    """Run a clean-up to its end even when the caller is cancelled meanwhile; then wait for it at most ``seconds``.

    For what must not be left half-done at shutdown (music turned back up, a TV played again): the App cancels
    its edges right after the shutdown begins. The cancel still propagates once the clean-up ended or timed out.
    """
    running = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait({running}, timeout=seconds)
        raise


async def next_within(items: AsyncIterator[_T], seconds: float) -> _T:
    """``anext(items)``, or ``TimeoutError`` after ``seconds``; an item that has arrived wins over the deadline.

    Under ``asyncio.timeout`` the deadline cancels the waiting task even when the item landed in the same
    loop step (likely whenever the loop was busy past the deadline), which throws that item away and
    closes ``items`` with the cancel. Here ``items`` advances in its own task, cancelled only when nothing
    came. Like ``anext``, the end of ``items`` is ``StopAsyncIteration``.
    """
    step = asyncio.ensure_future(anext(items))
    try:
        done, _ = await asyncio.wait({step}, timeout=seconds)
        if not done:
            await asyncio.sleep(0)  # what queued while the loop was busy lands before we give up
    except asyncio.CancelledError:
        # Wait for the step to unwind, so the caller can close ``items`` (a running generator cannot be),
        # also when cancelled again meanwhile; the cancel is raised once it has.
        await _unwind(step)
        raise
    if not step.done():
        await cancel_and_wait(step)
        raise TimeoutError
    return step.result()


async def _unwind(task: asyncio.Task[Any]) -> None:
    """:func:`cancel_and_wait`, through further cancels of ours; the caller raises its own cancel afterwards."""
    stopping = asyncio.ensure_future(cancel_and_wait(task))
    while not stopping.done():
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            continue  # already stopping, and its cleanup must not be cut short


async def in_daemon_thread(work: Callable[..., _T], *args: Any) -> _T:
    """Run blocking ``work`` in a daemon thread and await its result.

    Unlike ``asyncio.to_thread``, a daemon that stops meanwhile does not wait for it: loading a model
    can take minutes, and SIGTERM must still end the process within two seconds.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def deliver(result: _T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = work(*args)
        except BaseException as err:  # handed to the awaiting coroutine, not swallowed
            error = err
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=run, name=getattr(work, "__name__", "work"), daemon=True).start()
    return await future


class DaemonThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """The event loop's default executor (``asyncio.to_thread``), whose threads never keep a stopped daemon alive.

    ``asyncio.run`` waits for the default executor at the end, and the interpreter joins every pool thread at
    exit: one call stuck in a wedged sound server, or in paho's connect to a broker that drops the attempt,
    would hold the process past systemd's stop timeout. Each call gets its own daemon thread instead; the
    calls that go through here are rare (opening a device, connecting, a sentence of Piper).
    """

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        """Run ``fn(*args, **kwargs)`` on a new daemon thread."""
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:  # handed to whoever waits on the future, not swallowed
                future.set_exception(err)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=f"worker:{getattr(fn, '__name__', 'call')}", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Return at once: nothing is pooled, and a daemon thread still running must not be waited for."""


class Worker(Protocol):
    """Where blocking calls run, one at a time and in the order given."""

    async def run(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work(*args)`` after everything given before it; return its result."""
        ...

    def post(self, work: Callable[..., object], *args: Any) -> None:
        """Queue ``work(*args)`` behind everything given before it, without waiting for it."""
        ...


class InlineWorker:
    """A :class:`Worker` that runs each call on the event loop at once: for calls that take no time (fakes)."""

    async def run(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work(*args)`` now."""
        return work(*args)

    def post(self, work: Callable[..., object], *args: Any) -> None:
        """Run ``work(*args)`` now."""
        work(*args)


@dataclass
class _Job:
    work: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop | None = None
    done: asyncio.Future[Any] | None = None
    """Where the result goes; None for a posted call, whose errors are logged."""
    abandoned: bool = False
    """Set by the loop when nobody waits any more: a job not started by then is skipped."""


class SerialWorker:
    """A :class:`Worker` on one dedicated daemon thread, for models that must not run on the event loop.

    One thread keeps the calls in order (a streaming model's state depends on it) and never runs two at
    once (TFLite interpreters are not thread-safe). A daemon thread never keeps a stopped daemon alive.
    A waiter cancelled while its call runs is released at once; the call finishes in the background.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work(*args)`` on the worker thread after everything given before it; return its result."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_T] = loop.create_future()
        job = _Job(work, args, loop, done)
        self._jobs.put(job)
        try:
            result = await done
        except asyncio.CancelledError:
            job.abandoned = True
            raise
        return result

    def post(self, work: Callable[..., object], *args: Any) -> None:
        """Queue ``work(*args)`` behind everything given before it."""
        self._jobs.put(_Job(work, args))

    def close(self) -> None:
        """Let the thread end after the calls already given."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.abandoned:
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.work(*job.args)
            except BaseException as err:  # handed to the waiter, or logged for a posted call; never lost
                error = err
            if job.loop is None or job.done is None:
                if error is not None:
                    _LOGGER.error(
                        "%s failed on %s",
                        getattr(job.work, "__qualname__", "a call"),
                        self._thread.name,
                        exc_info=error,
                    )
                continue
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                job.loop.call_soon_threadsafe(_settle, job.done, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def close_within(close: Callable[[], None], what: str, seconds: float = 2.0) -> None:
    """Run a blocking close in a daemon thread and wait for it at most ``seconds``.

    A sound device whose server vanished can hang in close; that must never hang a turn or the shutdown.
    """
    closing = asyncio.ensure_future(in_daemon_thread(close))
    done, _ = await asyncio.wait({closing}, timeout=seconds)
    if not done:
        _LOGGER.warning("closing the %s took over %.0f s; leaving it behind", what, seconds)
        closing.add_done_callback(lambda task: task.cancelled() or task.exception())
    elif (error := closing.exception()) is not None:
        _LOGGER.warning("closing the %s failed: %s", what, error)


def backoff(
    initial_seconds: float = 0.5, max_seconds: float = 30.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield retry delays that double up to ``max_seconds``, each with ±25 % jitter."""
    rng = rng or random.Random()
    delay = initial_seconds
    while True:
        yield delay * rng.uniform(0.75, 1.25)
        delay = min(delay * 2, max_seconds)


def quiet_closed_socket_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """Keep a known, harmless race out of the error log: registering a socket that has just closed.

    aiomqtt registers paho's socket with the loop from the thread that connected it (``call_soon_threadsafe``
    of ``add_reader``). When the broker drops the connection before the loop gets to it, the loop logs
    "Exception in callback … add_reader … Bad file descriptor" as an ERROR with a traceback, although the
    library reports the lost connection itself and the bridge reconnects. Only that case is quietened (to
    DEBUG); every other exception still reaches the handler that was there before.
    """
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error, callback = context.get("exception"), repr(context.get("handle", ""))
        if (
            isinstance(error, OSError)
            and error.errno == errno.EBADF
            and ("add_reader" in callback or "add_writer" in callback)
        ):
            _LOGGER.debug("a socket closed before the event loop watched it: %s", error)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
