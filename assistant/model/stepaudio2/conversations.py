"""Each conversation's chat entries and the KV cache of what the model last read.

Shared by the engine's worker thread and the event loop: every access is under one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import Cache

from .history import Entry


@dataclass
class Conversation:
    """One conversation's state."""

    entries: list[Entry] = field(default_factory=list)
    """System, tools and every kept turn, in order (the open assistant turn is not stored)."""
    exchange: int = 0
    """Number of the current exchange (a question and its answer)."""
    cache: Cache | None = None
    """KV cache of ``cached_keys``; None after it was freed."""
    cached_keys: list[int] = field(default_factory=list)
    """The tokens whose keys and values ``cache`` holds."""
    audio: dict[int, torch.Tensor] = field(default_factory=dict)
    """Encoded audio by exchange, for recomputing a prompt whose cache was freed."""
    used: float = 0.0
    """``time.monotonic()`` of its last round, to free the least recently used caches first."""
    before_speculation: tuple[list[Entry], int, dict[int, torch.Tensor]] | None = None
    """Entries, exchange and audio before the last round, while that round was speculative."""


class ConversationStore:
    """The conversations by id; at most ``max_cached`` of them keep a KV cache (their histories all stay)."""

    def __init__(self, max_cached: int) -> None:
        self.lock = threading.Lock()
        """Held for every read or change of a conversation."""
        self._max_cached = max_cached
        self._conversations: dict[str, Conversation] = {}

    def open(self, conversation_id: str) -> Conversation:
        """The conversation (made if new), marked used; the least recently used caches beyond the limit are freed."""
        with self.lock:
            conversation = self._conversations.setdefault(conversation_id, Conversation())
            conversation.used = time.monotonic()
            cached = sorted(
                (c for c in self._conversations.values() if c.cache is not None and c is not conversation),
                key=lambda c: c.used,
            )
            for stale in cached[: max(0, len(cached) - self._max_cached + 1)]:
                stale.cache, stale.cached_keys = None, []
            return conversation

    def peek(self, conversation_id: str) -> Conversation | None:
        """The conversation if it exists (read it under :attr:`lock`)."""
        return self._conversations.get(conversation_id)

    def entries(self, conversation_id: str) -> list[Entry]:
        """A copy of a conversation's entries (empty if unknown)."""
        with self.lock:
            conversation = self._conversations.get(conversation_id)
            return list(conversation.entries) if conversation else []

    def retract(self, conversation_id: str) -> None:
        """Restore the conversation as it was before its last round, if that round was speculative."""
        with self.lock:
            conversation = self._conversations.get(conversation_id)
            if conversation is not None and conversation.before_speculation is not None:
                conversation.entries, conversation.exchange, conversation.audio = conversation.before_speculation
                conversation.before_speculation = None

    def forget(self, conversation_id: str) -> None:
        """Drop a conversation's history and KV cache."""
        with self.lock:
            self._conversations.pop(conversation_id, None)

    def release_cache(self, conversation_id: str) -> None:
        """Free a conversation's KV cache but keep its history."""
        with self.lock:
            conversation = self._conversations.get(conversation_id)
            if conversation is not None:
                conversation.cache, conversation.cached_keys = None, []

    def release_all(self) -> None:
        """Free every KV cache (histories stay)."""
        with self.lock:
            for conversation in self._conversations.values():
                conversation.cache, conversation.cached_keys = None, []
