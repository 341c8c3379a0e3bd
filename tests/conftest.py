"""Shared fixtures: a rig that runs the supervisor with fakes on a fake clock (support/rig.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support.rig import Rig


@pytest.fixture
def rig_factory() -> Callable[..., Rig]:
    """Build rigs with custom settings, model rounds and tools."""
    return Rig
