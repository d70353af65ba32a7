"""Language models behind one small protocol, so a toy model in a test and a transformer on a GPU
go through the same decode loop.

A ``LanguageModel`` turns prompts into token ids and opens a ``ModelSession`` over a batch of
contexts. A session holds the incremental cache (for transformers, the KV cache) and answers one
question: the next-token log-probabilities of every row. Rows are appended to, selected and
reordered as the loop drops finished sequences (and, later, as SMC resamples particles).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any

import torch

from structgen.vocab import Vocabulary

Message = dict[str, str]
Prompt = str | list[Message]


class ModelSession(ABC):
    """The incremental state of a batch of contexts inside a model."""

    @abstractmethod
    def logprobs(self) -> torch.Tensor:
        """Log-probabilities of the next token for every row: float32 ``(rows, vocab.size)``."""

    @abstractmethod
    def append(self, tokens: torch.Tensor) -> None:
        """Append one token per row (a ``(rows,)`` int64 tensor) and advance the cache."""

    @abstractmethod
    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (int64 indices, repeats allowed), in that order."""


class LanguageModel(ABC):
    """Anything that scores next tokens: a vocabulary, prompt encoding, and sessions."""

    vocab: Vocabulary

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @abstractmethod
    def encode_prompt(self, prompt: Prompt, chat: bool | None = None) -> list[int]:
        """Token ids of ``prompt``; a conversation (and by default a string, for chat models) is
        rendered with the model's chat template, ready for the assistant's answer."""

    @abstractmethod
    def start(self, contexts: list[list[int]]) -> ModelSession:
        """Open a session over ``contexts`` (one list of ids per row) and read them in."""


class TransformersModel(LanguageModel):
    """A Hugging Face causal LM and its tokenizer: KV cache, left padding, any device.

    The model's own ``generation_config`` is never consulted: sampling settings come only from
    the sampler passed to :func:`structgen.generate`.
    """

    def __init__(self, model: Any, tokenizer: Any, vocab: Vocabulary | None = None):
        self.model = model
        self.tokenizer = tokenizer
        width = model.get_output_embeddings().weight.shape[0]
        self.vocab = vocab or Vocabulary.from_tokenizer(tokenizer, vocab_size=width)
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.vocab.eos_token_ids[0]
        # transformers 5 renamed ``past_key_values`` to ``cache``; custom models may differ.
        parameters = inspect.signature(model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self.accepts_logits_to_keep = "logits_to_keep" in parameters

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_prompt(self, prompt: Prompt, chat: bool | None = None) -> list[int]:
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if isinstance(prompt, str):
            if not (has_template if chat is None else chat):
                return list(self.tokenizer.encode(prompt, add_special_tokens=False))
            prompt = [{"role": "user", "content": prompt}]
        if not has_template:
            raise ValueError("this tokenizer has no chat template; pass the prompt as a string")
        ids = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    def start(self, contexts: list[list[int]]) -> TransformersSession:
        return TransformersSession(self, contexts)


class TransformersSession(ModelSession):
    """A batch in a transformers model: left-padded prompts, attention mask, KV cache."""

    def __init__(self, model: TransformersModel, contexts: list[list[int]]):
        if any(len(c) == 0 for c in contexts):
            raise ValueError("every context needs at least one token")
        self._model = model
        device = model.device
        width = max(map(len, contexts))
        ids = torch.full((len(contexts), width), model.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(contexts), width), dtype=torch.long)
        for row, context in enumerate(contexts):
            ids[row, width - len(context):] = torch.tensor(context, dtype=torch.long)
            attention[row, width - len(context):] = 1
        self._attention = attention.to(device)
        self._cache = None
        self._logprobs = self._forward(ids.to(device))

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = (self._attention.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        kwargs = {self._model.cache_argument: self._cache}
        if self._model.accepts_logits_to_keep:
            kwargs["logits_to_keep"] = 1  # the prefill needs only the last position's logits
        with torch.inference_mode():
            out = self._model.model(input_ids=ids, attention_mask=self._attention,
                                    position_ids=positions, use_cache=True, **kwargs)
        self._cache = getattr(out, "cache", None) or out.past_key_values
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)

    def logprobs(self) -> torch.Tensor:
        return self._logprobs

    def append(self, tokens: torch.Tensor) -> None:
        tokens = tokens.to(self._attention.device).view(-1, 1)
        ones = torch.ones_like(tokens)
        self._attention = torch.cat([self._attention, ones], dim=1)
        self._logprobs = self._forward(tokens)

    def select(self, rows: torch.Tensor) -> None:
        rows = rows.to(self._attention.device)
        self._attention = self._attention[rows]
        self._logprobs = self._logprobs[rows]
        self._cache.reorder_cache(rows)  # an index_select per layer: drops, repeats, reorders


def from_transformers(model: Any, tokenizer: Any) -> TransformersModel:
    """Wrap a Hugging Face causal LM and its tokenizer for :func:`structgen.generate`."""
    return TransformersModel(model, tokenizer)


def load_model(name: str | None = None, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None) -> TransformersModel:
    """The embedded default model (SmolLM2-135M-Instruct) with no argument; otherwise any causal
    LM from a local folder or a hub id (``AutoModelForCausalLM.from_pretrained``)."""
    if name is None:
        from structgen.embedded import load_default_hf

        model, tokenizer = load_default_hf(device=device, dtype=dtype)
        return TransformersModel(model, tokenizer)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype or "auto")
    model.to(torch.device(device or "cpu")).eval()
    return TransformersModel(model, AutoTokenizer.from_pretrained(name))
