"""StepFun's reference for the differential tests: support/stepfun.py, failing or skipping as the tests ask.

``XIANGYIN_SKIP_STEPFUN=1`` skips these tests; otherwise a reference that cannot be installed fails them.
"""

from __future__ import annotations

import os
from functools import cache

import pytest

from support.stepfun import Reference, StepFunUnavailable, cuda_is_cpu, load_token2wav
from support.stepfun import load_reference as _load_reference

SKIP_ENV = "XIANGYIN_SKIP_STEPFUN"

__all__ = ["Reference", "cuda_is_cpu", "load_reference", "load_token2wav"]


@cache
def load_reference() -> Reference:
    """StepFun's modules (installing them first if needed); fails, or skips when asked."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the differential tests against StepFun's code are switched off")
    try:
        return _load_reference()
    except StepFunUnavailable as err:
        pytest.fail(f"{err}\n(set {SKIP_ENV}=1 to skip these tests)", pytrace=False)
