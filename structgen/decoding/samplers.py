"""Token choice from masked log-probabilities: greedy and ancestral sampling.

Masking samplers see the model's log-probabilities with disallowed tokens at ``-inf`` and
renormalise over the rest: exactly the *local* constrained distribution p(x_t | x_<t, allowed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


class Sampler(ABC):
    """Chooses one token per row from masked log-probabilities."""

    @abstractmethod
    def choose(self, masked_logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One token id per row of ``masked_logprobs`` ``(rows, vocab)``, as int64 ``(rows,)``."""


@dataclass(frozen=True)
class Greedy(Sampler):
    """The most likely allowed token (ties: the lowest id)."""

    def choose(self, masked_logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return masked_logprobs.argmax(dim=-1)


@dataclass(frozen=True)
class Sample(Sampler):
    """Sampling from the masked distribution, tempered and truncated.

    ``temperature`` divides the log-probabilities (0 means greedy); ``top_k`` keeps the k most
    likely allowed tokens; ``top_p`` keeps the smallest set of most likely allowed tokens whose
    mass reaches ``top_p``. Truncation happens after masking, so it never removes every allowed
    token.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be >= 1")

    def distribution(self, masked_logprobs: torch.Tensor) -> torch.Tensor:
        """The probabilities this sampler draws from, ``(rows, vocab)``."""
        scores = masked_logprobs / self.temperature
        if self.top_k is not None and self.top_k < scores.shape[-1]:
            kth = scores.topk(self.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if self.top_p < 1:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly above each token
            drop_sorted = before >= self.top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            probs = probs.masked_fill(drop, 0.0)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs

    def choose(self, masked_logprobs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.temperature == 0:
            return masked_logprobs.argmax(dim=-1)
        probs = self.distribution(masked_logprobs.float())
        return torch.multinomial(probs, 1, generator=generator).view(-1)
