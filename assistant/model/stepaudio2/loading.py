"""Find, check and load a Step-Audio 2 checkpoint onto the right device, with clear errors.

``path`` is a model directory or a Hugging Face repo id; a repo id is downloaded once with
huggingface_hub (which shows a progress bar). Every failure a user can meet (no internet, a missing
file, too little memory, a transformers version that breaks the model, a tokenizer from another model)
becomes a ``ModelError`` that says what to do.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from packaging.version import Version
from safetensors import safe_open
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast, Qwen2TokenizerFast

from ...config import LocalModelSettings
from ...errors import ModelError
from . import tokens as t
from .modeling import StepAudio2Config, StepAudio2ForCausalLM

_LOGGER = logging.getLogger(__name__)

TRANSFORMERS_MIN = Version("4.56")
"""Oldest transformers this code was written against (Qwen2Model with ``Cache`` objects)."""
TRANSFORMERS_BELOW = Version("5")
"""First transformers major that is not supported."""

DOWNLOAD_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.py", "token2wav/*", "assets/*.wav")
"""Files fetched from the hub: weights, config, tokenizer, the token2wav folder and prompt voices."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HEADROOM_BYTES = 1.5e9
"""Memory kept free beyond the weights, for the KV cache, activations and the audio encoder."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and how the weights live."""

    device: torch.device
    """Device the model runs on."""
    dtype: torch.dtype
    """Precision of the unquantized weights and of the computation."""
    quantization: str
    """``none``, ``int8`` or ``int4``."""


def check_transformers() -> None:
    """Refuse transformers versions this model code does not support."""
    found = Version(metadata.version("transformers"))
    if not TRANSFORMERS_MIN <= found < TRANSFORMERS_BELOW:
        raise ModelError(
            f"transformers {found} is installed; Xiangyin's Step-Audio 2 engine needs "
            f">={TRANSFORMERS_MIN},<{TRANSFORMERS_BELOW}: pip install 'xiangyin[model]'"
        )


def resolve(path: str, *, revision: str | None = None) -> Path:
    """A local model directory, downloading ``path`` first if it is a Hugging Face repo id."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ModelError(f"model.local.path {path} is a file; give the model directory")
    if not _REPO_ID.match(path) or path.startswith((".", "/", "~")):
        raise ModelError(f"model.local.path: no model directory at {local}")
    return download(path, revision=revision)


def download(repo_id: str, *, revision: str | None = None) -> Path:
    """Download (or find in the local hub cache) a snapshot of ``repo_id``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    _LOGGER.info("fetching %s from Hugging Face (17.9 GB the first time)", repo_id)
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(DOWNLOAD_PATTERNS)))
    except LocalEntryNotFoundError as err:
        raise ModelError(
            f"cannot download {repo_id}: the Hugging Face hub is unreachable and the model is not in the local "
            f"cache ({err}). Download it where there is internet (huggingface-cli download {repo_id} "
            "--local-dir DIR), copy DIR here and set model.local.path to it"
        ) from err
    except HfHubHTTPError as err:
        raise ModelError(f"cannot download {repo_id}: {err}", recoverable=True) from err
    except OSError as err:
        raise ModelError(f"cannot download {repo_id}: {err}") from err


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint; ``ModelError`` naming whatever is missing."""
    missing = [name for name in ("config.json",) if not (directory / name).is_file()]
    if not (directory / "tokenizer.json").is_file() and not (directory / "vocab.json").is_file():
        missing.append("tokenizer.json")
    index = directory / "model.safetensors.index.json"
    files: list[Path] = []
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError) as err:
            raise ModelError(f"{index} is unreadable: {err}") from err
        files = [directory / shard for shard in shards]
        missing.extend(shard for shard in shards if not (directory / shard).is_file())
    elif (directory / "model.safetensors").is_file():
        files = [directory / "model.safetensors"]
    else:
        missing.append("model.safetensors or model.safetensors.index.json")
    if missing:
        raise ModelError(f"{directory} is not a complete Step-Audio 2 checkpoint; missing: {', '.join(missing)}")
    return files


def parameter_count(files: list[Path]) -> int:
    """Parameters stored in safetensors files, read from their headers only."""
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                count = 1
                for dim in handle.get_slice(key).get_shape():
                    count *= int(dim)
                total += count
    return total


def place(settings: LocalModelSettings) -> Placement:
    """Pick device and dtype from the settings and what this machine has."""
    name = settings.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            "model.local.device is cuda but PyTorch sees no CUDA GPU (is the CUDA build of torch installed?)"
        )
    elif name == "mps" and not torch.backends.mps.is_available():
        raise ModelError("model.local.device is mps but this machine has no Apple GPU")
    device = torch.device(name)
    if settings.dtype != "auto":
        dtype = getattr(torch, settings.dtype)
    elif device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif device.type == "mps":
        dtype = torch.float16
    else:
        dtype = torch.float32
    if settings.quantization != "none" and device.type != "cuda":
        raise ModelError(
            f"model.local.quantization {settings.quantization} needs a CUDA GPU (bitsandbytes); "
            f"this model runs on {device.type}: set quantization: none"
        )
    return Placement(device, dtype, settings.quantization)


def needed_bytes(parameters: int, placement: Placement) -> float:
    """Memory the weights take once loaded, plus headroom."""
    width = torch.finfo(placement.dtype).bits / 8
    # The decoder's linear layers are ≈78 % of the parameters; embeddings, lm_head and the encoder stay wide.
    factor = {"none": 1.0, "int8": 0.22 + 0.78 * 0.5, "int4": 0.22 + 0.78 * 0.3}[placement.quantization]
    return parameters * width * factor + _HEADROOM_BYTES


def available_bytes(device: torch.device) -> float | None:
    """Free memory on the device, if it can be known."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    if device.type == "cpu":
        # MemAvailable counts reclaimable page cache; free pages alone would refuse loads that fit.
        try:
            for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    return None


def _quantization_config(placement: Placement) -> Any:
    if placement.quantization == "none":
        return None
    try:
        import bitsandbytes  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as err:
        raise ModelError(
            f"model.local.quantization {placement.quantization} needs bitsandbytes: pip install 'xiangyin[model-quant]'"
        ) from err
    from transformers import BitsAndBytesConfig

    # The audio path and lm_head are small or sensitive; only the decoder's layers are quantized.
    keep = ["encoder", "adapter", "lm_head"]
    if placement.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=keep)  # type: ignore[no-untyped-call]
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=placement.dtype,
        llm_int8_skip_modules=keep,
    )


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """The ids the engine hard-codes must be what this tokenizer says."""
    wrong = [
        f"{text}={tokenizer.convert_tokens_to_ids(text)} (expected {token})"
        for token, text in t.STRINGS.items()
        if tokenizer.convert_tokens_to_ids(text) != token
    ]
    if wrong:
        raise ModelError(f"the tokenizer in {directory} is not Step-Audio 2's: {', '.join(wrong)}")


def load(settings: LocalModelSettings) -> tuple[StepAudio2ForCausalLM, PreTrainedTokenizerBase]:
    """Load model and tokenizer as the settings say."""
    check_transformers()
    directory = resolve(settings.path, revision=settings.revision)
    files = weight_files(directory)
    placement = place(settings)
    parameters = parameter_count(files)
    need, free = needed_bytes(parameters, placement), available_bytes(placement.device)
    if free is not None and need > free:
        hint = (
            " Try model.local.quantization: int4, or the vllm backend on a bigger GPU."
            if placement.device.type == "cuda"
            else ""
        )
        raise ModelError(
            f"Step-Audio 2 ({parameters / 1e9:.2f} B parameters, {str(placement.dtype).removeprefix('torch.')}, "
            f"quantization "
            f"{placement.quantization}) needs about {need / 1e9:.1f} GB on {placement.device}; only "
            f"{free / 1e9:.1f} GB are free.{hint}"
        )
    try:
        # Never AutoTokenizer: it reads config.json's auto_map and asks on stdin to run remote code.
        if (directory / "tokenizer.json").is_file():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory))
        else:
            tokenizer = Qwen2TokenizerFast.from_pretrained(str(directory))
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the tokenizer in {directory}: {err}") from err
    check_tokenizer(tokenizer, directory)
    try:
        config = StepAudio2Config.from_pretrained(str(directory))
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {directory / 'config.json'}: {err}") from err
    _LOGGER.info(
        "loading Step-Audio 2 from %s on %s (%s, quantization %s)",
        directory,
        placement.device,
        placement.dtype,
        placement.quantization,
    )
    quantization = _quantization_config(placement)
    extra: dict[str, Any] = {}
    if quantization is not None or placement.device.type == "cuda":
        extra["device_map"] = {"": placement.device}
    try:
        model, info = StepAudio2ForCausalLM.from_pretrained(
            str(directory),
            config=config,
            dtype=placement.dtype,
            quantization_config=quantization,
            output_loading_info=True,
            **extra,
        )
    except torch.OutOfMemoryError as err:
        raise ModelError(f"out of memory while loading Step-Audio 2 onto {placement.device}: {err}") from err
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"cannot load the weights in {directory}: {err}") from err
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        details = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, sorted(v)[:5]))}" for k, v in problems.items())
        raise ModelError(f"{directory} does not match the Step-Audio 2 architecture ({details})")
    if "device_map" not in extra:
        model = model.to(placement.device)
    model.eval()
    model.use_decode_layout()
    return model, tokenizer
