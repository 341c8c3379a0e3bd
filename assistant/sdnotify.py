"""systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1) over $NOTIFY_SOCKET.

The protocol is one datagram per message; a library would add a dependency for ten lines.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd when run as a Type=notify service; does nothing otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # Linux abstract sockets are written with a leading "@" and addressed with a NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_seconds: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self._watchdog_seconds = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        """True when systemd listens."""
        return bool(self._address)

    @property
    def watchdog_interval_seconds(self) -> float | None:
        """How often to ping (half the watchdog timeout), or None when no watchdog is set."""
        return self._watchdog_seconds / 2 if self._watchdog_seconds else None

    def notify(self, message: str) -> bool:
        """Send e.g. ``READY=1``; return False (and log once at debug) if it could not be sent."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self._address)
            return True
        except OSError as err:
            _LOGGER.debug("sd_notify %s failed: %s", message, err)
            return False
