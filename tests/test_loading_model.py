"""The daemon serves at once while the model loads, and says why when it could not load."""

from __future__ import annotations

import asyncio

import pytest

from assistant.errors import ModelError
from assistant.model.unavailable import LoadingModel, UnavailableModel
from assistant.ports import ModelDone, ModelRequest, ModelText, SpeechModel
from support.fakes import FakeClock, ScriptedModel, after

REQUEST = ModelRequest("default", text="几点了")


async def drain(model: SpeechModel) -> list[object]:
    return [event async for event in model.respond(REQUEST)]


async def test_a_question_while_loading_fails_at_once_with_a_clear_message() -> None:
    gate = asyncio.Event()

    async def load() -> SpeechModel:
        await gate.wait()
        return ScriptedModel(FakeClock(), [])

    loading = asyncio.create_task(load())
    with pytest.raises(ModelError, match="still loading"):
        await drain(LoadingModel(loading))
    loading.cancel()


async def test_once_loaded_it_answers_and_receives_a_dialect_chosen_meanwhile() -> None:
    clock = FakeClock()
    driver = asyncio.create_task(clock.drive())
    scripted = ScriptedModel(clock, [[after(0, ModelText("八点")), after(0, ModelDone())]])

    async def load() -> SpeechModel:
        return scripted

    model = LoadingModel(asyncio.create_task(load()))
    model.set_dialect("cantonese")
    await asyncio.sleep(0)
    assert await drain(model) == [ModelText("八点"), ModelDone()]
    assert scripted.dialects == ["cantonese"]
    driver.cancel()


async def test_a_model_that_could_not_load_repeats_the_reason_on_every_question() -> None:
    async def load() -> SpeechModel:
        return UnavailableModel("no weights in /models/step")

    model = LoadingModel(asyncio.create_task(load()))
    await asyncio.sleep(0)
    for _ in range(2):
        with pytest.raises(ModelError, match="no weights in /models/step"):
            await drain(model)
