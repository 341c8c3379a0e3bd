"""Token ids and strings of the Step-Audio 2 vocabulary that the engine depends on.

The ids come from the released tokenizer (Qwen2.5's vocabulary extended by StepFun). A few are hard-coded
in StepFun's own code (``<audio_start>``, the ``<audio_0>`` offset); the engine checks them against the
tokenizer it loads, so a mismatched checkpoint fails at start-up instead of producing garbage.
"""

from __future__ import annotations

from typing import Final

from ...ports import SPEECH_PAD

VOCAB_SIZE: Final = 158720
"""Rows of the embedding and ``lm_head`` matrices (more than the tokenizer uses)."""

ENDOFTEXT: Final = 151643
"""``<|endoftext|>``: the config's EOS; also stops generation."""
TOOL_CALL_START_ID: Final = 151657
"""``<tool_call>`` in Qwen2.5's vocabulary; nothing relies on it, the parser reads the decoded text."""
TOOL_CALL_END_ID: Final = 151658
"""``</tool_call>`` in Qwen2.5's vocabulary."""
EOT: Final = 151665
"""``<|EOT|>``: ends every chat turn, and the answer."""
BOT: Final = 151666
"""``<|BOT|>``: starts every chat turn."""
AUDIO_START: Final = 151688
"""``<audio_start>``: opens one ≤25 s chunk of user audio."""
AUDIO_END: Final = 151689
"""``<audio_end>``: closes it."""
AUDIO_PATCH: Final = 151690
"""``<audio_patch>``: one placeholder whose embedding the audio adaptor replaces."""
TTS_START: Final = 151693
"""``<tts_start>``: the interleaved text/speech section begins."""
TTS_END: Final = 151694
"""``<tts_end>``: it ends."""
TTS_PAD: Final = 151695
"""``<tts_pad>``: a text slot with no text left."""
AUDIO_0: Final = 151696
"""``<audio_0>``: speech code 0; code ``c`` is ``AUDIO_0 + c``."""
SPEECH_CODES: Final = 6561
"""Codes 0..6560 are CosyVoice2 S3 speech tokens at 25 Hz."""
AUDIO_PAD_CODE: Final = SPEECH_PAD
"""``<audio_6561>``: a speech slot with no speech left; passed on, and dropped by the voice by default."""
LAST_ID: Final = AUDIO_0 + AUDIO_PAD_CODE
"""158257, the highest id the tokenizer defines."""

STRINGS: Final[dict[int, str]] = {
    ENDOFTEXT: "<|endoftext|>",
    EOT: "<|EOT|>",
    BOT: "<|BOT|>",
    AUDIO_START: "<audio_start>",
    AUDIO_END: "<audio_end>",
    AUDIO_PATCH: "<audio_patch>",
    TTS_START: "<tts_start>",
    TTS_END: "<tts_end>",
    TTS_PAD: "<tts_pad>",
    AUDIO_0: "<audio_0>",
    LAST_ID: f"<audio_{AUDIO_PAD_CODE}>",
}
"""The ids the engine relies on, with their token strings, for checking a tokenizer."""

STOP_IDS: Final = frozenset({EOT, ENDOFTEXT})
"""Ids that end an answer."""


def is_speech(token: int) -> bool:
    """True for ``<audio_0>``..``<audio_6561>`` (the pad included)."""
    return AUDIO_0 <= token <= LAST_ID


def speech_code(token: int) -> int:
    """The speech code of a speech token id."""
    return token - AUDIO_0
