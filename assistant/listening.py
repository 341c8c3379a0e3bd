"""One utterance heard chunk by chunk: VAD, level and prosody feed the endpointer.

The turn and ``bench.endpoint`` both hear through :class:`UtteranceListener`, so a benchmark measures what
the daemon does.
"""

from __future__ import annotations

from .audio import AudioChunk, level_db
from .config import EndpointSettings
from .endpointing import Cues, Decision, Endpointer, PauseMemory, Room
from .ports import ProsodyDetector, SpeechDetector


class UtteranceListener:
    """Decides, chunk by chunk, whether the user has started, goes on, or has finished speaking."""

    def __init__(
        self,
        settings: EndpointSettings,
        vad: SpeechDetector,
        *,
        prosody: ProsodyDetector | None = None,
        room: Room | None = None,
        memory: PauseMemory | None = None,
    ) -> None:
        self._vad = vad
        self._prosody = prosody
        self.endpointer = Endpointer(settings, room=room, memory=memory)
        """The state machine; its fields say how long the user waited and spoke."""
        vad.reset()
        if prosody is not None:
            prosody.reset()

    def hear(self, chunk: AudioChunk) -> Decision:
        """Feed the next chunk; return the endpointer's decision after it."""
        probability = self._vad.probability(chunk)
        level = level_db(chunk)
        if self._prosody is None:
            cues = Cues(level)
        else:
            sound = self._prosody.prosody(chunk)
            cues = Cues(level, sound.pitch_hz, sound.nasal)
        return self.endpointer.process(chunk.seconds, probability, cues)
