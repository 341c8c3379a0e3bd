"""Choosing each next token: repetition penalty, extra logits processors, temperature, top-k and top-p.

transformers' repetition penalty gathers and scatters over the whole context and copies the 158,720 logits
every step. Here one round keeps the set of ids it has seen (the prompt's, then each new token's), and the
penalty rewrites only those entries in place, which gives the same logits. Top-k runs on the penalised
logits once; softmax and the nucleus cut then work on the ``top_k`` survivors only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from . import tokens as t


class Sampler:
    """One round's token choice; :meth:`choose` each step, then :meth:`add` the token chosen."""

    def __init__(
        self,
        prompt: torch.Tensor,
        *,
        temperature: float,
        top_p: float,
        top_k: int,
        repetition_penalty: float,
        processors: Sequence[LogitsProcessor] = (),
        ban_speech: bool = False,
    ) -> None:
        """Start a round whose prompt is ``prompt`` ``(1, n)``.

        The penalty applies to the prompt's ids and to every token added; ``processors`` run after it, with
        the context so far, as transformers' do.
        """
        self._temperature, self._top_p, self._top_k = temperature, top_p, top_k
        self._penalty = repetition_penalty
        self._processors = list(processors)
        self._ban_speech = ban_speech
        self._context = prompt
        self._seen = set(prompt[0].tolist())
        self._seen_ids = torch.tensor(sorted(self._seen), dtype=torch.long, device=prompt.device)

    def add(self, token: int) -> None:
        """Record the token chosen, for the penalty and the processors' context."""
        device = self._seen_ids.device
        if token not in self._seen:
            self._seen.add(token)
            self._seen_ids = torch.cat([self._seen_ids, torch.tensor([token], device=device)])
        if self._processors:  # only they read the whole context
            self._context = torch.cat([self._context, torch.tensor([[token]], device=device)], dim=1)

    @torch.inference_mode()
    def choose(self, logits: torch.Tensor) -> int:
        """The next token from ``(1, vocab)`` logits, which are changed in place."""
        scores = logits
        if self._penalty != 1.0:
            picked = scores[0, self._seen_ids]
            penalised = torch.where(picked < 0, picked * self._penalty, picked / self._penalty)
            scores[0, self._seen_ids] = penalised
        for processor in self._processors:
            scores = processor(self._context, scores)
        if self._ban_speech:
            # Text-only answers: no TTS section, no speech tokens.
            scores[:, t.AUDIO_0 : t.LAST_ID + 1] = -float("inf")
            scores[:, t.TTS_START] = -float("inf")
        values, indices = scores[0].topk(min(self._top_k, scores.shape[-1]))
        if not torch.isfinite(values[0]):
            return t.EOT  # every token was ruled out: end the answer rather than sample noise
        if self._temperature <= 0:
            return int(indices[0].item())
        probabilities = torch.softmax(values / self._temperature, dim=-1)
        if self._top_p < 1.0:
            outside = probabilities.cumsum(-1) - probabilities >= self._top_p
            probabilities = probabilities.masked_fill(outside, 0.0)
        choice = torch.multinomial(probabilities, 1)
        return int(indices[choice].item())
