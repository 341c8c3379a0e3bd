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


async def test_a_state_changing_fast_takes_one_place_with_its_newest_value(caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(limit=10)
    box.put(message(1))
    for level in range(5000):  # a volume slider dragged, or a flood of volume commands
        box.put(Outgoing("box/volume/state", str(level), 1, True))
    box.put(message(2))
    assert len(box) == 3 and "queue is full" not in caplog.text
    sent = []
    for _ in range(3):
        head = await box.peek()
        box.sent(head)
        sent.append(head)
    assert sent == [message(1), Outgoing("box/volume/state", "4999", 1, True), message(2)]


async def test_a_state_superseded_while_it_is_being_sent_is_sent_again_with_its_newest_value() -> None:
    box = Outbox(limit=10)
    box.put(Outgoing("box/mute/state", "ON", 1, True))
    in_flight = await box.peek()
    box.put(Outgoing("box/mute/state", "OFF", 1, True))
    box.sent(in_flight)
    assert await box.peek() == Outgoing("box/mute/state", "OFF", 1, True)
