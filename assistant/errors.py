"""The few typed errors of the daemon core."""

from __future__ import annotations


class AssistantError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(AssistantError):
    """The configuration file is missing, unreadable or invalid; the message names file and key."""


class TurnError(AssistantError):
    """A stage of a turn failed; ``code`` is stable and kebab-case."""

    code = "turn-failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class CaptureError(TurnError):
    """The microphone stream ended or broke while the user was speaking."""

    code = "capture-failed"


class ModelError(TurnError):
    """The speech model failed; ``recoverable`` errors are retried once within the turn."""

    code = "model-unavailable"

    def __init__(self, message: str, *, recoverable: bool = False, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.recoverable = recoverable
        self.retry_after_seconds = retry_after_seconds
        """How long the server asked to wait before trying again (its ``Retry-After``), in seconds."""


class PlaybackError(TurnError):
    """The speaker failed while playing."""

    code = "playback-failed"


class ToolError(AssistantError):
    """A tool failed in a way the model should hear about; the message is shown to the model."""


class EnrollmentError(AssistantError, ValueError):
    """A wake word cannot be enrolled or removed as asked (a bad name or take, a failed write); nothing changed."""


class StorageError(AssistantError):
    """The reminder store could not write (disk full, read-only, I/O error); nothing was changed."""


class HomeAssistantError(AssistantError):
    """Home Assistant refused or could not be reached; the message says which and is free of secrets."""

    def __init__(self, message: str, *, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason
        """``auth`` (bad token), ``unavailable`` (down, timeout) or ``rejected`` (bad entity or data)."""


class ConfirmationRequired(AssistantError):
    """Raised by a tool, before it acts, when what it is about to do needs the user's spoken yes.

    The tool registry turns it into a confirmation question (or a refusal, in a turn that may not ask);
    once the user said yes it runs the call again, approving exactly ``action``.
    """

    def __init__(self, question: str, *, action: str, reason: str = "") -> None:
        super().__init__(question)
        self.question = question
        """What to ask the user, e.g. "Do you want me to turn on Garage opener?"."""
        self.reason = reason
        """Why it needs a yes, e.g. "it may work a door, lock, gate or alarm (garage)"; told to the model."""
        self.action = action
        """What exactly would be done (services and entity ids): the yes approves this and nothing else."""
