"""Cut one enrolment take out of a live microphone stream (pure: chunks and speech probabilities in)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..audio import AudioChunk, join


@dataclass
class TakeCutter:
    """Waits for speech, then ends the take after a pause; gives up if nobody speaks or the take runs long."""

    end_silence_seconds: float = 0.6
    """Silence after speech that ends the take."""
    start_timeout_seconds: float = 6.0
    """Seconds to wait for the word to start."""
    max_seconds: float = 5.0
    """Longest take from the first speech on (the checks then call it too long)."""
    preroll_seconds: float = 0.4
    """Audio kept from before the speech started."""
    speech_threshold: float = 0.5
    """Speech probability (0.0 to 1.0) that counts as speech."""
    _chunks: list[AudioChunk] = field(default_factory=list)
    _waited: float = 0.0
    _speech: float = 0.0
    _silence: float = 0.0
    _started: bool = False

    def push(self, chunk: AudioChunk, probability: float) -> AudioChunk | None:
        """Feed one chunk; return the take once it has ended, None while it goes on.

        Raises TimeoutError when no speech came within ``start_timeout_seconds``.
        """
        self._chunks.append(chunk)
        if not self._started:
            self._waited += chunk.seconds
            if probability >= self.speech_threshold:
                self._started = True
            else:
                while sum(c.seconds for c in self._chunks) > self.preroll_seconds:
                    self._chunks.pop(0)
                if self._waited >= self.start_timeout_seconds:
                    raise TimeoutError("no speech heard")
                return None
        self._speech += chunk.seconds
        self._silence = 0.0 if probability >= self.speech_threshold else self._silence + chunk.seconds
        if self._silence >= self.end_silence_seconds or self._speech >= self.max_seconds:
            return join(self._chunks)
        return None
