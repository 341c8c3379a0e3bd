"""Fixtures for the Step-Audio 2 engine: a tiny random checkpoint, loaded once, and scripted answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from transformers import LogitsProcessor, PreTrainedTokenizerBase

from assistant.config import LocalModelSettings, PersonaSettings
from assistant.model.stepaudio2.engine import GenerationOptions, StepAudio2Engine
from assistant.model.stepaudio2.loading import load
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM
from support.synthetic import ScriptedLogits, build, interleave

TODAY = datetime(2026, 11, 25, 9, 30)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Step-Audio 2 checkpoint (≈90 MB, almost all of it the two 158,720-row matrices)."""
    return build(tmp_path_factory.mktemp("step-audio-2-tiny"))


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path) -> tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase]:
    """The tiny checkpoint loaded by the real loading code, on the CPU."""
    return load(LocalModelSettings(path=str(tiny_checkpoint), device="cpu"))


class Speech:
    """Builds token scripts the way Step-Audio 2 writes them."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def text(self, text: str) -> list[int]:
        """Plain text tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def spoken(self, text: str, codes: Sequence[int]) -> list[int]:
        """``text`` and speech ``codes`` interleaved 1 : 4, pads filling the shorter side, then ``<tts_end>``."""
        return interleave(self.text(text), codes)

    def tool_call(self, name: str, arguments: str) -> list[int]:
        """A tool call as the model writes it."""
        return self.text(f"<tool_call>function\n{name}\n{arguments}</tool_call>")


@pytest.fixture
def speech(tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase]) -> Speech:
    """Token script builder over the tiny tokenizer."""
    return Speech(tiny_model[1])


EngineFactory = Callable[..., StepAudio2Engine]


@pytest.fixture
def engine_factory(tiny_model: tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase]) -> Iterable[EngineFactory]:
    """Engines over the tiny model whose answers follow a script."""
    engines: list[StepAudio2Engine] = []

    def make(
        rounds: Iterable[Sequence[int]] = (),
        *,
        persona: PersonaSettings | None = None,
        gate: tuple[int, Callable[[], None]] | None = None,
        spies: Sequence[LogitsProcessor] = (),
        **options: Any,
    ) -> StepAudio2Engine:
        model, tokenizer = tiny_model
        engine = StepAudio2Engine(
            model,
            tokenizer,
            persona or PersonaSettings(location="广州", dialect="cantonese"),
            GenerationOptions(**{"max_new_tokens": 256, **options}),
            logits_processors=[*spies, ScriptedLogits(rounds, gate)],
            today=lambda: TODAY,
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()
