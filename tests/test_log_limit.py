"""A flood of one log line is cut to a burst per window, and the next line says how many were left out."""

from __future__ import annotations

import io
import logging

from assistant.config import LoggingSettings
from assistant.logs import RepeatLimit, configure_logging, log_event


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logger_with(limit: RepeatLimit) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(limit)
    logger = logging.getLogger(f"test.limit.{id(limit)}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger, stream


def test_the_same_line_flooding_is_cut_to_a_burst_and_the_next_window_counts_the_rest() -> None:
    clock = _Clock()
    logger, stream = _logger_with(RepeatLimit(burst=5, window_seconds=10, now=clock))

    def junk_from(peer: int) -> None:
        logger.warning("malformed message from peer %d", peer)  # one place, whatever its arguments

    for peer in range(1000):
        junk_from(peer)
    assert len(stream.getvalue().splitlines()) == 5
    clock.now = 10.0
    junk_from(1001)
    last = stream.getvalue().splitlines()[-1]
    assert last == "malformed message from peer 1001 [995 more like this in the last 10 s were not logged]"


def test_other_places_and_other_event_names_have_their_own_budget() -> None:
    clock = _Clock()
    logger, stream = _logger_with(RepeatLimit(burst=2, window_seconds=10, now=clock))
    for _ in range(5):
        logger.warning("first place")
        logger.error("second place")
    assert stream.getvalue().splitlines() == ["first place", "second place"] * 2


def test_the_event_trace_is_limited_per_event_name() -> None:
    from assistant.bus import Envelope
    from assistant.events import MuteChanged, VolumeChanged

    clock = _Clock()
    limit = RepeatLimit(burst=3, window_seconds=10, now=clock)
    events = logging.getLogger("assistant.events")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(limit)
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        for _ in range(10):
            log_event(Envelope(0.0, VolumeChanged(level=0.5)))
            log_event(Envelope(0.0, MuteChanged(muted=True)))
    finally:
        events.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert sum("volume-changed" in line for line in lines) == 3
    assert sum("mute-changed" in line for line in lines) == 3


def test_the_daemons_logging_carries_the_limit() -> None:
    configure_logging(LoggingSettings())
    try:
        [handler] = logging.getLogger().handlers
        assert any(isinstance(f, RepeatLimit) for f in handler.filters)
    finally:
        logging.getLogger().handlers.clear()
