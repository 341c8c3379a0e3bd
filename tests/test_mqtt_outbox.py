"""The MQTT outbox keeps messages in order, drops the oldest beyond its limit, and says so."""

from __future__ import annotations

import asyncio
import logging

import pytest

from assistant.integrations.outbox import Outbox, Outgoing


def message(n: int) -> Outgoing:
    return Outgoing(f"t/{n}", str(n), 1, False)


async def test_messages_leave_in_order_and_only_once_acknowledged() -> None:
    box = Outbox(limit=10)
    box.put(message(1))
    box.put(message(2))
    first = await box.peek()
    assert first == message(1) and await box.peek() is first, "unacknowledged messages stay at the head"
    box.sent(first)
    assert await box.peek() == message(2)


async def test_peek_waits_for_a_message() -> None:
    box = Outbox(limit=10)
    waiting = asyncio.create_task(box.peek())
    await asyncio.sleep(0)
    assert not waiting.done()
    box.put(message(7))
    assert await asyncio.wait_for(waiting, 1) == message(7)


async def test_overflow_drops_the_oldest_and_logs_the_loss(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    box = Outbox(limit=3)
    for n in range(5):
        box.put(message(n))
    assert len(box) == 3
    head = await box.peek()
    assert head == message(2)
    box.sent(head)
    assert "queue is full" in caplog.text and "2 queued MQTT messages were dropped" in caplog.text
