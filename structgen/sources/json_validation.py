"""JSON Schema validation with ECMA-262 regular expressions.

``jsonschema`` is the reference validator structgen checks outputs and ``enum`` candidates
with, but it tests ``pattern`` and ``patternProperties`` with Python's ``re``, which differs from
the ECMA-262 dialect the specification names: it rejects ``\\p{Letter}`` and ``(?<name>...)``
outright, and its ``\\d``/``\\w`` match non-ASCII digits and letters. The validator classes here
evaluate those keywords (and ``additionalProperties``, which depends on them) with structgen's
own ECMA regex compiler, the same one the constraints are built from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urljoin

import jsonschema
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from jsonschema_specifications import REGISTRY as META_SCHEMAS

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
    text = json.dumps(schema, sort_keys=True, default=repr)
    checked = _checked.get(text)
    if checked is not None:
        return checked
    cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator) \
        if isinstance(schema, dict) else jsonschema.Draft202012Validator
    if not _meta_check(cls)(schema):
        meta = validators.validator_for(cls.META_SCHEMA, default=cls)(cls.META_SCHEMA)
        error = jsonschema.exceptions.best_match(meta.iter_errors(schema))
        if error is not None:
            where = "#" + "".join(f"/{p}" for p in error.absolute_path)
            raise SchemaError(f"invalid JSON Schema at {where}: {error.message}")
    checked = _checked[text] = _ecma_class(cls)
    if len(_checked) > _CHECKED_SCHEMAS:
        del _checked[next(iter(_checked))]
    return checked


# Schemas found valid, by their JSON text: compiling a schema and building its parser both ask.
_checked: dict[str, type] = {}
_CHECKED_SCHEMAS = 256


# Subschema references of the 2019-09 and 2020-12 meta-schemas, which resolve to the root
# meta-schema when a schema (not a meta-schema extending them) is checked.
_DYNAMIC_SELF = ({"$dynamicRef": "#meta"}, {"$recursiveRef": "#"})


@cache
def _flat_meta_validator(cls: type):
    """A validator of ``cls``'s meta-schema that decides the same schemas five times faster.

    The 2019-09 and 2020-12 meta-schemas are an ``allOf`` of vocabulary meta-schemas whose
    subschemas refer back to the root dynamically, which ``jsonschema`` resolves slowly (about
    8 ms for a typical real-world schema). The flat form merges the vocabularies' ``properties``
    and ``$defs`` into one schema whose subschemas refer to it with ``$ref: "#"``. Its verdicts
    only decide whether to look for an error: a schema it rejects is checked again with the
    real meta-schema, which also writes the message. Older dialects are checked as they are.
    """
    meta = cls.META_SCHEMA
    parts = meta.get("allOf")
    if not (isinstance(parts, list) and all(set(p) == {"$ref"} for p in parts)):
        return validators.validator_for(meta, default=cls)(meta)
    flat: dict[str, Any] = {"$schema": meta["$schema"], "type": ["object", "boolean"],
                            "properties": {}, "$defs": {}}
    for vocabulary in [META_SCHEMAS.contents(urljoin(meta["$id"], p["$ref"])) for p in parts]:
        extra = set(vocabulary) - {"$id", "$schema", "$vocabulary", "$dynamicAnchor",
                                   "$recursiveAnchor", "title", "type", "properties", "$defs"}
        clashes = (set(vocabulary.get("properties", {})) & set(flat["properties"])) | (
            set(vocabulary.get("$defs", {})) & set(flat["$defs"]))
        if extra or clashes or vocabulary.get("type") != ["object", "boolean"]:
            return validators.validator_for(meta, default=cls)(meta)  # not the known shape
        flat["properties"].update(_refer_to_root(vocabulary.get("properties", {})))
        flat["$defs"].update(_refer_to_root(vocabulary.get("$defs", {})))
    flat["properties"].update(_refer_to_root(meta.get("properties", {})))
    return cls(flat)


@cache
def _meta_check(cls: type) -> Callable[[Any], bool]:
    """Whether a schema is valid under ``cls``'s meta-schema: the flat meta-schema compiled
    into Python predicates (:class:`_MetaCompiler`), or its ``jsonschema`` validator where it
    uses a keyword the compiler does not know. ``jsonschema`` interprets the meta-schema anew
    at every node; the predicates take about a sixth of its time on real-world schemas."""
    validator = _flat_meta_validator(cls)
    try:
        return _MetaCompiler(validator.schema, cls).predicate(validator.schema)
    except _NotCompiled:
        return validator.is_valid


class _NotCompiled(Exception):
    """A meta-schema keyword (or value) :class:`_MetaCompiler` has no predicate for."""


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _number,
    "integer": lambda x: _int(x) or (isinstance(x, float) and x.is_integer()),
}
# Draft-04 counts 1.0 as a number but not as an integer.
_DRAFT4_TYPE_CHECKS = {**_TYPE_CHECKS, "integer": _int}
# Keywords that assert nothing about an instance (or hold subschemas reached only by $ref).
_META_ANNOTATIONS = frozenset({"$schema", "$id", "id", "$comment", "title", "description",
                               "default", "deprecated", "format", "$defs", "definitions",
                               "$vocabulary", "$dynamicAnchor", "$recursiveAnchor"})


def _unique(items: list) -> bool:
    """Whether no two items are equal as JSON values (``1 == 1.0``, ``true != 1``). Values
    that are not JSON (a schema built in Python) compare by ``repr``; a tie there only sends
    the schema to ``jsonschema``'s own check."""
    keys = {json.dumps(_canonical(x), sort_keys=True, default=repr) for x in items}
    return len(keys) == len(items)


def _canonical(x: Any) -> Any:
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, list):
        return [_canonical(v) for v in x]
    if isinstance(x, dict):
        return {k: _canonical(v) for k, v in x.items()}
    return x


class _MetaCompiler:
    """Compiles a meta-schema (the keywords meta-schemas use, with their meaning in ``cls``'s
    dialect) into predicates over schemas; ``$ref`` targets are compiled once, on first use."""

    def __init__(self, root: dict, cls: type) -> None:
        self.root = root
        self.siblings_of_ref_apply = cls not in (  # from 2019-09 on
            jsonschema.Draft4Validator, jsonschema.Draft6Validator, jsonschema.Draft7Validator)
        self.draft4 = cls is jsonschema.Draft4Validator
        self.type_checks = _DRAFT4_TYPE_CHECKS if self.draft4 else _TYPE_CHECKS
        self.refs: dict[str, Callable[[Any], bool] | None] = {}

    def predicate(self, node: Any) -> Callable[[Any], bool]:
        if node is True or node == {}:
            return lambda x: True
        if node is False:
            return lambda x: False
        if not isinstance(node, dict):
            raise _NotCompiled(repr(node))
        if "$ref" in node and not self.siblings_of_ref_apply:
            node = {"$ref": node["$ref"]}
        checks = [check for key, value in node.items()
                  if (check := self.keyword(key, value, node)) is not None]
        return lambda x: all(check(x) for check in checks)

    def keyword(self, key: str, value: Any, node: dict) -> Callable[[Any], bool] | None:
        if key in _META_ANNOTATIONS:
            return None
        if key == "$ref":
            return self.ref(value)
        if key == "type":
            names = [value] if isinstance(value, str) else value
            tests = [self.type_checks[name] for name in names]
            return lambda x: any(test(x) for test in tests)
        if key == "enum":
            if not all(isinstance(v, str) for v in value):
                raise _NotCompiled("enum")
            allowed = frozenset(value)
            return lambda x: isinstance(x, str) and x in allowed
        if key in ("anyOf", "allOf"):
            parts = [self.predicate(sub) for sub in value]
            if key == "anyOf":
                return lambda x: any(part(x) for part in parts)
            return lambda x: all(part(x) for part in parts)
        if key == "properties":
            props = {name: self.predicate(sub) for name, sub in value.items()}
            return lambda x: not isinstance(x, dict) or all(
                check(x[name]) for name, check in props.items() if name in x)
        if key == "additionalProperties":
            declared = frozenset(node.get("properties", {}))
            if "patternProperties" in node:
                raise _NotCompiled("additionalProperties beside patternProperties")
            extra = self.predicate(value)
            return lambda x: not isinstance(x, dict) or all(
                extra(v) for k, v in x.items() if k not in declared)
        if key == "propertyNames":
            names = self.predicate(value)
            return lambda x: not isinstance(x, dict) or all(names(k) for k in x)
        if key == "items" and isinstance(value, (dict, bool)):
            item = self.predicate(value)
            return lambda x: not isinstance(x, list) or all(item(v) for v in x)
        if key == "minItems":
            return lambda x: not isinstance(x, list) or len(x) >= value
        if key == "uniqueItems":
            return (lambda x: not isinstance(x, list) or _unique(x)) if value else None
        if key == "minimum":
            exclusive = self.draft4 and node.get("exclusiveMinimum") is True
            if exclusive:
                return lambda x: not _number(x) or x > value
            return lambda x: not _number(x) or x >= value
        if key == "exclusiveMinimum":
            if isinstance(value, bool):
                if self.draft4:
                    return None  # read by "minimum"
                raise _NotCompiled("exclusiveMinimum")
            return lambda x: not _number(x) or x > value
        if key == "pattern":
            compiled = re.compile(value)
            return lambda x: not isinstance(x, str) or compiled.search(x) is not None
        if key == "dependencies" and all(isinstance(v, list) for v in value.values()):
            return lambda x: not isinstance(x, dict) or all(
                all(name in x for name in needed) for key, needed in value.items() if key in x)
        raise _NotCompiled(key)

    def ref(self, reference: Any) -> Callable[[Any], bool]:
        if not (isinstance(reference, str) and reference.startswith("#")):
            raise _NotCompiled(f"$ref {reference!r}")
        if reference not in self.refs:
            self.refs[reference] = None  # compiling: a recursive use is looked up when called
            target: Any = self.root
            for part in filter(None, reference[1:].split("/")):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            self.refs[reference] = self.predicate(target)
        refs = self.refs
        return lambda x: refs[reference](x)


def _refer_to_root(node: Any) -> Any:
    """``node`` with dynamic references to the root meta-schema made ``$ref: "#"`` and
    references into a vocabulary's ``$defs`` made local."""
    if isinstance(node, list):
        return [_refer_to_root(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if {key: value} in _DYNAMIC_SELF:
            out["$ref"] = "#"
        elif key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
            out["$ref"] = "#/$defs/" + value.split("#/$defs/", 1)[1]
        else:
            out[key] = _refer_to_root(value)
    return out


def validation_error(validator, value: Any) -> ValidationError | None:
    """The most relevant reason ``value`` is invalid, or None; an uncompilable pattern is a
    :class:`SchemaError`."""
    try:
        return jsonschema.exceptions.best_match(validator.iter_errors(value))
    except StructgenError as error:
        raise SchemaError(f"cannot evaluate the schema: {error}") from error
