"""Shared hypothesis settings and strategies for the bad-input fuzz tests (tests/reliability/test_fuzz_*)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_EXPLORE = bool(os.environ.get("XIANGYIN_FUZZ_EXPLORE"))

FUZZ = settings(
    max_examples=1000 if _EXPLORE else 100,
    deadline=None,
    # The same examples on every run, so CI fails only for a change, never by the luck of the draw; set
    # XIANGYIN_FUZZ_EXPLORE=1 to hunt with fresh random ones (and pin what they find with @example).
    derandomize=not _EXPLORE,
    # No example database: nothing hypothesis writes may end up in git, and CI starts clean anyway.
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
"""What every fuzz test runs under: a hundred fixed examples each keeps the suite well under a minute."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**60),
    st.floats(),  # NaN and ±inf included
    st.text(max_size=40),
    st.sampled_from(["", "ON", "true", "0", "-1", "1e999", "nan", "${HOME}", "\x00", "\ud7ff", "<tool_call>"]),
)
"""JSON-ish leaves: wrong types, huge and non-finite numbers, awkward strings."""


def junk(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-like trees (lists and string-keyed mappings of ``scalars``)."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=max_leaves,
    )
