"""Loading a checkpoint: the real loader on the tiny checkpoint, and every way it can go wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from assistant.config import LocalModelSettings, PersonaSettings
from assistant.errors import ModelError
from assistant.model.stepaudio2 import build_local_model, loading
from assistant.model.stepaudio2.engine import StepAudio2Engine
from assistant.model.stepaudio2.modeling import StepAudio2ForCausalLM
from support.synthetic import tensor_shapes

pytestmark = pytest.mark.models


def copy(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, target)
    return target


def test_every_released_tensor_name_loads_and_nothing_is_left_over(tiny_checkpoint: Path) -> None:
    model, tokenizer = loading.load(LocalModelSettings(path=str(tiny_checkpoint), device="cpu"))
    assert isinstance(model, StepAudio2ForCausalLM)
    assert set(model.state_dict()) == set(tensor_shapes())
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == tensor_shapes()
    assert not model.training and model.device.type == "cpu" and model.dtype == torch.float32
    assert tokenizer.convert_tokens_to_ids("<audio_start>") == 151688


def test_the_factory_builds_a_speech_model(tiny_checkpoint: Path) -> None:
    engine = build_local_model(LocalModelSettings(path=str(tiny_checkpoint), device="cpu"), PersonaSettings())
    assert isinstance(engine, StepAudio2Engine)
    # decode: auto on a CPU compiles the step only for decoder layers large enough to pay; these are tiny.
    assert not engine._compiled  # noqa: SLF001 - the choice is internal
    engine.close()


def test_weights_load_in_a_reduced_precision(tiny_checkpoint: Path) -> None:
    model, _ = loading.load(LocalModelSettings(path=str(tiny_checkpoint), device="cpu", dtype="bfloat16"))
    assert model.dtype == torch.bfloat16


def test_a_missing_shard_is_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    broken = copy(tiny_checkpoint, tmp_path)
    (broken / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelError, match="missing: model-00002-of-00002.safetensors"):
        loading.load(LocalModelSettings(path=str(broken), device="cpu"))


def test_missing_config_and_tokenizer_are_named(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match=r"missing: config\.json, tokenizer\.json"):
        loading.load(LocalModelSettings(path=str(tmp_path), device="cpu"))


def test_a_checkpoint_of_another_architecture_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    broken = copy(tiny_checkpoint, tmp_path)
    extra = broken / "model-00002-of-00002.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(str(extra))
    tensors["encoder.proj.weight"] = torch.zeros(2, 2)
    del tensors["adapter.linear2.bias"]
    save_file(tensors, str(extra), metadata={"format": "pt"})
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    index["weight_map"]["encoder.proj.weight"] = extra.name
    del index["weight_map"]["adapter.linear2.bias"]
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        ModelError, match=r"missing keys: adapter\.linear2\.bias.*unexpected keys: encoder\.proj\.weight"
    ):
        loading.load(LocalModelSettings(path=str(broken), device="cpu"))


def test_a_tokenizer_with_other_ids_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    broken = copy(tiny_checkpoint, tmp_path)
    tokenizer = json.loads((broken / "tokenizer.json").read_text())
    for token in tokenizer["added_tokens"]:
        if token["content"] == "<audio_start>":
            token["content"] = "<audio_begin>"
    (broken / "tokenizer.json").write_text(json.dumps(tokenizer))
    (broken / "tokenizer_config.json").unlink()
    with pytest.raises(ModelError, match="not Step-Audio 2's: <audio_start>"):
        loading.load(LocalModelSettings(path=str(broken), device="cpu"))


def test_too_little_memory_is_a_clear_error(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "available_bytes", lambda device: 1e9)
    with pytest.raises(
        ModelError, match=r"float32, quantization none\) needs about 1\.6 GB on cpu; only 1\.0 GB are free"
    ):
        loading.load(LocalModelSettings(path=str(tiny_checkpoint), device="cpu"))


def test_the_memory_estimate_of_the_real_model_is_plausible() -> None:
    gpu = loading.Placement(torch.device("cuda"), torch.bfloat16, "none")
    assert 17e9 < loading.needed_bytes(8_315_000_000, gpu) < 19e9
    int4 = loading.needed_bytes(8_315_000_000, loading.Placement(torch.device("cuda"), torch.bfloat16, "int4"))
    assert int4 < 12e9


def test_quantized_weights_need_a_cuda_gpu(tiny_checkpoint: Path) -> None:
    with pytest.raises(ModelError, match="int4 needs a CUDA GPU"):
        loading.load(LocalModelSettings(path=str(tiny_checkpoint), device="cpu", quantization="int4"))


def test_asking_for_cuda_without_one_is_a_clear_error(tiny_checkpoint: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ModelError, match="sees no CUDA GPU"):
        loading.load(LocalModelSettings(path=str(tiny_checkpoint), device="cuda"))


def test_an_unsupported_transformers_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading.metadata, "version", lambda name: "4.49.0")
    with pytest.raises(ModelError, match=r"transformers 4\.49\.0 is installed.*>=4\.56,<5"):
        loading.check_transformers()


def test_a_repo_id_that_cannot_be_downloaded_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelError, match=r"cannot download stepfun-ai/Step-Audio-2-mini.*model\.local\.path"):
        build_local_model(LocalModelSettings(path="stepfun-ai/Step-Audio-2-mini"), PersonaSettings())


def test_a_path_that_is_neither_a_directory_nor_a_repo_id_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model directory at"):
        loading.resolve(str(tmp_path / "nowhere" / "model"))
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"")
    with pytest.raises(ModelError, match="is a file"):
        loading.resolve(str(file))


def test_free_memory_is_known_on_the_cpu() -> None:
    free = loading.available_bytes(torch.device("cpu"))
    assert free is not None and free > 1e8


def test_an_unknown_time_zone_is_a_clear_error(tiny_checkpoint: Path) -> None:
    # The config refuses this zone; the engine still guards against settings built in code.
    persona = PersonaSettings.model_construct(timezone="Mars/Olympus_Mons")
    with pytest.raises(ModelError, match="Mars/Olympus_Mons"):
        build_local_model(LocalModelSettings(path=str(tiny_checkpoint), device="cpu"), persona)
