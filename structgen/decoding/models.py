"""Language models behind one small protocol, so a toy model in a test and a transformer on a GPU
go through the same decode loop.

A ``LanguageModel`` turns prompts into token ids and opens a ``ModelSession`` over a batch of
contexts. A session holds the incremental cache (for transformers, the KV cache) and answers one
question: the next-token log-probabilities of every row. Rows are appended to, selected and
reordered as the loop drops finished sequences (and, later, as SMC resamples particles).
Speculative decoding scores several drafted tokens in one pass (``extend``) and then keeps, row by
row, only the ones it accepted (``keep``).
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

    @abstractmethod
    def extend(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``k >= 1`` tokens to every row (a ``(rows, k)`` int64 tensor) in one pass.

        Returns:
            float32 ``(rows, k + 1, vocab.size)`` log-probabilities: index 0 is the distribution
            before the first new token (what :meth:`logprobs` returned before the call), index
            ``j`` the one after the ``j``-th new token. :meth:`logprobs` becomes index ``k``.
        """

    @abstractmethod
    def keep(self, counts: torch.Tensor) -> None:
        """Undo part of the last :meth:`extend`: row ``r`` keeps its first ``counts[r]`` new tokens.

        ``counts`` is a ``(rows,)`` integer tensor with values in ``0..k``. Afterwards
        :meth:`logprobs` of row ``r`` is index ``counts[r]`` of the extend result, and later calls
        go on as if the discarded tokens had never been appended.

        Raises:
            ValueError: the previous call on the session was not :meth:`extend`, or ``counts``
                has the wrong shape or a value outside ``0..k``.
        """


def check_keep_counts(counts: torch.Tensor, extended: int | None, rows: int) -> torch.Tensor:
    """``counts`` as a CPU int64 tensor, validated for :meth:`ModelSession.keep` on a session of
    ``rows`` rows whose last call was an ``extend`` of ``extended`` tokens (None: it was not)."""
    if extended is None:
        raise ValueError("keep() is only valid right after extend()")
    counts = torch.as_tensor(counts, dtype=torch.long).cpu()
    if counts.shape != (rows,):
        raise ValueError(f"keep() needs one count per row: shape ({rows},), got {tuple(counts.shape)}")
    if rows and not (0 <= int(counts.min()) and int(counts.max()) <= extended):
        raise ValueError(f"keep() counts must lie in 0..{extended}, got {counts.tolist()}")
    return counts


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

    def encode_text(self, text: str) -> list[int] | None:
        """How the model's tokenizer spells ``text`` (no special tokens, no chat template), or
        None for a model without a tokenizer. Drafts use it to spell text as the model would."""
        return None


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

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def start(self, contexts: list[list[int]]) -> TransformersSession:
        return TransformersSession(self, contexts)


class TransformersSession(ModelSession):
    """A batch in a transformers model: left-padded prompts, attention mask, KV cache.

    Positions come from the attention mask's running sum, so a column whose mask is 0 (left
    padding, or a drafted token that ``keep`` discarded) is a hole that no later token sees or
    counts. ``keep`` crops the cache's tail where every row discarded and leaves holes elsewhere;
    that is exact for full-attention caches, and refused for caches ``crop`` cannot restore
    (recurrent or linear-attention layers).
    """

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
        self._extended: torch.Tensor | None = None  # the last extend's result, until keep
        self._logprobs = self._forward(ids.to(device), 1)[:, -1]

    def _forward(self, ids: torch.Tensor, positions_out: int) -> torch.Tensor:
        """Read ``ids`` (the columns just added to the attention mask) into the cache; returns
        the log-probabilities after each of the last ``positions_out`` of them."""
        positions = (self._attention.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        kwargs = {self._model.cache_argument: self._cache}
        if self._model.accepts_logits_to_keep:
            kwargs["logits_to_keep"] = positions_out  # a prefill needs only its last position
        with torch.inference_mode():
            out = self._model.model(input_ids=ids, attention_mask=self._attention,
                                    position_ids=positions, use_cache=True, **kwargs)
        self._cache = getattr(out, "cache", None) or out.past_key_values
        return torch.log_softmax(out.logits[:, -positions_out:, :].float(), dim=-1)

    def logprobs(self) -> torch.Tensor:
        return self._logprobs

    def _read(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens`` (``(rows, k)``) to every row; the log-probabilities after each."""
        tokens = tokens.to(self._attention.device)
        self._attention = torch.cat([self._attention, torch.ones_like(tokens)], dim=1)
        return self._forward(tokens, tokens.shape[1])

    def append(self, tokens: torch.Tensor) -> None:
        self._extended = None
        self._logprobs = self._read(tokens.view(-1, 1))[:, -1]

    def extend(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"extend() needs a (rows, k >= 1) tensor, got {tuple(tokens.shape)}")
        after = self._read(tokens)
        self._extended = torch.cat([self._logprobs.unsqueeze(1), after], dim=1)
        self._logprobs = after[:, -1]
        return self._extended

    def keep(self, counts: torch.Tensor) -> None:
        extended, self._extended = self._extended, None
        k = None if extended is None else extended.shape[1] - 1
        counts = check_keep_counts(counts, k, self._attention.shape[0])
        fewest, most = (int(counts.min()), int(counts.max())) if len(counts) else (k, k)
        if fewest < k and not getattr(self._cache, "is_croppable", True):
            raise ValueError("this model's cache cannot be rolled back (recurrent or "
                             "linear-attention layers), so it cannot discard drafted tokens")
        tail = k - most  # columns that no row keeps
        if tail:
            self._cache.crop(-tail)  # negative: remove that many (a positive n keeps n in 4.x)
            self._attention = self._attention[:, :-tail]
        width = k - tail
        if width:
            counts = counts.to(self._attention.device)
            kept = torch.arange(width, device=counts.device) < counts.unsqueeze(1)
            self._attention[:, -width:] = kept.to(self._attention.dtype)
        self._logprobs = extended[torch.arange(len(counts), device=extended.device),
                                  counts.to(extended.device)]

    def select(self, rows: torch.Tensor) -> None:
        rows = rows.to(self._attention.device)
        self._extended = None
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
