"""Arithmetic of the audio front end: chunking, mel frame counts and placeholder counts (pure).

Step-Audio 2 hears 16 kHz audio as Whisper-style 128-bin log-mel frames at 100 per second, in chunks of
at most 25 s (the encoder has 1500 positions; a single ≥30 s chunk crashed StepFun's server). The
encoder halves the frame rate and pools by two, the adaptor halves it again: ≈12.5 embeddings per second,
each filling one ``<audio_patch>`` placeholder.
"""

from __future__ import annotations

from typing import Final

SAMPLE_RATE_HZ: Final = 16_000
"""Rate the front end works at."""
N_MELS: Final = 128
"""Mel bins per frame."""
N_FFT: Final = 400
"""STFT window, samples (25 ms)."""
HOP: Final = 160
"""STFT hop, samples (10 ms)."""
PAD_SAMPLES: Final = 479
"""Zeros appended before the STFT, as StepFun's front end does."""
MAX_CHUNK_SECONDS: Final = 25.0
"""Longest audio chunk given to the encoder, seconds."""
MIN_SAMPLES: Final = 800
"""Shortest chunk, samples (50 ms): shorter audio yields no embedding at all."""


def mel_frames(samples: int) -> int:
    """Mel frames of a chunk of ``samples`` samples (a centred STFT, last frame dropped)."""
    return (samples + PAD_SAMPLES) // HOP


def placeholder_count(frames: int) -> int:
    """Audio embeddings (= ``<audio_patch>`` placeholders) for ``frames`` mel frames.

    StepFun's ``compute_token_num``: the encoder sees ``frames − 2`` valid frames, its stride-2 conv and
    2× pooling divide by four, and the adaptor's stride-2 conv halves again.
    """
    return ((frames - 2 + 1) // 4 - 1) // 2 + 1


def chunk_bounds(
    samples: int, max_seconds: float = MAX_CHUNK_SECONDS, *, even_tail: bool = False
) -> list[tuple[int, int]]:
    """Split ``samples`` samples into ``(start, end)`` chunks of at most ``max_seconds``.

    As StepFun's front end cuts, by default: a tail shorter than :data:`MIN_SAMPLES` is a chunk of its
    own, with one placeholder or none. With ``even_tail`` it is evened out with the chunk before it
    instead, so the last 50 ms are heard through at least two embeddings (``model.local.audio_tail``).
    """
    step = int(max_seconds * SAMPLE_RATE_HZ)
    bounds = [(start, min(start + step, samples)) for start in range(0, samples, step)]
    if even_tail and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_SAMPLES:
        (a, _), (_, end) = bounds[-2], bounds[-1]
        middle = (a + end) // 2
        bounds[-2:] = [(a, middle), (middle, end)]
    return bounds
