"""JSON front doors: schema sources (``structgen.sources.types``), ``sg.generate_json`` and the
``@sg.function`` decorator.

Generation runs on a toy model over printable ASCII whose distribution favours closing quotes and
brackets (so documents end quickly), and, in the last few tests, on the embedded default model.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Annotated, Literal, Optional

import jsonschema
import pydantic
import pytest
from typing_extensions import TypedDict

import structgen as sg
from structgen.api import JsonResult, _json_constraint
from structgen.sources.types import EXACT_INTEGER, _bound_integers, schema_and_parser
from structgen.testing import ToyModel


# ------------------------------------------------------------------------------ the types
class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str | None = None


class Movie(TypedDict):
    title: str
    year: int


class Address(pydantic.BaseModel):
    city: str
    zip_code: str = pydantic.Field(pattern=r"^\d{5}$")


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0, le=150)
    address: Address
    tags: list[Literal["vip", "new"]] = []


@dataclasses.dataclass
class Shape:
    points: list[Point]
    colors: list[Color] | None
    meta: dict[str, int | bool]


class Verdict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    answer: Literal["yes", "no"]
    confident: bool


# --------------------------------------------------------------------------- schema sources
# (source, a generated document, the value its parser returns)
TYPE_CASES = [
    (int, "42", 42),
    (bool, "true", True),
    (str, '"caf\\u00e9"', "café"),
    (float, "2.5e1", 25.0),
    (Literal["red", "green"], '"green"', "green"),
    (Color, '"red"', Color.RED),
    (list[int], "[1, 2, 3]", [1, 2, 3]),
    (dict[str, int], '{"a": 1, "b": -2}', {"a": 1, "b": -2}),
    (Optional[int], "null", None),  # noqa: UP045 (typing.Optional itself)
    (float | None, "7", 7.0),
    (int | str, '"x"', "x"),
    (tuple[int, str], '[1, "a"]', (1, "a")),
    (Annotated[int, pydantic.Field(ge=1, le=5)], "4", 4),
    (Point, '{"x": 1, "y": 2, "label": null}', Point(1, 2.0)),
    (Movie, '{"title": "Alien", "year": 1979}', {"title": "Alien", "year": 1979}),
    (Shape, '{"points": [{"x": 0, "y": 0.5}], "colors": ["green"], "meta": {"n": 2, "ok": true}}',
     Shape([Point(0, 0.5)], [Color.GREEN], {"n": 2, "ok": True})),
    (Person, '{"name": "Ada", "age": 36, "address": {"city": "London", "zip_code": "12345"}}',
     Person(name="Ada", age=36, address=Address(city="London", zip_code="12345"))),
]


@pytest.mark.parametrize("source,text,expected", TYPE_CASES,
                         ids=[repr(case[0]) for case in TYPE_CASES])
def test_python_types_give_pydantics_schema_and_parse_to_their_value(source, text, expected):
    schema, parse = schema_and_parser(source)
    if isinstance(source, type) and issubclass(source, pydantic.BaseModel):
        assert schema == _bound_integers(source.model_json_schema())
    else:
        assert schema == _bound_integers(pydantic.TypeAdapter(source).json_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(text), schema)  # the document is one the schema allows
    value = parse(text)
    assert value == expected
    assert type(value) is type(expected)


def test_integers_from_python_types_are_bounded_to_what_pydantic_reads_exactly():
    assert schema_and_parser(int)[0] == {"type": "integer", "minimum": -EXACT_INTEGER,
                                         "maximum": EXACT_INTEGER}
    age = schema_and_parser(Person)[0]["properties"]["age"]
    assert (age["minimum"], age["maximum"]) == (0, 150)  # the model's own bounds are tighter
    shape = schema_and_parser(Shape)[0]
    assert shape["$defs"]["Point"]["properties"]["x"]["maximum"] == EXACT_INTEGER
    meta = shape["properties"]["meta"]["additionalProperties"]["anyOf"][0]
    assert meta == {"type": "integer", "minimum": -EXACT_INTEGER, "maximum": EXACT_INTEGER}
    # Inside the bounds every integer literal reads back exactly, exponents included; the first
    # literal past them would not.
    parse = schema_and_parser(int)[1]
    assert parse("9.007199254740992E15") == EXACT_INTEGER
    assert parse("-90071992547409.92e2") == -EXACT_INTEGER
    assert parse("1.5E3") == 1500
    assert pydantic.TypeAdapter(int).validate_json("9.007199254740993E15") != EXACT_INTEGER + 1


def test_json_schema_values_and_text_are_the_schema_and_parse_to_plain_json():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    for source in (schema, json.dumps(schema), json.dumps(schema).encode()):
        got, parse = schema_and_parser(source)
        assert got == schema
        assert parse('{"n": 3, "extra": [1.5]}') == {"n": 3, "extra": [1.5]}
    for source in (True, False):
        assert schema_and_parser(source)[0] is source
    assert schema_and_parser(True)[1]('{"anything": null}') == {"anything": None}
    with pytest.raises(sg.StructgenError, match="False schema"):
        schema_and_parser(False)[1]("1")


@pytest.mark.parametrize("source,message", [
    ('{"type": "object",}', r"not valid JSON: .* line 1, column 19"),
    ("[1, 2]", "object or a boolean, not an array"),
    ({"type": "integr"}, "invalid JSON Schema at #/type"),
    ({"properties": {"a": {"minimum": "3"}}}, "invalid JSON Schema at #/properties/a/minimum"),
    (5, r"got 5 \(a value of type int\)"),
    (None, "NoneType"),
    (lambda text: text, "function"),
    (type("Opaque", (), {}), "no JSON Schema for the type Opaque: pydantic cannot read it"),
    (list[type("Opaque", (), {})], "no JSON Schema for the type list"),
])
def test_bad_sources_raise_schema_error_naming_the_problem(source, message):
    with pytest.raises(sg.SchemaError, match=message):
        schema_and_parser(source)


def test_raw_schema_parser_uses_the_dialect_of_dollar_schema_and_checks_formats():
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number",
              "minimum": 0, "exclusiveMinimum": True}
    _, parse = schema_and_parser(draft4)
    assert parse("0.5") == 0.5
    with pytest.raises(sg.StructgenError, match="less than or equal to the minimum"):
        parse("0")
    _, parse = schema_and_parser({"type": "string", "format": "ipv4"})
    assert parse('"10.0.0.1"') == "10.0.0.1"
    with pytest.raises(sg.StructgenError, match="is not a 'ipv4'"):
        parse('"10.0.0.256"')


@pytest.mark.parametrize("source,text,message", [
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, '{"a": "x"}',
     "at a: 'x' is not of type 'integer'"),
    ({"type": "array"}, "[1,", "output is not JSON"),
    (Person, '{"name": "Ada", "age": 200, "address": {"city": "L", "zip_code": "1"}}',
     "as Person: age: .*less than or equal to 150; address/zip_code: .*pattern"),
    (list[int], '["a"]', "0: Input should be a valid integer"),
])
def test_an_invalid_output_raises_structgen_error_with_the_validators_message(source, text,
                                                                              message):
    _, parse = schema_and_parser(source)
    with pytest.raises(sg.StructgenError, match=message) as caught:
        parse(text)
    # Not a SchemaError: the schema is fine, the output is not.
    assert not isinstance(caught.value, sg.SchemaError)
    assert isinstance(caught.value.__cause__, (jsonschema.ValidationError, ValueError))


# ----------------------------------------------------------------------- a toy JSON writer
TOY_TOKENS = ([bytes([c]) for c in range(0x20, 0x7F)] + [b"\n", b"\t"]
              + [b'{"', b'": ', b'", "', b"true", b"false", b"null", b"\xc3", b"\xa9"])
# Closing quotes and brackets (and EOS) are likely, so strings, numbers and arrays end soon.
_WEIGHTS = [30.0 if t in (b'"', b"}", b"]") else 1.0 for t in TOY_TOKENS] + [30.0]
TOY_PROBS = [w / sum(_WEIGHTS) for w in _WEIGHTS]


class PromptRecordingToy(ToyModel):
    """The toy JSON writer; it ignores its prompt (a ToyModel takes only ``""``) but records it."""

    def __init__(self):
        super().__init__(TOY_TOKENS, lambda context: TOY_PROBS)
        self.prompts: list = []

    def encode_prompt(self, prompt, chat=None) -> list[int]:
        self.prompts.append(prompt)
        return []


@pytest.fixture
def toy() -> PromptRecordingToy:
    return PromptRecordingToy()


SAMPLE = sg.Sample(temperature=1.0)

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "status": {"enum": ["open", "paid", "shipped"]},
        "gift": {"type": "boolean"},
        "total": {"type": "number"},
        "note": {"type": "string", "maxLength": 12},
        "lines": {"type": "array", "maxItems": 3, "items": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
            "required": ["sku", "qty"],
        }},
    },
    "required": ["id", "status", "lines"],
}


def _declared_keys_only(value, schema) -> bool:
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return set(value) <= set(properties) and all(
            _declared_keys_only(v, properties[k]) for k, v in value.items())
    if isinstance(value, list):
        return all(_declared_keys_only(v, schema.get("items", {})) for v in value)
    return True


# ------------------------------------------------------------------------ sg.generate_json
def test_generate_json_outputs_validate_and_hold_only_declared_properties(toy):
    values = sg.generate_json(toy, [""] * 24, ORDER_SCHEMA, sampler=SAMPLE, seed=1)
    assert len(values) == 24
    for value in values:
        jsonschema.validate(value, ORDER_SCHEMA)
        assert _declared_keys_only(value, ORDER_SCHEMA), value
    # Sampling explores: the optional fields appear in some outputs and not in others.
    assert 0 < sum("gift" in v for v in values) < 24


def test_generate_json_with_extra_properties_as_the_spec_says(toy):
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"],
              "maxProperties": 3}
    values = sg.generate_json(toy, [""] * 24, schema, sampler=SAMPLE, seed=2,
                              extra_properties="spec")
    for value in values:
        jsonschema.validate(value, schema)
    # Undeclared properties may appear (rare under this toy's distribution, so checked on the
    # constraint itself), up to maxProperties.
    constraint = sg.compile(sg.json_schema(schema, extra_properties="spec"), toy.vocab)
    assert constraint.matcher().text_cursor().step(b'{"a":true,"b":1,"c":null}')
    assert not constraint.matcher().text_cursor().step(b'{"a":true,"b":1,"c":null,"')


def test_generate_json_returns_model_instances_and_results(toy):
    person = sg.generate_json(toy, "", Person, sampler=SAMPLE, seed=3)
    assert isinstance(person, Person) and isinstance(person.address, Address)
    results = sg.generate_json(toy, ["", ""], Person, sampler=SAMPLE, seed=4,
                               return_result=True)
    for result in results:
        assert isinstance(result, JsonResult) and result.complete
        assert result.value == Person.model_validate_json(result.text)
        assert result.token_ids and result.timings


def test_generate_json_compact_whitespace_has_none_outside_strings(toy):
    import re

    results = sg.generate_json(toy, [""] * 8, ORDER_SCHEMA, sampler=SAMPLE, seed=5,
                               whitespace="compact", return_result=True)
    for result in results:
        outside = re.sub(r'"(\\.|[^"\\])*"', "", result.text)
        assert not re.search(r"\s", outside), result.text
        jsonschema.validate(result.value, ORDER_SCHEMA)


def test_generate_json_raises_incomplete_output_with_the_partial_text(toy):
    constraint = _json_constraint(ORDER_SCHEMA, "flexible", "schema", "forbid", True)
    cut = sg.generate(toy, "", constraint, max_tokens=4, return_result=True)
    assert cut.finish_reason == "length"
    with pytest.raises(sg.IncompleteOutput, match="max_tokens=4") as caught:
        sg.generate_json(toy, "", ORDER_SCHEMA, max_tokens=4)
    assert caught.value.partial == cut.text and cut.text.lstrip().startswith("{")
    with pytest.raises(sg.IncompleteOutput, match="output 0 of the batch"):
        sg.generate_json(toy, ["", ""], ORDER_SCHEMA, max_tokens=4)


def test_generate_json_reuses_one_constraint_per_schema_and_settings():
    first = _json_constraint(dict(ORDER_SCHEMA), "flexible", "schema", "forbid", True)
    assert _json_constraint(json.loads(json.dumps(ORDER_SCHEMA)), "flexible", "schema",
                            "forbid", True) is first
    assert _json_constraint(Person, "flexible", "schema", "forbid", True) is _json_constraint(
        Person, "flexible", "schema", "forbid", True)
    # Key order is the property order: another order is another constraint.
    reordered = dict(reversed(list(ORDER_SCHEMA.items())))
    assert _json_constraint(reordered, "flexible", "schema", "forbid", True) is not first
    assert _json_constraint(ORDER_SCHEMA, "compact", "schema", "forbid", True) is not first
    # A ready constraint is used as it is.
    ready = sg.json_schema(ORDER_SCHEMA)
    assert _json_constraint(ready, "compact", "schema", "forbid", True) is ready


def test_json_schema_constraint_exposes_the_schema_and_the_parser():
    c = sg.json_schema(Person)
    assert c.schema == Person.model_json_schema()
    text = '{"name": "Ada", "age": 36, "address": {"city": "London", "zip_code": "12345"}}'
    assert c.parse(text) == Person.model_validate_json(text)
    assert sg.json_schema(Color).parse('"green"') is Color.GREEN


# ------------------------------------------------------------------------------ @sg.function
def _decorated(model, output_type, **kwargs):
    def extract(text: str, n: int = 3):
        """Extract {n} things from: {text}"""

    extract.__annotations__["return"] = output_type
    return sg.function(model, **kwargs)(extract)


@pytest.mark.parametrize("sampler", [sg.AWRS(), sg.SMC(particles=3)], ids=["AWRS", "SMC"])
def test_awrs_and_smc_work_through_generate_json_and_the_decorator(toy, sampler):
    values = sg.generate_json(toy, [""] * 4, ORDER_SCHEMA, sampler=sampler, seed=2)
    for value in values:
        jsonschema.validate(value, ORDER_SCHEMA)
    extract = _decorated(toy, Person, sampler=sampler, seed=3)
    assert isinstance(extract("some text"), Person)


@pytest.mark.parametrize("output_type,check", [
    (int, lambda v: type(v) is int),
    (bool, lambda v: type(v) is bool),
    (str, lambda v: type(v) is str),
    (Literal["yes", "no", "maybe"], lambda v: v in ("yes", "no", "maybe")),
    (list[str], lambda v: isinstance(v, list) and all(type(s) is str for s in v)),
    (Color, lambda v: isinstance(v, Color)),
    (float | None, lambda v: v is None or type(v) in (int, float)),
    (Point, lambda v: isinstance(v, Point) and type(v.x) is int),
    (Movie, lambda v: set(v) == {"title", "year"} and type(v["year"]) is int),
    (Person, lambda v: isinstance(v, Person) and 0 <= v.age <= 150),
    (Verdict, lambda v: isinstance(v, Verdict) and v.answer in ("yes", "no")),
], ids=["int", "bool", "str", "Literal", "list[str]", "Enum", "Optional[float]", "dataclass",
        "TypedDict", "Person", "Verdict"])
def test_decorated_function_returns_its_annotated_type(toy, output_type, check):
    extract = _decorated(toy, output_type, sampler=SAMPLE)
    for seed in range(4):
        value = extract("some text", n=seed)
        assert check(value), value
        jsonschema.validate(pydantic.TypeAdapter(output_type).dump_python(value, mode="json"),
                            extract.constraint.schema)


def test_decorated_function_fills_its_docstring_with_the_bound_arguments(toy):
    @sg.function(toy, max_tokens=200, whitespace="compact")
    def judge(claim: str, context: str = "none", *, strict: bool = False) -> Verdict:
        """Judge the claim {claim!r} (context: {context}; strict: {strict}).
        Answer as JSON like {{"answer": ..., "confident": ...}}."""

    assert judge.__name__ == "judge" and judge.__wrapped__.__doc__.startswith("Judge")
    expected = ("Judge the claim 'water is wet' (context: none; strict: True).\n"
                'Answer as JSON like {"answer": ..., "confident": ...}.')
    assert judge.prompt("water is wet", strict=True) == expected
    assert isinstance(judge("water is wet", strict=True), Verdict)
    assert toy.prompts == [expected]
    with pytest.raises(TypeError):
        judge()  # a missing argument, as for any Python function


def test_decorator_resolves_string_annotations_of_local_classes(toy):
    # This module has `from __future__ import annotations`: the return annotation is the string
    # "Local", defined only in this function.
    class Local(pydantic.BaseModel):
        flag: bool

    @sg.function(toy)
    def ask() -> Local:
        """Is it?"""

    assert isinstance(ask(), Local)


def test_decorator_errors_come_at_decoration_time(toy):
    def undocumented(text: str) -> int:
        pass

    def unannotated(text: str):
        """About {text}."""

    def returns_none(text: str) -> None:
        """About {text}."""

    def bad_field(text: str) -> int:
        """About {txt}."""

    def positional_field(text: str) -> int:
        """About {}."""

    def unknown_name(text: str) -> NoSuchType:  # noqa: F821
        """About {text}."""

    cases = [(undocumented, TypeError, "needs a docstring"),
             (unannotated, TypeError, "needs a return annotation"),
             (returns_none, TypeError, "return None"),
             (bad_field, ValueError, "no parameter 'txt'"),
             (positional_field, ValueError, "has the field {}"),
             (unknown_name, TypeError, "NoSuchType")]
    for fn, error, message in cases:
        with pytest.raises(error, match=message):
            sg.function(toy)(fn)
    with pytest.raises(TypeError, match=r"@structgen.function\(model\)"):
        sg.function(unannotated)
    with pytest.raises(TypeError, match="unknown keywords max_new_tokens"):
        sg.function(toy, max_new_tokens=3)
    with pytest.raises(sg.SchemaError, match="Opaque"):
        sg.function(toy)(_returning(type("Opaque", (), {})))


def _returning(output_type):
    def fn() -> int:
        """Go."""

    fn.__annotations__["return"] = output_type
    return fn


# ------------------------------------------------------------------- the embedded default model
@pytest.fixture(scope="module")
def default_model():
    return sg.load_model()


def test_default_model_extracts_a_pydantic_model(default_model):
    class Contact(pydantic.BaseModel):
        name: str
        age: int
        email: str

    prompt = ("Extract the contact as JSON with name, age and email: Ada Lovelace, 36, "
              "writes from ada@example.org.")
    result = sg.generate_json(default_model, prompt, Contact, max_tokens=64,
                              whitespace="compact", return_result=True)
    assert isinstance(result.value, Contact)
    assert Contact.model_validate_json(result.text) == result.value


def test_default_model_behind_a_decorated_function(default_model):
    @sg.function(default_model, max_tokens=12, whitespace="compact")
    def year_of(event: str) -> int:
        """In which year did this happen: {event}? Answer with the year only."""

    year = year_of("the fall of the Berlin Wall")
    assert type(year) is int
