"""Volume, mute, dialect and wake word set from Home Assistant over MQTT are still in force after a restart.

The real daemon (App, supervisor, MQTT bridge, preference file) runs as a process on fakes for audio and
model (tests/daemon_with_fakes.py), against a real mosquitto; the test plays Home Assistant's part.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from support.servers import Mosquitto, eventually, mosquitto

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parent.parent
BASE = "xiangyin/fake_box"
KEYS = ("volume", "mute", "dialect", "wake_word")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path) as running:
        yield running


class Daemon:
    """The daemon process; ``log`` is what it wrote (logs go to stdout) once it stopped."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log = ""


@asynccontextmanager
async def daemon(broker: Mosquitto, state: Path) -> AsyncIterator[Daemon]:
    """The daemon process, stopped with SIGTERM (as systemd does) at the end of the block."""
    command = ["-m", "tests.daemon_with_fakes", "--quiet", "--mqtt", str(broker.port), "--state", str(state)]
    # A file, not a pipe: a full pipe nobody reads would block the daemon's logging.
    with tempfile.TemporaryFile() as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
        running = Daemon(process)
        try:
            yield running
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                await process.wait()
            output.seek(0)
            running.log = output.read().decode(errors="replace")
            assert process.returncode == 0, running.log[-3000:]


class HomeAssistant:
    """Records the box's state topics, as HA's MQTT integration would see them."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.states: dict[str, str] = {}

    async def listen(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            key = message.topic.value.removeprefix(f"{BASE}/").removesuffix("/state")
            self.states[key] = message.payload.decode()

    def shows(self, **expected: str) -> bool:
        return all(self.states.get(key) == value for key, value in expected.items())


@asynccontextmanager
async def home_assistant(broker: Mosquitto) -> AsyncIterator[HomeAssistant]:
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-ha") as client:
        await client.subscribe([(f"{BASE}/{key}/state", 1) for key in KEYS])
        ha = HomeAssistant(client)
        task = asyncio.create_task(ha.listen())
        try:
            yield ha
        finally:
            task.cancel()


async def test_settings_changed_from_home_assistant_survive_a_restart(broker: Mosquitto, tmp_path: Path) -> None:
    """Change four settings over MQTT, restart the daemon: it comes back with them, and says so to HA."""
    state = tmp_path / "state" / "settings.json"
    async with home_assistant(broker) as ha:
        async with daemon(broker, state):
            await eventually(lambda: ha.shows(volume="80", mute="OFF", dialect="mandarin", wake_word="hey_jarvis"), 30)
            for key, value in (("volume", "35"), ("mute", "ON"), ("dialect", "cantonese"), ("wake_word", "alexa")):
                await ha.client.publish(f"{BASE}/{key}/set", value, qos=1)
            await eventually(lambda: ha.shows(volume="35", mute="ON", dialect="cantonese", wake_word="alexa"), 20)
        saved = json.loads(await asyncio.to_thread(state.read_text))
        assert saved == {"volume": 0.35, "muted": True, "dialect": "cantonese", "wake_word": "alexa"}
        # Forget what the broker retained, so only the restarted daemon can set these states again.
        for key in KEYS:
            await ha.client.publish(f"{BASE}/{key}/state", b"", qos=1, retain=True)
        await eventually(lambda: all(ha.states.get(key) == "" for key in KEYS))
        async with daemon(broker, state):
            await eventually(lambda: ha.shows(volume="35", mute="ON", dialect="cantonese", wake_word="alexa"), 30)


async def test_a_corrupt_settings_file_starts_the_daemon_with_the_config_values(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """A file cut short by a disk fault: the daemon starts, logs it, and uses config.yaml's values."""
    state = tmp_path / "settings.json"
    await asyncio.to_thread(state.write_text, '{"volume": 0.3, "mut')
    async with home_assistant(broker) as ha, daemon(broker, state) as box:
        await eventually(lambda: ha.shows(volume="80", mute="OFF", dialect="mandarin"), 30)
        assert box.process.returncode is None
    assert f"{state} is not valid JSON" in box.log and "starting with config.yaml's values" in box.log
