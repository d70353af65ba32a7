"""Hugging Face ``transformers`` integration: structgen constraints inside ``model.generate`` and
a ``"structured-generation"`` pipeline task.

* :class:`ConstraintLogitsProcessor` plugs a constraint into ``transformers``' own decode loop
  (greedy, sampling, beam search, batches), for code that already calls ``model.generate``;
* :class:`StructuredGenerationPipeline`, registered as the ``"structured-generation"`` task when
  this module is imported, runs structgen's own decode loop (:func:`structgen.generate`) behind
  the ``pipeline(...)`` interface, so its outputs are exactly structgen's.

The front door of the pipeline: this module depends on everything, and nothing depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils.chat_template_utils import Chat

import structgen
from structgen.automata.matcher import Matcher
from structgen.compiler import compile as compile_constraint
from structgen.constraints import Constraint, JsonSchema, json_schema
from structgen.constraints import grammar as lark_grammar
from structgen.decoding.drafts import Draft
from structgen.decoding.models import from_transformers
from structgen.decoding.samplers import Greedy, Sample, Sampler
from structgen.errors import IncompleteOutput
from structgen.kernels.torch_masks import apply_token_bitmask
from structgen.vocab import Vocabulary

__all__ = ["ConstraintLogitsProcessor", "StructuredGenerationPipeline"]

TASK = "structured-generation"

# A row whose sequence has ended (EOS, or a token generate forced after it): only EOS or padding
# may follow. ``None`` in the frontier, so a lookup miss needs a distinct sentinel.
_ENDED = None
_MISSING = object()


def _packed(token_ids: Iterable[int], num_words: int) -> np.ndarray:
    """A packed ``uint32`` mask with exactly ``token_ids`` allowed (ids past the mask dropped)."""
    words = np.zeros(num_words, dtype=np.uint32)
    for token_id in token_ids:
        if 0 <= token_id < 32 * num_words:
            words[token_id >> 5] |= np.uint32(1 << (token_id & 31))
    return words


class ConstraintLogitsProcessor(LogitsProcessor):
    r"""
    [`LogitsProcessor`] that keeps the generated text inside a structgen constraint: at each step,
    every token that would take the text generated so far out of the constraint's language gets a
    score of `-inf`, and EOS is allowed exactly when the text is a complete match. Works with
    greedy search, sampling, beam search (also with `num_return_sequences`) and left-padded batches.

    The constraint applies to the tokens generated after the prompt: the prompt is `input_ids` as
    the first call of a `generate` run sees it (one length for every row of a left-padded batch).
    The processor keeps one matcher per distinct generated sequence, keyed by the sequence itself,
    so beam search may reorder, duplicate and drop rows between steps: each step advances a row's
    matcher from its parent prefix by one token. A row whose sequence has ended (EOS, then the
    padding `generate` forces after it) may only continue with EOS or padding. Columns of `scores`
    past the vocabulary (padded embeddings) are never allowed.

    One instance can serve several `generate` calls: an input that does not continue the
    previous call's (same rows, same prompt, at least one generated token and at most one more
    than last time) starts afresh. Feeding a call's output straight back as the next prompt
    looks like one more step of that call: call [`~ConstraintLogitsProcessor.reset`] first. An
    instance holds per-call state, so do not share one between threads. Assisted generation
    (`prompt_lookup_num_tokens`, `assistant_model`) works: it scores its candidate positions one
    after another, then goes back to the last one kept, and greedy outputs stay those of plain
    decoding.

    Args:
        constraint (`structgen.Constraint`):
            What the generated text must match: `structgen.regex(...)`, `structgen.choice(...)`.
        tokenizer (`PreTrainedTokenizerBase`):
            The model's tokenizer; the constraint is compiled against its vocabulary.
        vocab_size (`int`, *optional*):
            The model's logits width when it is wider than the tokenizer (padded embeddings).
            Without it the vocabulary is the tokenizer's, and the extra columns of wider `scores`
            are masked all the same.
        eos_token_id (`int | list[int]`, *optional*):
            The ids that end a sequence. Defaults to the tokenizer's EOS (plus `<|im_end|>` for
            ChatML templates); pass `model.generation_config.eos_token_id` when the model stops on
            other ids.

    Raises:
        `structgen.StructgenError`: the constraint cannot be compiled against the vocabulary
            (`EmptyLanguage`, `VocabularyError`, ...).

    Examples:

    ```python
    >>> import re
    >>> import structgen as sg
    >>> from structgen.embedded import load_default_hf
    >>> from structgen.integrations.hf import ConstraintLogitsProcessor

    >>> model, tokenizer = load_default_hf()
    >>> messages = [{"role": "user", "content": "In which year did the Berlin Wall fall?"}]
    >>> inputs = tokenizer.apply_chat_template(
    ...     messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ... )
    >>> prompt_length = inputs["input_ids"].shape[1]
    >>> processor = ConstraintLogitsProcessor(sg.regex(r"(19|20)\d\d"), tokenizer)
    >>> outputs = model.generate(
    ...     **inputs, logits_processor=[processor], max_new_tokens=8, do_sample=False
    ... )
    >>> tokenizer.decode(outputs[0, prompt_length:], skip_special_tokens=True)
    '1989'

    >>> # Beam search reorders rows between steps; every returned beam stays inside the constraint.
    >>> outputs = model.generate(
    ...     **inputs, logits_processor=[processor], max_new_tokens=8, num_beams=3,
    ...     num_return_sequences=3,
    ... )
    >>> texts = tokenizer.batch_decode(outputs[:, prompt_length:], skip_special_tokens=True)
    >>> all(re.fullmatch(r"(19|20)\d\d", text) for text in texts)
    True
    ```
    """

    # The state follows the rows of one `generate` call; continuous batching mixes many requests.
    supports_continuous_batching = False

    def __init__(self, constraint: Constraint, tokenizer: Any, vocab_size: int | None = None, *,
                 eos_token_id: int | list[int] | None = None):
        if isinstance(eos_token_id, int):
            eos_token_id = [eos_token_id]
        self.vocab = Vocabulary.from_tokenizer(tokenizer, vocab_size=vocab_size,
                                               eos_token_ids=eos_token_id)
        self.token_constraint = compile_constraint(constraint, self.vocab)
        self._root = self.token_constraint.matcher()
        self._eos = frozenset(self.vocab.eos_token_ids)
        num_words = self.token_constraint.num_words
        pad = getattr(tokenizer, "pad_token_id", None)
        ended = set(self._eos) | ({pad} if pad is not None else set())
        self._ended_mask = _packed(ended, num_words)
        self._bitmask = np.empty((0, num_words), dtype=np.uint32)
        self.reset()

    def reset(self) -> None:
        """Forget the current generation: the next call starts a new one, its input the prompt."""
        self._prompt: torch.Tensor | None = None
        self._length = 0
        self._frontier: dict[tuple[int, ...], Matcher | None] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._starts_new_generation(input_ids):
            self._prompt = input_ids.clone()
            self._frontier = {(): self._root}
        self._length = input_ids.shape[1]
        generated = input_ids[:, self._prompt.shape[1]:].tolist()
        bitmask = self._rows(len(generated))
        frontier: dict[tuple[int, ...], Matcher | None] = {}
        for row, ids in enumerate(generated):
            key = tuple(ids)
            matcher = frontier.get(key, _MISSING)
            if matcher is _MISSING:
                matcher = frontier[key] = self._matcher_for(key)
            if matcher is _ENDED:
                bitmask[row] = self._ended_mask
            else:
                matcher.fill_mask(bitmask, row)
        self._frontier = frontier
        return apply_token_bitmask(scores, bitmask)

    def _starts_new_generation(self, input_ids: torch.Tensor) -> bool:
        """Whether ``input_ids`` begins a new ``generate`` call rather than continuing the last:
        a continuation has the same rows, the same prompt columns (beam search reorders rows
        only among the beams of one input, which share their prompt), and at least one
        generated token but at most one more than the last call (assisted generation scores
        its candidates one position after another, then goes back to the last one it kept)."""
        prompt = self._prompt
        if prompt is None or not prompt.shape[1] < input_ids.shape[1] <= self._length + 1:
            return True
        if input_ids.shape[0] != prompt.shape[0] or input_ids.device != prompt.device:
            return True
        return not torch.equal(input_ids[:, : prompt.shape[1]], prompt)

    def _rows(self, rows: int) -> np.ndarray:
        """The preallocated ``(rows, words)`` mask buffer, grown when a call has more rows."""
        if self._bitmask.shape[0] < rows:
            self._bitmask = np.empty((rows, self._bitmask.shape[1]), dtype=np.uint32)
        return self._bitmask[:rows]

    def _matcher_for(self, key: tuple[int, ...]) -> Matcher | None:
        """The matcher after the generated tokens ``key``: the parent prefix's matcher (from the
        previous step) advanced by the last token, or a replay from the start when the parent
        is unknown (after assisted generation went back). ``_ENDED`` once the sequence has
        ended."""
        if not key:
            return self._root
        parent = self._frontier.get(key[:-1], _MISSING)
        if parent is not _MISSING:
            return self._advance(parent, key[-1])
        matcher = self._root
        for token in key:
            matcher = self._advance(matcher, token)
        return matcher

    def _advance(self, parent: Matcher | None, token: int) -> Matcher | None:
        # A token the matcher rejects is one generate forced: padding after EOS, or a beam
        # candidate chosen at -inf when fewer allowed continuations than beams existed.
        if parent is _ENDED or token in self._eos:
            return _ENDED
        child = parent.copy()
        return child if child.advance(token) else _ENDED


# ------------------------------------------------------------------------------- pipeline task
def _constraint_from(regex: str | None, constraint: Constraint | None, schema: Any,
                     grammar: Any) -> Constraint | None:
    """The one constraint named by the pipeline's keywords; ``None`` when none is given."""
    given = {name: value for name, value in
             (("regex", regex), ("constraint", constraint), ("schema", schema),
              ("grammar", grammar)) if value is not None}
    if len(given) > 1:
        raise ValueError(
            f"pass one of regex=, constraint=, schema=, grammar=; got {', '.join(given)}"
        )
    if not given:
        return None
    name, value = given.popitem()
    if name == "regex":
        return structgen.regex(value)
    if name == "constraint":
        if not isinstance(value, Constraint):
            raise TypeError(
                f"constraint= takes a structgen constraint (structgen.regex(...), ...), "
                f"not {type(value).__name__}"
            )
        return value
    if name == "schema":
        # As in structgen.generate_json: objects hold only their declared properties, unless
        # the schema says otherwise.
        return json_schema(value, extra_properties="forbid")
    return lark_grammar(value)


def _sampler_from(do_sample: bool | None, temperature: float | None, top_p: float | None,
                  top_k: int | None) -> Sampler:
    if not do_sample:
        return Greedy()
    return Sample(temperature=1.0 if temperature is None else temperature,
                  top_p=1.0 if top_p is None else top_p, top_k=top_k)


class StructuredGenerationPipeline(Pipeline):
    r"""
    Constrained text generation with a causal LM through structgen's own decode loop: every output
    matches the constraint, and outputs are exactly those of [`structgen.generate`] on the same
    model, prompt and settings (the model's `generation_config` is never applied).

    Registered as the `"structured-generation"` task when `structgen.integrations.hf` is imported.

    Call it with a prompt (or a list of prompts) and at most one constraint keyword:

    - `regex` (`str`): the output must match this regular expression in full;
    - `constraint` (`structgen.Constraint`): any structgen constraint (`structgen.choice(...)`);
    - `schema`: a JSON Schema (`dict` or JSON text), a pydantic model class or a Python type,
      through `structgen.json_schema(schema, extra_properties="forbid")` (as in
      [`structgen.generate_json`]: objects hold only their declared properties unless the
      schema says otherwise);
    - `grammar`: a Lark grammar (text, a `.lark` file, or a ready grammar's name), through
      `structgen.grammar`.

    Without one the output is free text. A prompt is a string or a conversation (a list of
    `{"role": ..., "content": ...}` messages). A conversation is rendered with the tokenizer's chat
    template, ready for the assistant's answer; so is a string (as one user message) when the
    tokenizer has a chat template, as `structgen.generate` does. `chat=False` sends a string as it
    is.

    Generation keywords: `max_new_tokens` (default 256) and `do_sample` (default `False`: greedy);
    with `do_sample=True` also `temperature`, `top_p`, `top_k` (a `structgen.Sample`) and
    `num_return_sequences`. `seed` makes sampling reproducible. `draft` (and `draft_tokens`)
    decode speculatively, as in [`structgen.generate`]: `draft=[sg.ForcedDraft(),
    sg.PromptLookup()]` gives the same outputs in fewer forward passes. Other `generate`
    keywords (beam search, penalties, ...) are not part of structgen's loop and raise
    `TypeError`. Keywords given
    to `pipeline(...)` are defaults that each call's keywords override.

    Returns a list of `{"generated_text": text}` (one per returned sequence), or a list of those
    for a list of prompts. The text is the answer alone, without the prompt. Under a JSON Schema
    (`schema=`, or `constraint=structgen.json_schema(...)`) each record also has `"json"`: the
    document parsed and validated (a model instance for a pydantic model), and an output cut by
    `max_new_tokens` before the document is complete raises `structgen.IncompleteOutput` (its
    `partial` holds the text). The prompts of a list
    run one after another (`batch_size` must stay 1); [`structgen.generate`] decodes a batch in one
    loop.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> import structgen as sg
    >>> import structgen.integrations.hf  # registers "structured-generation"
    >>> from structgen.embedded import load_default_hf

    >>> model, tokenizer = load_default_hf()
    >>> pipe = pipeline("structured-generation", model=model, tokenizer=tokenizer, device="cpu")
    >>> pipe("In which year did the Berlin Wall fall?", regex=r"(19|20)\d\d", max_new_tokens=8)
    [{'generated_text': '1989'}]
    >>> pipe(
    ...     [{"role": "user", "content": "Is Paris the capital of France? Answer yes or no."}],
    ...     constraint=sg.choice(["yes", "no"]),
    ... )
    [{'generated_text': 'yes'}]
    >>> schema = {"type": "object", "properties": {"capital": {"type": "string"}}}
    >>> out = pipe("What is the capital of France? Answer in JSON.", schema=schema,
    ...            max_new_tokens=32)
    >>> out[0]["json"]
    {'capital': 'Paris'}
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.language_model = from_transformers(self.model, self.tokenizer)

    def __call__(self, inputs: Any, *args: Any, batch_size: int | None = None, **kwargs: Any):
        if (batch_size or self._batch_size or 1) > 1:
            raise ValueError(
                "structured-generation runs the prompts of a list one at a time (batch_size=1); "
                "structgen.generate(model, prompts, ...) decodes a batch in one loop"
            )
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(self, regex: str | None = None, constraint: Constraint | None = None,
                             schema: Any = None, grammar: Any = None, chat: bool | None = None,
                             max_new_tokens: int | None = None, do_sample: bool | None = None,
                             temperature: float | None = None, top_p: float | None = None,
                             top_k: int | None = None, num_return_sequences: int | None = None,
                             seed: int | None = None, draft: Draft | Sequence[Draft] | None = None,
                             draft_tokens: int | None = None, **unsupported: Any):
        if unsupported:
            raise TypeError(
                f"structured-generation does not support {', '.join(sorted(unsupported))}; it "
                "takes regex=, constraint=, schema=, grammar=, chat=, max_new_tokens=, "
                "do_sample=, temperature=, top_p=, top_k=, num_return_sequences=, seed=, draft= "
                "and draft_tokens="
            )
        preprocess_params = {} if chat is None else {"chat": chat}
        # Only what this call sets, so that call keywords override the pipeline's own defaults
        # one by one (the base class merges the dicts).
        forward_params = {name: value for name, value in (
            ("constraint", _constraint_from(regex, constraint, schema, grammar)),
            ("max_new_tokens", max_new_tokens), ("do_sample", do_sample),
            ("temperature", temperature), ("top_p", top_p), ("top_k", top_k),
            ("num_return_sequences", num_return_sequences), ("seed", seed), ("draft", draft),
            ("draft_tokens", draft_tokens),
        ) if value is not None}
        return preprocess_params, forward_params, {}

    def preprocess(self, prompt: str | list[dict[str, str]] | Chat, chat: bool | None = None
                   ) -> dict[str, Any]:
        if isinstance(prompt, Chat):
            prompt = prompt.messages
        if not isinstance(prompt, (str, list)):
            raise TypeError(f"a prompt is a string or a conversation, not {type(prompt).__name__}")
        return {"prompt": prompt, "chat": chat}

    def _forward(self, model_inputs: dict[str, Any], constraint: Constraint | None = None,
                 max_new_tokens: int = 256, do_sample: bool = False,
                 temperature: float | None = None, top_p: float | None = None,
                 top_k: int | None = None, num_return_sequences: int = 1,
                 seed: int | None = None, draft: Draft | Sequence[Draft] | None = None,
                 draft_tokens: int = 8) -> dict[str, Any]:
        if num_return_sequences > 1 and not do_sample:
            raise ValueError(
                "greedy decoding returns one sequence; pass do_sample=True for "
                "num_return_sequences > 1"
            )
        prompts = [model_inputs["prompt"]] * num_return_sequences
        results = structgen.generate(
            self.language_model, prompts, constraint, max_tokens=max_new_tokens,
            sampler=_sampler_from(do_sample, temperature, top_p, top_k), seed=seed,
            chat=model_inputs["chat"], return_result=True, draft=draft, draft_tokens=draft_tokens,
        )
        records = [{"generated_text": result.text} for result in results]
        if isinstance(constraint, JsonSchema):
            for result, record in zip(results, records):
                if not result.complete:
                    raise IncompleteOutput(
                        f"the output reached max_new_tokens={max_new_tokens} before the JSON "
                        "document was complete; raise max_new_tokens", partial=result.text)
                record["json"] = constraint.parse(result.text)
        return {"records": records}

    def postprocess(self, model_outputs: dict[str, Any]) -> list[dict[str, Any]]:
        return model_outputs["records"]


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=StructuredGenerationPipeline, pt_model=AutoModelForCausalLM, type="text"
)
