"""The model to use when the real one could not be loaded: every turn fails with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import ModelError
from ..ports import ModelEvent, ModelRequest


class UnavailableModel:
    """Keeps the daemon up (wake word, announcements, Home Assistant) while the model is missing."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """Why the model could not be loaded, as shown to the user."""

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Fail at once with the load error."""
        raise ModelError(self.reason)
        yield  # pragma: no cover - makes this an async generator

    def forget(self, conversation_id: str) -> None:
        """Nothing to forget."""
