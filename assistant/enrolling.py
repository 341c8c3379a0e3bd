"""Enrolling a wake word from the daemon's own microphone while it runs (asked for from Home Assistant).

The supervisor owns the microphone: while a :class:`LiveEnrolment` runs, it hands every chunk to
:meth:`LiveEnrolment.offer` instead of the wake detector. The session says the instruction in the
household's dialect, then for each take beeps, cuts the take out of the stream where the VAD hears the word
end (:class:`~assistant.listen.takes.TakeCutter`, as ``xiangyin wake enroll`` does) and has the enroller
check it at once, so a refused take is said again rather than failing the whole enrolment. The takes are
stored together at the end; every step goes on the bus as :class:`~assistant.events.EnrolmentProgress`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from .audio import AudioChunk
from .earcons import Earcon, render
from .errors import EnrollmentError, PlaybackError
from .events import EnrolmentProgress, EnrolmentStage, Event
from .listen.takes import TakeCutter
from .ports import AudioSink, ModelText, SpeechDetector, Voice, WakeWordEnroller
from .tasks import in_daemon_thread

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

INSTRUCTIONS = {
    "cantonese": "聽到嘟一聲之後，講一次喚醒詞。",
    "english": "After the beep, say the wake word once.",
}
"""Spoken before the first take, in the household's dialect (Mandarin for the others)."""
MANDARIN_INSTRUCTION = "听到提示音以后，说一遍唤醒词。"

_QUEUED_SECONDS = 10.0
"""Microphone audio a take may hold in its queue; the VAD keeps up with far more than real time."""
_STORE_WAIT_SECONDS = 2.0
"""How long a cancelled enrolment still waits for a store that already began, so its message stays true."""


def instruction(dialect: str) -> str:
    """The spoken instruction for ``dialect``."""
    return INSTRUCTIONS.get(dialect, MANDARIN_INSTRUCTION)


@dataclass(frozen=True, slots=True)
class EnrolmentOptions:
    """How a live enrolment records."""

    takes: int = 4
    """Takes recorded (the store needs 3 in all)."""
    max_attempts: int = 8
    """Takes recorded at most, refused ones included, before the enrolment gives up."""
    settle_seconds: float = 0.2
    """Microphone audio dropped after each beep, so the beep's tail is not taken for the word."""
    dialect: str = "mandarin"
    """Language of the spoken instruction."""


class LiveEnrolment:
    """One enrolment of ``name`` from the microphone chunks the supervisor offers."""

    def __init__(
        self,
        name: str,
        *,
        enroller: WakeWordEnroller,
        sink: AudioSink,
        voice: Voice | None,
        vad: SpeechDetector,
        publish: Callable[[Event], None],
        options: EnrolmentOptions | None = None,
    ) -> None:
        self.name = name
        self._enroller = enroller
        self._sink = sink
        self._voice = voice
        self._vad = vad
        self._publish = publish
        self._options = options or EnrolmentOptions()
        self._queue: asyncio.Queue[AudioChunk] | None = None
        """Where offered chunks go while a take records; None drops them (prompts, checks)."""
        self._settle = 0.0

    def offer(self, chunk: AudioChunk) -> None:
        """Take one microphone chunk; kept only while a take records."""
        queue = self._queue
        if queue is None:
            return
        if self._settle > 0.0:
            self._settle -= chunk.seconds
            return
        if queue.qsize() * chunk.seconds < _QUEUED_SECONDS:
            queue.put_nowait(chunk)

    async def run(self) -> str | None:
        """Record, check and store the takes; return the store's summary, or None when nothing was stored.

        Refusals end it with a ``failed`` progress message and change nothing; a cancel (Stop, a new turn,
        mute, shutdown) ends it with ``cancelled``.
        """
        try:
            await in_daemon_thread(self._enroller.check_name, self.name)
            await self._say(instruction(self._options.dialect))
            takes = await self._record_takes()
        except EnrollmentError as err:
            self._progress("failed", f"failed: {err}; nothing was changed")
            return None
        except asyncio.CancelledError:
            self._progress("cancelled", "cancelled; nothing was changed")
            raise
        self._progress("checking", f"checking the {len(takes)} takes")
        storing = asyncio.ensure_future(in_daemon_thread(self._enroller.enrol, self.name, takes))
        try:
            summary = await asyncio.shield(storing)
        except EnrollmentError as err:
            self._progress("failed", f"failed: {err}; nothing was changed")
            return None
        except asyncio.CancelledError:
            # The store cannot stop halfway (it writes the word last, atomically): wait a little for its
            # outcome, so the message says what really happened.
            await asyncio.wait({storing}, timeout=_STORE_WAIT_SECONDS)
            stored = storing.done() and not storing.cancelled() and storing.exception() is None
            self._progress("cancelled", "cancelled after the takes were stored" if stored else "cancelled")
            raise
        return summary

    async def _record_takes(self) -> list[tuple[str, AudioChunk]]:
        total = self._options.takes
        takes: list[tuple[str, AudioChunk]] = []
        attempts, unheard = 0, 0
        self._progress("recording", f"say the word after the beep: take 1 of {total}", take=1)
        while len(takes) < total:
            number = len(takes) + 1
            attempts += 1
            if attempts > self._options.max_attempts:
                raise EnrollmentError(f"{attempts - 1} takes were recorded and {attempts - 1 - len(takes)} refused")
            await self._beep()
            label = f"take {number}"
            try:
                take = await self._cut_take()
            except TimeoutError:
                unheard += 1
                if unheard >= 2:
                    raise EnrollmentError("nothing was heard twice in a row; is the microphone on?") from None
                self._progress("rejected", f"{label}: nothing heard; say it again: take {number} of {total}", number)
                continue
            unheard = 0
            try:
                await in_daemon_thread(self._enroller.check_take, label, take)
            except EnrollmentError as err:
                self._progress("rejected", f"{err}; say it again: take {number} of {total}", number)
                continue
            takes.append((label, take))
            if len(takes) < total:
                self._progress("recording", f"say it again: take {number + 1} of {total}", number + 1)
        return takes

    async def _cut_take(self) -> AudioChunk:
        """The next take from the microphone; TimeoutError when nobody spoke (or no audio came)."""
        cutter = TakeCutter()
        self._vad.reset()
        self._settle = self._options.settle_seconds
        self._queue = asyncio.Queue()
        try:
            # A microphone that delivers nothing must not hold the enrolment (and the wake word) forever.
            async with asyncio.timeout(cutter.start_timeout_seconds + cutter.max_seconds + 3.0):
                while True:
                    chunk = await self._queue.get()
                    take = cutter.push(chunk, self._vad.probability(chunk))
                    if take is not None:
                        return take
        finally:
            self._queue = None

    async def _beep(self) -> None:
        await self._play(_once(render(Earcon.WAKE)))

    async def _say(self, text: str) -> None:
        if self._voice is None:
            return
        await self._play(self._voice.speak(_once(ModelText(text))))

    async def _play(self, audio: AsyncIterator[AudioChunk]) -> None:
        """Play a prompt; without a working speaker or voice the progress messages still guide."""
        try:
            await self._sink.play(audio)
        except PlaybackError as err:
            _LOGGER.warning("enrolment prompt not played: %s", err)
        except Exception:
            # A voice (TTS) that fails must not cost the enrolment: the beeps and the sensor still guide.
            _LOGGER.exception("enrolment instruction not spoken")

    def _progress(self, stage: EnrolmentStage, message: str, take: int = 0) -> None:
        _LOGGER.info("enrolling %s: %s", self.name, message)
        self._publish(
            EnrolmentProgress(name=self.name, stage=stage, message=message, take=take, takes=self._options.takes)
        )


async def _once(item: _T) -> AsyncIterator[_T]:
    yield item
