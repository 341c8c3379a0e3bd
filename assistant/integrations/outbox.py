"""The MQTT bridge's outgoing queue: kept across disconnects, bounded, dequeued only once delivered."""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message waiting to be sent."""

    topic: str
    """MQTT topic, without wildcards."""
    payload: str
    """UTF-8 text payload; empty deletes a retained message."""
    qos: int
    """0, 1 or 2."""
    retain: bool
    """True for states and discovery configs."""


class Outbox:
    """FIFO of outgoing messages; beyond ``limit`` the oldest are dropped, and the loss is logged.

    A retained message supersedes one still queued for its topic (only a state's newest value matters), so
    a state that changes hundreds of times a second takes one place, not the whole queue.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._latest: dict[str, Outgoing] = {}
        """Retained topic → its newest queued message; older ones for the topic are skipped."""
        self._ready = asyncio.Event()
        self._dropped = 0

    def __len__(self) -> int:
        return sum(not self._superseded(message) for message in self._queue)

    def _superseded(self, message: Outgoing) -> bool:
        return message.retain and self._latest.get(message.topic) is not message

    def put(self, message: Outgoing) -> None:
        """Queue a message; never blocks."""
        if len(self._queue) >= self._limit:
            self._queue = collections.deque(m for m in self._queue if not self._superseded(m))
        if len(self._queue) >= self._limit:
            dropped = self._queue.popleft()
            if self._latest.get(dropped.topic) is dropped:
                del self._latest[dropped.topic]
            if self._dropped == 0:
                _LOGGER.warning("MQTT send queue is full (%d messages): dropping the oldest", self._limit)
            self._dropped += 1
        if message.retain:
            self._latest[message.topic] = message
        self._queue.append(message)
        self._ready.set()

    async def peek(self) -> Outgoing:
        """Wait for the oldest message still to send and return it without removing it."""
        while True:
            while self._queue and self._superseded(self._queue[0]):
                self._queue.popleft()
            if self._queue:
                return self._queue[0]
            self._ready.clear()
            await self._ready.wait()

    def sent(self, message: Outgoing) -> None:
        """Remove ``message`` after the broker acknowledged it (unless overflow already dropped it)."""
        if self._queue and self._queue[0] is message:
            self._queue.popleft()
        if self._latest.get(message.topic) is message:
            del self._latest[message.topic]
        if self._dropped:
            _LOGGER.warning("%d queued MQTT messages were dropped", self._dropped)
            self._dropped = 0
