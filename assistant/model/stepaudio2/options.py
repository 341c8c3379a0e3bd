"""How the in-process engine generates (settings turned into options) and what it measured of a round."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import LocalModelSettings


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """How rounds are generated and how much history is kept."""

    max_new_tokens: int = 2048
    """Most tokens generated per round."""
    history_tokens: int = 8192
    """Token budget of the conversation, system prompt and tools included."""
    temperature: float = 0.7
    """Sampling temperature; 0 picks the most likely token."""
    top_p: float = 0.9
    """Nucleus sampling mass, 0 to 1."""
    top_k: int = 50
    """Tokens considered at each step (transformers' default, which StepFun's examples ran with)."""
    repetition_penalty: float = 1.05
    """Penalty on tokens already in the context; 1.0 disables it."""
    speech_chunk_tokens: int = 25
    """Most speech tokens per ``ModelSpeech`` event (25 = 1 s); smaller chunks flush at every text slot."""
    max_cached_conversations: int = 2
    """KV caches kept in memory; older conversations keep their history and are recomputed if resumed."""
    kv_cache: Literal["dynamic", "static"] = "dynamic"
    """``dynamic`` grows with the conversation; ``static`` is allocated once per cached conversation at
    ``history_tokens + max_new_tokens`` positions (more memory), so decode steps keep fixed shapes."""
    compile_decode: bool = False
    """Compile the decode step with ``torch.compile`` (needs ``kv_cache: static``); on CUDA in
    ``reduce-overhead`` mode, which replays it as a CUDA graph. The first steps pay for compilation."""
    even_audio_tail: bool = False
    """Even out an audio tail under 50 ms with the 25 s chunk before it, instead of StepFun's cut."""

    @classmethod
    def from_settings(cls, settings: LocalModelSettings, device: str, *, row_products: int = 0) -> GenerationOptions:
        """Options from the ``model.local`` settings, for a model on ``device`` (a torch device type).

        ``row_products`` is how many of the decoder layers' products run on the compiled one-row product
        (``cpu_decode.swapped``): some means the compiler works here and the layers are large enough for it
        (a tiny test model's are not; its ``lm_head`` does not count).
        """
        decode = settings.decode
        if decode == "auto":
            # bench/model.py on a CPU, 1.5B-class widths: the compiled static step is the fastest (×0.83-0.96
            # of dynamic at 256 to 8,000 tokens, three runs), static no slower than dynamic. Compiling costs seconds
            # of warm-up, so only where the one-row product already compiled (a real-sized model, a
            # working compiler). No GPU has been measured yet, so GPUs keep dynamic.
            decode = ("compiled" if row_products else "static") if device == "cpu" else "dynamic"
        return cls(
            max_new_tokens=settings.max_new_tokens,
            history_tokens=settings.history_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            repetition_penalty=settings.repetition_penalty,
            kv_cache="dynamic" if decode == "dynamic" else "static",
            compile_decode=decode == "compiled",
            even_audio_tail=settings.audio_tail == "even",
        )


@dataclass(slots=True)
class RoundStats:
    """Measurements of the last round, for tests and benchmarks."""

    prompt_tokens: int = 0
    """Tokens of the whole prompt the model read."""
    reused_tokens: int = 0
    """Prompt tokens taken from the KV cache instead of recomputed."""
    prefill_tokens: int = 0
    """Prompt tokens computed in the prefill."""
    audio_chunks: int = 0
    """Audio chunks encoded this round."""
    decode_steps: int = 0
    """Tokens generated."""
    prefill_seconds: float = 0.0
    """Wall time of audio encoding plus prefill."""
    decode_seconds: float = 0.0
    """Wall time of the decode steps, sampling included."""
    sample_seconds: float = 0.0
    """Wall time of choosing the tokens (penalty, processors, top-k/top-p), part of ``decode_seconds``."""
    cancelled: bool = False
    """True when the consumer stopped the round."""
