"""A wake word enrolled while the daemon runs: the supervisor lends the microphone to a LiveEnrolment (fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from assistant.audio import AudioChunk
from assistant.bus import Bus
from assistant.config import ConversationSettings, EndpointSettings
from assistant.errors import EnrollmentError
from assistant.events import (
    AnnounceRequested,
    EnrolledWordsChanged,
    EnrolmentProgress,
    EnrolRequested,
    Event,
    MuteRequested,
    PlaybackStarted,
    ShutdownRequested,
    StopRequested,
    UnenrolRequested,
    WakeDetected,
)
from assistant.ports import WakeDetector
from assistant.supervisor import Supervisor, SupervisorOptions
from assistant.tasks import MonotonicClock, cancel_and_wait
from assistant.turn import TurnDeps
from support.fakes import (
    BeepCountingSpeaker,
    FakeSpeechDetector,
    FakeTools,
    FakeVoice,
    FakeWakeDetector,
    SayingMicrophone,
    ScriptedModel,
    speech,
    wake_word,
)
from support.servers import eventually

WORD = "小乡小乡"
_WORD_TAG = b"WORD"


def clipped(seconds: float) -> list[AudioChunk]:
    """Speech the fake enroller refuses as clipped."""
    return [AudioChunk(b"CLIP" + b"\x01" * 2556) for _ in range(round(seconds / 0.08))]


def said_word() -> list[AudioChunk]:
    """One chunk the detector built after enrolling fires on."""
    return [AudioChunk(_WORD_TAG + bytes(2556))]


class FakeEnroller:
    """The enroller port with the store's refusals, in memory."""

    def __init__(self) -> None:
        self.stored: dict[str, int] = {}
        self.full_disk = False

    def check_name(self, name: str) -> None:
        if not name:
            raise EnrollmentError("no name given: type the wake word's name first")
        if name == "alexa":
            raise EnrollmentError("'alexa' is a bundled wake word; choose another name")

    def check_take(self, label: str, audio: AudioChunk) -> None:
        if b"CLIP" in audio.pcm:
            raise EnrollmentError(f"{label}: clipped (2.0% of samples at full scale): speak further from the mic")

    def enrol(self, name: str, takes: Sequence[tuple[str, AudioChunk]]) -> str:
        if self.full_disk:
            raise EnrollmentError(f"cannot store {name!r} in /words (No space left on device)")
        self.stored[name] = self.stored.get(name, 0) + len(takes)
        return f"enrolled {name}: {len(takes)} takes added, {self.stored[name]} in all"

    def remove(self, name: str) -> None:
        if self.stored.pop(name, None) is None:
            raise EnrollmentError(f"no enrolled wake word {name!r} in /words")

    def words(self) -> tuple[str, ...]:
        return tuple(sorted(self.stored))

    def detector(self) -> tuple[WakeDetector, tuple[str, ...]]:
        return FakeWakeDetector(WORD, _WORD_TAG), self.words()


class Box:
    """The real supervisor on fakes; ``events`` is everything on the bus."""

    def __init__(self) -> None:
        clock = MonotonicClock()
        self.bus = Bus(clock)
        self.events: list[Event] = []
        self.bus.tap(lambda envelope: self.events.append(envelope.event))
        self.mic = SayingMicrophone(pace_seconds=0.002)
        self.speaker = BeepCountingSpeaker(clock)
        self.enroller = FakeEnroller()
        deps = TurnDeps(
            publish=self.bus.publish,
            clock=clock,
            vad=FakeSpeechDetector(),
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
            wake=FakeWakeDetector(),
            deps=deps,
            enroller=self.enroller,
            options=SupervisorOptions(follow_up_seconds=0, enrolment_takes=3),
        )

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def progress(self) -> list[str]:
        return [e.message for e in self.events if isinstance(e, EnrolmentProgress)]

    async def user_says_after_each_beep(self, takes: Sequence[Sequence[AudioChunk]]) -> None:
        for number, take in enumerate(takes, 1):
            await eventually(lambda n=number: self.speaker.beeps >= n)  # type: ignore[misc]
            self.mic.say(take)

    async def enrolled(self, name: str, takes: Sequence[Sequence[AudioChunk]], stage: str = "done") -> None:
        user = asyncio.create_task(self.user_says_after_each_beep(takes))
        self.bus.publish(EnrolRequested(name=name))
        try:
            await eventually(lambda: any(e.stage == stage for e in self.of(EnrolmentProgress)))  # type: ignore[attr-defined]
        finally:
            await cancel_and_wait(user)


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    running = Box()
    task = asyncio.create_task(running.supervisor.run())
    await eventually(lambda: running.of(EnrolledWordsChanged))
    yield running
    running.bus.publish(ShutdownRequested(reason="test"))
    await asyncio.wait_for(task, 5)


async def test_each_take_follows_a_beep_and_the_new_word_is_heard_at_once(box: Box) -> None:
    """Instruction, a beep per take, progress "say it again, 2 of 3", then the word wakes the box."""
    await box.enrolled(WORD, [speech(0.8)] * 3)
    assert box.progress() == [
        "say the word after the beep: take 1 of 3",
        "say it again: take 2 of 3",
        "say it again: take 3 of 3",
        "checking the 3 takes",
        f"enrolled {WORD}: 3 takes added, 3 in all; listening for it now",
    ]
    assert box.enroller.stored == {WORD: 3}
    assert box.of(EnrolledWordsChanged)[-1] == EnrolledWordsChanged(words=(WORD,), listening=(WORD,))
    box.mic.say(said_word())
    await eventually(lambda: box.of(WakeDetected))
    assert box.of(WakeDetected)[0].wake_word == WORD  # type: ignore[attr-defined]


async def test_a_refused_take_is_said_again(box: Box) -> None:
    """A clipped take is refused with its reason, and the same take is recorded again after another beep."""
    await box.enrolled(WORD, [speech(0.8), clipped(0.8), speech(0.8), speech(0.8)])
    assert (
        "take 2: clipped (2.0% of samples at full scale): speak further from the mic; say it again: take 2 of 3"
        in box.progress()
    )
    assert box.speaker.beeps == 4
    assert box.enroller.stored == {WORD: 3}


async def test_wake_words_are_not_heard_while_takes_are_recorded(box: Box) -> None:
    """The enrolment has the microphone: a wake word said meanwhile is a take, not a wake-up."""
    await box.enrolled(WORD, [wake_word() + speech(0.5)] * 3)
    assert box.of(WakeDetected) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [("", "no name given: type the wake word's name first"), ("alexa", "'alexa' is a bundled wake word")],
)
async def test_a_bad_name_is_refused_before_recording(box: Box, name: str, reason: str) -> None:
    """Nothing is recorded for an empty or a bundled name; the message says why."""
    await box.enrolled(name, [], stage="failed")
    (message,) = box.progress()
    assert message.startswith(f"failed: {reason}") and message.endswith("nothing was changed")
    assert box.speaker.beeps == 0


async def test_a_full_disk_fails_cleanly_and_the_box_listens_on(box: Box) -> None:
    """The store's refusal ends the enrolment with its reason; the wake word works again afterwards."""
    box.enroller.full_disk = True
    await box.enrolled(WORD, [speech(0.8)] * 3, stage="failed")
    assert box.progress()[-1] == (
        f"failed: cannot store {WORD!r} in /words (No space left on device); nothing was changed"
    )
    assert box.enroller.stored == {}
    box.mic.say(wake_word())
    await eventually(lambda: box.of(WakeDetected))


async def test_a_second_enrolment_a_muted_box_and_stop(box: Box) -> None:
    """One enrolment at a time; Stop cancels it; a muted box refuses."""
    box.bus.publish(EnrolRequested(name=WORD))
    await eventually(lambda: box.speaker.beeps >= 1)
    box.bus.publish(EnrolRequested(name="other"))
    await eventually(lambda: any("is being enrolled" in m for m in box.progress()))
    box.bus.publish(StopRequested(source="mqtt"))
    await eventually(lambda: box.progress()[-1] == "cancelled; nothing was changed")
    box.mic.say(wake_word())
    await eventually(lambda: box.of(WakeDetected))
    box.bus.publish(MuteRequested(muted=True, source="mqtt"))
    box.bus.publish(EnrolRequested(name=WORD))
    await eventually(lambda: box.progress()[-1] == "failed: the box is muted; unmute it first")
    assert box.enroller.stored == {}


async def test_an_announcement_waits_for_the_enrolment(box: Box) -> None:
    """A reminder due while takes are recorded is said once the enrolment is over, not into a take."""
    user = asyncio.create_task(box.user_says_after_each_beep([speech(0.8)] * 3))
    box.bus.publish(EnrolRequested(name=WORD))
    await eventually(lambda: box.speaker.beeps >= 1)
    box.bus.publish(AnnounceRequested(text="the tea is ready", source="scheduler"))
    await eventually(lambda: box.of(PlaybackStarted))
    await cancel_and_wait(user)
    kinds = [type(e) for e in box.events]
    done = next(i for i, e in enumerate(box.events) if isinstance(e, EnrolmentProgress) and e.stage == "done")
    assert kinds.index(PlaybackStarted) > done


async def test_removing_a_word_stops_listening_for_it(box: Box) -> None:
    """Remove deletes the word and swaps the detector; an unknown word is refused with the reason."""
    await box.enrolled(WORD, [speech(0.8)] * 3)
    box.bus.publish(UnenrolRequested(name=WORD))
    await eventually(lambda: any(e.stage == "removed" for e in box.of(EnrolmentProgress)))  # type: ignore[attr-defined]
    assert box.progress()[-1] == f"removed {WORD}; no longer listened for"
    assert box.of(EnrolledWordsChanged)[-1] == EnrolledWordsChanged(words=(), listening=())
    box.bus.publish(UnenrolRequested(name=WORD))
    await eventually(lambda: box.progress()[-1].startswith("failed: no enrolled wake word"))


def test_the_daemon_listens_for_enrolled_words_the_config_does_not_name() -> None:
    """listen_enrolled adds the other enrolled words, never a configured stop word; off, or microWakeWord: none."""
    from assistant.config import WakeSettings, WakeWordModel
    from assistant.listen import listened_words

    settings = WakeSettings(words=(WakeWordModel(model="hey_jarvis"),), stop_words=(WakeWordModel(enrolled="停"),))
    names = [word.name for word in listened_words(settings, ["停", WORD])]
    assert names == ["hey_jarvis", WORD]
    assert listened_words(settings.model_copy(update={"listen_enrolled": False}), [WORD]) == settings.words
    assert listened_words(settings.model_copy(update={"engine": "microwakeword"}), [WORD]) == settings.words


def test_the_store_enroller_refuses_what_the_daemon_could_not_use(tmp_path: Path) -> None:
    """No name, microWakeWord, and removing a word the config names are refused before anything changes."""
    from assistant.config import WakeSettings, WakeWordModel
    from assistant.listen.enroller import StoreEnroller

    enroller = StoreEnroller(WakeSettings(enrolled_dir=tmp_path, words=(WakeWordModel(enrolled=WORD),)))
    with pytest.raises(EnrollmentError, match="no name given"):
        enroller.check_name("  ")
    with pytest.raises(EnrollmentError, match="is named in wake.words"):
        enroller.remove(WORD)
    with pytest.raises(EnrollmentError, match="bundled wake word"):
        enroller.check_name("hey_jarvis")
    micro = StoreEnroller(
        WakeSettings(enrolled_dir=tmp_path, engine="microwakeword", words=(WakeWordModel(model="alexa"),))
    )
    with pytest.raises(EnrollmentError, match="need wake.engine: openwakeword"):
        micro.check_name(WORD)
