"""The Voice: the pieces of an answer in, audio chunks out, as early as possible.

Speech tokens go through token2wav in a worker thread, chunk by chunk while the model still generates;
text goes through the TTS sentence by sentence. Which one speaks depends on the mode:

- ``model``: the model's speech only; text is spoken by the TTS only when a whole reply carried no speech
  (announcements, text-only backends), so nothing is ever silent.
- ``tts``: the text through the TTS; speech tokens and rendered audio are ignored.
- ``auto``: speech when the stream has it; a finished sentence of text goes to the TTS as soon as the next
  piece shows that no speech tokens follow it (the model sends the tokens right after the text they say).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from ..audio import AudioChunk
from ..ports import SPEECH_PAD, ModelAudio, ModelSpeech, ModelText, ReplyPiece
from .errors import SpeechError, VoiceUnavailable
from .tts import SentenceSplitter, TextToSpeech

if TYPE_CHECKING:
    from .token2wav.engine import SpeechStream, Token2Wav, VoiceProfile

_LOGGER = logging.getLogger(__name__)

VoiceMode = Literal["model", "tts", "auto"]
SpeechPad = Literal["drop", "stepfun"]
T = TypeVar("T")

TOKEN2WAV_RATE_HZ = 24_000


class TokenSpeaker:
    """token2wav behind an asyncio face: one worker thread, cancellable between Euler steps."""

    def __init__(self, engine: Token2Wav, prompt_wav: Path, *, speech_pad: SpeechPad = "drop") -> None:
        self._engine = engine
        self._prompt_wav = prompt_wav
        self._speech_pad: SpeechPad = speech_pad
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token2wav")
        self._profile: VoiceProfile | None = None
        self._unusable: SpeechError | None = None

    @property
    def engine(self) -> Token2Wav:
        """The flow and vocoder behind this speaker."""
        return self._engine

    def prepare(self) -> None:
        """Process the voice prompt and warm the models up (blocking; seconds on a CPU)."""
        profile = self._engine.voice(self._prompt_wav)
        stream = self._engine.open(profile)
        stream.push([0] * (self._engine.schedule.first_chunk_tokens + self._engine.flow.lookahead))
        stream.finish()
        self._profile = profile

    async def prepare_async(self) -> None:
        """:meth:`prepare` in the synthesis thread; raises :class:`SpeechError` for an unusable voice."""
        await self._ensure_prepared(threading.Event())

    async def _ensure_prepared(self, stop: threading.Event) -> None:
        if self._unusable is not None:
            raise self._unusable
        if self._profile is None:
            try:
                await self._run(stop, self.prepare)
            except SpeechError as err:
                # A bad voice prompt stays bad: fail fast from now on instead of retrying every answer.
                self._unusable = err
                raise

    async def _run(self, stop: threading.Event, call: Callable[[], T]) -> T:
        from .token2wav.flow import SynthesisCancelled

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except asyncio.CancelledError:
            # Make the worker give up at its next Euler step, so the next answer need not wait for it.
            stop.set()
            raise
        except SynthesisCancelled:
            raise asyncio.CancelledError from None
        except Exception as err:
            _LOGGER.exception("token2wav failed")
            raise SpeechError(f"token2wav failed: {err}") from err

    async def open(self, stop: threading.Event) -> SpeechStream:
        """Start an answer; the stream checks ``stop`` between steps."""
        await self._ensure_prepared(stop)
        assert self._profile is not None
        stream = self._engine.open(self._profile)
        stream.should_stop = stop.is_set
        return stream

    async def push(self, stream: SpeechStream, stop: threading.Event, tokens: tuple[int, ...]) -> list[bytes]:
        """Feed tokens; returns PCM of the chunks they completed.

        The speech pad 6561 is dropped, or with ``speech_pad="stepfun"`` passed to the flow as StepFun's
        code passes it, where it fails the answer's voice as it fails theirs (the flow knows 6561 codes).
        """
        keep_pad = self._speech_pad == "stepfun"
        # A plugin backend's codes outside the codebook are dropped too: they carry no sound.
        speakable = tuple(t for t in tokens if 0 <= t < SPEECH_PAD or (keep_pad and t == SPEECH_PAD))
        return await self._run(stop, lambda: stream.push(speakable))

    async def finish(self, stream: SpeechStream, stop: threading.Event) -> bytes:
        """Render the rest."""
        return await self._run(stop, stream.finish)

    def close(self) -> None:
        """Stop the worker thread after its current job."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class AnswerVoice:
    """Implements the ``Voice`` port over token2wav and/or a TTS engine."""

    def __init__(self, mode: VoiceMode, tokens: TokenSpeaker | None, tts: TextToSpeech | None) -> None:
        if mode == "model" and tokens is None:
            raise VoiceUnavailable("voice.mode is model but token2wav is not available")
        if mode == "tts" and tts is None:
            raise VoiceUnavailable("voice.mode is tts but no TTS engine is available")
        self.mode: VoiceMode = mode
        self._tokens = tokens
        self._tts = tts

    @property
    def has_tokens(self) -> bool:
        """True when model speech tokens are turned into sound (token2wav is loaded)."""
        return self._tokens is not None

    def attach_tokens(self, tokens: TokenSpeaker, mode: VoiceMode) -> None:
        """Start speaking the model's own voice, once token2wav could be loaded (after the download)."""
        self._tokens, self.mode = tokens, mode

    async def prepare(self) -> None:
        """Process the voice prompt and warm token2wav up now rather than on the first answer."""
        if self._tokens is not None:
            await self._tokens.prepare_async()

    def close(self) -> None:
        """Release the synthesis thread."""
        if self._tokens is not None:
            self._tokens.close()

    def set_dialect(self, dialect: str) -> None:
        """Speak text in another dialect from now on (token2wav speech already is in the model's dialect)."""
        retune = getattr(self._tts, "set_dialect", None)
        if retune is not None:
            retune(dialect)

    async def speak(self, pieces: AsyncIterator[ReplyPiece]) -> AsyncIterator[AudioChunk]:
        """Yield audio while pieces keep arriving; cancelling stops synthesis at its next step.

        If token2wav fails, the answer goes on through the TTS: text that was only a caption is spoken.
        """
        stop = threading.Event()
        stream: SpeechStream | None = None
        splitter = SentenceSplitter()
        held: list[str] = []  # sentences kept back in case speech comes (model mode: until the end)
        captions: list[str] = []  # text that arrived while speech was speaking
        speech_seen = token_audio = broken = False
        try:
            async for piece in pieces:
                match piece:
                    case ModelSpeech(tokens=tokens) if self.mode != "tts" and self._tokens and not broken:
                        speech_seen = True
                        try:
                            if stream is None:
                                stream = await self._tokens.open(stop)
                            rendered = await self._tokens.push(stream, stop, tokens)
                        except SpeechError as err:
                            _LOGGER.warning("speaking the text instead of the model's speech: %s", err)
                            broken, stream, speech_seen = True, None, False
                            rendered = []
                            # The held sentences are whole already; only the captions continue the text the
                            # splitter still buffers, so they go through it after those.
                            lost = [] if token_audio else [*held, *splitter.feed("".join(captions))]
                            held.clear()
                            captions.clear()
                            for sentence in lost:
                                async for chunk in self._say(sentence):
                                    yield chunk
                        for pcm in rendered:
                            token_audio = True
                            yield AudioChunk(pcm, TOKEN2WAV_RATE_HZ)
                    case ModelAudio(chunk=chunk) if self.mode != "tts":
                        speech_seen = True
                        yield chunk
                    case ModelText(text=text) if speech_seen:
                        captions.append(text)
                    case ModelText(text=text):
                        # A finished sentence waits for the next piece: the model interleaves its speech
                        # tokens right after the text they say, so speech may still follow it.
                        if self.mode != "model" or broken:
                            for sentence in held:
                                async for chunk in self._say(sentence):
                                    yield chunk
                            held.clear()
                        held.extend(splitter.feed(text))
                    case _:
                        pass
            if stream is not None and self._tokens is not None:
                try:
                    pcm = await self._tokens.finish(stream, stop)
                except SpeechError as err:
                    _LOGGER.warning("the end of the model's speech is lost: %s", err)
                    pcm = b""
                if pcm:
                    yield AudioChunk(pcm, TOKEN2WAV_RATE_HZ)
            if not speech_seen:
                for sentence in [*held, splitter.flush()]:
                    async for chunk in self._say(sentence):
                        yield chunk
        finally:
            stop.set()

    async def _say(self, sentence: str) -> AsyncIterator[AudioChunk]:
        if not sentence or self._tts is None:
            return
        try:
            audio = await self._tts.synthesize(sentence)
        except SpeechError as err:
            _LOGGER.warning("could not speak a sentence: %s", err)
            return
        if audio.samples:
            yield audio
