"""Fixtures for the differential tests: StepFun's code and ours over the same tiny random token2wav folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stepfun.reference import Reference, load_reference

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    # The test machines share two cores among several jobs; torch's thread pool only adds contention there.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def reference() -> Reference:
    """StepFun's modules (installing them first if needed)."""
    return load_reference()


@pytest.fixture(scope="session")
def token2wav_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random token2wav folder of the released layout, as tests/voice uses."""
    from tests.voice.conftest import make_token2wav_dir

    return make_token2wav_dir(tmp_path_factory.mktemp("token2wav"))
