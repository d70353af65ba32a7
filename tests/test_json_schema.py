"""``sg.json_schema``: soundness of random walks through the compiled language, the layouts,
property order, dialects, references, and errors that name the keyword and its location.

The official test suite (``test_json_schema_suite.py``) checks labelled instances; here random
documents are *drawn from the compiled language* (a byte-level random walk through its
automaton) and every finished one must validate with ``jsonschema``, formats included, on
hand-picked schemas for each keyword and on random schemas built by hypothesis.
"""

from __future__ import annotations

import json
import random
import warnings
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import jsonschema
import jsonschema._keywords
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import validators

import structgen as sg
from structgen.automata.byte_dfa import Limits
from structgen.automata.matcher import _automaton
from structgen.sources.json_validation import checked_validator_class, validation_error
from structgen.sources.jsonschema import ArraySpec, Conj, ObjectSpec, Sub, conj_and
from structgen.testing.schema_suite import accepts

MAX_WALK_BYTES = 400


def random_documents(language, rng: random.Random, count: int) -> list[str]:
    """Up to ``count`` documents drawn by random byte walks through ``language``'s automaton
    (walks longer than ``MAX_WALK_BYTES`` are dropped)."""
    automaton = _automaton(language, Limits())
    documents = []
    for _ in range(count * 4):
        state, out = automaton.start, bytearray()
        while len(out) < MAX_WALK_BYTES:
            if automaton.accepting[state] and rng.random() < 0.3:
                documents.append(out.decode())
                break
            options = [b for b in range(256) if automaton.step(state, b) >= 0]
            if not options:
                break
            # Bytes that close or separate structures keep walks short.
            structural = [b for b in options if b in b'"]},:0123456789tfn']
            byte = rng.choice(structural if structural and rng.random() < 0.6 else options)
            out.append(byte)
            state = automaton.step(state, byte)
        if len(documents) == count:
            break
    return documents


def _is_multiple(x: Decimal, step) -> bool:
    """Whether the exact decimal ``x`` is a multiple of ``step``, without expanding exponents
    (a random walk may write ``1e999999999``)."""
    step = Fraction(str(step))
    p, q = step.numerator, step.denominator
    _, digits, exponent = x.as_tuple()
    mantissa = int("".join(map(str, digits)) or "0")
    if exponent >= 0:  # x / step = mantissa * 10^exponent * q / p
        return mantissa * pow(10, exponent, p) * q % p == 0
    if -exponent > len(str(mantissa)) + len(str(q)):  # 10^-exponent * p > mantissa * q
        return mantissa == 0
    return Fraction(mantissa * q, 10 ** -exponent * p).denominator == 1


def _multiple_of(validator, step, instance, schema):
    if isinstance(instance, Decimal):
        if not _is_multiple(instance, step):
            yield jsonschema.ValidationError(f"{instance} is not a multiple of {step}")
    else:
        yield from jsonschema._keywords.multipleOf(validator, step, instance, schema)


def exact_validator(schema):
    """``jsonschema`` with ECMA patterns, formats, and exact (Decimal) JSON numbers."""
    base = checked_validator_class(schema)
    checker = base.TYPE_CHECKER.redefine_many({
        "integer": lambda c, x: base.TYPE_CHECKER.is_type(x, "integer") or (
            isinstance(x, Decimal) and x == x.to_integral_value()),
        "number": lambda c, x: base.TYPE_CHECKER.is_type(x, "number") or isinstance(x, Decimal),
    })
    cls = validators.extend(base, {"multipleOf": _multiple_of}, type_checker=checker)
    return cls(schema, format_checker=base.FORMAT_CHECKER)


def assert_valid(validator, schema, text):
    # Decimals: JSON numbers are exact (8.1 is a multiple of 0.1, 1e400 an integer), floats
    # are not.
    error = validation_error(validator, json.loads(text, parse_float=Decimal))
    assert error is None, (schema, text, error.message)


def assert_walks_validate(schema, documents_wanted=12, seed=0, **options):
    language = sg.json_schema(schema, **options).language()
    validator = exact_validator(schema)
    documents = random_documents(language, random.Random(seed), documents_wanted)
    assert documents, "no walk finished"
    for text in documents:
        assert_valid(validator, schema, text)
    return documents


KEYWORD_SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                      "age": {"type": "integer", "minimum": 0, "maximum": 130}},
     "required": ["name"], "additionalProperties": False},
    {"type": "object", "patternProperties": {"^x-": {"type": "boolean"}},
     "properties": {"x-id": {"const": True}}, "additionalProperties": {"type": "null"},
     "maxProperties": 3},
    {"type": "object", "propertyNames": {"pattern": "^[a-c]+$", "maxLength": 2},
     "minProperties": 1},
    {"required": ["b", "a"], "properties": {"c": {"type": "integer"}}},
    {"dependentRequired": {"a": ["b"]}, "properties": {"a": {"type": "integer"},
                                                       "b": {"type": "integer"}},
     "additionalProperties": False},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"enum": ["x", "y"]}],
     "items": {"type": "boolean"}, "maxItems": 4},
    {"type": "array", "contains": {"type": "string"}, "minContains": 2, "maxContains": 3,
     "items": {"enum": [1, "a", "b", None]}, "maxItems": 6},
    {"type": "number", "exclusiveMinimum": -2.5, "maximum": 1e3, "multipleOf": 0.25},
    {"type": "integer", "not": {"enum": [0, 1, 2]}, "minimum": -3, "maximum": 5},
    {"type": "string", "pattern": "^[A-Z][a-z]+( [A-Z][a-z]+)*$", "maxLength": 20},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email", "maxLength": 30},
    {"type": "string", "format": "ipv6"},
    {"type": "string", "minLength": 2, "maxLength": 3, "not": {"pattern": "a"}},
    {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "integer", "maximum": 10}]},
    {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "array", "maxItems": 1}]},
    {"if": {"properties": {"kind": {"const": "num"}}, "required": ["kind"]},
     "then": {"properties": {"value": {"type": "number"}}, "required": ["value"]},
     "else": {"properties": {"value": {"type": "string"}}},
     "properties": {"kind": {"enum": ["num", "str"]}}, "additionalProperties": False},
    {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "next": {"$ref": "#/$defs/node"}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
    {"properties": {"a": {"type": "integer"}}, "allOf": [{"properties": {"b": {"type": "string"}}}],
     "unevaluatedProperties": False},
    {"type": "array", "prefixItems": [{"type": "string"}], "unevaluatedItems": {"type": "null"},
     "maxItems": 3},
    {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
     "properties": {"n": {"type": "number", "maximum": 3, "exclusiveMaximum": True},
                    "m": {"type": "boolean"}},
     "dependencies": {"n": ["m"]}, "required": ["n"], "additionalProperties": False},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
     "items": [{"type": "integer"}], "additionalItems": False, "minItems": 1},
    {"enum": [1.0, "1", [1], {"a": None}, True]},
]


@pytest.mark.parametrize("schema", KEYWORD_SCHEMAS, ids=lambda s: json.dumps(s)[:60])
def test_random_walks_through_keyword_schemas_validate(schema):
    assert_walks_validate(schema)


@pytest.mark.parametrize("whitespace", ["flexible", "compact", "pretty"])
def test_random_walks_validate_in_every_layout(whitespace):
    documents = assert_walks_validate(KEYWORD_SCHEMAS[0], whitespace=whitespace, seed=1)
    for text in documents:
        if whitespace == "compact":
            assert text == json.dumps(json.loads(text), separators=(",", ":"),
                                      ensure_ascii=False) or "\\" in text
        if whitespace == "pretty":
            assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) \
                or "\\" in text


# ----------------------------------------------------------------- random schemas (hypothesis)

_LEAVES = st.one_of(
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-50, 50), st.integers(0, 200)),
    st.builds(lambda m: {"type": "number", "multipleOf": m, "maximum": 10},
              st.sampled_from([0.5, 2, 0.1])),
    st.builds(lambda lo, span: {"type": "string", "minLength": lo, "maxLength": lo + span},
              st.integers(0, 3), st.integers(0, 4)),
    st.builds(lambda p: {"type": "string", "pattern": p},
              st.sampled_from(["^a+b?$", "x", "^[0-9]{2,3}$", "(ab|cd)$", "^\\w+@\\w+$"])),
    st.builds(lambda f: {"type": "string", "format": f},
              st.sampled_from(["date", "uuid", "ipv4", "hostname", "time"])),
    st.builds(lambda v: {"enum": v}, st.lists(st.one_of(
        st.none(), st.booleans(), st.integers(-3, 3), st.text("ab", max_size=2)),
        min_size=1, max_size=4)),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, True, {}]),
    # Keywords without ``type`` hold for every other kind of value.
    st.sampled_from([{"minimum": 1}, {"multipleOf": 2}, {"maxLength": 1}, {"minItems": 1},
                     {"required": ["a"]}, {"pattern": "^a"}, {"maxProperties": 0}]),
)


def _composites(children):
    return st.one_of(
        st.builds(lambda props, required, extra: {
            "type": "object", "properties": props, "required": sorted(required & set(props)),
            "additionalProperties": extra},
            st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
            st.sets(st.sampled_from("abcd")), st.sampled_from([False, True, {"type": "integer"}])),
        st.builds(lambda item, lo, span: {"type": "array", "items": item, "minItems": lo,
                                          "maxItems": lo + span},
                  children, st.integers(0, 2), st.integers(0, 2)),
        st.builds(lambda xs: {"anyOf": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: {"allOf": xs}, st.lists(children, min_size=1, max_size=2)),
        st.builds(lambda xs: {"oneOf": xs}, st.lists(children, min_size=1, max_size=2)),
        st.builds(lambda x, y: {**y, "not": x} if isinstance(y, dict) else {"not": x},
                  children, children),
        st.builds(lambda c, t, e: {"if": c, "then": t, "else": e}, children, children, children),
    )


RANDOM_SCHEMAS = st.recursive(_LEAVES, _composites, max_leaves=6)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(schema=RANDOM_SCHEMAS, seed=st.integers(0, 2**16))
def test_random_walks_through_random_schemas_validate(schema, seed):
    """Soundness on schemas nobody picked: every finished walk validates. Refusals, empty
    languages and exceeded limits are legitimate outcomes, not counted."""
    try:
        language = sg.json_schema(schema).language()
    except (sg.UnsupportedKeyword, sg.EmptyLanguage):
        assume(False)
    validator = exact_validator(schema)
    try:
        documents = random_documents(language, random.Random(seed), 4)
    except sg.LimitExceeded:
        # A bounded search gave up (a known cost: some format terms intersected with negated
        # patterns); a clear error, never an unsound output.
        assume(False)
    for text in documents:
        assert_valid(validator, schema, text)


# ------------------------------------------------------------------------- specific semantics


NUMBER_LITERALS = ["1", "-0", "12345.0", "1e2", "1.0e1", "1.5", "2", "2.0", "2.5", "3.0", '"a"']


@pytest.mark.parametrize("draft", ["http://json-schema.org/draft-04/schema#",
                                   "https://json-schema.org/draft/2020-12/schema"])
@pytest.mark.parametrize("schema", [
    {"type": "integer"},
    {"type": ["integer", "string"]},
    {"not": {"type": "integer"}},
    {"type": "number", "not": {"type": "integer"}},
    {"enum": [1.0, 2, "a"], "type": "integer"},
    {"enum": [1.0, 2.5], "not": {"type": "integer"}},
    {"oneOf": [{"enum": [1, 2]}, {"type": "number", "not": {"type": "integer"}}]},
])
def test_integers_are_told_as_each_draft_tells_them(draft, schema):
    """Draft-04 tells an integer by how it is written (``1.0`` is a number that is no
    integer there, as ``jsonschema`` reads it: a ``float``), later drafts by its value: no
    literal is accepted that ``jsonschema`` refuses, and every valid one is accepted (but
    exponent forms where values are excluded, which are left out, see the README)."""
    schema = {"$schema": draft, **schema}
    language = sg.json_schema(schema).language()
    validator = validators.validator_for(schema)(schema)
    for text in NUMBER_LITERALS:
        valid = validator.is_valid(json.loads(text))
        if accepts(language, text) != valid:
            assert valid and "e" in text, text


@pytest.mark.parametrize("keyword, failing, other_kinds", [
    ({"minimum": 3}, "1", ['"a"', "[]", "null"]),
    ({"multipleOf": 2}, "3", ['"a"', "{}"]),
    ({"minLength": 3}, '"ab"', ["1", "[]"]),
    ({"pattern": "^a"}, '"b"', ["1", "true"]),
    ({"maxItems": 0}, "[1]", ['"a"', "{}"]),
    ({"required": ["a"]}, "{}", ["[]", "0"]),
    ({"properties": {"a": {"type": "string"}}}, '{"a":1}', ["[]", '"a"']),
])
def test_negating_a_keyword_about_one_kind_keeps_only_that_kind(keyword, failing, other_kinds):
    """A keyword about one kind of value holds for every other kind, so ``not`` of it holds
    only for values of its kind that fail it."""
    language = sg.json_schema({"not": keyword}).language()
    assert accepts(language, failing)
    for text in other_kinds:
        assert not accepts(language, text), text


NEGATED_APPLICATORS = [
    ({"not": {"items": {"type": "string"}}},
     ["[]", '["a"]', '["a",1]', "[1]", '{"a":1}', '"x"', "[null,\"b\"]"]),
    ({"$schema": "http://json-schema.org/draft-07/schema#",
      "not": {"items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False}},
     ["[]", '["a"]', '["a",1]', '["a",1,2]', "[1]", '["a","b"]', "3"]),
    ({"not": {"prefixItems": [{"const": 1}]}}, ["[]", "[1]", "[2]", "[1,2]", "{}"]),
    ({"not": {"contains": {"type": "integer"}, "minContains": 2, "maxContains": 3}},
     ["[]", "[1]", "[1,2]", "[1,2,3]", "[1,2,3,4]", '[1,"a",2]', "1"]),
    ({"not": {"properties": {"a": {"type": "integer"}}, "additionalProperties": False}},
     ["{}", '{"a":1}', '{"a":"x"}', '{"b":1}', '{"a":1,"b":1}', "[]"]),
    ({"not": {"additionalProperties": {"type": "integer"}}},
     ["{}", '{"a":1}', '{"a":"x"}', '{"a":1,"b":"y"}', "1"]),
    ({"not": {"patternProperties": {"^x": {"type": "integer"}, "y$": False}}},
     ["{}", '{"x1":1}', '{"x1":"a"}', '{"ay":1}', '{"b":"c"}', '{"x":1,"xy":2}']),
    ({"not": {"dependentRequired": {"a": ["b", "c"]}}},
     ["{}", '{"a":1}', '{"a":1,"b":2}', '{"a":1,"b":2,"c":3}', '{"b":1}']),
    ({"not": {"dependentSchemas": {"a": {"required": ["b"]}}}},
     ["{}", '{"a":1}', '{"a":1,"b":2}', '{"b":1}']),
    ({"not": {"oneOf": [{"type": "integer"}, {"minimum": 2}]}},
     ["1", "2", "1.5", "2.5", '"a"']),
    ({"oneOf": [{"type": "object", "properties": {"a": {"type": "integer"}},
                 "additionalProperties": False},
                {"type": "object", "properties": {"b": {"type": "integer"}},
                 "additionalProperties": False}]},
     ["{}", '{"a":1}', '{"b":1}', '{"a":1,"b":2}', '{"c":1}', '"s"']),
    ({"oneOf": [{"type": "object", "required": ["kind"]},
                {"type": "object", "properties": {"x": {"type": "integer"}}}]},
     ["{}", '{"kind":1}', '{"x":1}', '{"x":"a"}', '{"x":"a","kind":1}', '{"kind":1,"x":2}']),
    ({"type": "array", "oneOf": [{"items": {"type": "integer"}}, {"items": {"minimum": 0}}]},
     ["[]", "[1]", "[-1]", "[0.5]", "[-0.5]", "[1,-1]", "[1,0.5]"]),
]


@pytest.mark.parametrize("schema, instances", NEGATED_APPLICATORS,
                         ids=lambda x: json.dumps(x)[:50] if isinstance(x, dict) else "")
def test_negated_object_and_array_keywords_agree_with_the_validator(schema, instances):
    """``not`` of items, prefixItems, contains, properties, additionalProperties,
    patternProperties, dependencies and oneOf, and overlapping ``oneOf`` branches: the
    language holds exactly the valid instances (written compactly, declared keys first, in
    schema order)."""
    language = sg.json_schema(schema).language()
    validator = exact_validator(schema)
    for text in instances:
        valid = validation_error(validator, json.loads(text, parse_float=Decimal)) is None
        assert accepts(language, text) == valid, (text, valid)
    # Random walks (few finish where a key must be spelled exactly) end in valid documents.
    for text in random_documents(language, random.Random(0), 6):
        assert_valid(validator, schema, text)


def test_required_keys_no_property_declares_come_in_any_order():
    language = sg.json_schema({"required": ["b", "a"], "additionalProperties": False,
                               "properties": {"a": True, "b": True}}).language()
    assert accepts(language, '{"a":1,"b":2}')  # declared: schema order only
    assert not accepts(language, '{"b":2,"a":1}')
    floating = sg.json_schema({"required": ["b", "a"]}).language()
    for text in ('{"a":1,"b":2}', '{"b":2,"a":1}', '{"x":0,"b":2,"a":1}'):
        assert accepts(floating, text), text
    for text in ('{"a":1}', '{"a":1,"b":2,"a":3}', '{"b":1,"x":2}'):
        assert not accepts(floating, text), text


def test_a_declared_property_matching_a_pattern_satisfies_both():
    schema = {"properties": {"foo": {"type": "array", "maxItems": 3}},
              "patternProperties": {"f.o": {"minItems": 2}}}
    language = sg.json_schema(schema).language()
    assert accepts(language, '{"foo":[1,2]}')
    assert not accepts(language, '{"foo":[]}')
    assert not accepts(language, '{"foo":[1,2,3,4]}')


def test_dynamic_references_follow_the_dynamic_scope():
    schema = {
        "$id": "https://example.com/list", "$ref": "generic",
        "$defs": {
            "generic": {"$id": "generic", "type": "array",
                        "items": {"$dynamicRef": "#item"},
                        "$defs": {"item": {"$dynamicAnchor": "item"}}},
            "strings": {"$dynamicAnchor": "item", "type": "string"},
        },
    }
    language = sg.json_schema(schema).language()
    assert accepts(language, '["a","b"]')
    assert not accepts(language, '["a",1]')


def test_bounded_whitespace_and_exact_pretty_layout():
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}}
    flexible = sg.json_schema(schema).language()
    assert accepts(flexible, '{ "a" :\n [ 1 , 2 ] }')
    assert accepts(flexible, "{" + " " * 20 + '"a":[]}')
    assert not accepts(flexible, "{" + " " * 21 + '"a":[]}')
    pretty = sg.json_schema(schema, whitespace="pretty").language()
    value = {"a": [1, 2]}
    assert accepts(pretty, json.dumps(value, indent=2))
    assert not accepts(pretty, json.dumps(value))
    assert accepts(pretty, json.dumps({}, indent=2))


def test_extra_properties_forbid_closes_objects_that_declare_properties():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert accepts(sg.json_schema(schema).language(), '{"a":1,"b":2}')
    closed = sg.json_schema(schema, extra_properties="forbid").language()
    assert accepts(closed, '{"a":1}')
    assert not accepts(closed, '{"a":1,"b":2}')


def test_json_values_compare_as_json():
    language = sg.json_schema({"enum": [1, True]}).language()
    assert accepts(language, "1") and accepts(language, "1.0") and accepts(language, "true")
    integers = sg.json_schema({"type": "integer"}).language()
    assert accepts(integers, "1.0") and accepts(integers, "1e2")
    assert not accepts(integers, "1.5") and not accepts(integers, "true")


def test_ecma_patterns_are_read_as_ecma():
    language = sg.json_schema({"type": "string", "pattern": "^\\p{Lu}\\d$"}).language()
    assert accepts(language, '"A1"')
    assert not accepts(language, '"a1"')
    assert not accepts(language, '"A\u0661"')  # ECMA's \d is ASCII only, unlike Python's
    constraint = sg.json_schema({"patternProperties": {"^\\p{Lu}": {"type": "integer"}},
                                 "additionalProperties": False})
    assert constraint.parse('{"Ab": 1}') == {"Ab": 1}
    with pytest.raises(sg.StructgenError, match="additional properties"):
        constraint.parse('{"ab": 1}')


def test_large_objects_compile_to_rules_and_accept_their_documents():
    """A schema with many optional properties: each value stays a small terminal, and the
    document is still accepted exactly."""
    properties = {f"field_{i}": {"type": "string", "maxLength": 5} for i in range(60)}
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    language = sg.json_schema(schema).language()
    assert isinstance(language, sg.grammar("json").language().__class__)
    document = {f"field_{i}": "x" * (i % 6) for i in range(0, 60, 3)}
    assert accepts(language, json.dumps(document, separators=(",", ":")))
    assert not accepts(language, json.dumps({"field_1": "toolong"}, separators=(",", ":")))


@pytest.mark.parametrize("schema, keyword, pointer", [
    ({"type": "array", "uniqueItems": True}, "uniqueItems", "#"),
    ({"properties": {"a": {"format": "regex"}}}, "format", "#/properties/a"),
    ({"properties": {"a": {"pattern": "(a)\\1"}}}, "pattern", "#/properties/a"),
])
def test_unsupported_keywords_are_named_with_their_pointer(schema, keyword, pointer):
    with pytest.raises(sg.UnsupportedKeyword) as raised:
        sg.json_schema(schema)
    assert keyword in str(raised.value) and pointer in str(raised.value)


def test_strict_false_drops_an_unsupported_keyword_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        language = sg.json_schema({"type": "array", "items": {"type": "integer"},
                                   "uniqueItems": True}, strict=False).language()
    assert any("uniqueItems" in str(w.message) for w in caught)
    assert accepts(language, "[1,2]") and not accepts(language, '["a"]')


@pytest.mark.parametrize("schema, message", [
    ({"type": "integr"}, "#/type"),
    ({"$ref": "https://example.com/remote.json"}, "never fetched"),
    ({"$ref": "#/$defs/missing"}, "cannot resolve"),
    ({"minLength": -1}, "#/minLength"),
    ({"enum": [Decimal("1.5")]}, "JSON value: Object of type Decimal"),
    ({"maximum": float("nan")}, "JSON value: Out of range float"),
    ({"enum": [{1, 2}]}, "JSON value: Object of type set"),
])
def test_invalid_schemas_raise_schema_error_naming_the_problem(schema, message):
    with pytest.raises(sg.SchemaError, match=message.replace("$", "\\$")):
        sg.json_schema(schema)


def test_the_default_dialect_is_2020_12_and_dollar_schema_switches_it():
    items = {"items": [{"type": "integer"}]}
    with pytest.raises(sg.SchemaError):
        sg.json_schema(items)  # an array ``items`` is not 2020-12
    draft7 = sg.json_schema({"$schema": "http://json-schema.org/draft-07/schema#", **items})
    assert accepts(draft7.language(), '[1,"x"]')
    assert not accepts(draft7.language(), '["x"]')
    assert jsonschema.Draft7Validator(draft7.schema).is_valid([1, "x"])


_META_PROBES = [  # keyword values, valid and invalid under the meta-schemas
    ("type", "integr"), ("type", ["string", "null"]), ("type", []), ("minimum", "3"),
    ("minimum", 3), ("required", 5), ("required", ["a", "a"]), ("required", ["a"]),
    ("properties", []), ("properties", {"a": {"type": "strin"}}), ("items", 4),
    ("items", {"maxLength": -1}), ("prefixItems", [True, {"enum": []}]), ("enum", []),
    ("$defs", {"x": {"anyOf": []}}), ("definitions", {"x": {"minLength": 1.5}}),
    ("dependencies", {"a": ["b", 3]}), ("dependentRequired", {"a": "b"}), ("not", 1),
    ("pattern", 5), ("format", "date"), ("additionalProperties", {"$ref": 3}),
    ("$anchor", "9bad"), ("contains", {"minContains": "1"}), ("title", 5),
    ("exclusiveMinimum", True), ("exclusiveMaximum", 3), ("maximum", 2.5), ("multipleOf", 0),
    ("id", 5), ("$id", "#foo"), ("uniqueItems", "yes"), ("enum", [1, 1.0]),
    ("enum", [True, 1]), ("required", []), ("minLength", 2.0), ("$ref", "#/$defs/x"),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["https://json-schema.org/draft/2020-12/schema",
                        "https://json-schema.org/draft/2019-09/schema",
                        "http://json-schema.org/draft-07/schema#",
                        "http://json-schema.org/draft-06/schema#",
                        "http://json-schema.org/draft-04/schema#"]),
       st.recursive(st.dictionaries(st.sampled_from(range(len(_META_PROBES))), st.just(None),
                                    max_size=3).map(
                        lambda d: dict(_META_PROBES[i] for i in d)),
                    lambda inner: st.tuples(inner, st.sampled_from(
                        ["properties", "items", "allOf", "$defs"])).map(
                        lambda t: {t[1]: [t[0]] if t[1] == "allOf" else (
                            t[0] if t[1] == "items" else {"x": t[0]})}),
                    max_leaves=4))
def test_the_fast_meta_schema_check_decides_like_the_meta_schema(dialect, schema):
    """``checked_validator_class``'s fast check (the meta-schema, flattened for 2019-09 and
    2020-12, compiled into predicates) accepts exactly the schemas the real meta-schemas
    accept, in every dialect."""
    schema = {"$schema": dialect, **schema}
    cls = validators.validator_for(schema)
    real = cls(cls.META_SCHEMA).is_valid(schema)
    try:
        checked_validator_class(schema)
        fast = True
    except sg.SchemaError:
        fast = False
    assert fast == real


def test_merged_conjunctions_keep_each_object_and_array_spec_once():
    """Merging a conjunction with one holding the same specs (every ``oneOf`` branch of a
    large schema meets the same ``$ref``s again) keeps each spec once; and a closed object
    spec rules out a required key it does not declare, a key it declares ``false`` too."""
    resolver = SimpleNamespace(_base_uri="")
    closed = ObjectSpec(properties=(("a", Sub({}, resolver, "#/a")),
                                    ("b", Sub(False, resolver, "#/b"))),
                        additional=Sub(False, resolver, "#/additionalProperties"))
    one = Conj(kinds=frozenset({"object", "array"}), objects=(closed,), arrays=(ArraySpec(),))
    other = Conj(kinds=frozenset({"object", "array"}), objects=(closed, ObjectSpec()),
                 arrays=(ArraySpec(),))
    merged = conj_and(conj_and(one, other), one)
    assert merged.objects == (closed, ObjectSpec()) and len(merged.arrays) == 1
    for required, kept in [({"a"}, True), ({"b"}, False), ({"c"}, False), (set(), True)]:
        result = conj_and(merged, Conj(required=frozenset(required)))
        assert ("object" in result.kinds) == kept, required


def test_a_negation_that_reaches_itself_through_a_recursive_ref_is_refused_by_name():
    """``oneOf`` branches that may overlap are made exclusive by negating the others; where a
    branch's negation leads back to itself through a recursive ``$ref`` (a tree whose nodes
    are ``oneOf``s), the union would never end: refused, naming ``oneOf`` and where."""
    schema = {"$ref": "#/definitions/node", "definitions": {"node": {"oneOf": [
        {"type": "object", "required": ["leaf"]},
        {"type": "object", "properties": {"child": {"$ref": "#/definitions/node"}}},
    ]}}}
    with pytest.raises(sg.UnsupportedKeyword, match="reaches itself through a recursive") as info:
        sg.json_schema(schema)
    assert "'oneOf' at #" in str(info.value)
