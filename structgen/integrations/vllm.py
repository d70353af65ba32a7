"""vLLM integration: structgen constraints inside vLLM's engine, offline and behind its
OpenAI-compatible server.

:class:`StructgenLogitsProcessor` is a vLLM logits processor (the V1 model runner's interface,
``vllm.v1.sample.logits_processor.LogitsProcessor``: vLLM builds one per engine and tells it
which requests enter, leave and move within its persistent batch). A request asks for a
constraint in its sampling parameters' ``extra_args``::

    {"structgen": {"json_schema": {...}}}        # or {"regex": "..."} or {"grammar": "sql"}
    {"structgen": '{"json_schema": {...}}'}      # the same as JSON text (the server's
                                                 # ``vllm_xargs`` carry only scalars)

A JSON Schema may come with the options of :func:`structgen.json_schema` (``whitespace``,
``property_order``, ``extra_properties``, ``strict``); as in :func:`structgen.generate_json`,
``extra_properties`` defaults to ``"forbid"`` (objects hold only the properties their schema
declares, unless it says otherwise). Requests without the key run unconstrained. Invalid constraints are refused in ``validate_params``, before the request
reaches the engine (HTTP 400 on the server); a constraint that fails later, when compiled
against the vocabulary, ends its request with EOS and logs why, and never stops the engine.

Offline::

    from vllm import LLM
    from structgen.integrations.vllm import StructgenLogitsProcessor, sampling_params

    llm = LLM(model=path, logits_processors=[StructgenLogitsProcessor])
    llm.generate(prompts, sampling_params(json_schema=schema, max_tokens=256))

Online: ``vllm serve PATH --logits-processors
structgen.integrations.vllm:StructgenLogitsProcessor``, and requests carry
``extra_body={"vllm_xargs": request_args(json_schema=schema)}``.

vLLM's V2 model runner (``VLLM_USE_V2_MODEL_RUNNER=1``, chosen by default on some GPUs) has
another processor interface that this class does not implement: set
``VLLM_USE_V2_MODEL_RUNNER=0`` there.

Finishing within ``max_tokens``: as in :func:`structgen.generate`, a constrained request closes
its output in time rather than being cut, when its shortest completion fits. A logits processor
only masks, before the draw, so near the end of the budget (once the tokens left come within
``NEAR_END_BYTES`` of the shortest completion) the processor checks the most likely allowed
tokens, best first, and keeps those after which the output can still finish: under greedy
decoding the first such token (so the argmax is the best fitting token among the
``MAX_CHECKS`` best, as in structgen's own loop); when sampling, those among the tokens that cover all but ``UNCHECKED_MASS`` of the
probability (at most ``MAX_CHECKS`` checks), the rest of the distribution being dropped. When
none of those fits, the next byte of the shortest completion (or EOS) is kept. Set
``"finish_within_max_tokens": false`` in the spec to have outputs cut as vLLM cuts them.

Timings: with ``STRUCTGEN_VLLM_TIMINGS=path`` in the engine's environment, the processor writes
its running totals (steps, constrained rows, seconds of state updates, masks and budget checks)
to that JSON file after every step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from structgen.automata.matcher import Matcher
from structgen.compiler import compile as compile_constraint
from structgen.constraints import Constraint, json_schema, regex
from structgen.constraints import grammar as lark_grammar
from structgen.errors import StructgenError
from structgen.kernels.torch_masks import apply_token_bitmask
from structgen.vocab import Vocabulary

__all__ = ["StructgenLogitsProcessor", "constraint_of", "request_args", "sampling_params"]

def _let_vllm_scan_llvmlite() -> None:
    """Work around a crash of vLLM's CPU worker when numba is loaded before it starts.

    At start-up the worker looks through every loaded module's objects for Triton kernels to
    replace, reading each object's ``vars(...)`` as a dict. llvmlite's ``ffi.lib`` (numba's, so
    structgen's) answers any attribute name with a wrapped C function, ``__dict__`` included,
    and the worker fails (``'_lib_fn_wrapper' object has no attribute 'get'``). Giving that one
    object an empty ``__dict__`` entry in its function table makes it an object without kernels.
    """
    from llvmlite.binding import ffi

    table = getattr(ffi.lib, "_fntab", None)
    if isinstance(table, dict):
        table.setdefault("__dict__", {})


_let_vllm_scan_llvmlite()

KEY = "structgen"
_JSON_OPTIONS = ("whitespace", "property_order", "extra_properties", "strict")
_DECODING_OPTIONS = ("finish_within_max_tokens",)
NEAR_END_BYTES = 128
UNCHECKED_MASS = 1e-4
MAX_CHECKS = 512
_GREEDY_TEMPERATURE = 1e-5  # vLLM samples greedily below this temperature
_CACHE_SIZE = 256
_logger = logging.getLogger(__name__)
_constraints: OrderedDict[str, Constraint] = OrderedDict()


def _spec(json_schema: Any = None, regex: str | None = None, grammar: str | None = None,
          finish_within_max_tokens: bool = True, **json_options: Any) -> dict[str, Any]:
    given = {name: value for name, value in
             (("json_schema", json_schema), ("regex", regex), ("grammar", grammar))
             if value is not None}
    if len(given) != 1:
        raise ValueError("give exactly one of json_schema=, regex= or grammar=")
    if json_options and "json_schema" not in given:
        raise ValueError(f"{sorted(json_options)} only apply to json_schema=")
    schema = given.get("json_schema")
    if schema is not None and not isinstance(schema, (dict, bool, str)):
        # A pydantic model class or a Python type: its JSON Schema, which travels as JSON.
        given["json_schema"] = json.loads(json.dumps(json_schema(schema).schema))
    if not finish_within_max_tokens:
        given["finish_within_max_tokens"] = False
    return {**given, **json_options}


def sampling_params(json_schema: Any = None, regex: str | None = None,
                    grammar: str | None = None, *, json_options: dict[str, Any] | None = None,
                    finish_within_max_tokens: bool = True, **params: Any) -> SamplingParams:
    """vLLM ``SamplingParams`` (``params``: its own arguments, e.g. ``max_tokens``,
    ``temperature``) asking :class:`StructgenLogitsProcessor` for one constraint: a JSON Schema
    (a dict, JSON text, a pydantic model class or a Python type, with ``json_options`` for
    :func:`structgen.json_schema`), a regex, or a Lark grammar (text or a ready grammar's
    name). ``finish_within_max_tokens=False`` lets vLLM cut the output at ``max_tokens``."""
    spec = _spec(json_schema, regex, grammar, finish_within_max_tokens,
                 **(json_options or {}))
    constraint_of(spec)  # refuse a bad constraint here, not in the engine
    extra = dict(params.pop("extra_args", None) or {})
    extra[KEY] = spec
    return SamplingParams(extra_args=extra, **params)


def request_args(json_schema: Any = None, regex: str | None = None, grammar: str | None = None,
                 finish_within_max_tokens: bool = True, **json_options: Any) -> dict[str, str]:
    """The ``vllm_xargs`` of an OpenAI-compatible request asking for a constraint (the spec as
    JSON text, since ``vllm_xargs`` values are scalars): pass it as ``extra_body={"vllm_xargs":
    request_args(json_schema=schema)}``."""
    return {KEY: json.dumps(_spec(json_schema, regex, grammar, finish_within_max_tokens,
                                  **json_options))}


def constraint_of(spec: Any) -> Constraint:
    """The constraint a request's ``extra_args["structgen"]`` asks for (a dict or its JSON text);
    cached by the spec's text.

    Raises:
        ValueError: the spec is malformed, or the constraint is invalid (the structgen error's
            message, e.g. a schema error with its JSON pointer).
    """
    text = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=False)
    cached = _constraints.get(text)
    if cached is not None:
        _constraints.move_to_end(text)
        return cached
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(f"extra_args[{KEY!r}] is not valid JSON: {error}") from None
    if not isinstance(value, dict):  # ValueError, which vLLM's server answers with HTTP 400
        raise ValueError(f"extra_args[{KEY!r}] must be an object such as "  # noqa: TRY004
                         '{"json_schema": ...}, {"regex": ...} or {"grammar": ...}')
    kinds = [k for k in ("json_schema", "regex", "grammar") if k in value]
    unknown = sorted(set(value) - {"json_schema", "regex", "grammar", *_JSON_OPTIONS,
                                   *_DECODING_OPTIONS})
    if len(kinds) != 1 or unknown:
        raise ValueError(f"extra_args[{KEY!r}] needs exactly one of json_schema, regex, grammar"
                         + (f"; unknown keys: {unknown}" if unknown else ""))
    if not isinstance(value.get("finish_within_max_tokens", True), bool):
        raise ValueError("finish_within_max_tokens must be true or false")  # noqa: TRY004
    options = {k: value[k] for k in _JSON_OPTIONS if k in value}
    if options and kinds[0] != "json_schema":
        raise ValueError(f"{sorted(options)} only apply to json_schema")
    if kinds[0] == "json_schema":
        options.setdefault("extra_properties", "forbid")  # as generate_json: no junk keys
    try:
        if kinds[0] == "json_schema":
            constraint = json_schema(value["json_schema"], **options)
        elif kinds[0] == "regex":
            constraint = regex(_text(value["regex"], "regex"))
        else:
            constraint = lark_grammar(_text(value["grammar"], "grammar"))
    except StructgenError as error:
        raise ValueError(f"structgen refused the {kinds[0]}: {error}") from None
    _constraints[text] = constraint
    if len(_constraints) > _CACHE_SIZE:
        _constraints.popitem(last=False)
    return constraint


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):  # ValueError, which vLLM's server answers with HTTP 400
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")  # noqa: TRY004
    return value


@dataclass
class _Request:
    """A constrained request in the persistent batch: its matcher, its live output ids, and what
    its budget check needs (``budget`` None: outputs may be cut at ``max_tokens``)."""

    matcher: Matcher | None  # None: the constraint failed; only EOS is allowed
    output_ids: list[int]
    budget: int | None = None
    temperature: float = 1.0
    consumed: int = 0


class StructgenLogitsProcessor(LogitsProcessor):
    """Masks, in every step, the logits of each request that asks for a structgen constraint
    (see the module docstring); other requests are left alone.

    Matchers follow vLLM's persistent batch (requests added, removed, moved and swapped between
    rows). Compiled constraints are cached across requests (per constraint and vocabulary), so
    masks of states any request visited are reused; the batch's masks are filled into one
    packed array and applied in one call on the logits' device.
    """

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool):
        model_config = vllm_config.model_config
        tokenizer = AutoTokenizer.from_pretrained(
            model_config.tokenizer, revision=model_config.tokenizer_revision,
            trust_remote_code=model_config.trust_remote_code)
        self.vocab = Vocabulary.from_tokenizer(tokenizer,
                                               vocab_size=model_config.get_vocab_size())
        self.device = device
        self._requests: dict[int, _Request] = {}
        self._eos = frozenset(self.vocab.eos_token_ids)
        self._eos_only = np.zeros((self.vocab.size + 31) // 32, dtype=np.uint32)
        for eos in self._eos:
            self._eos_only[eos >> 5] |= np.uint32(1 << (eos & 31))
        self._single_bytes = [token for token, text in enumerate(self.vocab.tokens)
                              if text is not None and len(text) == 1]
        self._timings_path = os.environ.get("STRUCTGEN_VLLM_TIMINGS")
        self.timings = {"steps": 0, "constrained_rows": 0, "update_s": 0.0, "mask_s": 0.0,
                        "budget_s": 0.0, "budget_checks": 0}

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        spec = (sampling_params.extra_args or {}).get(KEY)
        if spec is not None:
            constraint_of(spec)

    def is_argmax_invariant(self) -> bool:
        return False  # masking changes which token is the largest

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        started = time.perf_counter()
        if batch_update is not None:
            for index in batch_update.removed:
                self._requests.pop(index, None)
            for index, params, _, output_ids in batch_update.added:
                spec = (params.extra_args or {}).get(KEY) if params is not None else None
                if spec is None:
                    self._requests.pop(index, None)
                else:
                    self._requests[index] = self._request(spec, params, output_ids)
            for a, b, direction in batch_update.moved:
                first, second = self._requests.pop(a, None), self._requests.pop(b, None)
                if first is not None:
                    self._requests[b] = first
                if second is not None and direction == MoveDirectionality.SWAP:
                    self._requests[a] = second
        for request in self._requests.values():
            self._catch_up(request)
        self.timings["update_s"] += time.perf_counter() - started

    def _request(self, spec: Any, params: SamplingParams, output_ids: list[int]) -> _Request:
        try:
            matcher = compile_constraint(constraint_of(spec), self.vocab).matcher()
        except (StructgenError, ValueError) as error:
            _logger.error("structgen: the request's constraint cannot be used (%s); the "
                          "request ends at once", error)
            matcher = None
        finish = json.loads(spec) if isinstance(spec, str) else spec
        budgeted = finish.get("finish_within_max_tokens", True)
        return _Request(matcher, output_ids, params.max_tokens if budgeted else None,
                        params.temperature)

    def _catch_up(self, request: _Request) -> None:
        """Advance the matcher over the tokens generated since the last step."""
        output = request.output_ids
        while request.consumed < len(output):
            token = output[request.consumed]
            request.consumed += 1
            if request.matcher is not None and not request.matcher.advance(token):
                _logger.error("structgen: token %d is outside the constraint (another "
                              "processor or a forced token changed the output); the request "
                              "ends", token)
                request.matcher = None

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._requests:
            return logits
        started = time.perf_counter()
        # Free rows get every bit set, so the whole batch is masked in one call.
        masks = np.full((logits.shape[0], len(self._eos_only)), 0xFFFFFFFF, dtype=np.uint32)
        near_end = []
        for index, request in self._requests.items():
            if index >= len(masks):
                continue
            if request.matcher is None:
                masks[index] = self._eos_only
            else:
                request.matcher.fill_mask(masks, index)
                if request.budget is not None:
                    near_end.append(index)
        logits = apply_token_bitmask(logits, masks)
        masked = time.perf_counter()
        for index in near_end:
            self._fit_budget(logits, index, self._requests[index])
        timings = self.timings
        timings["steps"] += 1
        timings["constrained_rows"] += len(self._requests)
        timings["mask_s"] += masked - started
        timings["budget_s"] += time.perf_counter() - masked
        if self._timings_path:
            Path(self._timings_path).write_text(json.dumps(timings))
        return logits

    def _fit_budget(self, logits: torch.Tensor, index: int, request: _Request) -> None:
        """Near the end of the request's budget, keep in row ``index`` only allowed tokens after
        which its output can still finish within ``max_tokens`` (see the module docstring)."""
        room = request.budget - len(request.output_ids) - 1  # text tokens before a final EOS
        need = request.matcher.completion_bytes()
        if need is None or need > room or room - need >= NEAR_END_BYTES:
            return  # far from the end, or no way to finish in time anyway
        row = logits[index]
        greedy = request.temperature < _GREEDY_TEMPERATURE
        scores = row.float() if greedy else row.float() / request.temperature
        top = torch.topk(scores, min(MAX_CHECKS, scores.numel()))
        probabilities = ([0.0] * len(top.indices) if greedy else
                         torch.softmax(scores, dim=0)[top.indices].tolist())
        kept, covered = [], 0.0
        for token, score, probability in zip(top.indices.tolist(), top.values.tolist(),
                                              probabilities):
            if score == float("-inf") or covered >= 1.0 - UNCHECKED_MASS:
                break
            covered += probability
            if self._fits(request, token, room):
                kept.append(token)
                if greedy:
                    break
        if not kept:  # the shortest completion starts with a single-byte token, or is EOS
            kept = [t for t in (*self._eos, *self._single_bytes)
                    if request.matcher.allowed(t) and self._fits(request, t, room)]
        if not kept:
            return  # the completion search gave up after every candidate: leave the row as is
        keep = torch.tensor(kept, device=row.device)
        values = row[keep]
        row.fill_(float("-inf"))
        row[keep] = values

    def _fits(self, request: _Request, token: int, room: int) -> bool:
        """Whether the output can still finish within its budget after ``token`` (``room``: the
        text tokens left before the EOS that ends the output, vLLM counting it in
        ``max_tokens``): its shortest completion, in bytes that are tokens by themselves, fits
        in the room left after the token."""
        self.timings["budget_checks"] += 1
        matcher = request.matcher
        if token in self._eos:
            return True
        if not matcher.advance(token):
            return False
        need = matcher.completion_bytes()
        matcher.rollback(1)
        return need is not None and need <= room - 1
