"""JSON Schema to the grammar IR.

A schema compiles in two steps, both exact:

1. **Flattening.** Each (sub)schema becomes a union of *conjunctions* (:class:`Conj`), a
   disjunctive normal form: ``allOf``, ``$ref`` and sibling keywords are merged into one
   conjunction (by intersection, keyword by keyword), ``anyOf``/``oneOf``/``if``/``then``/
   ``else``/``dependentSchemas`` branch, and ``not`` is pushed inward by De Morgan's laws down to
   single keywords whose complement is again a conjunction (``not {"minimum": 3}`` is "not a
   number, or a number below 3"). Child schemas (property values, array items) stay references
   (:class:`Sub`) and are flattened when emitted.
2. **Emission.** Each conjunction becomes grammar rules per JSON type: string and number leaves
   are regular terms (patterns, lengths and formats intersected over the *decoded* string, then
   JSON-escaped), objects list declared properties in schema order and then undeclared keys,
   arrays count their items. Parts without recursion stay regular terms, so most schemas end up
   as a handful of large terminals that the matcher decides from DFAs alone.

Anything an exact construction cannot express is refused by name (:class:`UnsupportedKeyword`
with the JSON pointer), or, with ``strict=False``, dropped with a warning. ``enum``/``const``
are exact by construction: the candidate values are checked against the whole schema at their
location with ``jsonschema`` itself, so every value emitted is valid there.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import product
from typing import Any

import jsonschema
import referencing.exceptions
import referencing.jsonschema
from jsonschema import validators

from structgen.errors import SchemaError, UnsupportedKeyword
from structgen.grammar.cfg import (
    Grammar,
    Nonterminal,
    Terminal,
    non_empty_part,
    term_nullable,
)
from structgen.grammar.charset import ANY_CHAR, CharSet
from structgen.grammar.regular import (
    NOTHING,
    Alt,
    Chars,
    Look,
    Repeat,
    Seq,
    Term,
    literal,
    tree_size,
)
from structgen.sources.json_formats import format_term
from structgen.sources.json_numbers import number_term
from structgen.sources.json_strings import (
    intersect,
    json_string_literal_term,
    json_string_term,
    pattern_search_term,
    string_length_term,
)
from structgen.sources.json_validation import checked_validator_class, term_matches

__all__ = ["Settings", "compile_schema"]

# The disjoint kinds of JSON values: "number" is integer | fraction.
KINDS = frozenset({"null", "boolean", "string", "array", "object", "integer", "fraction"})
TYPE_KINDS = {
    "null": {"null"}, "boolean": {"boolean"}, "string": {"string"}, "array": {"array"},
    "object": {"object"}, "integer": {"integer"}, "number": {"integer", "fraction"},
}
OBJECT = frozenset({"object"})
ARRAY = frozenset({"array"})
WHITESPACE = CharSet.chars(" \t\n\r")
END = Look(Chars(ANY_CHAR), ahead=True, negate=True)
# Keywords read together with another one (``then`` with ``if``, draft-04's boolean
# ``exclusiveMinimum`` with ``minimum``, ...), kept even where the dialect's table omits them.
COMPANIONS = frozenset({"then", "else", "minContains", "maxContains", "additionalItems",
                        "exclusiveMinimum", "exclusiveMaximum"})
MAX_BRANCHES = 512
MAX_UNROLL = 2000
# A value whose term has more nodes becomes a grammar rule: the automaton's states are
# derivatives of terminals, and derivatives of one huge term cost too much per state.
MAX_TERM_SIZE = 400
MAX_FLOATING_KEYS = 4  # required keys without ``properties`` written in any order
MAX_WITNESSES = 3  # negated additionalProperties/patternProperties on one object
MAX_PRETTY_DEPTH = 24

@dataclass(frozen=True)
class Settings:
    """How a schema's values are written: ``whitespace`` is ``"flexible"`` (JSON whitespace
    between tokens, at most ``max_whitespace`` characters per gap), ``"compact"`` (none) or
    ``"pretty"`` (exactly ``json.dumps(indent=2)``); ``extra_properties`` is ``"spec"`` (what the
    schema allows) or ``"forbid"`` (no undeclared keys where a schema declares properties);
    ``strict=False`` drops unsupported keywords with a warning instead of raising."""

    whitespace: str = "flexible"
    property_order: str = "schema"
    extra_properties: str = "spec"
    strict: bool = True
    max_whitespace: int = 20

    def __post_init__(self) -> None:
        if self.whitespace not in ("flexible", "compact", "pretty"):
            raise SchemaError(f"whitespace must be flexible, compact or pretty, "
                              f"not {self.whitespace!r}")
        if self.property_order != "schema":
            raise SchemaError(f"property_order {self.property_order!r} is not supported "
                              "(only 'schema')")
        if self.extra_properties not in ("spec", "forbid"):
            raise SchemaError(f"extra_properties must be spec or forbid, "
                              f"not {self.extra_properties!r}")


# --------------------------------------------------------------------------- references


# Whether the schema being compiled has dynamic anchors: then where a ``$dynamicRef`` lands
# depends on the resources the evaluation went through (the dynamic scope), not only on the
# subschema and its base URI, and :class:`Sub` keys must tell such paths apart.
_DYNAMIC_SCOPE: ContextVar[bool] = ContextVar("structgen_dynamic_scope", default=False)


def _dynamic_signature(resolver) -> tuple[str, ...]:
    """The resources of the dynamic scope, outermost first, each once: a dynamic anchor
    resolves to its outermost definition, so repeats further in never change a target (and
    recursion reaches a fixed point)."""
    return tuple(dict.fromkeys(reversed([str(uri) for uri, _ in resolver.dynamic_scope()])))


class Sub:
    """A subschema in its resolution context: the schema value, the ``referencing`` resolver
    that resolves its ``$ref``s (with the dynamic scope that ``$dynamicRef`` needs), and its JSON
    pointer (for messages). Compared by identity of the schema object and the base URI (and the
    dynamic scope, when the schema has dynamic anchors), so shared subschemas compile once."""

    __slots__ = ("key", "pointer", "resolver", "schema")

    def __init__(self, schema: Any, resolver, pointer: str) -> None:
        self.schema = schema
        self.resolver = resolver
        self.pointer = pointer or "#"
        self.key = (id(schema), str(resolver._base_uri))
        if _DYNAMIC_SCOPE.get():
            self.key += _dynamic_signature(resolver)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sub) and self.key == other.key

    def __repr__(self) -> str:
        return f"Sub({self.pointer})"


# --------------------------------------------------------------------------- conjunctions


@dataclass(frozen=True)
class ObjectSpec:
    """The object keywords of one schema: they must be read together, since
    ``additionalProperties`` covers only keys that *this* schema's ``properties`` and
    ``patternProperties`` do not. ``scope`` names the schemas it was reached through in place
    (for ``unevaluatedProperties``)."""

    properties: tuple[tuple[str, Sub], ...] = ()
    patterns: tuple[tuple[str, Sub], ...] = ()
    additional: Sub | None = None
    scope: frozenset[int] = frozenset()
    # Read by ``forbids_some``, which conjunctions ask of every spec they hold each time two
    # are merged (hundreds of thousands of times in a large schema with many ``oneOf``s).
    _declared: frozenset[str] = field(init=False, repr=False, compare=False)
    _declared_false: frozenset[str] = field(init=False, repr=False, compare=False)
    _closed: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_declared", frozenset(name for name, _ in self.properties))
        object.__setattr__(self, "_declared_false", frozenset(
            name for name, sub in self.properties if sub.schema is False))
        object.__setattr__(self, "_closed", not self.patterns and self.additional is not None
                           and self.additional.schema is False)

    def forbids_some(self, names: frozenset[str]) -> bool:
        """Whether this schema visibly rules out one of the keys ``names``: declared
        ``false``, or undeclared where no pattern can admit it and ``additionalProperties`` is
        ``false``."""
        return bool(names & self._declared_false) or (self._closed and not names <= self._declared)


@dataclass(frozen=True)
class ObjectWitness:
    """"Some key of the object is in this key set and its value satisfies ``value``": the
    negation of ``additionalProperties`` (a key outside ``excluded_names`` and
    ``excluded_patterns`` with a value it forbids) and of ``patternProperties`` (a key matching
    ``pattern`` with a value it forbids)."""

    value: Sub
    excluded_names: frozenset[str] = frozenset()
    excluded_patterns: tuple[str, ...] = ()
    pattern: str | None = None


@dataclass(frozen=True)
class ArraySpec:
    """The item keywords of one schema: ``prefix`` applies by position, ``items`` after it."""

    prefix: tuple[Sub, ...] = ()
    items: Sub | None = None
    scope: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Conj:
    """A conjunction of keyword assertions, merged; ``None`` bounds mean unbounded.

    ``kinds`` is the set of value kinds still allowed (see ``KINDS``); ``enum`` restricts values
    to a finite set; ``excluded`` removes scalar values; string and number fields apply to those
    kinds only, array and object fields to theirs.
    """

    kinds: frozenset[str] = KINDS
    enum: tuple | None = None
    excluded: tuple = ()
    lower: Decimal | None = None
    lower_exclusive: bool = False
    upper: Decimal | None = None
    upper_exclusive: bool = False
    multiples: tuple[Decimal, ...] = ()
    non_multiples: tuple[Decimal, ...] = ()
    string_terms: tuple[Term, ...] = ()
    string_not_terms: tuple[Term, ...] = ()
    min_length: int = 0
    max_length: int | None = None
    arrays: tuple[ArraySpec, ...] = ()
    min_items: int = 0
    max_items: int | None = None
    contains: tuple[tuple[Sub, int, int | None], ...] = ()
    unique_items: bool = False
    unevaluated_items: tuple[tuple[Sub, int], ...] = ()
    objects: tuple[ObjectSpec, ...] = ()
    required: frozenset[str] = frozenset()
    forbidden: frozenset[str] = frozenset()
    property_names: tuple[Sub, ...] = ()
    min_properties: int = 0
    max_properties: int | None = None
    unevaluated_properties: tuple[tuple[Sub, int], ...] = ()
    witnesses: tuple[ObjectWitness, ...] = ()

    def is_empty(self) -> bool:
        return not self.kinds or self.enum == ()


def conj_and(a: Conj, b: Conj) -> Conj | None:
    """The intersection of two conjunctions, or ``None`` when it is visibly empty."""
    lower, lower_x = _tighter(a.lower, a.lower_exclusive, b.lower, b.lower_exclusive, max)
    upper, upper_x = _tighter(a.upper, a.upper_exclusive, b.upper, b.upper_exclusive, min)
    enum = a.enum if b.enum is None else b.enum if a.enum is None else tuple(
        v for v in a.enum if any(json_equal(v, w) for w in b.enum))
    merged = Conj(
        kinds=a.kinds & b.kinds,
        enum=enum,
        excluded=a.excluded + b.excluded,
        lower=lower, lower_exclusive=lower_x, upper=upper, upper_exclusive=upper_x,
        multiples=_union(a.multiples, b.multiples),
        non_multiples=_union(a.non_multiples, b.non_multiples),
        string_terms=_union(a.string_terms, b.string_terms),
        string_not_terms=_union(a.string_not_terms, b.string_not_terms),
        min_length=max(a.min_length, b.min_length),
        max_length=_min_opt(a.max_length, b.max_length),
        arrays=_union(a.arrays, b.arrays),
        min_items=max(a.min_items, b.min_items),
        max_items=_min_opt(a.max_items, b.max_items),
        contains=a.contains + b.contains,
        unique_items=a.unique_items or b.unique_items,
        unevaluated_items=a.unevaluated_items + b.unevaluated_items,
        objects=_union(a.objects, b.objects),
        required=a.required | b.required,
        forbidden=a.forbidden | b.forbidden,
        property_names=a.property_names + b.property_names,
        min_properties=max(a.min_properties, b.min_properties),
        max_properties=_min_opt(a.max_properties, b.max_properties),
        unevaluated_properties=a.unevaluated_properties + b.unevaluated_properties,
        witnesses=a.witnesses + b.witnesses,
    )
    return None if merged.is_empty() else _prune_kinds(merged)


def _prune_kinds(c: Conj) -> Conj | None:
    """Drop the kinds whose own constraints are visibly contradictory."""
    kinds = set(c.kinds)
    if c.max_length is not None and c.min_length > c.max_length:
        kinds.discard("string")
    if c.max_items is not None and c.min_items > c.max_items:
        kinds.discard("array")
    if (c.max_properties is not None and max(c.min_properties, len(c.required))
            > c.max_properties) or c.required & c.forbidden \
            or any(spec.forbids_some(c.required) for spec in c.objects):
        kinds.discard("object")
    if not kinds:
        return None
    return c if len(kinds) == len(c.kinds) else replace(c, kinds=frozenset(kinds))


def _union(a: tuple, b: tuple) -> tuple:
    """``a`` then the items of ``b`` not already in it: a schema merged with itself (or one
    sharing a pattern) must not intersect the same term twice, which costs automaton states,
    and the object and array parts of a large schema, merged again at every ``oneOf`` and
    ``$ref``, would otherwise pile up copies of the same specs (a 62 KB schema's conjunctions
    came to hold 150 of them, each checked at every merge: over 300 s; 2.1 s kept apart)."""
    return a + tuple(x for x in b if x not in a) if a else b


def _tighter(x, x_exclusive, y, y_exclusive, pick):
    if x is None:
        return y, y_exclusive
    if y is None or x != y:
        if y is None:
            return x, x_exclusive
        best = pick(x, y)
        return best, x_exclusive if best == x else y_exclusive
    return x, x_exclusive or y_exclusive


def _min_opt(x: int | None, y: int | None) -> int | None:
    return y if x is None else x if y is None else min(x, y)


def dnf_and(left: list[Conj], right: list[Conj]) -> list[Conj]:
    """The pairwise intersections of two unions of conjunctions."""
    out = []
    for a, b in product(left, right):
        merged = conj_and(a, b)
        if merged is not None:
            out.append(merged)
    if len(out) > MAX_BRANCHES:
        raise UnsupportedKeyword(
            "anyOf", f"the schema expands into more than {MAX_BRANCHES} alternatives")
    return out


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``1 == 1.0``, but ``true != 1`` and keys unordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return _decimal(a) == _decimal(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _decimal(x: float) -> Decimal:
    return Decimal(x) if isinstance(x, int) else Decimal(repr(x))


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        d = _decimal(value)
        return "integer" if d == d.to_integral_value() else "fraction"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# --------------------------------------------------------------------------- flattening


class Flattener:
    """Turns subschemas into unions of conjunctions (see the module docstring)."""

    def __init__(self, root: Any, draft: int, settings: Settings, spec,
                 keywords: Iterable[str]) -> None:
        # The keywords the dialect defines (``jsonschema``'s own table), plus the companions
        # read together with them; other keys are annotations or unknown, and ignored.
        self.keywords = frozenset(keywords) | COMPANIONS
        self.views: dict[int, dict] = {}
        self.draft = draft
        self.settings = settings
        self.spec = spec
        self.cache: dict[tuple, list[Conj]] = {}
        self.active: set[tuple] = set()
        # Synthetic schemas (``{"not": ...}``) must outlive the compile: subs key on their id.
        self.keep: list[Any] = []
        self.negations: dict[tuple, dict] = {}
        self.negating: set[tuple] = set()  # the subschemas whose negation is being built
        # Scopes only matter to unevaluated*; without them every path shares one cache entry.
        text = json.dumps(root)
        self.track_scope = "unevaluatedProperties" in text or "unevaluatedItems" in text

    # -- helpers

    def view(self, schema: dict) -> dict:
        """``schema`` without the keys its dialect does not define."""
        found = self.views.get(id(schema))
        if found is None:
            found = self.views[id(schema)] = {k: v for k, v in schema.items()
                                              if k in self.keywords}
        return found

    def synthetic(self, schema: dict, at: Sub) -> Sub:
        """A schema made up during compilation, resolved like ``at``. Kept alive for the whole
        compile: views and caches key on ``id``, which a freed dict would hand to the next."""
        self.keep.append(schema)
        return Sub(schema, at.resolver, at.pointer)

    def refuse(self, keyword: str, sub: Sub, why: str) -> None:
        """Raise for an assertion we cannot enforce, or warn and go on without it."""
        message = f"{keyword!r} at {sub.pointer}: {why}"
        if self.settings.strict:
            raise UnsupportedKeyword(keyword, f"unsupported JSON Schema keyword {message}")
        warnings.warn(f"structgen ignores {message}", stacklevel=4)

    def child(self, sub: Sub, value: Any, *path: str | int) -> Sub:
        """The subschema at ``path`` below ``sub``, entering its resource if it has an id."""
        resolver = sub.resolver
        if isinstance(value, dict) and self._id_of(value):
            try:
                resolver = resolver.in_subresource(self.spec.create_resource(value))
            except Exception as error:
                raise SchemaError(f"bad schema id at {sub.pointer}: {error}") from error
        pointer = sub.pointer + "".join(
            "/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)
        return Sub(value, resolver, pointer)

    def _id_of(self, schema: dict) -> str | None:
        key = "id" if self.draft <= 4 else "$id"
        value = schema.get(key)
        if self.draft <= 7 and isinstance(value, str) and value.startswith("#"):
            return None
        return value if isinstance(value, str) else None

    def resolve(self, sub: Sub, ref: str, keyword: str) -> Sub:
        try:
            resolved = sub.resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as error:
            raise SchemaError(
                f"cannot resolve {keyword} {ref!r} at {sub.pointer} (remote references are "
                f"never fetched): {error}") from error
        return self.entered(Sub(resolved.contents, resolved.resolver,
                                f"{sub.pointer}/{keyword}"))

    def entered(self, target: Sub) -> Sub:
        """``target`` with its own resource entered, when it has an id."""
        if isinstance(target.schema, dict) and self._id_of(target.schema):
            return Sub(target.schema, target.resolver.in_subresource(
                self.spec.create_resource(target.schema)), target.pointer)
        return target

    # -- positive

    def flatten(self, sub: Sub, scope: frozenset[int] = frozenset()) -> list[Conj]:
        """The union of conjunctions equal to ``sub``."""
        key = (sub.key, scope)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if key in self.active:
            raise UnsupportedKeyword(
                "$ref", f"{sub.pointer} refers to itself without consuming input "
                "(an infinite loop of in-place references)")
        self.active.add(key)
        try:
            result = self._flatten(sub, scope)
        finally:
            self.active.discard(key)
        self.cache[key] = result
        return result

    def _flatten(self, sub: Sub, scope: frozenset[int]) -> list[Conj]:
        schema = sub.schema
        if schema is True:
            return [Conj()]
        if schema is False:
            return []
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object or a boolean at {sub.pointer}")
        if self.track_scope:
            scope = scope | {id(schema)}
        if "$ref" in schema and self.draft <= 7:
            return self.flatten(self.resolve(sub, schema["$ref"], "$ref"), scope)
        result = [self.local(sub, scope)]
        for keyword, value in self.view(schema).items():
            if keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
                result = dnf_and(result, self.flatten(self.reference(sub, keyword), scope))
            elif keyword == "allOf":
                for i, item in enumerate(value):
                    result = dnf_and(result, self.flatten(self.child(sub, item, keyword, i), scope))
            elif keyword == "anyOf":
                branches = [c for i, item in enumerate(value)
                            for c in self.flatten(self.child(sub, item, keyword, i), scope)]
                result = dnf_and(result, branches)
            elif keyword == "oneOf":
                result = dnf_and(result, self.one_of(sub, value, scope))
            elif keyword == "not":
                result = dnf_and(result, self.negate(self.child(sub, value, keyword)))
            elif keyword == "if":
                result = dnf_and(result, self.if_then_else(sub, scope))
            elif keyword in ("dependentSchemas", "dependentRequired", "dependencies"):
                for name, dependency in value.items():
                    result = dnf_and(result, self.dependency(sub, keyword, name, dependency,
                                                             scope))
            if not result:
                return []
        return result

    def reference(self, sub: Sub, keyword: str) -> Sub:
        ref = sub.schema[keyword]
        if keyword == "$recursiveRef":
            if ref != "#":
                raise SchemaError(f"$recursiveRef must be '#' at {sub.pointer}")
            resolved = referencing.jsonschema.lookup_recursive_ref(sub.resolver)
            return self.entered(Sub(resolved.contents, resolved.resolver,
                                    f"{sub.pointer}/{keyword}"))
        # ``referencing`` resolves a dynamic anchor through the resolver's dynamic scope.
        return self.resolve(sub, ref, keyword)

    def local(self, sub: Sub, scope: frozenset[int]) -> Conj:
        """The conjunction of ``sub``'s own (non-applicator) assertions."""
        s = self.view(sub.schema)
        fields: dict[str, Any] = {}
        if "type" in s:
            types = s["type"] if isinstance(s["type"], list) else [s["type"]]
            kinds: set[str] = set()
            for t in types:
                if t == "any" and self.draft <= 3:
                    kinds |= KINDS
                elif t not in TYPE_KINDS:
                    raise SchemaError(f"unknown type {t!r} at {sub.pointer}/type")
                else:
                    kinds |= TYPE_KINDS[t]
            fields["kinds"] = frozenset(kinds)
        if "enum" in s:
            fields["enum"] = tuple(s["enum"])
        if "const" in s and self.draft >= 6:
            fields["enum"] = (s["const"],) if "enum" not in fields else tuple(
                v for v in fields["enum"] if json_equal(v, s["const"]))
        fields.update(self.numeric(sub))
        fields.update(self.strings(sub))
        fields.update(self.arrays(sub, scope))
        fields.update(self.objects(sub, scope))
        return Conj(**fields)

    def numeric(self, sub: Sub) -> dict[str, Any]:
        s = self.view(sub.schema)
        out: dict[str, Any] = {}
        bounds = []
        for keyword, is_lower in (("minimum", True), ("maximum", False)):
            if keyword in s:
                exclusive_key = "exclusiveMinimum" if is_lower else "exclusiveMaximum"
                exclusive = self.draft <= 4 and s.get(exclusive_key) is True
                bounds.append((is_lower, _number(s[keyword], sub, keyword), exclusive))
        if self.draft >= 6:
            for keyword, is_lower in (("exclusiveMinimum", True), ("exclusiveMaximum", False)):
                if keyword in s:
                    bounds.append((is_lower, _number(s[keyword], sub, keyword), True))
        for is_lower, value, exclusive in bounds:
            prefix = "lower" if is_lower else "upper"
            old = out.get(prefix)
            if old is None or (value > old if is_lower else value < old) or (
                    value == old and exclusive):
                out[prefix], out[f"{prefix}_exclusive"] = value, exclusive
        if "multipleOf" in s:
            m = _number(s["multipleOf"], sub, "multipleOf")
            if m <= 0:
                raise SchemaError(f"multipleOf must be positive at {sub.pointer}")
            out["multiples"] = (m,)
        return out

    def strings(self, sub: Sub) -> dict[str, Any]:
        s = self.view(sub.schema)
        out: dict[str, Any] = {}
        terms = []
        if "pattern" in s:
            terms.append(self.pattern(sub, s["pattern"], "pattern"))
        if "format" in s:
            term = self.format(sub, s["format"])
            if term is not None:
                terms.append(term)
        if terms:
            out["string_terms"] = tuple(terms)
        if "minLength" in s:
            out["min_length"] = _count(s["minLength"], sub, "minLength")
        if "maxLength" in s:
            out["max_length"] = _count(s["maxLength"], sub, "maxLength")
        return out

    def pattern(self, sub: Sub, pattern: str, keyword: str) -> Term:
        from structgen.errors import RegexError

        try:
            return pattern_search_term(pattern)
        except UnsupportedKeyword:
            raise
        except RegexError as error:
            if self.settings.strict or type(error).__name__ != "UnsupportedRegex":
                raise UnsupportedKeyword(
                    keyword, f"{keyword!r} at {sub.pointer}: {error}") from error
            self.refuse(keyword, sub, str(error))
            return Repeat(Chars(ANY_CHAR), 0, None)

    def format(self, sub: Sub, name: str) -> Term | None:
        try:
            return format_term(name)
        except UnsupportedKeyword as error:
            self.refuse("format", sub, str(error))
            return None

    def arrays(self, sub: Sub, scope: frozenset[int]) -> dict[str, Any]:
        s = self.view(sub.schema)
        out: dict[str, Any] = {}
        prefix: tuple[Sub, ...] = ()
        items = None
        if "prefixItems" in s and self.draft >= 2020:
            prefix = tuple(self.child(sub, x, "prefixItems", i)
                           for i, x in enumerate(s["prefixItems"]))
        if "items" in s:
            if isinstance(s["items"], list) and self.draft < 2020:
                prefix = tuple(self.child(sub, x, "items", i) for i, x in enumerate(s["items"]))
                if "additionalItems" in s:
                    items = self.child(sub, s["additionalItems"], "additionalItems")
            elif not isinstance(s["items"], list):
                items = self.child(sub, s["items"], "items")
        if prefix or items is not None:
            out["arrays"] = (ArraySpec(prefix, items, scope),)
        if "minItems" in s:
            out["min_items"] = _count(s["minItems"], sub, "minItems")
        if "maxItems" in s:
            out["max_items"] = _count(s["maxItems"], sub, "maxItems")
        if s.get("uniqueItems") is True:
            out["unique_items"] = True
        if "contains" in s and self.draft >= 6:
            low = _count(s.get("minContains", 1), sub, "minContains") if self.draft >= 2019 \
                else 1
            high = s.get("maxContains") if self.draft >= 2019 else None
            if high is not None:
                high = _count(high, sub, "maxContains")
            out["contains"] = ((self.child(sub, s["contains"], "contains"), low, high),)
        if "unevaluatedItems" in s and self.draft >= 2019:
            out["unevaluated_items"] = (
                (self.child(sub, s["unevaluatedItems"], "unevaluatedItems"), id(sub.schema)),)
        return out

    def objects(self, sub: Sub, scope: frozenset[int]) -> dict[str, Any]:
        s = self.view(sub.schema)
        out: dict[str, Any] = {}
        properties = tuple((name, self.child(sub, value, "properties", name))
                           for name, value in s.get("properties", {}).items())
        patterns = tuple((p, self.child(sub, value, "patternProperties", p))
                         for p, value in s.get("patternProperties", {}).items())
        additional = None
        if "additionalProperties" in s:
            additional = self.child(sub, s["additionalProperties"], "additionalProperties")
        elif self.settings.extra_properties == "forbid" and "properties" in s:
            additional = Sub(False, sub.resolver, sub.pointer + "/additionalProperties")
        if properties or patterns or additional is not None:
            out["objects"] = (ObjectSpec(properties, patterns, additional, scope),)
        if isinstance(s.get("required"), list):
            out["required"] = frozenset(s["required"])
        if "propertyNames" in s and self.draft >= 6:
            out["property_names"] = (self.child(sub, s["propertyNames"], "propertyNames"),)
        if "minProperties" in s:
            out["min_properties"] = _count(s["minProperties"], sub, "minProperties")
        if "maxProperties" in s:
            out["max_properties"] = _count(s["maxProperties"], sub, "maxProperties")
        if "unevaluatedProperties" in s and self.draft >= 2019:
            out["unevaluated_properties"] = ((self.child(
                sub, s["unevaluatedProperties"], "unevaluatedProperties"), id(sub.schema)),)
        return out

    def one_of(self, sub: Sub, items: list, scope: frozenset[int]) -> list[Conj]:
        """``oneOf`` is the union of its branches when they are pairwise disjoint; otherwise
        each branch is intersected with the negations of the others."""
        branches = [self.flatten(self.child(sub, x, "oneOf", i), scope)
                    for i, x in enumerate(items)]
        if all(disjoint(a, b) for i, a in enumerate(branches) for b in branches[i + 1:]):
            return [c for branch in branches for c in branch]
        out: list[Conj] = []
        for i, branch in enumerate(branches):
            exclusive = branch
            for j, item in enumerate(items):
                if j != i and not all(disjoint([a], branches[j]) for a in branch):
                    try:
                        exclusive = dnf_and(exclusive,
                                            self.negate(self.child(sub, item, "oneOf", j)))
                    except UnsupportedKeyword as error:
                        raise UnsupportedKeyword(
                            "oneOf", f"'oneOf' at {sub.pointer}: branches {i} and {j} may "
                            f"overlap and branch {j} cannot be negated ({error})") from error
            out.extend(exclusive)
        return out

    def if_then_else(self, sub: Sub, scope: frozenset[int]) -> list[Conj]:
        s = sub.schema
        condition = self.child(sub, s["if"], "if")
        then = self.flatten(self.child(sub, s["then"], "then"), scope) if "then" in s \
            else [Conj()]
        otherwise = self.flatten(self.child(sub, s["else"], "else"), scope) if "else" in s \
            else [Conj()]
        if "then" not in s and "else" not in s:
            return [Conj()]
        try:
            negated = self.negate(condition)
        except UnsupportedKeyword as error:
            raise UnsupportedKeyword(
                "if", f"'if' at {sub.pointer}: its condition cannot be negated ({error})"
            ) from error
        return dnf_and(self.flatten(condition, scope), then) + dnf_and(negated, otherwise)

    def dependency(self, sub: Sub, keyword: str, name: str, dependency: Any,
                   scope: frozenset[int]) -> list[Conj]:
        """"If ``name`` is present, then ...": absent, or present and the dependency holds."""
        absent = [Conj(kinds=KINDS - {"object"}), Conj(kinds=frozenset({"object"}),
                                                       forbidden=frozenset({name}))]
        present = Conj(kinds=frozenset({"object"}), required=frozenset({name}))
        if isinstance(dependency, list):
            then = [Conj(required=frozenset(dependency))]
        else:
            then = self.flatten(self.child(sub, dependency, keyword, name), scope)
        return absent + dnf_and([present], then)

    # -- negative

    def negate(self, sub: Sub) -> list[Conj]:
        """The union of conjunctions equal to the complement of ``sub``, by De Morgan's laws
        down to single keywords; raises :class:`UnsupportedKeyword` for a keyword whose
        complement is not expressible here."""
        s = sub.schema
        if s is True:
            return []
        if s is False:
            return [Conj()]
        if sub.key in self.negating:  # a recursive schema: the union would never end
            raise UnsupportedKeyword("not", f"the negation of {sub.pointer} reaches itself "
                                     "through a recursive reference")
        self.negating.add(sub.key)
        try:
            if "$ref" in s and self.draft <= 7:
                return self.negate(self.resolve(sub, s["$ref"], "$ref"))
            out: list[Conj] = []
            for keyword, value in self.view(s).items():
                if keyword in COMPANIONS - {"exclusiveMinimum", "exclusiveMaximum"}:
                    continue
                out.extend(self.negate_keyword(sub, keyword, value))
            return out
        finally:
            self.negating.discard(sub.key)

    def negated(self, sub: Sub, schema: Any, *path: str | int) -> Sub:
        """The subschema ``{"not": schema}`` for the child at ``path`` below ``sub``. One
        wrapper per (schema, resolution context), so that a recursive schema's negation reaches
        the same subschemas again (and the emitter's memo ties the recursion)."""
        key = Sub(schema, sub.resolver, "").key
        wrapper = self.negations.get(key)
        if wrapper is None:
            wrapper = self.negations[key] = self.synthetic({"not": schema}, sub).schema
        return Sub(wrapper, sub.resolver, self.child(sub, schema, *path).pointer)

    def negate_keyword(self, sub: Sub, keyword: str, value: Any) -> list[Conj]:
        s = sub.schema

        # A keyword about one kind of value holds for every other kind: its negation is the
        # values of that kind that fail it, nothing else.
        if keyword == "type":
            kept = self.local(self.synthetic({"type": value}, sub), frozenset())
            return [Conj(kinds=KINDS - kept.kinds)] if KINDS - kept.kinds else []
        if keyword in ("enum", "const"):
            values = tuple(value) if keyword == "enum" else (value,)
            if keyword == "const" and self.draft < 6:
                return []
            if any(isinstance(v, (list, dict)) for v in values):
                raise UnsupportedKeyword(keyword, f"{keyword!r} at {sub.pointer}: cannot "
                                         "exclude array or object values")
            return [Conj(excluded=values)]
        if keyword == "multipleOf":
            numbers = frozenset({"integer", "fraction"})
            step = _number(value, sub, "multipleOf")
            return [Conj(kinds=numbers, non_multiples=(step,))]
        if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if keyword.startswith("exclusive") and self.draft <= 4:
                return []
            is_lower = keyword in ("minimum", "exclusiveMinimum")
            exclusive = keyword.startswith("exclusive") or (
                self.draft <= 4 and s.get("exclusive" + keyword[0].upper() + keyword[1:]) is True)
            bound = _number(value, sub, keyword)
            numbers = frozenset({"integer", "fraction"})
            flipped = (Conj(kinds=numbers, upper=bound, upper_exclusive=not exclusive) if is_lower
                       else Conj(kinds=numbers, lower=bound, lower_exclusive=not exclusive))
            return [flipped]
        if keyword == "minLength":
            n = _count(value, sub, keyword)
            return ([Conj(kinds=frozenset({"string"}),
                                                max_length=n - 1)] if n > 0 else [])
        if keyword == "maxLength":
            return [Conj(kinds=frozenset({"string"}),
                                               min_length=_count(value, sub, keyword) + 1)]
        if keyword in ("pattern", "format"):
            fields = self.strings(self.synthetic({keyword: value}, sub))
            terms = fields.get("string_terms", ())
            if not terms:
                return []
            return [Conj(kinds=frozenset({"string"}),
                                               string_not_terms=terms)]
        if keyword == "minItems":
            n = _count(value, sub, keyword)
            return ([Conj(kinds=frozenset({"array"}), max_items=n - 1)]
                                         if n > 0 else [])
        if keyword == "maxItems":
            return [Conj(kinds=frozenset({"array"}),
                                              min_items=_count(value, sub, keyword) + 1)]
        if keyword == "minProperties":
            n = _count(value, sub, keyword)
            return ([Conj(kinds=frozenset({"object"}),
                                                max_properties=n - 1)] if n > 0 else [])
        if keyword == "maxProperties":
            return [Conj(kinds=frozenset({"object"}),
                                               min_properties=_count(value, sub, keyword) + 1)]
        if keyword == "required":
            return [Conj(kinds=frozenset({"object"}),
                                               forbidden=frozenset({name})) for name in value]
        if keyword == "properties":
            out: list[Conj] = []
            for name, schema in value.items():
                if self.negate(self.child(sub, schema, "properties", name)):
                    negated = self.negated(sub, schema, "properties", name)
                    out.append(Conj(kinds=OBJECT, required=frozenset({name}),
                                    objects=(ObjectSpec(((name, negated),)),)))
            return out
        if keyword == "additionalProperties":
            if value is True:
                return []
            names = s.get("properties", {})
            patterns = s.get("patternProperties", {})
            witness = ObjectWitness(self.negated(sub, value, keyword), frozenset(names),
                                    tuple(patterns))
            return [Conj(kinds=OBJECT, witnesses=(witness,))]
        if keyword == "patternProperties":
            return [Conj(kinds=OBJECT, witnesses=(ObjectWitness(
                self.negated(sub, schema, keyword, pattern), pattern=pattern),))
                for pattern, schema in value.items() if schema is not True]
        if keyword in ("dependentRequired", "dependentSchemas", "dependencies"):
            out = []
            for name, dependency in value.items():
                present = Conj(kinds=OBJECT, required=frozenset({name}))
                if isinstance(dependency, list):
                    out.extend(replace(present, forbidden=frozenset({d})) for d in dependency
                               if d != name)
                else:
                    out.extend(dnf_and([present], self.negate(
                        self.child(sub, dependency, keyword, name))))
            return out
        if keyword in ("items", "prefixItems") and isinstance(value, list):
            if keyword == "items" and self.draft >= 2020:
                raise SchemaError(f"'items' must be a schema at {sub.pointer}/items")
            true = Sub(True, sub.resolver, sub.pointer)
            out = [Conj(kinds=ARRAY, min_items=i + 1, arrays=(ArraySpec(
                (true,) * i + (self.negated(sub, schema, keyword, i),)),))
                for i, schema in enumerate(value) if schema is not True]
            extra = s.get("additionalItems", True) if keyword == "items" else True
            if extra is False:
                out.append(Conj(kinds=ARRAY, min_items=len(value) + 1))
            elif extra is not True:
                raise UnsupportedKeyword("additionalItems", f"'additionalItems' at {sub.pointer} "
                                         "cannot be negated (inside 'not', 'if', or an "
                                         "overlapping 'oneOf')")
            return out
        if keyword == "items":
            if value is True:
                return []
            if s.get("prefixItems") and self.draft >= 2020:
                raise UnsupportedKeyword(keyword, f"'items' at {sub.pointer} cannot be negated "
                                         "after 'prefixItems' (inside 'not', 'if', or an "
                                         "overlapping 'oneOf')")
            return [Conj(kinds=ARRAY, contains=((self.negated(sub, value, keyword), 1, None),))]
        if keyword == "contains" and self.draft >= 6:
            low = _count(s.get("minContains", 1), sub, "minContains") if self.draft >= 2019 \
                else 1
            high = s.get("maxContains") if self.draft >= 2019 else None
            target = self.child(sub, value, keyword)
            out = [Conj(kinds=ARRAY, contains=((target, 0, low - 1),))] if low > 0 else []
            if high is not None:
                out.append(Conj(kinds=ARRAY, contains=(
                    (target, _count(high, sub, "maxContains") + 1, None),)))
            return out
        if keyword == "oneOf":
            # Not exactly one: none of the branches, or two of them at once.
            children = [self.child(sub, x, keyword, i) for i, x in enumerate(value)]
            none = [Conj()]
            for child in children:
                none = dnf_and(none, self.negate(child))
            flat = [self.flatten(child) for child in children]
            return none + [c for i in range(len(flat)) for j in range(i + 1, len(flat))
                           for c in dnf_and(flat[i], flat[j])]
        if keyword == "not":
            return self.flatten(self.child(sub, value, keyword))
        if keyword == "allOf":
            return [c for i, x in enumerate(value)
                    for c in self.negate(self.child(sub, x, keyword, i))]
        if keyword == "anyOf":
            result = [Conj()]
            for i, x in enumerate(value):
                result = dnf_and(result, self.negate(self.child(sub, x, keyword, i)))
            return result
        if keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
            return self.negate(self.reference(sub, keyword))
        if keyword == "if":
            condition = self.child(sub, value, "if")
            then = self.negate(self.child(sub, s["then"], "then")) if "then" in s else []
            otherwise = self.negate(self.child(sub, s["else"], "else")) if "else" in s else []
            return dnf_and(self.flatten(condition), then) + dnf_and(self.negate(condition),
                                                                     otherwise)
        if value is True and keyword in ("items", "additionalProperties", "patternProperties",
                                         "unevaluatedItems", "unevaluatedProperties") \
                or keyword == "uniqueItems" and value is False:
            return []
        raise UnsupportedKeyword(keyword, f"{keyword!r} at {sub.pointer} cannot be negated "
                                 "(inside 'not', 'if', or an overlapping 'oneOf')")


def disjoint(a: list[Conj], b: list[Conj]) -> bool:
    """Whether no value satisfies both unions (a sufficient check, not a decision procedure)."""
    return all(_conj_disjoint(x, y) for x in a for y in b)


def _conj_disjoint(x: Conj, y: Conj) -> bool:
    merged = conj_and(x, y)
    if merged is None:
        return True
    if merged.enum is not None and not any(
            kind_of(v) in merged.kinds or (kind_of(v) == "integer" and "fraction" in merged.kinds)
            for v in merged.enum):  # an integral number is a fraction when so written in draft-04
        return True
    if merged.kinds <= {"object"}:
        for name in merged.required:
            left = [s for spec in x.objects for n, s in spec.properties if n == name]
            right = [s for spec in y.objects for n, s in spec.properties if n == name]
            for ls in left:
                for rs in right:
                    if _const_disjoint(ls.schema, rs.schema):
                        return True
    return False


def _const_disjoint(a: Any, b: Any) -> bool:
    """Two property schemas with disjoint ``const``/``enum`` values (discriminator fields)."""
    def values(s):
        if not isinstance(s, dict):
            return None
        if "const" in s:
            return [s["const"]]
        return s.get("enum")

    va, vb = values(a), values(b)
    return va is not None and vb is not None and not any(
        json_equal(p, q) for p in va for q in vb)


def _number(value: Any, sub: Sub, keyword: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{keyword} must be a number at {sub.pointer}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError(f"{keyword} must be finite at {sub.pointer}")
    return _decimal(value)


def _count(value: Any, sub: Sub, keyword: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SchemaError(f"{keyword} must be a non-negative integer at {sub.pointer}")
    return value


# --------------------------------------------------------------------------- emission

Piece = Term | Nonterminal
ANY_STRING = Repeat(Chars(ANY_CHAR), 0, None)
# Number literals without an exponent: the only ones whose value a regular term can pin down.
NO_EXPONENT = Repeat(Chars(CharSet.chars("-.0123456789")), 1, None)
NUMBER_END = Look(Chars(CharSet.chars("0123456789.eE+-")), ahead=True, negate=True)
# Draft-04's integers: literals without a fraction or an exponent (``1.0`` is a number there).
INTEGER_LITERAL = Seq((
    Repeat(literal("-"), 0, 1),
    Alt((literal("0"), Seq((Chars(CharSet.chars("123456789")), Repeat(Chars(CharSet.chars(
        "0123456789")), 0, None)))))))
INTEGER_WITHOUT_EXPONENT = Seq((
    INTEGER_LITERAL, Repeat(Seq((literal("."), Repeat(literal("0"), 1, None))), 0, 1)))


def _written_as_integer(integer: bool) -> Look:
    """The check that a number literal is written as draft-04's integer (``integer``) or
    not: without a fraction or an exponent."""
    return Look(Seq((INTEGER_LITERAL, NUMBER_END)), ahead=True, negate=not integer)


def complement(term: Term) -> Term:
    """Every text that ``term`` does not match in full."""
    return Seq((Look(Seq((term, END)), ahead=True, negate=True), ANY_STRING))


def _seq(pieces: list[Term]) -> Term:
    return pieces[0] if len(pieces) == 1 else Seq(tuple(pieces))


def _alt(terms: Iterable[Term]) -> Term:
    unique = list(dict.fromkeys(t for t in terms if t != NOTHING))
    return unique[0] if len(unique) == 1 else Alt(tuple(unique))


def _all_of(terms: list[Term]) -> Term:
    return terms[0] if len(terms) == 1 else intersect(*terms)


class Emitter:
    """Writes grammar rules for subschemas (see the module docstring).

    ``build`` memoizes one piece per key: a regular term when nothing below it recurses back,
    else a rule. A key met again while it is being built marks a recursion; the recursive keys
    become rules, and the rest stay terms that later merge into large terminals.
    """

    def __init__(self, flattener: Flattener, settings: Settings, validator) -> None:
        self.flattener = flattener
        self.settings = settings
        self.validator = validator
        self.results: dict[tuple, Piece] = {}
        self.names: dict[tuple, str] = {}
        self.building: set[tuple] = set()
        self.recursive: set[tuple] = set()
        self.rules: dict[str, list[list[Piece]]] = {}
        self.validators: dict[tuple, Any] = {}
        self.patterns: dict[str, Term] = {}
        self.complements: dict[tuple[str, ...], Term] = {}
        self.sizes: dict[int, tuple[Term, int]] = {}  # tree sizes of terms, by id
        pretty = settings.whitespace == "pretty"
        self.pretty = pretty
        self.gap = (Repeat(Chars(WHITESPACE), 0, settings.max_whitespace)
                    if settings.whitespace == "flexible" else None)

    # -- layout

    def _text(self, text: str, gap_before: bool = False, gap_after: bool = False) -> Term:
        parts = [literal(text)]
        if self.gap is not None:
            parts = ([self.gap] if gap_before else []) + parts + ([self.gap] if gap_after else [])
        return _seq(parts)

    def open(self, bracket: str, depth: int) -> Term:
        if self.pretty:
            return literal(bracket + "\n" + "  " * (depth + 1))
        return self._text(bracket, gap_after=True)

    def separator(self, depth: int) -> Term:
        if self.pretty:
            return literal(",\n" + "  " * (depth + 1))
        return self._text(",", gap_before=True, gap_after=True)

    def close(self, bracket: str, depth: int) -> Term:
        if self.pretty:
            return literal("\n" + "  " * depth + bracket)
        return self._text(bracket, gap_before=True)

    def empty(self, pair: str) -> Term:
        if self.gap is not None:
            return Seq((literal(pair[0]), self.gap, literal(pair[1])))
        return literal(pair)

    def colon(self) -> Term:
        return literal(": ") if self.pretty else self._text(":", gap_before=True, gap_after=True)

    def inner(self, depth: int) -> int:
        return depth + 1 if self.pretty else 0

    # -- memoized pieces

    def build(self, key: tuple, make: Callable[[], list[list[Piece]]]) -> Piece:
        found = self.results.get(key)
        if found is not None:
            return found
        if key in self.building:
            self.recursive.add(key)
            return Nonterminal(self.names[key])
        self.names.setdefault(key, f"n{len(self.names)}")
        self.building.add(key)
        try:
            alternatives = make()
        finally:
            self.building.discard(key)
        alternatives = [alt for alt in alternatives if NOTHING not in alt]
        result: Piece | None = None
        if key not in self.recursive and all(isinstance(p, Term) for a in alternatives
                                             for p in a):
            result = _alt(_seq(a) if a else Seq(()) for a in alternatives) \
                if alternatives else NOTHING
            if tree_size(result, self.sizes) > MAX_TERM_SIZE:
                result = None
        if result is None:
            self.rules[self.names[key]] = alternatives
            result = Nonterminal(self.names[key])
        self.results[key] = result
        return result

    def node(self, subs: tuple[Sub, ...], depth: int) -> Piece:
        """The piece for a value that must satisfy every schema in ``subs``."""
        key = (tuple(s.key for s in subs), depth)
        if depth > MAX_PRETTY_DEPTH:
            return NOTHING

        def make() -> list[list[Piece]]:
            conjs = [Conj()]
            for sub in subs:
                conjs = dnf_and(conjs, self.flattener.flatten(sub))
            out: list[list[Piece]] = []
            for index, conj in enumerate(conjs):
                out.extend(self.conj(conj, subs, depth, key + (index,)))
            return out

        return self.build(key, make)

    # -- one conjunction

    def conj(self, c: Conj, subs: tuple[Sub, ...], depth: int, key: tuple) -> list[list[Piece]]:
        if c.enum is not None:
            values: list[Any] = []
            terms: list[Term] = []
            for v in c.enum:
                if any(json_equal(v, x) for x in (*c.excluded, *values)):
                    continue
                term = self.enum_value(v, c, subs, depth)
                if term is not None:
                    values.append(v)
                    terms.append(term)
            return [[term] for term in terms]
        out: list[list[Piece]] = []
        if "null" in c.kinds and not any(x is None for x in c.excluded):
            out.append([literal("null")])
        if "boolean" in c.kinds:
            for b in (True, False):
                if not any(json_equal(b, x) for x in c.excluded):
                    out.append([literal(json.dumps(b))])
        if c.kinds & {"integer", "fraction"}:
            out.append([self.number(c)])
        if "string" in c.kinds:
            out.append([json_string_term(self.string_content(c))])
        if "array" in c.kinds:
            out.extend(self.array(c, subs, depth, key))
        if "object" in c.kinds:
            for index, resolved in enumerate(self.resolve_witnesses(c)):
                if "object" in resolved.kinds:
                    out.extend(self.object(resolved, subs, depth, key + ("w", index)))
        return out

    def resolve_witnesses(self, c: Conj) -> list[Conj]:
        """``c`` with its witnesses spelled out as required keys where the object's keys are
        a known finite set (``additionalProperties: false`` without patterns): "some key with
        a value satisfying T" is then a choice among those keys. Otherwise ``[c]``, and the
        object emitter tracks the witnesses itself."""
        finite = [frozenset(name for name, _ in spec.properties) for spec in c.objects
                  if not spec.patterns and spec.additional is not None
                  and spec.additional.schema is False]
        if not c.witnesses or not finite:
            return [c]
        universe = sorted(frozenset.intersection(*finite) - c.forbidden)
        result = [replace(c, witnesses=())]
        for w in c.witnesses:
            terms = {p: self.pattern(p, w.value)
                     for p in w.excluded_patterns + ((w.pattern,) if w.pattern else ())}
            keys = [k for k in universe if k not in w.excluded_names
                    and not any(term_matches(terms[p], k) for p in w.excluded_patterns)
                    and (w.pattern is None or term_matches(terms[w.pattern], k))]
            options = [Conj(kinds=OBJECT, required=frozenset({k}),
                            objects=(ObjectSpec(((k, w.value),)),)) for k in keys]
            result = [m for a in result for o in options if (m := conj_and(a, o)) is not None]
        return result

    def valid(self, value: Any, subs: tuple[Sub, ...]) -> bool:
        """Whether ``value`` is valid against every schema in ``subs`` (by ``jsonschema``)."""
        for sub in subs:
            checker = self.validators.get(sub.key)
            if checker is None:
                checker = self.validators[sub.key] = self.validator.evolve(
                    schema=sub.schema, _resolver=sub.resolver)
            if not checker.is_valid(value):
                return False
        return True

    def number(self, c: Conj) -> Term:
        """Number literals of the allowed kinds within the bounds. Non-integers alone, and
        excluded values, are only decidable without exponents, so those drop exponent forms.
        Draft-04 tells integers by how they are written (``INTEGER_LITERAL``), later drafts
        by their values."""
        options = {"integer": "fraction" not in c.kinds, "lower": c.lower,
                       "lower_exclusive": c.lower_exclusive, "upper": c.upper,
                       "upper_exclusive": c.upper_exclusive}
        try:
            term = number_term(**options, multiple_of=c.multiples)
        except UnsupportedKeyword as error:
            if self.settings.strict:
                raise
            warnings.warn(f"structgen ignores {error}", stacklevel=2)
            term = number_term(**options)
        exclude = [number_term(integer=False, lower=d, upper=d) for d in (
            _decimal(x) for x in c.excluded if isinstance(x, (int, float))
            and not isinstance(x, bool))]
        draft4 = self.flattener.draft <= 4
        if "integer" not in c.kinds and not draft4:
            exclude.append(INTEGER_WITHOUT_EXPONENT)
        # ``not: {multipleOf: m}``: the literals of multiples are excluded, exponent forms
        # with them (the multiples' term lacks some of them; see ``number_term``).
        exclude += [number_term(integer=False, multiple_of=(m,)) for m in c.non_multiples]
        checks = []
        if exclude:
            # Checked up to the end of the number, not of the text: a number is followed by a
            # delimiter inside arrays and objects.
            checks = [Look(Seq((NO_EXPONENT, NUMBER_END)), ahead=True, negate=False)]
            checks += [Look(Seq((t, NUMBER_END)), ahead=True, negate=True) for t in exclude]
        if draft4 and c.kinds & {"integer", "fraction"} != {"integer", "fraction"}:
            checks.append(_written_as_integer("fraction" not in c.kinds))
        return Seq((*checks, term)) if checks else term

    def string_content(self, c: Conj) -> Term:
        """The decoded-string term of a conjunction's string constraints."""
        parts: list[Term] = []
        if c.min_length or c.max_length is not None or not (c.string_terms or
                                                              c.string_not_terms):
            parts.append(string_length_term(c.min_length, c.max_length))
        parts.extend(c.string_terms)
        parts.extend(complement(t) for t in c.string_not_terms)
        excluded = [x for x in c.excluded if isinstance(x, str)]
        if excluded:
            parts.append(complement(_alt(literal(x) for x in excluded)))
        return _all_of(parts)

    def enum_value(self, v: Any, c: Conj, subs: tuple[Sub, ...], depth: int) -> Term | None:
        """The ways to write ``v``, a value of ``c``'s enum, that ``c`` and ``subs`` allow;
        None for none. Draft-04 tells an integer by how it is written: there an integral
        number written without a fraction or an exponent is an integer (its value an ``int``),
        and written otherwise a number that is no integer (a ``float``), each kind checked on
        its own."""
        if self.flattener.draft <= 4 and kind_of(v) == "integer" and not isinstance(v, bool):
            kinds = [kind for kind, written in (("integer", int(v)), ("fraction", float(v)))
                     if kind in c.kinds and self.valid(written, subs)]
            if not kinds:
                return None
            term = self.value(v, depth)
            return term if len(kinds) == 2 else Seq((_written_as_integer(kinds[0] == "integer"),
                                                     term))
        if kind_of(v) in c.kinds and self.valid(v, subs):
            return self.value(v, depth)
        return None

    def value(self, v: Any, depth: int) -> Term:
        """All the ways to write the JSON value ``v`` (for ``enum`` and ``const``)."""
        if v is None or isinstance(v, bool):
            return literal(json.dumps(v))
        if isinstance(v, (int, float)):
            d = _decimal(v)
            return number_term(integer=False, lower=d, upper=d)
        if isinstance(v, str):
            return json_string_literal_term(v)
        inner = self.inner(depth)
        if isinstance(v, list):
            if not v:
                return self.empty("[]")
            parts = [self.open("[", depth)]
            for i, x in enumerate(v):
                if i:
                    parts.append(self.separator(depth))
                parts.append(self.value(x, inner))
            return Seq((*parts, self.close("]", depth)))
        if not v:
            return self.empty("{}")
        parts = [self.open("{", depth)]
        for i, (k, x) in enumerate(v.items()):
            if i:
                parts.append(self.separator(depth))
            parts.extend((json_string_literal_term(k), self.colon(), self.value(x, inner)))
        return Seq((*parts, self.close("}", depth)))

    # -- arrays

    def array(self, c: Conj, subs: tuple[Sub, ...], depth: int, key: tuple
              ) -> list[list[Piece]]:
        pointer = subs[0].pointer if subs else "#"
        if c.unique_items and (c.max_items is None or c.max_items > 1):
            self.flattener.refuse("uniqueItems", Sub(None, subs[0].resolver, pointer)
                                  if subs else Sub(None, None, pointer),
                                  "uniqueness of items is not a context-free property")
        contains = c.contains
        if len(contains) > 1 or (contains and c.unevaluated_items):
            raise UnsupportedKeyword("contains", f"'contains' at {pointer}: several 'contains' "
                                     "or 'contains' with 'unevaluatedItems'")
        target, low, high = contains[0] if contains else (None, 0, None)
        miss = None
        if target is not None and high is not None:
            if high < low:
                return []
            miss = self.flattener.negated(target, target.schema)
        specs = c.arrays
        prefix_length = max((len(s.prefix) for s in specs), default=0)
        inner = self.inner(depth)

        def position(i: int, hit: bool | None) -> Piece:
            out = []
            for spec in specs:
                if i < len(spec.prefix):
                    out.append(spec.prefix[i])
                elif spec.items is not None:
                    out.append(spec.items)
            for unevaluated, owner in c.unevaluated_items:
                if not any(owner in spec.scope and (i < len(spec.prefix) or spec.items is not None)
                           for spec in specs):
                    out.append(unevaluated)
            if hit is True:
                out.append(target)
            elif hit is False and miss is not None:
                out.append(miss)
            return self.node(tuple(out), inner)

        def choices(hits: int) -> list[tuple[bool | None, int]]:
            if target is None:
                return [(None, hits)]
            if high is None:
                return [(True, min(hits + 1, low)), (None, hits)]
            return ([(True, hits + 1)] if hits < high else []) + [(False, hits)]

        steady = max(prefix_length, c.min_items)

        def rest(i: int, hits: int) -> Piece:
            """The array after its first ``i`` items, up to the closing bracket."""
            if c.max_items is None and i > steady:
                i = steady
            if target is None and i >= prefix_length:
                item = position(i, None)
                if isinstance(item, Term):
                    low_count = max(0, c.min_items - i)
                    high_count = None if c.max_items is None else c.max_items - i
                    return Seq((Repeat(Seq((self.separator(depth), item)), low_count, high_count),
                                self.close("]", depth)))

            def make() -> list[list[Piece]]:
                out: list[list[Piece]] = []
                if i >= c.min_items and hits >= low:
                    out.append([self.close("]", depth)])
                if c.max_items is None or i < c.max_items:
                    if c.max_items is not None and c.max_items > MAX_UNROLL:
                        raise UnsupportedKeyword("maxItems", f"'maxItems' at {pointer}: more "
                                                 f"than {MAX_UNROLL} non-regular items")
                    for hit, after in choices(hits):
                        out.append([self.separator(depth), position(i, hit), rest(i + 1, after)])
                return out

            return self.build(key + ("array", i, hits), make)

        out: list[list[Piece]] = []
        if c.min_items == 0 and low == 0:
            out.append([self.empty("[]")])
        if c.max_items is None or c.max_items > 0:
            for hit, after in choices(0):
                out.append([self.open("[", depth), position(0, hit), rest(1, after)])
        return out

    # -- objects

    def pattern(self, pattern: str, sub: Sub) -> Term:
        term = self.patterns.get(pattern)
        if term is None:
            term = self.patterns[pattern] = self.flattener.pattern(sub, pattern,
                                                                   "patternProperties")
        return term

    def object(self, c: Conj, subs: tuple[Sub, ...], depth: int, key: tuple
               ) -> list[list[Piece]]:
        specs = c.objects
        inner = self.inner(depth)
        all_patterns = list(dict.fromkeys(p for spec in specs for p, _ in spec.patterns))
        pattern_subs = {p: s for spec in specs for p, s in spec.patterns}
        terms = {p: self.pattern(p, pattern_subs[p]) for p in all_patterns}

        def value_subs(matched: Callable[[str], bool], declared: str | None) -> tuple[Sub, ...]:
            out: list[Sub] = []
            for spec in specs:
                properties = dict(spec.properties)
                hits = [s for p, s in spec.patterns if matched(p)]
                out.extend(hits)  # a declared name matching a pattern must satisfy both
                if declared is not None and declared in properties:
                    out.append(properties[declared])
                elif not hits and spec.additional is not None:
                    out.append(spec.additional)
            for unevaluated, owner in c.unevaluated_properties:
                if not any(owner in spec.scope and (
                        (declared is not None and declared in dict(spec.properties))
                        or any(matched(p) for p, _ in spec.patterns)
                        or spec.additional is not None) for spec in specs):
                    out.append(unevaluated)
            return tuple(out)

        names = list(dict.fromkeys(n for spec in specs for n, _ in spec.properties))
        # Required keys no ``properties`` declares are undeclared keys, written in any order
        # among the extras (a bit per key tracks which have appeared); past a few, the state
        # count doubles per key, so they are written in sorted order before the extras.
        undeclared = sorted(c.required - set(names))
        floating = undeclared if len(undeclared) <= MAX_FLOATING_KEYS else []
        names += [] if floating else undeclared
        # Witnesses ("some key in a set has a value satisfying T", from negations) are tracked
        # with a bit each: an entry or an undeclared key may satisfy any subset of them.
        witnesses = c.witnesses
        if len(witnesses) > MAX_WITNESSES:
            raise UnsupportedKeyword("not", f"more than {MAX_WITNESSES} negated property "
                                     f"keywords on one object at {subs[0].pointer if subs else '#'}")
        for w in witnesses:
            for p in w.excluded_patterns + ((w.pattern,) if w.pattern is not None else ()):
                terms.setdefault(p, self.pattern(p, w.value))
        subsets = range(1 << len(witnesses))

        def witness_subs(hits: int) -> tuple[Sub, ...]:
            return tuple(w.value for bit, w in enumerate(witnesses) if hits >> bit & 1)

        def may_witness(w: ObjectWitness, name: str) -> bool:
            return (name not in w.excluded_names
                    and not any(term_matches(terms[p], name) for p in w.excluded_patterns)
                    and (w.pattern is None or term_matches(terms[w.pattern], name)))

        # Per declared name: (hits, value piece) for each subset of witnesses it may satisfy.
        entries: list[tuple[str, list[tuple[int, Piece]], bool]] = []
        for name in names + floating:
            required = name in c.required
            allowed = name not in c.forbidden and self.valid(name, c.property_names)
            variants: list[tuple[int, Piece]] = []
            if allowed:
                matches = {p: term_matches(terms[p], name) for p in all_patterns}
                base = value_subs(matches.__getitem__, name)
                possible = sum(1 << bit for bit, w in enumerate(witnesses)
                               if may_witness(w, name))
                for hits in subsets:
                    if hits & ~possible:
                        continue
                    piece = self.node(base + witness_subs(hits), inner)
                    if piece != NOTHING:
                        variants.append((hits, piece))
            if not variants:
                if required:
                    return []
                continue
            entries.append((name, variants, required))
        floating_entries = entries[len(entries) - len(floating):] if floating else []
        entries = entries[:len(entries) - len(floating_entries)]

        regions: list[tuple[int, list[Piece]]] = []
        if len(all_patterns) > 6:
            raise UnsupportedKeyword("patternProperties", f"more than 6 patterns in one object at "
                                     f"{subs[0].pointer if subs else '#'}")
        known = set(names) | set(floating) | c.forbidden
        name_terms = self.property_name_terms(c)
        for mask in range(1 << len(all_patterns)):
            matched = {p for j, p in enumerate(all_patterns) if mask >> j & 1}
            parts = [terms[p] for p in all_patterns if p in matched]
            parts += [complement(terms[p]) for p in all_patterns if p not in matched]
            if known:
                parts.append(self.other_than(known))
            parts.extend(name_terms)
            base = value_subs(matched.__contains__, None)
            for hits in subsets:
                piece = self.node(base + witness_subs(hits), inner)
                if piece == NOTHING:
                    continue
                key_parts = list(parts)
                for bit, w in enumerate(witnesses):
                    if hits >> bit & 1:
                        if w.excluded_names:
                            key_parts.append(self.other_than(w.excluded_names))
                        key_parts += [complement(terms[p]) for p in w.excluded_patterns]
                        if w.pattern is not None:
                            key_parts.append(terms[w.pattern])
                content = _all_of(key_parts) if key_parts else ANY_STRING
                regions.append((hits, [Seq((json_string_term(content), self.colon())), piece]))

        low, high = c.min_properties, c.max_properties
        if low <= len(c.required):
            low = 0
        if high is not None and not regions and high >= len(entries) + len(floating_entries):
            high = None
        all_floating = (1 << len(floating_entries)) - 1
        if max(low, high or 0) > MAX_UNROLL:
            raise UnsupportedKeyword("maxProperties", f"property counts above {MAX_UNROLL} "
                                     f"at {subs[0].pointer if subs else '#'}")

        all_witnessed = (1 << len(witnesses)) - 1

        def rest(i: int, first: bool, count: int, seen: int = 0, hit: int = 0) -> Piece:
            """The object after its first ``i`` entries, ``count`` keys, the floating required
            keys in the bit set ``seen`` and the witnesses in ``hit``, up to the closing
            brace."""
            if high is None:
                count = min(count, low)

            def make() -> list[list[Piece]]:
                out: list[list[Piece]] = []
                lead = self.open("{", depth) if first else self.separator(depth)
                if i < len(entries):
                    name, variants, required = entries[i]
                    if not required:
                        out.append([rest(i + 1, first, count, seen, hit)])
                    if high is None or count < high:
                        for hits, piece in variants:
                            out.append([lead, json_string_literal_term(name), self.colon(),
                                        piece, rest(i + 1, False, count + 1, seen, hit | hits)])
                    return out
                if count >= low and seen == all_floating and hit == all_witnessed:
                    out.append([self.empty("{}") if first else self.close("}", depth)])
                if high is None or count < high:
                    for hits, region in regions:
                        out.append([lead, *region, rest(i, False, count + 1, seen, hit | hits)])
                    for bit, (name, variants, _) in enumerate(floating_entries):
                        if not seen >> bit & 1:
                            for hits, piece in variants:
                                out.append([lead, json_string_literal_term(name), self.colon(),
                                            piece, rest(i, False, count + 1, seen | 1 << bit,
                                                        hit | hits)])
                return out

            return self.build(key + ("object", i, first, count, seen, hit), make)

        return [[rest(0, True, 0)]]

    def other_than(self, names: Iterable[str]) -> Term:
        """Every decoded key but ``names``; memoized, as an object's variants (one per branch
        of a ``oneOf`` or per count of keys) all exclude the same declared names."""
        key = tuple(sorted(names))
        term = self.complements.get(key)
        if term is None:
            term = self.complements[key] = complement(_alt(literal(n) for n in key))
        return term

    def property_name_terms(self, c: Conj) -> list[Term]:
        """Decoded-string terms every undeclared key must match (``propertyNames``)."""
        out = []
        for sub in c.property_names:
            options = []
            for conj in self.flattener.flatten(sub):
                if "string" not in conj.kinds:
                    continue
                if conj.enum is not None:
                    options.extend(literal(v) for v in conj.enum
                                   if isinstance(v, str) and self.valid(v, (sub,)))
                else:
                    options.append(self.string_content(conj))
            out.append(_alt(options) if options else NOTHING)
        return out

    # -- the grammar

    def grammar(self, root: Piece) -> Term | Grammar:
        """The IR of the whole schema: the root term, or a grammar over the rules built."""
        if isinstance(root, Term):
            return root
        terminals: dict[Term, str] = {}

        def terminal(term: Term) -> Terminal:
            name = terminals.get(term)
            if name is None:
                name = terminals[term] = f"T{len(terminals)}"
            return Terminal(name)

        def variants(expansion: list[Piece]) -> list[tuple]:
            """The symbol sequences of an expansion, merging adjacent terms into one terminal
            (a nullable merged term splits into its non-empty part and nothing)."""
            out: list[tuple] = [()]
            run: list[Term] = []
            for piece in [*expansion, None]:
                if isinstance(piece, Term):
                    run.append(piece)
                    continue
                if run:
                    term = _seq(run)
                    run = []
                    if term != Seq(()):
                        if term_nullable(term):
                            nonempty = non_empty_part(term)
                            if nonempty != NOTHING:
                                out = [o + (terminal(nonempty),) for o in out] + out
                        else:
                            out = [o + (terminal(term),) for o in out]
                if piece is not None:
                    out = [o + (piece,) for o in out]
            return out

        rules = {name: tuple(v for alt in alts for v in variants(alt))
                 for name, alts in self.rules.items()}
        return Grammar(rules, {name: term for term, name in terminals.items()}, root.name)


DRAFTS = {
    "Draft3Validator": 3, "Draft4Validator": 4, "Draft6Validator": 6, "Draft7Validator": 7,
    "Draft201909Validator": 2019, "Draft202012Validator": 2020,
}


def compile_schema(schema: Any, settings: Settings = Settings()) -> Term | Grammar:
    """The grammar IR (a regular term when the schema allows it) of the JSON documents valid
    under ``schema`` (a dict or a boolean), written as ``settings`` says.

    Raises :class:`SchemaError` for an invalid or unresolvable schema and
    :class:`UnsupportedKeyword` for an assertion that cannot be enforced exactly.
    """
    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"a JSON Schema is an object or a boolean, not {type(schema).__name__}")
    try:
        text = json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise SchemaError(f"a JSON Schema must be a JSON value: {error}") from None
    cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator) \
        if isinstance(schema, dict) else jsonschema.Draft202012Validator
    draft = DRAFTS.get(cls.__name__)
    if draft is None or draft < 4:
        raise SchemaError(f"unsupported JSON Schema dialect {schema.get('$schema')!r}")
    ecma_class = checked_validator_class(schema)
    validator = ecma_class(schema, format_checker=cls.FORMAT_CHECKER)
    spec = referencing.jsonschema.specification_with(
        cls.META_SCHEMA.get("$schema", cls.META_SCHEMA.get("$id")))
    flattener = Flattener(schema, draft, settings, spec, cls.VALIDATORS)
    emitter = Emitter(flattener, settings, validator)
    token = _DYNAMIC_SCOPE.set("$dynamicAnchor" in text or "$recursiveAnchor" in text)
    try:
        root = flattener.entered(Sub(schema, validator._resolver, "#"))
        return emitter.grammar(emitter.node((root,), 0))
    finally:
        _DYNAMIC_SCOPE.reset(token)
