"""Toy language models with a handful of tokens, for tests whose answers can be enumerated."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from structgen.decoding.models import LanguageModel, ModelSession, Prompt
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
    def __init__(self, model: ToyModel, contexts: list[tuple[int, ...]]):
        self._model = model
        self._contexts = contexts

    def logprobs(self) -> torch.Tensor:
        size = self._model.vocab.size
        rows = []
        for context in self._contexts:
            probs = torch.as_tensor(self._model.next_probs(context), dtype=torch.float64)
            if probs.shape != (size,):
                raise ValueError(f"next_probs must return {size} probabilities, got {probs.shape}")
            if (probs < 0).any() or abs(float(probs.sum()) - 1) > 1e-6:
                raise ValueError("next_probs must return a probability distribution")
            rows.append(torch.log(probs / probs.sum()))
        return torch.stack(rows).float() if rows else torch.zeros((0, size))

    def append(self, tokens: torch.Tensor) -> None:
        self._contexts = [c + (int(t),) for c, t in zip(self._contexts, tokens.tolist())]

    def select(self, rows: torch.Tensor) -> None:
        self._contexts = [self._contexts[i] for i in rows.tolist()]
