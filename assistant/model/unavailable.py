"""Stand-ins for the model while it loads or when it could not be loaded: turns fail with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..errors import ModelError
from ..ports import ModelEvent, ModelRequest, SpeechModel


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

    def retract(self, conversation_id: str) -> None:
        """Nothing to take back."""

    def set_dialect(self, dialect: str) -> None:
        """Nothing to change."""


class LoadingModel:
    """Serves the wake word at once while the real model loads in the background (tens of seconds)."""

    def __init__(self, loading: asyncio.Task[SpeechModel]) -> None:
        self._loading = loading
        self._dialect: str | None = None

    def _model(self) -> SpeechModel:
        if not self._loading.done():
            raise ModelError("the model is still loading; please ask again in a moment", recoverable=False)
        error = self._loading.exception() if not self._loading.cancelled() else None
        if error is not None or self._loading.cancelled():
            raise ModelError(f"the model could not be loaded: {error or 'cancelled'}")
        model = self._loading.result()
        if self._dialect is not None:
            model.set_dialect(self._dialect)
            self._dialect = None
        return model

    async def respond(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Answer through the loaded model, or fail at once with why it is not there."""
        async for event in self._model().respond(request):
            yield event

    def set_dialect(self, dialect: str) -> None:
        """Remember the dialect; it reaches the model with the next request."""
        self._dialect = dialect

    def forget(self, conversation_id: str) -> None:
        """Forget in the loaded model, if it is loaded."""
        if self._loaded():
            self._loading.result().forget(conversation_id)

    def retract(self, conversation_id: str) -> None:
        """Take back in the loaded model, if it is loaded."""
        if self._loaded():
            self._loading.result().retract(conversation_id)

    def _loaded(self) -> bool:
        return self._loading.done() and not self._loading.cancelled() and self._loading.exception() is None
