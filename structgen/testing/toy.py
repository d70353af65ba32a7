"""Toy language models with a handful of tokens, for tests whose answers can be enumerated."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from structgen.decoding.models import LanguageModel, ModelSession, Prompt, check_keep_counts
from structgen.vocab import Vocabulary


class ToyModel(LanguageModel):
    """A model over ``tokens`` whose next-token distribution is ``next_probs(context_ids)``.

    ``next_probs`` receives the ids generated so far (a tuple; the prompt is always ``""``) and
    returns ``len(tokens) + 1`` probabilities, the last for EOS (id ``len(tokens)``).
    """

    def __init__(self, tokens: Sequence[bytes],
                 next_probs: Callable[[tuple[int, ...]], Sequence[float]]):
        self.tokens = [bytes(t) for t in tokens]
        self.eos_token_id = len(self.tokens)
        self.vocab = Vocabulary(self.tokens + [None], eos_token_ids=[self.eos_token_id],
                                name="toy")
        self.next_probs = next_probs

    def encode_prompt(self, prompt: Prompt, chat: bool | None = None) -> list[int]:
        if prompt != "":
            raise ValueError("a ToyModel's prompt is the empty string")
        return []

    def start(self, contexts: list[list[int]]) -> ToySession:
        return ToySession(self, [tuple(c) for c in contexts])


class ToySession(ModelSession):
    """The contexts themselves: every call recomputes ``next_probs`` from them, so rolling back
    is truncating and the answers are exact."""

    def __init__(self, model: ToyModel, contexts: list[tuple[int, ...]]):
        self._model = model
        self._contexts = contexts
        self._extended: int | None = None  # k of the last extend, until keep

    def _distribution(self, context: tuple[int, ...]) -> torch.Tensor:
        """float64 log-probabilities of the token after ``context``."""
        size = self._model.vocab.size
        probs = torch.as_tensor(self._model.next_probs(context), dtype=torch.float64)
        if probs.shape != (size,):
            raise ValueError(f"next_probs must return {size} probabilities, got {probs.shape}")
        if (probs < 0).any() or abs(float(probs.sum()) - 1) > 1e-6:
            raise ValueError("next_probs must return a probability distribution")
        return torch.log(probs / probs.sum())

    def logprobs(self) -> torch.Tensor:
        if not self._contexts:
            return torch.zeros((0, self._model.vocab.size))
        return torch.stack([self._distribution(c) for c in self._contexts]).float()

    def append(self, tokens: torch.Tensor) -> None:
        self._extended = None
        self._contexts = [c + (int(t),) for c, t in zip(self._contexts, tokens.tolist())]

    def extend(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"extend() needs a (rows, k >= 1) tensor, got {tuple(tokens.shape)}")
        k = tokens.shape[1]
        self._contexts = [c + tuple(t) for c, t in zip(self._contexts, tokens.tolist())]
        self._extended = k
        size = self._model.vocab.size
        if not self._contexts:
            return torch.zeros((0, k + 1, size))
        return torch.stack([
            torch.stack([self._distribution(c[: len(c) - k + j]) for j in range(k + 1)])
            for c in self._contexts
        ]).float()

    def keep(self, counts: torch.Tensor) -> None:
        k, self._extended = self._extended, None
        counts = check_keep_counts(counts, k, len(self._contexts))
        self._contexts = [c[: len(c) - k + n] for c, n in zip(self._contexts, counts.tolist())]

    def select(self, rows: torch.Tensor) -> None:
        self._extended = None
        self._contexts = [self._contexts[i] for i in rows.tolist()]
