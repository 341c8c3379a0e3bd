"""Importing the integrations is cheap: paho, aiomqtt, niquests and wyoming load only when used."""

from __future__ import annotations

import subprocess
import sys


def test_integration_modules_import_no_network_library() -> None:
    code = (
        "import sys, assistant.integrations.mqtt, assistant.integrations.homeassistant, "
        "assistant.integrations.wyoming, assistant.integrations.discovery;"
        "print(sorted(m for m in ('paho', 'aiomqtt', 'niquests', 'homeassistant_api', 'wyoming') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
