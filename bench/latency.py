"""Answer latency of the daemon itself: from the true end of the user's speech to the first sound.

Run: python -m bench.latency [--runs 5]

The real pipeline runs on the real clock: a WAV file paced like a microphone, openWakeWord, Silero VAD and
the endpointer, the vLLM client against the local fake server (which answers at once, so model compute is
left out), espeak-ng for the voice, and a sink that notes when the first sound arrives. It prints, per run
and as medians: the end-of-speech decision delay, the model's first text, and the first sound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from assistant.app import Adapters, App
from assistant.audio import AudioChunk, join, read_wav, silence, write_wav
from assistant.bus import Bus, Envelope
from assistant.config import Settings, VllmModelSettings
from assistant.events import PlaybackStarted, ReplyText, ShutdownRequested, SpeechEnded, TurnEnded
from assistant.listen import build_prosody, build_vad, build_wake_detector
from assistant.model.stepaudio2.vllm import build_vllm_model
from assistant.ports import Clock
from assistant.tools import ToolRegistry
from assistant.voice import build_voice
from hardware import FileSource
from support.vllm_fake import FakeVllmServer, Written

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "listen"
QUESTION_TRUE_END_SECONDS = 2.18
"""Where speech really ends in vad_00_en-us_silence.wav (see tests/data/listen/README.md)."""


class FirstSoundSink:
    """A speaker that notes when the first sound of each stream arrives, and plays in real time."""

    def __init__(self) -> None:
        self.first_sound: list[float] = []
        self._generation = 0

    async def play(self, audio: AsyncIterator[AudioChunk]) -> bool:
        generation, first = self._generation, True
        async for chunk in audio:
            if first:
                self.first_sound.append(time.monotonic())
                first = False
            await asyncio.sleep(chunk.seconds)
            if generation != self._generation:
                return False
        return True

    def stop(self) -> None:
        self._generation += 1

    def set_volume(self, level: float) -> None:
        pass


class NotedSource(FileSource):
    """The WAV file source, noting when its first chunk was delivered."""

    started: float | None = None

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        async for chunk in super().chunks():
            if self.started is None:
                self.started = time.monotonic() - chunk.seconds
            yield chunk


async def one_run(wav: Path, wake_seconds: float, *, speculate: bool) -> dict[str, float]:
    async with FakeVllmServer(default=Written("Tomorrow will be sunny and warm.")) as server:
        settings = Settings.model_validate(
            {
                "conversation": {"follow_up_seconds": 0, "earcons": False},
                "voice": {"mode": "tts"},
                "endpointing": {} if speculate else {"speculate_seconds": 0.0},
            }
        )
        sink = FirstSoundSink()
        source = NotedSource(wav, chunk_ms=settings.audio.chunk_ms, realtime=True, trailing_silence_seconds=3.0)
        marks: dict[str, float] = {}

        async def build(s: Settings, bus: Bus, clock: Clock, stack: contextlib.AsyncExitStack) -> Adapters:
            model = build_vllm_model(VllmModelSettings(base_url=server.base_url), s.persona, bus.publish)
            stack.push_async_callback(model.aclose)
            voice = build_voice(s.voice, s.persona, None)

            def note(envelope: Envelope) -> None:
                name = {SpeechEnded: "speech_ended", ReplyText: "first_text", PlaybackStarted: "playback"}.get(
                    type(envelope.event)
                )
                if name is not None and name not in marks:
                    marks[name] = envelope.at
                if isinstance(envelope.event, TurnEnded):
                    bus.publish(ShutdownRequested(reason="measured"))

            bus.tap(note)
            return Adapters(
                source=source,
                sink=sink,
                wake=build_wake_detector(s.wake),
                vad=build_vad(),
                prosody=build_prosody(),
                model=model,
                voice=voice,
                tools=ToolRegistry(clock),
            )

        await App(settings, build).run()
    assert source.started is not None and sink.first_sound, "the turn did not complete"
    true_end = source.started + wake_seconds + QUESTION_TRUE_END_SECONDS
    return {
        "end of speech decided": marks["speech_ended"] - true_end,
        "first text from the model": marks["first_text"] - true_end,
        "first sound": sink.first_sound[0] - true_end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    wake = join([silence(0.5), read_wav(DATA / "hey_jarvis__en-us__s165__clean.wav")])
    question = read_wav(DATA / "vad_00_en-us_silence.wav")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "question.wav"
        write_wav(wav, join([wake, question]))
        runs = {
            speculate: [asyncio.run(one_run(wav, wake.seconds, speculate=speculate)) for _ in range(args.runs)]
            for speculate in (True, False)
        }
    e = Settings().endpointing
    print(
        f"seconds after the true end of speech, {args.runs} runs each (normal profile: {e.end_silence_seconds} s "
        f"after a finished phrase, {e.hold_silence_seconds} s after an unfinished one)"
    )
    for speculate, results in runs.items():
        how = f"speculatively after {e.speculate_seconds} s of silence" if speculate else "at the decided end"
        print(f"model started {how}:")
        for key in results[0]:
            values = [r[key] for r in results]
            print(f"  {key:<28} median {statistics.median(values):.3f}  min {min(values):.3f}  max {max(values):.3f}")


if __name__ == "__main__":
    main()
