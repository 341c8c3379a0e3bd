"""The bus: synchronous taps, queued subscribers, urgent lane, overflow."""

from __future__ import annotations

import logging

import pytest

from assistant.bus import Bus, Envelope
from assistant.events import ListenRequested, MuteChanged, StopRequested, TurnEnded, VolumeChanged
from support.fakes import FakeClock


async def test_subscriber_gets_urgent_events_before_queued_ordered_ones() -> None:
    bus = Bus(FakeClock())
    sub = bus.subscribe("test")
    bus.publish(MuteChanged(muted=True))
    bus.publish(VolumeChanged(level=0.5))
    bus.publish(StopRequested(source="button"))
    got = [(await sub.get()).event for _ in range(3)]
    assert got == [StopRequested(source="button"), MuteChanged(muted=True), VolumeChanged(level=0.5)]


async def test_subscription_filters_by_type() -> None:
    bus = Bus(FakeClock())
    sub = bus.subscribe("only-listen", ListenRequested)
    bus.publish(MuteChanged(muted=True))
    bus.publish(ListenRequested(source="mqtt"))
    assert (await sub.get()).event == ListenRequested(source="mqtt")


async def test_slow_subscriber_loses_oldest_ordered_events_but_never_urgent_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = Bus(FakeClock())
    sub = bus.subscribe("slow", max_ordered=2)
    for level in (0.1, 0.2, 0.3):
        bus.publish(VolumeChanged(level=level))
    bus.publish(StopRequested(source="mqtt"))
    with caplog.at_level(logging.WARNING):
        got = [(await sub.get()).event for _ in range(3)]
    assert got == [StopRequested(source="mqtt"), VolumeChanged(level=0.2), VolumeChanged(level=0.3)]
    assert "lost 1 events" in caplog.text


def test_envelope_carries_the_clock_time_and_a_failing_tap_does_not_stop_delivery() -> None:
    clock = FakeClock(start=12.5)
    bus = Bus(clock)
    seen: list[Envelope] = []

    def broken(_: Envelope) -> None:
        raise RuntimeError("LED ring unplugged")

    bus.tap(broken)
    bus.tap(seen.append)
    bus.publish(TurnEnded(turn_id="t1", outcome="completed"))
    assert seen == [Envelope(12.5, TurnEnded(turn_id="t1", outcome="completed"))]


def test_events_published_from_a_tap_follow_their_cause() -> None:
    bus = Bus(FakeClock())
    order: list[str] = []
    bus.tap(lambda e: bus.publish(VolumeChanged(level=1.0)) if isinstance(e.event, MuteChanged) else None)
    bus.tap(lambda e: order.append(type(e.event).__name__))
    bus.publish(MuteChanged(muted=False))
    assert order == ["MuteChanged", "VolumeChanged"]
