"""A conversation as token entries, kept within a token budget, and the prefix the KV cache can reuse.

Pure: no torch, no tokenizer. Each entry is one chat turn as token ids. Audio placeholders carry the id of
the utterance whose embeddings fill them, so two different utterances of equal length never look like
the same prefix. When the history outgrows its budget, older spoken answers are folded to their text
(speech tokens cost ≈31 per second of answer, their text a handful), then the oldest exchanges are
dropped; the system and tools turns stay. It shrinks to a fraction of the budget at once, so the cache is
rebuilt rarely rather than on every turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Role = Literal["system", "tools", "human", "assistant", "input"]


@dataclass(frozen=True, slots=True)
class AudioSpan:
    """Placeholders inside an entry that one audio chunk's embeddings replace."""

    offset: int
    """Index of the first placeholder within the entry's tokens."""
    count: int
    """Number of placeholders (= embedding rows)."""
    uid: int
    """Identifier of the chunk's embeddings, unique within the engine."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One chat turn as token ids."""

    role: Role
    """Chat role of the turn."""
    tokens: tuple[int, ...]
    """The turn's ids, from ``<|BOT|>`` to ``<|EOT|>`` (or open, for the prompt's last turn)."""
    exchange: int = 0
    """Which user request the turn belongs to; 0 for the pinned system and tools turns."""
    audio: tuple[AudioSpan, ...] = ()
    """Audio placeholders inside ``tokens``."""
    folded: Entry | None = None
    """A cheaper text-only form of the same turn, if it has one."""

    @property
    def pinned(self) -> bool:
        """True for turns that are never folded or dropped."""
        return self.exchange == 0

    def keys(self) -> list[int]:
        """The ids with audio placeholders replaced by ``-(uid + 1)``, for prefix comparison."""
        keys = list(self.tokens)
        for span in self.audio:
            keys[span.offset : span.offset + span.count] = [-(span.uid + 1)] * span.count
        return keys


@dataclass(frozen=True, slots=True)
class Layout:
    """Entries laid end to end: what the model reads."""

    tokens: list[int] = field(default_factory=list)
    """Every id, audio placeholders as ``<audio_patch>``."""
    keys: list[int] = field(default_factory=list)
    """Every id as :meth:`Entry.keys` gives it."""
    audio: list[AudioSpan] = field(default_factory=list)
    """Audio spans with offsets into ``tokens``."""


def assemble(entries: Sequence[Entry]) -> Layout:
    """Lay entries end to end."""
    layout = Layout()
    for entry in entries:
        base = len(layout.tokens)
        layout.tokens.extend(entry.tokens)
        layout.keys.extend(entry.keys())
        layout.audio.extend(replace(span, offset=base + span.offset) for span in entry.audio)
    return layout


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix."""
    limit = min(len(a), len(b))
    for i in range(limit):
        if a[i] != b[i]:
            return i
    return limit


def size(entries: Sequence[Entry]) -> int:
    """Total tokens of the entries."""
    return sum(len(e.tokens) for e in entries)


def fit(entries: Sequence[Entry], budget: int, *, shrink_to: float = 0.75) -> list[Entry]:
    """Return the entries within ``budget`` tokens, folding then dropping the oldest exchanges.

    Nothing changes while the entries fit. Once they do not, older exchanges are cut until the total is at
    most ``shrink_to × budget``. The latest exchange is never touched, so a single huge request can still
    exceed the budget; the caller decides whether that fits the model's context.
    """
    kept = list(entries)
    if size(kept) <= budget:
        return kept
    target = int(budget * shrink_to)
    latest = max((e.exchange for e in kept), default=0)
    old = sorted({e.exchange for e in kept if not e.pinned and e.exchange != latest})
    for exchange in old:
        for i, entry in enumerate(kept):
            if size(kept) <= target:
                return kept
            if entry.exchange == exchange and entry.folded is not None:
                kept[i] = entry.folded
    for exchange in old:
        if size(kept) <= target:
            break
        kept = [e for e in kept if e.exchange != exchange]
    return kept
