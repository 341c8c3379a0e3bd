"""The in-process Step-Audio 2 engine: the ``SpeechModel`` port over :mod:`.modeling`.

Each conversation keeps its chat entries and the KV cache of what the model last read. A new round lays
out the (budgeted) history plus the new turn, finds the longest prefix the cache already holds, crops the
cache there and prefills only the rest, injecting audio embeddings for placeholders in that rest. Decoding
then runs one token per step on a worker thread, and the stream parser turns tokens into events as they
come. Closing or cancelling the async iteration sets a flag checked before every step, so generation
stops within one decode step.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import torch
from transformers import DynamicCache, LogitsProcessor, PreTrainedTokenizerBase, StaticCache
from transformers.cache_utils import Cache

from ...audio import AudioChunk
from ...config import PersonaSettings
from ...errors import ModelError
from ...ports import ModelEvent, ModelRequest
from . import prompt
from . import tokens as t
from .conversations import Conversation, ConversationStore
from .history import Entry, Layout, assemble, common_prefix, size
from .layout import PromptWriter
from .modeling import StepAudio2ForCausalLM
from .options import GenerationOptions, RoundStats
from .parser import TokenStreamParser
from .sampling import Sampler
from .worker import RoundWorker

_LOGGER = logging.getLogger(__name__)

__all__ = ["FIRST_BUCKET", "GenerationOptions", "RoundStats", "StepAudio2Engine", "kv_bucket"]

_WARM_UP = "\0warm-up"


FIRST_BUCKET = 256
"""Cache positions a compiled decode step attends over at least; buckets double from there."""
SPARE = 1
"""Static cache positions allocated beyond what a round can fill (see ``_new_cache``)."""


def kv_bucket(used: int, allocated: int) -> int:
    """Cache positions a compiled decode step reads when ``used`` hold tokens.

    The next power-of-two multiple of :data:`FIRST_BUCKET`, at most ``allocated``: the cost follows the
    conversation (never more than twice the used positions) while a handful of shapes serve every length.
    """
    bucket = FIRST_BUCKET
    while bucket < used:
        bucket *= 2
    return min(bucket, allocated)


class StepAudio2Engine:
    """Step-Audio 2 in this process; implements ``SpeechModel``."""

    def __init__(
        self,
        model: StepAudio2ForCausalLM,
        tokenizer: PreTrainedTokenizerBase,
        persona: PersonaSettings,
        options: GenerationOptions | None = None,
        *,
        logits_processors: Sequence[LogitsProcessor] = (),
        today: Callable[[], datetime] | None = None,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._options = options or GenerationOptions()
        self._extra_processors = list(logits_processors)
        try:
            zone = ZoneInfo(persona.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ModelError(f"persona.timezone {persona.timezone!r} is not a known IANA time zone") from err
        self._prompts = PromptWriter(
            tokenizer,
            persona,
            today or (lambda: datetime.now(zone)),
            model.encode_audio,
            history_tokens=self._options.history_tokens,
            max_new_tokens=self._options.max_new_tokens,
            max_positions=int(model.config.text_config.max_position_embeddings),
            even_audio_tail=self._options.even_audio_tail,
        )
        self._store = ConversationStore(self._options.max_cached_conversations)
        self._lock = self._store.lock
        self._call_counter = itertools.count(1)
        self._worker = RoundWorker("stepaudio2")
        self._max_positions = int(model.config.text_config.max_position_embeddings)
        if self._options.compile_decode and self._options.kv_cache != "static":
            raise ModelError("compiling the decode step needs a static KV cache (kv_cache: static)")
        self._next_logits: Callable[[torch.Tensor, torch.Tensor, Cache, int], torch.Tensor] = model.next_logits
        self._compiled = self._options.compile_decode
        """Decode steps go through the compiled step (until one fails, see :meth:`_decode_step`)."""
        if self._compiled:
            mode = "reduce-overhead" if model.device.type == "cuda" else None
            # Static shapes within a bucket of attended positions; the second bucket makes dynamo compile
            # one graph with the bucket size symbolic, which serves every later bucket (a CUDA graph is
            # still recorded per bucket, which takes milliseconds, not a compilation).
            self._next_logits = torch.compile(model.next_logits, mode=mode, fullgraph=True, dynamic=None)
        self.last_round = RoundStats()
        """Measurements of the most recent round."""

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self._model.device

    # --- the port ----------------------------------------------------------------------------------

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one round; closing the iteration stops generation within one decode step."""
        rounds = self._worker.stream(lambda emit, cancel: self._round(request, emit, cancel))
        try:
            async for item in rounds:
                yield cast(ModelEvent, item)
        finally:
            await rounds.aclose()

    def set_dialect(self, dialect: str) -> None:
        """Answer in another dialect from the next round on (the system prompt changes)."""
        self._prompts.set_dialect(dialect)

    def retract(self, conversation_id: str) -> None:
        """Take back the conversation's last round if it was speculative; its KV cache prefix stays.

        Runs on the worker after the rounds already queued, so a speculative round still unwinding is taken
        back whole.
        """
        self._worker.submit(lambda: self._store.retract(conversation_id))

    def forget(self, conversation_id: str) -> None:
        """Drop a conversation's history and KV cache."""
        self._store.forget(conversation_id)

    def release_cache(self, conversation_id: str) -> None:
        """Free a conversation's KV cache but keep its history; the next round recomputes the prompt."""
        self._store.release_cache(conversation_id)

    async def warm_up(self) -> None:
        """Run the encoder, a prefill and two decode steps once, leaving no history behind.

        The first round on a GPU pays for kernel selection and memory pools (seconds); call this at start-up
        so the first user does not. A compiled decode step is also run at a second bucket of attended
        positions, so both of its compilations happen here, not when a conversation first outgrows a bucket.
        If compiling fails, here or later, the engine decodes on the same static cache without it from
        then on (:meth:`_decode_step`).
        """
        request = ModelRequest(_WARM_UP, audio=AudioChunk(bytes(32_000)), text="你好", speak=False)

        def run() -> None:
            try:
                self._generate(request, lambda _: None, threading.Event(), max_new_tokens=2)
                warmed = self._store.peek(_WARM_UP)
                if self._compiled and warmed is not None:
                    self._compile_second_bucket(warmed)
            finally:
                self.forget(_WARM_UP)

        try:
            await self._worker.run(run)
        except ModelError:
            raise
        except Exception as err:
            raise ModelError(f"Step-Audio 2 failed its warm-up: {type(err).__name__}: {err}") from err

    def _compile_second_bucket(self, conversation: Conversation) -> None:
        """One compiled step over another bucket than the last one, so dynamo makes the bucket symbolic."""
        cache = conversation.cache
        if not isinstance(cache, StaticCache):
            return
        filled, allocated = len(conversation.cached_keys), cache.max_cache_len - SPARE
        bucket = kv_bucket(filled + 1, allocated)
        other = min(2 * bucket, allocated)
        if other == bucket:
            return  # one bucket covers the whole allocation: nothing more to compile
        device = self._model.device
        step, position = torch.tensor([[t.EOT]], device=device), torch.tensor([filled], device=device)
        with torch.inference_mode():
            # Writes one position past the warm-up's tokens in a cache that is dropped right after.
            self._decode_step(step, position, cache, other)

    def _decode_step(self, step: torch.Tensor, position: torch.Tensor, cache: Cache, kv_length: int) -> torch.Tensor:
        """One decode step through ``next_logits``, compiled until compiling or a compiled step fails.

        Then one warning, and this step and every later one run uncompiled on the same static cache: they
        write the same positions, so a failed step that wrote some layers is simply written again. Slower
        steps, but the answer goes on. Running out of memory is not a compiler failure and is raised.
        """
        try:
            return self._next_logits(step, position, cache, kv_length)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - a compiler failure must not fail the answer
            if not self._compiled:
                raise
            _LOGGER.warning(
                "the compiled decode step failed (%s: %s); decoding without compilation (slower)",
                type(err).__name__,
                err,
            )
            self._compiled, self._next_logits = False, self._model.next_logits
            return self._next_logits(step, position, cache, kv_length)

    async def drain(self) -> None:
        """Wait until the worker has finished every round started so far (a cancelled one included)."""
        await self._worker.run(lambda: None)

    def close(self) -> None:
        """Stop generating within one decode step and let the worker thread end; the engine is unusable after."""
        self._worker.close()

    # --- the worker --------------------------------------------------------------------------------

    def _round(self, request: ModelRequest, emit: Callable[[object], None], cancel: threading.Event) -> None:
        try:
            if not cancel.is_set():  # a round abandoned while it waited for the worker is never started
                self._generate(request, emit, cancel)
        except ModelError as err:
            emit(err)
        except torch.OutOfMemoryError as err:
            self._release_caches()
            reason = str(err).split("\n", 1)[0]
            emit(ModelError(f"the model ran out of memory ({reason}); its caches were freed", recoverable=True))
        except ValueError as err:
            emit(ModelError(f"the model cannot take this request: {err}"))
        except Exception as err:
            _LOGGER.exception("Step-Audio 2 round failed")
            emit(ModelError(f"Step-Audio 2 failed: {type(err).__name__}: {err}"))

    def _release_caches(self) -> None:
        """Free every conversation's KV cache (histories stay), so a retry finds memory to run in."""
        self._store.release_all()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _next_call_id(self) -> str:
        # Unique per engine, so the calls of successive rounds in one turn never share an id.
        return f"call_{next(self._call_counter)}"

    def _generate(
        self,
        request: ModelRequest,
        emit: Callable[[object], None],
        cancel: threading.Event,
        max_new_tokens: int | None = None,
    ) -> None:
        stats = RoundStats()
        self.last_round = stats
        started = time.perf_counter()
        conversation = self._store.open(request.conversation_id)
        before = (list(conversation.entries), conversation.exchange, dict(conversation.audio))
        conversation.before_speculation = before if request.speculative else None
        said = False

        def emitting(item: object) -> None:
            nonlocal said
            said = True
            emit(item)

        try:
            layout, opening = self._prompts.lay_out(request, conversation, stats)
            limit = max_new_tokens or self._options.max_new_tokens
            max_new = min(limit, self._max_positions - len(layout.tokens))
            logits, context = self._prefill(conversation, layout, len(layout.tokens) + max_new, stats)
            stats.prefill_seconds = time.perf_counter() - started
            self._decode_loop(request, conversation, opening, logits, context, max_new, stats, emitting, cancel)
        except BaseException:
            with self._lock:
                if not said:
                    # Nothing reached the user, so the round is not part of the conversation: the turn's retry
                    # must not ask the question twice. (Once something was said, it is remembered, as on a stop.)
                    conversation.entries, conversation.exchange, conversation.audio = before
                # A forward pass that failed half-way may have written some layers of the cache but not others.
                conversation.cache, conversation.cached_keys = None, []
            raise

    def _new_cache(self, needed: int) -> Cache:
        if self._options.kv_cache == "dynamic":
            return DynamicCache()
        usual = min(self._max_positions, self._options.history_tokens + self._options.max_new_tokens)
        # One spare position, so no bucket of a compiled step ever spans the whole cache: a slice of full
        # length is contiguous, and dynamo would compile one more graph for it.
        return StaticCache(config=self._model.config.text_config, max_cache_len=max(needed, usual) + SPARE)

    def _prefill(
        self, conversation: Conversation, layout: Layout, needed: int, stats: RoundStats
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute what the KV cache does not already hold (at least one token, for the logits).

        ``needed`` is the most positions this round can fill (prompt and answer).
        """
        cache = conversation.cache
        if cache is None or (isinstance(cache, StaticCache) and cache.max_cache_len < needed):
            cache = conversation.cache = self._new_cache(needed)
            conversation.cached_keys = []
        reuse = min(common_prefix(conversation.cached_keys, layout.keys), len(layout.keys) - 1)
        # A static cache is never cropped: the next tokens overwrite the stale ones, and attention never
        # looks past the position being computed.
        if isinstance(cache, DynamicCache) and cache.get_seq_length() > reuse:
            cache.crop(reuse)
        stats.prompt_tokens, stats.reused_tokens = len(layout.tokens), reuse
        stats.prefill_tokens = len(layout.tokens) - reuse
        audio: list[tuple[int, torch.Tensor]] = []
        for span in layout.audio:
            first = max(span.offset, reuse)
            if first < span.offset + span.count:
                audio.append((first - reuse, conversation.audio[span.uid][first - span.offset :]))
        context = torch.tensor([layout.tokens], device=self._model.device)
        conversation.cached_keys = []  # unknown until the prefill succeeds
        logits = self._model.step(context[:, reuse:], cache, audio=audio, start=reuse)
        conversation.cached_keys = list(layout.keys)
        _LOGGER.debug("prefill %d of %d tokens (%d reused)", stats.prefill_tokens, stats.prompt_tokens, reuse)
        return logits, context

    def _decode_loop(
        self,
        request: ModelRequest,
        conversation: Conversation,
        opening: list[int],
        logits: torch.Tensor,
        context: torch.Tensor,
        max_new: int,
        stats: RoundStats,
        emit: Callable[[object], None],
        cancel: threading.Event,
    ) -> None:
        """Generate token by token, streaming events, until a stop token, the limit or cancellation."""
        assert conversation.cache is not None
        cache = conversation.cache
        compiled = self._compiled
        allocated = cache.max_cache_len - SPARE if isinstance(cache, StaticCache) else self._max_positions
        options = self._options
        device = self._model.device
        sampler = Sampler(
            context,
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            repetition_penalty=options.repetition_penalty,
            processors=self._extra_processors,
            ban_speech=not request.speak,
        )
        parser = TokenStreamParser(
            self._prompts.decode,
            in_tts=request.speak,
            speech_chunk=options.speech_chunk_tokens,
            call_ids=self._next_call_id,
        )
        generated: list[int] = []
        reason = "length"
        decode_started = time.perf_counter()
        try:
            for _ in range(max_new):
                if cancel.is_set():
                    stats.cancelled = True
                    reason = "cancelled"
                    break
                sampling = time.perf_counter()
                token = sampler.choose(logits)
                stats.sample_seconds += time.perf_counter() - sampling
                generated.append(token)
                stats.decode_steps += 1
                for event in parser.feed(token):
                    emit(event)
                if token in t.STOP_IDS:
                    reason = "stop"
                    break
                if len(generated) == max_new:
                    break
                step = torch.tensor([[token]], device=device)
                filled = len(conversation.cached_keys)
                if compiled:
                    position = torch.tensor([filled], device=device)
                    with torch.inference_mode():
                        logits = self._decode_step(step, position, cache, kv_bucket(filled + 1, allocated))
                    if device.type == "cuda":
                        # A CUDA graph's next replay overwrites its output; sampling edits the logits.
                        logits = logits.clone()
                else:
                    logits = self._model.step(step, cache, start=filled)
                conversation.cached_keys.append(token)
                sampler.add(token)
        finally:
            stats.decode_seconds = time.perf_counter() - decode_started
            self._remember(conversation, opening, generated, parser, request.speak)
        if reason != "cancelled":
            for event in parser.finish(reason):
                emit(event)

    def _remember(
        self,
        conversation: Conversation,
        opening: list[int],
        generated: list[int],
        parser: TokenStreamParser,
        speak: bool,
    ) -> None:
        """Store the answer as the model wrote it (closed with EOT even when cut short)."""
        body = [token for token in generated if token not in t.STOP_IDS]
        tokens = (*opening, *body, *self._prompts.encode(prompt.EOT))
        folded = None
        if speak and parser.speech_tokens:
            calls = "".join(prompt.tool_call_text(c.name, c.arguments) for c in parser.tool_calls if c.error is None)
            folded = Entry(
                "assistant",
                tuple(self._prompts.encode(prompt.turn("assistant", parser.text + calls))),
                conversation.exchange,
            )
        conversation.entries.append(Entry("assistant", tokens, conversation.exchange, folded=folded))

    # --- introspection for tests and benchmarks ---------------------------------------------------

    def history(self, conversation_id: str) -> list[Entry]:
        """The stored entries of a conversation (empty if unknown)."""
        return self._store.entries(conversation_id)

    def render(self, entries: Sequence[Entry]) -> str:
        """Entries as text, audio placeholders collapsed, for logs and tests."""
        text = self._prompts.decode(assemble(entries).tokens)
        patch = t.STRINGS[t.AUDIO_PATCH]
        while patch * 2 in text:
            text = text.replace(patch * 2, patch)
        return text

    def tokens_of(self, entries: Sequence[Entry]) -> int:
        """Total tokens of entries."""
        return size(entries)
