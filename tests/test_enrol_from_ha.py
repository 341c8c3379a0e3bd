"""Enrolling 小乡小乡 from Home Assistant's side of a real mosquitto, with the real models, while the box runs.

Home Assistant's part is an MQTT client that types the name into the text entity, presses the buttons and
reads the sensors. The box is the real MqttBridge, Supervisor, StoreEnroller and Silero VAD; its microphone
is a stand-in that says the recorded takes (tests/data/enroll) after each beep.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from assistant.audio import AudioChunk, read_wav, split
from assistant.bus import Bus
from assistant.config import ConversationSettings, EndpointSettings, MqttSettings, WakeSettings
from assistant.events import ShutdownRequested
from assistant.integrations.mqtt import MqttBridge
from assistant.listen import build_vad
from assistant.listen.enroller import StoreEnroller
from assistant.supervisor import Supervisor, SupervisorOptions
from assistant.tasks import MonotonicClock, cancel_and_wait
from assistant.turn import TurnDeps
from support.fakes import BeepCountingSpeaker, FakeTools, FakeVoice, SayingMicrophone, ScriptedModel
from support.servers import Mosquitto, eventually, mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.models]

DATA = Path(__file__).parent / "data" / "enroll"
WORD = "小乡小乡"
BASE = "xiangyin/test_box"
CHUNK_SECONDS = 0.08
SELECT = "homeassistant/select/test_box/wake_word/config"


def chunks_of(path: Path) -> list[AudioChunk]:
    return list(split(read_wav(path), CHUNK_SECONDS))


def clipped(path: Path) -> list[AudioChunk]:
    """The take eight times too loud: a take the checks refuse."""
    samples = np.frombuffer(read_wav(path).pcm, dtype="<i2").astype(np.int32) * 8
    loud = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    return list(split(AudioChunk(loud), CHUNK_SECONDS))


class HomeAssistant:
    """Types, presses and reads: every payload seen on the box's topics, in order."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: dict[str, list[str]] = collections.defaultdict(list)

    async def listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload.decode() if isinstance(message.payload, bytes) else str(message.payload)
            self.seen[message.topic.value].append(payload)

    def last(self, key: str, kind: str = "state") -> str | None:
        values = self.seen.get(f"{BASE}/{key}/{kind}")
        return values[-1] if values else None

    async def press(self, button: str) -> None:
        await self.client.publish(f"{BASE}/{button}/set", "PRESS", qos=1)

    async def type_name(self, name: str) -> None:
        await self.client.publish(f"{BASE}/enrol_name/set", name, qos=1)
        await eventually(lambda: self.last("enrol_name") == name)

    def progress(self) -> list[str]:
        return self.seen.get(f"{BASE}/enrolment/state", [])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path) as running:
        yield running


class Box:
    """The daemon's parts that enrolment touches, on the real broker."""

    def __init__(self, broker: Mosquitto, words: Path) -> None:
        clock = MonotonicClock()
        self.bus = Bus(clock)
        self.mic = SayingMicrophone(pace_seconds=CHUNK_SECONDS / 4, after_seconds=0.8)
        self.speaker = BeepCountingSpeaker(clock)
        settings = MqttSettings(enabled=True, host=broker.host, port=broker.port, device_id="test_box")
        self.bridge = MqttBridge(settings, self.bus, "9.9.9", wake_words=("hey_jarvis",), wake_word="hey_jarvis")
        self.enroller = StoreEnroller(WakeSettings(enrolled_dir=words))
        wake, listening = self.enroller.detector()
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=clock,
            vad=build_vad(),
            model=ScriptedModel(clock, []),
            voice=FakeVoice(seconds_per_char=0.005),
            sink=self.speaker,
            tools=FakeTools(),
            endpoint=EndpointSettings(),
            conversation=ConversationSettings(follow_up_seconds=0, earcons=False),
        )
        self.supervisor = Supervisor(
            bus=self.bus,
            source=self.mic,
            wake=wake,
            deps=deps,
            enroller=self.enroller,
            options=SupervisorOptions(follow_up_seconds=0, wake_words=("hey_jarvis",), listening_enrolled=listening),
        )

    async def user_says_after_each_beep(self, takes: Sequence[Sequence[AudioChunk]]) -> None:
        for number, take in enumerate(takes, 1):
            await eventually(lambda n=number: self.speaker.beeps >= n, timeout=60)  # type: ignore[misc]
            self.mic.say(take)


@contextlib.asynccontextmanager
async def running(broker: Mosquitto, words: Path) -> AsyncIterator[tuple[Box, HomeAssistant]]:
    box = Box(broker, words)
    tasks = [asyncio.create_task(box.bridge.run()), asyncio.create_task(box.supervisor.run())]
    async with aiomqtt.Client(broker.host, broker.port, identifier="test-ha") as client:
        await client.subscribe(f"{BASE}/#", qos=1)
        await client.subscribe(SELECT, qos=1)
        ha = HomeAssistant(client)
        listening = asyncio.create_task(ha.listen())
        try:
            await eventually(lambda: ha.last("enrolled_words") is not None)
            yield box, ha
        finally:
            await cancel_and_wait(listening)
            box.bus.publish(ShutdownRequested(reason="test"))
            await asyncio.wait_for(tasks[1], 10)
            await cancel_and_wait(tasks[0], 5)


async def test_a_word_enrolled_from_home_assistant_is_listed_and_heard(broker: Mosquitto, tmp_path: Path) -> None:
    """Type the name, press enrol, say the takes: progress, a refused take, the list, then the word wakes the box."""
    async with running(broker, tmp_path / "words") as (box, ha):
        assert ha.last("enrolled_words") == "none"
        await ha.press("enrol")  # nothing typed yet
        await eventually(lambda: ha.progress() and "no name given" in ha.progress()[-1])
        await ha.type_name("alexa")
        await ha.press("enrol")
        await eventually(lambda: "is a bundled wake word" in ha.progress()[-1])

        await ha.type_name(WORD)
        takes = [chunks_of(DATA / f"enroll_{n}.wav") for n in (1, 2, 3, 4)]
        said = [takes[0], clipped(DATA / "enroll_2.wav"), *takes[1:]]
        user = asyncio.create_task(box.user_says_after_each_beep(said))
        await ha.press("enrol")
        await eventually(lambda: box.speaker.beeps >= 1, timeout=30)
        await ha.press("enrol")  # pressed again while it records
        await eventually(lambda: "done" in json.loads(ha.last("enrolment", "attributes") or "{}").get("stage", ""), 90)
        await cancel_and_wait(user)
        progress = ha.progress()
        assert "say the word after the beep: take 1 of 4" in progress
        assert f"failed: {WORD} is being enrolled; wait for it to finish, or press Stop" in progress
        assert any(m.startswith("take 2: clipped") and m.endswith("say it again: take 2 of 4") for m in progress)
        assert "say it again: take 3 of 4" in progress
        assert progress[-1].startswith(f"enrolled {WORD}: 4 takes added, 4 in all, threshold 0.")
        assert progress[-1].endswith("; listening for it now")
        assert ha.last("enrolled_words") == WORD
        assert json.loads(ha.last("enrolled_words", "attributes") or "") == {"words": [WORD], "listening": [WORD]}
        await eventually(lambda: json.loads(ha.seen[SELECT][-1])["options"] == ["hey_jarvis", WORD])

        box.mic.say(chunks_of(DATA / "test_quiet_3.wav"))
        await eventually(lambda: ha.last("wake"), timeout=30)
        assert json.loads(ha.last("wake") or "")["wake_word"] == WORD

        await ha.client.publish(f"{BASE}/wake_word/set", WORD, qos=1)  # the select now offers it
        await eventually(lambda: ha.last("wake_word") == WORD)
        await ha.press("unenrol")
        await eventually(lambda: ha.last("enrolled_words") == "none")
        assert ha.progress()[-1] == f"removed {WORD}; no longer listened for"
        await eventually(lambda: ha.last("wake_word") == "hey_jarvis")  # every word wakes the box again
        await eventually(lambda: json.loads(ha.seen[SELECT][-1])["options"] == ["hey_jarvis"])
    assert not (tmp_path / "words" / WORD).exists()


def test_a_full_disk_is_refused_with_the_reason_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's write fails (ENOSPC): a clear EnrollmentError, no word, no folder, no stray file."""
    from assistant.errors import EnrollmentError

    enroller = StoreEnroller(WakeSettings(enrolled_dir=tmp_path / "words"))
    takes = [(f"take {n}", read_wav(DATA / f"enroll_{n}.wav")) for n in (1, 2, 3)]

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(EnrollmentError, match=r"cannot store '小乡小乡' in .* \(No space left on device\)"):
        enroller.enrol(WORD, takes)
    assert enroller.words() == ()
    assert not (tmp_path / "words" / WORD).exists()


def test_a_damaged_enrolled_word_the_config_does_not_name_is_skipped(tmp_path: Path) -> None:
    """listen_enrolled must not let a broken word stop the daemon: it is listed, not listened for."""
    enroller = StoreEnroller(WakeSettings(enrolled_dir=tmp_path))
    enroller.enrol(WORD, [(f"take {n}", read_wav(DATA / f"enroll_{n}.wav")) for n in (1, 2, 3)])
    (tmp_path / WORD / "take_1.npy").unlink()
    detector, listening = enroller.detector()
    assert enroller.words() == (WORD,) and listening == ()
    assert detector.process(read_wav(DATA / "test_quiet_3.wav")) is None
