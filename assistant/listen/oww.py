"""openWakeWord's streaming pipeline, run lean on the model files bundled with pyopen-wakeword.

The stream is cut exactly as pyopen-wakeword 1.1.0 cuts it, so the scores are the same (to float rounding
in XNNPACK's kernels):

- mel model: 1,760 samples in (110 ms), 8 frames of 32 mel bands out, so one call per 1,280 samples
  (80 ms); consecutive windows overlap by 480 samples; each value is scaled as ``x / 10 + 2``.
- embedding model: 76 mel frames in (about 0.76 s), one 96-value embedding out; one call per 8 frames.
- word classifier: the last 16 embeddings in (1.28 s), one probability out; one per embedding, and none
  until 16 embeddings have arrived since it was reset.
- the stream starts after zeros, so words score from the first chunk on (pyopen-wakeword prepends 8 s;
  2.56 s give the same scores: nothing looks further back than :data:`CONTEXT_SECONDS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tflite import TfLiteLibrary, TfLiteModel

RATE_HZ = 16_000
MEL_WINDOW_SAMPLES = 1760
"""Samples the mel model takes per call."""
MEL_STEP_SAMPLES = 1280
"""Samples between the starts of consecutive mel windows (80 ms)."""
MEL_BANDS = 32
EMBEDDING_FRAMES = 76
"""Mel frames the embedding model takes per call."""
EMBEDDING_STEP_FRAMES = 8
"""Mel frames between consecutive embeddings (one mel call's worth)."""
EMBEDDING_SIZE = 96
CLASSIFIER_EMBEDDINGS = 16
"""Embeddings a bundled word classifier takes (its input may say otherwise for a custom model)."""
_MEL_CALLS_PER_EMBEDDING = -(-EMBEDDING_FRAMES // EMBEDDING_STEP_FRAMES)  # 10 (9.5 rounded up)
CONTEXT_SAMPLES = MEL_WINDOW_SAMPLES + (CLASSIFIER_EMBEDDINGS - 1 + _MEL_CALLS_PER_EMBEDDING - 1) * MEL_STEP_SAMPLES
"""Samples one score depends on: 16 embeddings of 10 mel windows each, 25 windows in all (32,480)."""
CONTEXT_SECONDS = CONTEXT_SAMPLES / RATE_HZ
"""Audio that one score depends on (2.03 s): the audio before a chunk that decides every score it brings,
and how long a sound goes on changing scores after it ended."""
_PRIMING_SAMPLES = 32 * MEL_STEP_SAMPLES
"""Zeros the stream starts with: more than the context, and a whole number of steps."""


class MelEmbeddingFrontEnd:
    """16 kHz int16 PCM in, 96-value embeddings out (one per 80 ms), streaming."""

    def __init__(self, library: TfLiteLibrary, models_dir: Path, *, xnnpack: bool = True) -> None:
        self._mel = TfLiteModel(
            library, models_dir / "melspectrogram.tflite", input_shape=(1, MEL_WINDOW_SAMPLES), xnnpack=xnnpack
        )
        self._embed = TfLiteModel(
            library,
            models_dir / "embedding_model.tflite",
            input_shape=(1, EMBEDDING_FRAMES, MEL_BANDS, 1),
            xnnpack=xnnpack,
        )
        self._samples = np.zeros(_PRIMING_SAMPLES, dtype=np.float32)
        """Audio from the start of the next mel window on."""
        self._mels = np.zeros((0, MEL_BANDS), dtype=np.float32)
        """Mel frames from the start of the next embedding window on."""

    def process(self, pcm: bytes) -> list[np.ndarray]:
        """Feed audio; return the embeddings it completes, oldest first."""
        fresh = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        samples = np.concatenate((self._samples, fresh))
        embeddings: list[np.ndarray] = []
        start = 0
        while len(samples) - start >= MEL_WINDOW_SAMPLES:
            frames = self._mel.run(samples[start : start + MEL_WINDOW_SAMPLES]) / 10 + 2
            start += MEL_STEP_SAMPLES
            self._mels = np.concatenate((self._mels, frames.reshape(-1, MEL_BANDS)))
            while len(self._mels) >= EMBEDDING_FRAMES:
                embeddings.append(self._embed.run(self._mels[:EMBEDDING_FRAMES]).copy())
                self._mels = self._mels[EMBEDDING_STEP_FRAMES:]
        self._samples = samples[start:]
        return embeddings

    def close(self) -> None:
        """Free both models."""
        self._mel.close()
        self._embed.close()


class WordClassifier:
    """One word's classifier over the last embeddings: a probability per embedding."""

    def __init__(self, library: TfLiteLibrary, path: Path, *, xnnpack: bool = True) -> None:
        self._model = TfLiteModel(library, path, xnnpack=xnnpack)
        shape = self._model.input_shape
        if len(shape) != 3 or shape[2] != EMBEDDING_SIZE:
            self._model.close()
            raise ValueError(f"{path}: expected an input of [1, windows, {EMBEDDING_SIZE}], got {list(shape)}")
        self._window = np.zeros((shape[1], EMBEDDING_SIZE), dtype=np.float32)
        self._seen = 0

    def process(self, embedding: np.ndarray) -> float | None:
        """Add one embedding; return the probability once the window is full (None before)."""
        self._window[:-1] = self._window[1:]
        self._window[-1] = embedding
        self._seen += 1
        if self._seen < len(self._window):
            return None
        return float(self._model.run(self._window)[0])

    def reset(self) -> None:
        """Forget the embeddings heard: the next probability comes after a full window of new ones."""
        self._seen = 0

    def close(self) -> None:
        """Free the model."""
        self._model.close()


def embed_pcm(front_end: MelEmbeddingFrontEnd, pcm: bytes) -> np.ndarray:
    """A whole recording's embeddings from a fresh front end, as a (frames, 96) array: one per 80 ms of it.

    The front end's first embeddings hear only the zeros it starts with; they are left out.
    """
    rows = front_end.process(pcm)
    rows = rows[max(0, len(rows) - len(pcm) // 2 // MEL_STEP_SAMPLES) :]
    if not rows:
        return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
    return np.stack([row.reshape(-1) for row in rows]).astype(np.float32)
