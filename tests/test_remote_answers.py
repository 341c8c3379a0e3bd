"""Questions from Home Assistant are answered to Home Assistant only, as soon as the text is ready.

The real supervisor and turn, the real Wyoming server and the real MQTT bridge on a real mosquitto; fakes
stand in for the model, the voice and the speaker (which can hold its playback, so a test can tell that
the answer reached Home Assistant before the box finished speaking).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.handle import Handled

from assistant.audio import AudioChunk
from assistant.bus import Bus
from assistant.config import MqttSettings, WyomingSettings
from assistant.events import Event, PlaybackFinished, PlaybackStarted, TurnEnded
from assistant.integrations.mqtt import MqttBridge
from assistant.integrations.wyoming import WyomingServer
from assistant.ports import ModelDone, ModelText
from assistant.supervisor import Supervisor, SupervisorOptions
from assistant.tasks import MonotonicClock, cancel_and_wait
from assistant.turn import TurnDeps
from support.fakes import (
    FakeMicrophone,
    FakeSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    ScriptedModel,
    after,
)
from support.rig import settings
from support.servers import Mosquitto, eventually, mosquitto

ANSWER = "明天有雨，记得带伞。"


class HeldSpeaker(FakeSpeaker):
    """A speaker that holds every stream at its first chunk until :attr:`release` is set."""

    def __init__(self, clock: MonotonicClock) -> None:
        super().__init__(clock)
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        async def held() -> AsyncIterator[AudioChunk]:
            async for chunk in audio:
                self.holding.set()
                await self.release.wait()
                yield chunk

        return await super().play(held())


class Box:
    """The supervisor with fakes for model, voice and speaker, on the real clock; ``events`` is the bus."""

    def __init__(self, *, speak_remote_answers: bool) -> None:
        clock = MonotonicClock()
        self.bus = Bus(clock)
        self.events: list[Event] = []
        self.bus.tap(lambda envelope: self.events.append(envelope.event))
        self.speaker = HeldSpeaker(clock)
        self.model = ScriptedModel(clock, [[after(0.05, ModelText(ANSWER)), after(0.0, ModelDone())]])
        s = settings(conversation={"speak_remote_answers": speak_remote_answers})
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=clock,
            vad=FakeSpeechDetector(),
            model=self.model,
            voice=FakeVoice(seconds_per_char=0.05),
            sink=self.speaker,
            tools=FakeTools(),
            endpoint=s.endpointing,
            conversation=s.conversation,
        )
        self.supervisor = Supervisor(
            bus=self.bus,
            source=FakeMicrophone(clock, []),
            wake=FakeWakeDetector(),
            deps=deps,
            options=SupervisorOptions(follow_up_seconds=0, speak_remote_answers=speak_remote_answers),
        )

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def running(box: Box, *services: object) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(box.supervisor.run())]
    tasks += [asyncio.create_task(service()) for service in services]  # type: ignore[operator]
    try:
        yield
    finally:
        box.speaker.release.set()
        for task in reversed(tasks):
            await cancel_and_wait(task, 5)


@contextlib.asynccontextmanager
async def wyoming(box: Box) -> AsyncIterator[AsyncTcpClient]:
    server = WyomingServer(
        WyomingSettings(enabled=True, host="127.0.0.1", port=1).model_copy(update={"port": 0}), box.bus, "1.0"
    )
    async with running(box, server.run):
        port = await server.started()
        async with AsyncTcpClient("127.0.0.1", port) as client:
            yield client


async def ask_over_wyoming(client: AsyncTcpClient, question: str) -> str:
    await client.write_event(Transcript(text=question).event())
    async with asyncio.timeout(10):
        reply = await client.read_event()
    assert reply is not None and Handled.is_type(reply.type), reply
    return str(Handled.from_event(reply).text)


async def test_a_wyoming_question_is_answered_to_home_assistant_without_a_sound_at_the_box() -> None:
    """Default: HA gets the answer; the box neither plays it nor asks the model for speech."""
    box = Box(speak_remote_answers=False)
    async with wyoming(box) as client:
        assert await ask_over_wyoming(client, "明天天气怎么样") == ANSWER
        await eventually(lambda: box.of(TurnEnded))
    assert box.of(TurnEnded) == [TurnEnded(turn_id=box.of(TurnEnded)[0].turn_id, outcome="completed")]
    assert box.of(PlaybackStarted) == [] and box.speaker.played == []
    assert not box.model.requests[0].speak


async def test_with_speak_remote_answers_the_box_plays_it_and_wyoming_does_not_wait_for_the_playback() -> None:
    """The setting on: the box says it too, while HA already has the answer."""
    box = Box(speak_remote_answers=True)
    async with wyoming(box) as client:
        assert await ask_over_wyoming(client, "明天天气怎么样") == ANSWER
        assert box.of(PlaybackFinished) == [], "the answer reached HA while the box's playback was held"
        await asyncio.wait_for(box.speaker.holding.wait(), 10)
        box.speaker.release.set()
        await eventually(lambda: box.of(TurnEnded))
    assert [e.interrupted for e in box.of(PlaybackFinished)] == [False]  # type: ignore[attr-defined]
    assert box.speaker.played_seconds > 0


# --- over the real broker -----------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path) as running_broker:
        yield running_broker


BASE = "xiangyin/test_box"


@contextlib.asynccontextmanager
async def over_mqtt(box: Box, broker: Mosquitto) -> AsyncIterator[aiomqtt.Client]:
    """The box with its MQTT bridge, and a client in HA's place subscribed to the answer sensor."""
    mqtt = MqttSettings(enabled=True, host=broker.host, port=broker.port, device_id="test_box")
    bridge = MqttBridge(mqtt, box.bus, "1.0")
    async with (
        running(box, bridge.run),
        aiomqtt.Client(broker.host, broker.port, identifier="test-ha") as ha,
    ):
        await ha.subscribe(f"{BASE}/answer/state", qos=1)
        await eventually(lambda: bridge.connected)
        yield ha


async def ask_over_mqtt(ha: aiomqtt.Client) -> str:
    """Publish to the ask topic as HA's text entity does; return the answer sensor's next state."""
    await ha.publish(f"{BASE}/ask/set", "明天天气怎么样", qos=1)
    async with asyncio.timeout(10):
        async for message in ha.messages:
            assert isinstance(message.payload, bytes)
            return message.payload.decode()
    raise AssertionError("the answer never came")  # pragma: no cover


@pytest.mark.broker
async def test_an_mqtt_question_lands_in_the_answer_sensor_without_a_sound_at_the_box(broker: Mosquitto) -> None:
    """Default: the answer sensor gets the answer; the box plays nothing."""
    box = Box(speak_remote_answers=False)
    async with over_mqtt(box, broker) as ha:
        assert await ask_over_mqtt(ha) == ANSWER
        await eventually(lambda: box.of(TurnEnded))
    assert box.of(PlaybackStarted) == [] and box.speaker.played == []


@pytest.mark.broker
async def test_with_speak_remote_answers_the_answer_sensor_is_set_before_the_box_finishes(broker: Mosquitto) -> None:
    """The setting on: the box plays the answer, and the sensor has it while the playback is still held."""
    box = Box(speak_remote_answers=True)
    async with over_mqtt(box, broker) as ha:
        assert await ask_over_mqtt(ha) == ANSWER
        assert box.of(PlaybackFinished) == [], "the sensor was set while the box's playback was held"
        await asyncio.wait_for(box.speaker.holding.wait(), 10)
        box.speaker.release.set()
        await eventually(lambda: box.of(TurnEnded))
    assert [e.interrupted for e in box.of(PlaybackFinished)] == [False]  # type: ignore[attr-defined]
