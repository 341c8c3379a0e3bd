"""In-process publish/subscribe for facts and requests.

``publish`` is a plain function that never awaits, so it is safe inside ``finally`` and
``except CancelledError``. Each subscriber has its own queue with two lanes: urgent events (stop, mute,
shutdown) are served first and never dropped; when a slow subscriber's ordered lane is full, its oldest
ordered events are dropped and the loss is logged once per burst.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .events import Event
from .ports import Clock

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as delivered: stamped with the bus clock."""

    at: float
    """Clock seconds when it was published."""
    event: Event
    """The event itself."""


class Subscription:
    """One subscriber's queue; iterate it with ``async for`` or call ``get``."""

    def __init__(self, name: str, accepts: tuple[type[Event], ...], max_ordered: int) -> None:
        self.name = name
        self._accepts = accepts
        self._urgent: collections.deque[Envelope] = collections.deque()
        self._ordered: collections.deque[Envelope] = collections.deque()
        self._max_ordered = max_ordered
        self._dropped = 0
        self._ready = asyncio.Event()

    def _offer(self, envelope: Envelope) -> None:
        if self._accepts and not isinstance(envelope.event, self._accepts):
            return
        if envelope.event.urgent:
            self._urgent.append(envelope)
        else:
            if len(self._ordered) >= self._max_ordered:
                self._ordered.popleft()
                if self._dropped == 0:
                    _LOGGER.warning("subscriber %s is falling behind; dropping its oldest events", self.name)
                self._dropped += 1
            self._ordered.append(envelope)
        self._ready.set()

    async def get(self) -> Envelope:
        """Wait for the next envelope, urgent ones first."""
        while not (self._urgent or self._ordered):
            self._ready.clear()
            await self._ready.wait()
        if self._dropped:
            _LOGGER.warning("subscriber %s lost %d events", self.name, self._dropped)
            self._dropped = 0
        return self._urgent.popleft() if self._urgent else self._ordered.popleft()

    def drain(self) -> list[Envelope]:
        """Take every queued envelope without waiting (urgent ones first), e.g. at shutdown."""
        queued = [*self._urgent, *self._ordered]
        self._urgent.clear()
        self._ordered.clear()
        return queued

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Envelope:
        return await self.get()


Tap = Callable[[Envelope], None]


class Bus:
    """The event bus; time comes from the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._subscriptions: list[Subscription] = []
        self._taps: list[Tap] = []
        self._pending: collections.deque[Event] = collections.deque()
        self._delivering = False

    def publish(self, event: Event) -> None:
        """Deliver an event to every tap now and queue it for every subscriber; never blocks.

        An event published from inside a tap is delivered after the one being delivered, so every
        subscriber sees causes before their effects.
        """
        self._pending.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._pending:
                self._deliver(self._pending.popleft())
        finally:
            self._delivering = False

    def _deliver(self, event: Event) -> None:
        envelope = Envelope(self._clock.now(), event)
        for tap in list(self._taps):
            try:
                tap(envelope)
            except Exception:
                _LOGGER.exception("bus tap %r failed on %s", tap, type(event).__name__)
        for subscription in list(self._subscriptions):
            subscription._offer(envelope)

    def subscribe(self, name: str, *accepts: type[Event], max_ordered: int = 256) -> Subscription:
        """Queue events (of the given types; all if none) for an async consumer."""
        subscription = Subscription(name, accepts, max_ordered)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop queueing events for a subscriber."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        """Subscriptions queueing events now (a count that only grows is a leak)."""
        return len(self._subscriptions)

    @property
    def tap_count(self) -> int:
        """Taps called on every publish now."""
        return len(self._taps)

    def tap(self, callback: Tap) -> Callable[[], None]:
        """Call ``callback`` synchronously on every publish (must be quick); returns an undo function."""
        self._taps.append(callback)
        return lambda: self._taps.remove(callback) if callback in self._taps else None
