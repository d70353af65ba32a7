"""The front door: ``generate`` and ``stream`` over any ``LanguageModel``, ``generate_json`` for
parsed and validated JSON, and the ``@function`` decorator built on it."""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import string
import sys
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from structgen.constraints import Constraint, JsonSchema, json_schema
from structgen.decoding.drafts import Draft
from structgen.decoding.loop import DecodeRun, GenerationResult, stream_text
from structgen.decoding.models import LanguageModel, Prompt
from structgen.decoding.samplers import Sampler
from structgen.decoding.smc import SMC, SMCRun
from structgen.errors import IncompleteOutput


def _is_batch(prompt) -> bool:
    """A batch is a list of strings or a list of conversations; a conversation is a list of
    messages (dicts)."""
    return isinstance(prompt, list) and bool(prompt) and not isinstance(prompt[0], dict)


def generate(model: LanguageModel, prompt: Prompt | Sequence[Prompt],
             constraint: Constraint | Sequence[Constraint | None] | None = None, *,
             max_tokens: int = 256, sampler: Sampler | SMC | None = None,
             seed: int | None = None, chat: bool | None = None, return_result: bool = False,
             return_particles: bool = False, draft: Draft | Sequence[Draft] | None = None,
             draft_tokens: int = 8, finish_within_max_tokens: bool = True):
    """Generate text from ``model``, every output inside ``constraint``.

    Args:
        prompt: a string, a conversation (``[{"role": ..., "content": ...}, ...]``), or a list
            of either (a batch). Conversations, and strings for models with a chat template,
            are rendered with the chat template (``chat=False`` sends strings as they are).
        constraint: a constraint (``sg.regex(...)`` and friends), ``None`` for free text, or a
            list with one per prompt of a batch.
        max_tokens: the most tokens generated per output (EOS not counted).
        sampler: ``sg.Greedy()`` (default), ``sg.Sample(temperature=..., top_p=..., top_k=...)``
            (both mask the whole vocabulary), ``sg.AWRS(temperature=...)`` (the same
            distribution as ``Sample`` by checking single tokens), or ``sg.SMC(particles=...)``
            (sequential Monte Carlo: outputs from the global constrained distribution). The
            model's own generation config is never applied.
        seed: makes sampling reproducible.
        return_result: return :class:`GenerationResult` objects (text, token ids,
            log-probabilities, finish reason, timings, statistics) instead of strings.
        return_particles: with ``sg.SMC``, return :class:`~structgen.decoding.smc.SMCResult`
            objects: the result of the particle drawn, with every particle and its weight and
            the log marginal-likelihood estimate (implies ``return_result``).
        draft: speculative decoding: ``sg.ForcedDraft()`` (the text the constraint forces),
            ``sg.PromptLookup()`` (spans copied from the prompt), ``sg.DraftModel(m)`` (a
            smaller model with the same vocabulary), or a list of them taking turns. The model
            checks up to ``draft_tokens`` drafted tokens per row in one forward pass; the
            outputs keep exactly the sampler's distribution (greedy: the same text), only the
            number of forward passes changes. Not with ``sg.SMC``.
        draft_tokens: the most tokens drafted per row and step.
        finish_within_max_tokens: a constrained output takes only tokens after which the
            constraint can still be completed within ``max_tokens`` (its shortest completion,
            one token per byte, fits in the tokens left), so it ends as a complete match
            instead of being cut, whenever the shortest match fits at all. The sampler's
            distribution is conditioned on that (exactly). ``False``: plain masking, cut at
            ``max_tokens``. ``sg.SMC`` ignores it: its particles cut by ``max_tokens`` weigh
            zero instead.

    Returns:
        The text (a list for a batch), or result objects with ``return_result=True``. An output
        cut by ``max_tokens`` is returned as it stands (``finish_reason == "length"``).

    Raises:
        IncompleteOutput: with ``sg.SMC``, when every particle of a prompt was cut by
            ``max_tokens`` or ruled out by the potential (there is no output to draw).
    """
    batch = _is_batch(prompt)
    prompts = list(prompt) if batch else [prompt]
    if isinstance(constraint, (list, tuple)):
        if not batch or len(constraint) != len(prompts):
            raise ValueError("a list of constraints needs a batch of prompts of the same length")
        constraints = list(constraint)
    else:
        constraints = [constraint] * len(prompts)
    if isinstance(sampler, SMC):
        if draft is not None:
            raise ValueError("draft= does not work with sg.SMC: its particles are resampled "
                             "every step; use sg.AWRS() or sg.Sample() with drafts")
        results = SMCRun(model, prompts, constraints, sampler, max_tokens, seed, chat).run()
        for index, result in enumerate(results):
            if result.log_marginal_likelihood == -math.inf:
                which = f"prompt {index} of the batch" if batch else "the prompt"
                raise IncompleteOutput(
                    f"every SMC particle of {which} was cut by max_tokens={max_tokens} or ruled "
                    "out by the potential; raise max_tokens", partial=result.text)
        return_result = return_result or return_particles
    elif return_particles:
        raise ValueError("return_particles=True needs sampler=sg.SMC(...)")
    else:
        run = DecodeRun(model, prompts, constraints, sampler, max_tokens, seed, chat, draft,
                        draft_tokens, finish_within_max_tokens)
        for _ in run.steps():
            pass
        results = run.results()
    out: list = results if return_result else [r.text for r in results]
    return out if batch else out[0]


def stream(model: LanguageModel, prompt: Prompt, constraint: Constraint | None = None, *,
           max_tokens: int = 256, sampler: Sampler | None = None, seed: int | None = None,
           chat: bool | None = None, draft: Draft | Sequence[Draft] | None = None,
           draft_tokens: int = 8, finish_within_max_tokens: bool = True) -> Iterator[str]:
    """Like :func:`generate` for one prompt, yielding the text piece by piece as it comes (with
    a draft, several tokens at a time)."""
    if _is_batch(prompt):
        raise ValueError("stream() takes one prompt; use generate() for a batch")
    if isinstance(sampler, SMC):
        raise TypeError("stream() cannot use sg.SMC: the output is chosen only when every "
                         "particle has finished; use generate()")
    run = DecodeRun(model, [prompt], [constraint], sampler, max_tokens, seed, chat, draft,
                    draft_tokens, finish_within_max_tokens)
    yield from stream_text(run)


# ------------------------------------------------------------------------------------- JSON
@dataclass
class JsonResult(GenerationResult):
    """A :class:`GenerationResult` whose text is a complete JSON document, with ``value``: that
    document parsed and validated (a model instance for a pydantic model)."""

    value: Any = None


_CONSTRAINT_CACHE_SIZE = 64
_constraints: OrderedDict[tuple, JsonSchema] = OrderedDict()


def _json_constraint(schema: Any, whitespace: str, property_order: str, extra_properties: str,
                     strict: bool) -> JsonSchema:
    """``json_schema(schema, ...)``, remembered per (schema, settings): building a schema's
    language takes longer than looking up its compiled form, which ``sg.compile`` caches."""
    if isinstance(schema, JsonSchema):
        return schema
    options = {"whitespace": whitespace, "property_order": property_order,
               "extra_properties": extra_properties, "strict": strict}
    key = _schema_key(schema)
    if key is None:
        return json_schema(schema, **options)
    key = (key, tuple(options.items()))
    constraint = _constraints.get(key)
    if constraint is None:
        constraint = _constraints[key] = json_schema(schema, **options)
        if len(_constraints) > _CONSTRAINT_CACHE_SIZE:
            _constraints.popitem(last=False)
    else:
        _constraints.move_to_end(key)
    return constraint


def _schema_key(schema: Any) -> tuple | None:
    """A hashable key equal for equal schema sources (key order counts: it is the property
    order), or ``None`` when the source has none."""
    if isinstance(schema, (dict, bool)):
        try:
            return ("schema", json.dumps(schema))
        except (TypeError, ValueError):
            return None
    try:
        hash(schema)
    except TypeError:
        return None
    return ("source", type(schema), schema)


def generate_json(model: LanguageModel, prompt: Prompt | Sequence[Prompt], schema: Any, *,
                  max_tokens: int = 512, sampler: Sampler | None = None,
                  seed: int | None = None, chat: bool | None = None,
                  whitespace: str = "flexible", property_order: str = "schema",
                  extra_properties: str = "forbid", strict: bool = True,
                  return_result: bool = False, draft: Draft | Sequence[Draft] | None = None,
                  draft_tokens: int = 8, finish_within_max_tokens: bool = True):
    """Generate a JSON document valid under ``schema`` and return it parsed and validated.

    Args:
        prompt: as for :func:`generate`: a string, a conversation, or a list of either (a batch).
            The prompt should ask for the JSON; the schema is enforced, not described to the
            model.
        schema: a JSON Schema (``dict``, ``bool`` or JSON text), a pydantic model class, a
            Python type (``int``, ``list[str]``, ``Literal[...]``, a dataclass, a TypedDict, ...),
            or a ready ``sg.json_schema(...)`` constraint (then used as it is, the four schema
            settings below ignored).
        max_tokens, sampler, seed, chat, draft, draft_tokens, finish_within_max_tokens: as for
            :func:`generate`. By default an output closes its strings, arrays and objects in
            time to end within ``max_tokens`` rather than being cut.
        whitespace, property_order, strict: as for :func:`structgen.json_schema`.
        extra_properties: as for :func:`structgen.json_schema`, but ``"forbid"`` by default:
            objects hold only the properties their schema declares, unless it says otherwise.
        return_result: return :class:`JsonResult` objects (the parsed ``value`` with the text,
            token ids, timings, ... of :class:`GenerationResult`).

    Returns:
        The parsed value (a list for a batch): a model instance for a pydantic model, the
        ``pydantic.TypeAdapter`` value for a Python type (an ``Enum`` member, a dataclass
        instance, ...), plain JSON values (dict, list, str, int, float, bool, None) for a JSON
        Schema.

    Raises:
        IncompleteOutput: an output was cut by ``max_tokens`` before the document was complete
            (for a batch, the first such output; with ``finish_within_max_tokens``, only when
            the schema's shortest document does not fit); ``partial`` holds its text.
        SchemaError, UnsupportedKeyword: the schema cannot be compiled.
        StructgenError: an output does not validate, which happens only where the constraint
            cannot enforce the schema in full (``strict=False``, or an unchecked ``format``).
    """
    constraint = _json_constraint(schema, whitespace, property_order, extra_properties, strict)
    batch = _is_batch(prompt)
    results = generate(model, prompt, constraint, max_tokens=max_tokens, sampler=sampler,
                       seed=seed, chat=chat, return_result=True, draft=draft,
                       draft_tokens=draft_tokens,
                       finish_within_max_tokens=finish_within_max_tokens)
    if not batch:
        results = [results]
    out = []
    for index, result in enumerate(results):
        if not result.complete:
            which = f"output {index} of the batch" if batch else "the output"
            raise IncompleteOutput(
                f"{which} reached max_tokens={max_tokens} before the JSON document was "
                f"complete; raise max_tokens (partial text: {result.text[-60:]!r})",
                partial=result.text)
        value = constraint.parse(result.text)
        if return_result:
            value = JsonResult(**{f.name: getattr(result, f.name) for f in fields(result)},
                               value=value)
        out.append(value)
    return out if batch else out[0]


# --------------------------------------------------------------------------- the decorator
_SCHEMA_OPTIONS = ("whitespace", "property_order", "extra_properties", "strict")


def function(model: LanguageModel, **generate_kwargs: Any) -> Callable[[Callable], Callable]:
    """Turn a typed, documented Python function into a call to the model.

    The decorated function's docstring is the prompt: ``{name}`` fields are filled with the
    call's arguments (defaults applied; ``{{`` and ``}}`` for literal braces; ``{p.name}`` and
    ``{xs[0]}`` work as in ``str.format``). Its return annotation is the output type, anything
    :func:`generate_json` takes as a schema (``int``, ``bool``, ``Literal[...]``,
    ``list[str]``, a pydantic model, a dataclass, a TypedDict, ...). The body is never run.
    Calling the function runs :func:`generate_json` and returns the parsed value.

    Args:
        model: the model every call generates with.
        generate_kwargs: keywords of :func:`generate_json` (``max_tokens``, ``sampler``,
            ``seed``, ``chat``, ``whitespace``, ``extra_properties``, ``draft``, ...), for every
            call.

    Example::

        @sg.function(model, max_tokens=64)
        def year_of(event: str) -> int:
            \"\"\"In which year did this happen: {event}? Answer with the year only.\"\"\"

        year_of("the fall of the Berlin Wall")   # -> 1989

    The wrapper carries ``constraint`` (the compiled-once ``sg.json_schema``) and
    ``prompt(*args, **kwargs)`` (the prompt a call would send).

    Raises:
        TypeError: at decoration, for a function without a docstring or return annotation, or
            an unknown keyword; ValueError for a docstring field that names no parameter.
    """
    if inspect.isfunction(model):
        raise TypeError("use @structgen.function(model), with the model to generate with")
    known = set(inspect.signature(generate_json).parameters) - {
        "model", "prompt", "schema", "return_result"}
    unknown = sorted(set(generate_kwargs) - known)
    if unknown:
        raise TypeError(f"structgen.function() got unknown keywords {', '.join(unknown)}; it "
                        f"takes {', '.join(sorted(known))}")
    schema_options = {k: generate_kwargs.pop(k) for k in _SCHEMA_OPTIONS if k in generate_kwargs}
    schema_options.setdefault("extra_properties", "forbid")

    def decorate(fn: Callable) -> Callable:
        name = getattr(fn, "__qualname__", repr(fn))
        if not fn.__doc__ or not fn.__doc__.strip():
            raise TypeError(f"{name} needs a docstring: it is the prompt of every call")
        template = inspect.cleandoc(fn.__doc__)
        signature = inspect.signature(fn)
        _check_fields(template, signature, name)
        output_type = _return_type(fn, name, sys._getframe(1).f_locals)
        constraint = _json_constraint(output_type, **{
            "whitespace": "flexible", "property_order": "schema", "strict": True,
            **schema_options})

        def prompt(*args: Any, **kwargs: Any) -> str:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return template.format_map(bound.arguments)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return generate_json(model, prompt(*args, **kwargs), constraint, **generate_kwargs)

        wrapper.constraint = constraint
        wrapper.prompt = prompt
        return wrapper

    return decorate


def _check_fields(template: str, signature: inspect.Signature, name: str) -> None:
    """Every ``{field}`` of the prompt template names a parameter of the function."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"the docstring of {name} is not a valid prompt template ({error}); "
                         "write literal braces as {{ and }}") from error
    for _, field, _, _ in parsed:
        if field is None:
            continue
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        if root not in signature.parameters:
            raise ValueError(
                f"the docstring of {name} has the field {{{field}}}, but {name} has no "
                f"parameter {root!r} (parameters: {', '.join(signature.parameters) or 'none'}); "
                "write literal braces as {{ and }}")


def _return_type(fn: Callable, name: str, caller_locals: dict) -> Any:
    """The function's return annotation, resolved (string annotations included, also those
    naming classes local to the scope that decorates it)."""
    if "return" not in getattr(fn, "__annotations__", {}):
        raise TypeError(f"{name} needs a return annotation: it is the type of the output "
                        "(e.g. -> int, -> list[str], -> a pydantic model)")
    try:
        output_type = typing.get_type_hints(fn, localns=caller_locals,
                                            include_extras=True)["return"]
    except NameError as error:
        raise TypeError(f"cannot resolve the return annotation of {name}: {error}") from error
    if output_type is type(None):
        raise TypeError(f"{name} is annotated to return None: there is nothing to generate")
    return output_type


__all__ = ["GenerationResult", "JsonResult", "function", "generate", "generate_json", "stream"]
