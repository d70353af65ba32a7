"""JSON Schema validation with ECMA-262 regular expressions.

``jsonschema`` is the reference validator structgen checks outputs and ``enum`` candidates
with, but it tests ``pattern`` and ``patternProperties`` with Python's ``re``, which differs from
the ECMA-262 dialect the specification names: it rejects ``\\p{Letter}`` and ``(?<name>...)``
outright, and its ``\\d``/``\\w`` match non-ASCII digits and letters. The validator classes here
evaluate those keywords (and ``additionalProperties``, which depends on them) with structgen's
own ECMA regex compiler, the same one the constraints are built from.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import jsonschema
from jsonschema import validators
from jsonschema.exceptions import ValidationError

from structgen.automata.byte_dfa import LazyByteDFA, Limits
from structgen.errors import SchemaError, StructgenError
from structgen.grammar.regular import Term

__all__ = ["checked_validator_class", "ecma_search", "term_matches", "validation_error"]


@lru_cache(maxsize=1024)
def _dfa(term: Term) -> LazyByteDFA:
    return LazyByteDFA(term, Limits())


def term_matches(term: Term, text: str) -> bool:
    """Whether the decoded-string ``term`` matches all of ``text``."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no regular term over scalars matches it
        return False
    dfa = _dfa(term)
    state = dfa.walk(dfa.start, data)
    return state >= 0 and bool(dfa.accepting[state])


@lru_cache(maxsize=1024)
def _search_term(pattern: str) -> Term:
    from structgen.sources.json_strings import pattern_search_term

    return pattern_search_term(pattern)


def ecma_search(pattern: str, text: str) -> bool:
    """Whether the ECMA-262 ``pattern`` matches somewhere in ``text`` (JSON Schema's
    ``pattern``). Raises :class:`StructgenError` for a pattern structgen cannot compile."""
    return term_matches(_search_term(pattern), text)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not ecma_search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if ecma_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [key for key in instance
              if key not in declared and not any(ecma_search(p, key) for p in patterns)]
    if validator.is_type(additional, "object"):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif additional is False and extras:
        unexpected = ", ".join(map(repr, extras))
        yield ValidationError(f"additional properties are not allowed ({unexpected} "
                              "unexpected)")


@cache
def _ecma_class(cls: type) -> type:
    overrides = {"pattern": _pattern, "patternProperties": _pattern_properties,
                 "additionalProperties": _additional_properties}
    return validators.extend(cls, {k: v for k, v in overrides.items() if k in cls.VALIDATORS})


def checked_validator_class(schema: Any) -> type:
    """The validator class for ``schema``'s dialect (2020-12 by default), with ECMA-262
    patterns, after checking ``schema`` against its meta-schema.

    The meta-schema check leaves out format assertions, since ``format: regex`` on ``pattern``
    would judge patterns with Python's ``re``; structgen's regex compiler judges them instead.
    Raises :class:`SchemaError` naming the location of the first problem.
    """
    cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator) \
        if isinstance(schema, dict) else jsonschema.Draft202012Validator
    meta = validators.validator_for(cls.META_SCHEMA, default=cls)(cls.META_SCHEMA)
    error = jsonschema.exceptions.best_match(meta.iter_errors(schema))
    if error is not None:
        where = "#" + "".join(f"/{p}" for p in error.absolute_path)
        raise SchemaError(f"invalid JSON Schema at {where}: {error.message}")
    return _ecma_class(cls)


def validation_error(validator, value: Any) -> ValidationError | None:
    """The most relevant reason ``value`` is invalid, or None; an uncompilable pattern is a
    :class:`SchemaError`."""
    try:
        return jsonschema.exceptions.best_match(validator.iter_errors(value))
    except StructgenError as error:
        raise SchemaError(f"cannot evaluate the schema: {error}") from error
