"""The doctor's look at the machine and the files: GPU, precision, the checkpoint and token2wav against the release."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

from ..config import LocalModelSettings
from ..model.stepaudio2.release import MINI, Sizes, tensor_shapes
from .report import Check

GIB = 1024**3
FLOW_PARAMETERS = 155_802_352
"""Parameters of the released ``flow.pt``."""
HIFT_PARAMETERS = 20_821_295
"""Parameters of the released ``hift.pt``."""


def gpu_check() -> Check:
    """The CUDA GPU torch sees: name, driver, free and total memory; "no GPU" when there is none."""
    try:
        import torch
    except ImportError:
        return Check("gpu", "fail", "no GPU check: torch is not installed (pip install 'xiangyin[engines]')")
    if not torch.cuda.is_available():
        return Check("gpu", "warn", "no GPU: torch sees no CUDA device, so the model and token2wav run on the CPU")
    index = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    name = torch.cuda.get_device_name(index)
    driver = _driver_version()
    return Check(
        "gpu",
        "ok",
        f"{name}, driver {driver or 'unknown'}, CUDA {torch.version.cuda}, "
        f"{free / GIB:.1f} of {total / GIB:.1f} GiB free",
        {"name": name, "driver": driver, "cuda": torch.version.cuda, "free_gib": free / GIB, "total_gib": total / GIB},
    )


def _driver_version() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def precision_check(settings: LocalModelSettings, parameters: int | None) -> Check:
    """The device, dtype and quantization the model would load with, and whether its weights fit."""
    from ..errors import ModelError
    from ..model.stepaudio2.loading import available_bytes, needed_bytes, place

    try:
        placement = place(settings)
    except ModelError as err:
        return Check("precision", "fail", str(err))
    dtype = str(placement.dtype).removeprefix("torch.")
    figures: dict[str, float | int | str | None] = {
        "device": placement.device.type,
        "dtype": dtype,
        "quantization": placement.quantization,
    }
    detail = f"{placement.device.type}, {dtype}, quantization {placement.quantization}"
    if parameters is None:
        return Check("precision", "ok", detail, figures)
    needed, free = needed_bytes(parameters, placement), available_bytes(placement.device)
    figures.update(needed_gib=needed / GIB, free_gib=None if free is None else free / GIB)
    if free is not None and needed > free:
        return Check(
            "precision",
            "fail",
            f"{detail}: needs {needed / GIB:.1f} GiB, {free / GIB:.1f} GiB free; try quantization int8 or int4",
            figures,
        )
    return Check("precision", "ok", f"{detail}: needs {needed / GIB:.1f} GiB", figures)


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is damaged (truncated, padded, unreadable header), or None when it is whole."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as err:
        return f"{path.name}: unreadable header ({err})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    size = path.stat().st_size
    if size != 8 + length + end:
        return f"{path.name}: {size} bytes on disk, its header describes {8 + length + end} (an interrupted download?)"
    return None


def hub_hash_problem(path: Path) -> str | None:
    """For a file in the Hugging Face cache, whether its SHA-256 is the one its blob is named after."""
    blob = path.resolve()
    if blob.parent.name != "blobs" or len(blob.name) != 64:
        return None
    digest = hashlib.sha256()
    with blob.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return None if digest.hexdigest() == blob.name else f"{path.name}: its SHA-256 is not the release's"


def model_files_check(directory: Path, *, hashes: bool) -> tuple[Check, int | None, bool]:
    """Files of the checkpoint: complete, whole, the released layout; returns the row, its parameters, release."""
    from ..errors import ModelError
    from ..model.stepaudio2.loading import weight_files

    try:
        files = weight_files(directory)
    except ModelError as err:
        return Check("model files", "fail", str(err)), None, False
    problems = [p for p in map(safetensors_problem, files) if p]
    if hashes and not problems:
        problems = [p for p in map(hub_hash_problem, files) if p]
    if problems:
        return Check("model files", "fail", "; ".join(problems)), None, False
    try:
        sizes = _sizes(json.loads((directory / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Check("model files", "fail", f"config.json does not describe a Step-Audio 2 model: {err}"), None, False
    shapes = _shapes(files)
    parameters = sum(_count(shape) for shape in shapes.values())
    figures: dict[str, float | int | str | None] = {"files": len(files), "parameters": parameters}
    if shapes != tensor_shapes(sizes):
        wrong = sorted(set(tensor_shapes(sizes)).symmetric_difference(shapes))[:3] or ["shapes differ"]
        return (
            Check("model files", "fail", f"not the Step-Audio 2 layout its config.json describes: {wrong}", figures),
            None,
            False,
        )
    checked = "whole" + (", SHA-256 as released" if hashes else "")
    if sizes != MINI:
        detail = f"the released layout at another size ({parameters:,} parameters), {checked}"
        return Check("model files", "warn", detail, figures), parameters, False
    return (
        Check("model files", "ok", f"{len(files)} files, {parameters:,} parameters, {checked}", figures),
        parameters,
        True,
    )


def _sizes(config: dict[str, Any]) -> Sizes:
    text, audio = config["text_config"], config["audio_encoder_config"]
    return Sizes(
        hidden=int(text["hidden_size"]),
        intermediate=int(text["intermediate_size"]),
        layers=int(text["num_hidden_layers"]),
        heads=int(text["num_attention_heads"]),
        kv_heads=int(text["num_key_value_heads"]),
        audio_state=int(audio["n_audio_state"]),
        audio_heads=int(audio["n_audio_head"]),
        audio_layers=int(audio["n_audio_layer"]),
    )


def _shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        shapes.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
