"""One daemon per data directory: an advisory lock on a file that names the daemon holding it.

Two daemons on one reminder store would each say every reminder. The lock is ``flock``'s, so the kernel
drops it when its holder dies in any way (kill -9 included); a stale file never blocks a start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import AssistantError

_LOGGER = logging.getLogger(__name__)

LOCK_NAME = "xiangyin.pid"
"""The lock file's name inside the data directory; it holds the running daemon's PID."""


class AlreadyRunning(AssistantError):
    """Another daemon holds the data directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        who = f"PID {pid}" if pid is not None else "a process whose PID could not be read"
        super().__init__(f"another xiangyin ({who}) is already running on {directory}; stop it first")
        self.pid = pid


@contextlib.contextmanager
def single_instance(directory: Path) -> Iterator[Path | None]:
    """Hold the data directory's lock while the block runs; raise :class:`AlreadyRunning` if it is taken.

    A directory that cannot be made or written is only warned about (the scheduler reports its own
    failure, and the daemon runs without timers): the lock must not stop a box that could otherwise answer.
    Yields the lock file, or None when it could not be taken for that reason.
    """
    path = directory / LOCK_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        _LOGGER.warning("cannot lock %s (%s): a second daemon on it would not be refused", path, err.strerror)
        yield None
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(directory, _holder(descriptor)) from None
        # The file stays when the daemon stops: removing it would let a newcomer lock an unlinked inode.
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(descriptor)


def _holder(descriptor: int) -> int | None:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
