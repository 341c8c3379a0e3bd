"""How a round's request becomes the prompt: each turn's tokens, and the history fitted around the new turn.

The system and tools turns are pinned at the start. Text from outside (tool results, web snippets, typed
questions) is encoded as plain characters, never as control tokens; audio becomes ``<audio_patch>``
placeholders whose embeddings the encoder computes once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ...config import PersonaSettings
from ...errors import ModelError
from ...ports import ModelRequest, ToolSpec
from . import prompt
from . import tokens as t
from .conversations import Conversation
from .features import utterance_mels
from .frontend import placeholder_count
from .history import AudioSpan, Entry, Layout, assemble, fit
from .options import RoundStats


class PromptWriter:
    """Encodes turns with the model's tokenizer and lays out each round's prompt within the budgets."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        persona: PersonaSettings,
        today: Callable[[], datetime],
        encode_audio: Callable[[torch.Tensor, int], Any],
        *,
        history_tokens: int,
        max_new_tokens: int,
        max_positions: int,
        even_audio_tail: bool = False,
    ) -> None:
        self._tokenizer = tokenizer
        self._persona = persona
        self._today = today
        self._encode_audio = encode_audio
        self._history_tokens = history_tokens
        self._max_new_tokens = max_new_tokens
        self._max_positions = max_positions
        self._even_audio_tail = even_audio_tail
        self._control_strings: re.Pattern[str] | None = None
        self._text_cache: dict[str, list[int]] = {}
        self._uids = 0

    def set_dialect(self, dialect: str) -> None:
        """Write the system prompt for another dialect from the next round on."""
        self._persona = self._persona.model_copy(update={"dialect": dialect})

    def encode(self, text: str) -> list[int]:
        """Token ids of the prompt's own text (control tokens allowed); the last 256 texts are cached."""
        ids = self._text_cache.get(text)
        if ids is None:
            ids = self._tokenizer.encode(text, add_special_tokens=False)
            if len(self._text_cache) < 256:
                self._text_cache[text] = ids
        return list(ids)

    def encode_untrusted(self, text: str) -> list[int]:
        """Encode text from outside (tool results, web snippets, typed questions) as plain text only.

        A web page saying ``<tool_call>`` or ``<audio_123>`` must stay characters: with the default
        encoding those strings would become the real control tokens and steer the model.
        """
        if self._control_strings is None:
            added = sorted(self._tokenizer.get_added_vocab(), key=len, reverse=True)
            self._control_strings = re.compile("|".join(map(re.escape, added))) if added else re.compile(r"(?!)")
        # Added tokens (<audio_N>, <tool_call>…) match even when not "special": break each with a zero-width
        # space after its first character, so it is read as the characters it is made of.
        text = self._control_strings.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids, special tokens included."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def pinned(self, tools: Sequence[ToolSpec]) -> list[Entry]:
        """The system turn (persona, today's date) and, with tools, the tools turn."""
        system = prompt.turn("system", prompt.system_prompt(self._persona, self._today(), with_tools=bool(tools)))
        entries = [Entry("system", tuple(self.encode(system)))]
        if tools:
            entries.append(Entry("tools", tuple(self.encode(prompt.tools_turn(tools)))))
        return entries

    def human(self, request: ModelRequest, conversation: Conversation, exchange: int, stats: RoundStats) -> Entry:
        """The user's turn: audio placeholders (their embeddings kept in the conversation), then any text."""
        ids = self.encode(prompt.turn_open("human"))
        spans: list[AudioSpan] = []
        if request.audio is not None:
            for mels in utterance_mels(request.audio, even_tail=self._even_audio_tail):
                count = placeholder_count(mels.shape[-1])
                self._uids += 1
                conversation.audio[self._uids] = self._encode_audio(mels, count)
                ids.append(t.AUDIO_START)
                spans.append(AudioSpan(len(ids), count, self._uids))
                ids.extend([t.AUDIO_PATCH] * count)
                ids.append(t.AUDIO_END)
                stats.audio_chunks += 1
        if request.text:
            ids.extend(self.encode_untrusted(request.text))
        ids.extend(self.encode(prompt.EOT))
        return Entry("human", tuple(ids), exchange, tuple(spans))

    def lay_out(self, request: ModelRequest, conversation: Conversation, stats: RoundStats) -> tuple[Layout, list[int]]:
        """Add the request's turns to the history, fit it to the budget, and lay out the prompt."""
        if request.audio is None and not request.text and not request.tool_results:
            raise ModelError("the request carries no audio, text or tool results")
        history = [e for e in conversation.entries if not e.pinned]
        exchange = conversation.exchange
        if request.audio is not None or request.text:
            exchange += 1
            history.append(self.human(request, conversation, exchange, stats))
        if request.tool_results:
            content = self.encode_untrusted(prompt.tool_results_text(request.tool_results))
            ids = [*self.encode(prompt.turn_open("input")), *content, *self.encode(prompt.EOT)]
            history.append(Entry("input", tuple(ids), exchange))
        opening = self.encode(prompt.assistant_prefix(request.speak))
        budget = min(self._history_tokens, self._max_positions - self._max_new_tokens) - len(opening)
        entries = fit([*self.pinned(request.tools), *history], budget)
        layout = assemble([*entries, Entry("assistant", tuple(opening), exchange)])
        if self._max_positions - len(layout.tokens) < 16:
            raise ModelError(
                f"the request needs {len(layout.tokens)} tokens; the model reads at most {self._max_positions}"
            )
        # Only now, with a prompt that fits, does the request become part of the conversation.
        live = {span.uid for e in entries for span in e.audio}
        conversation.audio = {uid: rows for uid, rows in conversation.audio.items() if uid in live}
        conversation.entries, conversation.exchange = entries, exchange
        return layout, opening
