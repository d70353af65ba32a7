"""Schema sources: a JSON Schema value, JSON text, a pydantic model or a Python type becomes a
JSON Schema (for :mod:`structgen.sources.jsonschema` to compile) and the parser that turns a
generated JSON document back into the Python value the user asked for.

* a JSON Schema value (``dict``, ``True``, ``False``) is the schema; its parser is ``json.loads``
  followed by validation with ``jsonschema`` (the validator of the schema's ``$schema`` dialect,
  Draft 2020-12 without one, formats checked);
* JSON text (``str`` or ``bytes``) is read with ``json.loads``, then as above;
* a pydantic model class gives ``model_json_schema()``, and its parser an instance
  (``model_validate_json``);
* any other Python type (``int``, ``Literal[...]``, an ``Enum``, ``list[...]``,
  ``dict[str, ...]``, unions, dataclasses, ``typing_extensions.TypedDict``, ...) goes through
  ``pydantic.TypeAdapter``: its ``json_schema()``, and its ``validate_json`` as the parser (a
  dataclass instance, an ``Enum`` member, ...).

One change to pydantic's schemas: every ``integer`` gets the bounds ``±2**53``. JSON Schema's
integers include literals such as ``1.5E3`` and ``5.5E70``, which pydantic reads through a
64-bit float: exactly only up to ``2**53`` (``9.007199254740993E15`` becomes ...992), and not at
all beyond ``2**63``. Within the bounds every integer literal the schema allows reads back
exactly, so a generated document never fails pydantic's validation or changes value.

A parser raises :class:`~structgen.errors.StructgenError` when the text is not JSON or the value
fails validation, with the validator's message; the validator's own exception is its
``__cause__``. That is not a :class:`~structgen.errors.SchemaError` (the schema is fine, the
output is not): a constrained output only fails where the constraint cannot enforce the schema in
full (a ``format`` structgen does not check, a keyword dropped with ``strict=False``).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any

import pydantic
from referencing.exceptions import Unresolvable

from structgen.errors import SchemaError, StructgenError
from structgen.sources.json_validation import checked_validator_class, validation_error

SchemaValue = dict | bool
Parser = Callable[[str], Any]


def schema_and_parser(source: Any) -> tuple[SchemaValue, Parser]:
    """The JSON Schema of ``source`` and the parser of documents generated under it.

    Args:
        source: a JSON Schema (``dict`` or ``bool``), JSON text holding one, a pydantic model
            class, or a Python type that ``pydantic.TypeAdapter`` understands.

    Returns:
        ``(schema, parse)``: ``parse(text)`` returns the validated Python value of a generated
        JSON document (a model instance for a pydantic model).

    Raises:
        SchemaError: bad JSON text, a schema that is not a JSON Schema, or a Python value that is
            neither a schema nor a type (naming its type).
    """
    if isinstance(source, (dict, bool)):
        return source, _jsonschema_parser(source)
    if isinstance(source, (str, bytes, bytearray)):
        schema = _read_json_text(source)
        return schema, _jsonschema_parser(schema)
    if isinstance(source, type) and issubclass(source, pydantic.BaseModel):
        schema = _pydantic_schema(source, source.model_json_schema)
        return _bound_integers(schema), _model_parser(source)
    if _is_type(source):
        adapter = _type_adapter(source)
        schema = _pydantic_schema(source, adapter.json_schema)
        return _bound_integers(schema), _adapter_parser(adapter)
    raise SchemaError(
        "a schema source is a JSON Schema (dict or bool), JSON text, a pydantic model class or "
        f"a Python type; got {source!r:.80} (a value of type {type(source).__name__})"
    )


def _read_json_text(text: str | bytes | bytearray) -> SchemaValue:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(f"schema text is not valid JSON: {error.msg} at line {error.lineno}, "
                          f"column {error.colno}") from error
    if not isinstance(schema, (dict, bool)):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
            type(schema), "null")
        raise SchemaError(f"a JSON Schema is an object or a boolean, not {kind}")
    return schema


def _is_type(source: Any) -> bool:
    """Whether ``source`` is a type annotation (a class, ``list[int]``, ``Literal[...]``,
    ``int | None``, ``Any``, a ``NewType``, a type alias) rather than some other value; a plain
    function, which TypeAdapter would read as its arguments, is not one."""
    if isinstance(source, type) or typing.get_origin(source) is not None:
        return True
    return source is Any or isinstance(source, typing.NewType) or (
        type(source).__name__ == "TypeAliasType")


def _type_adapter(tp: Any) -> pydantic.TypeAdapter:
    try:
        return pydantic.TypeAdapter(tp)
    except (pydantic.PydanticUserError, TypeError) as error:
        raise _no_schema(tp, error) from error


def _pydantic_schema(tp: Any, make: Callable[[], dict]) -> dict:
    try:
        return make()
    except (pydantic.PydanticUserError, pydantic.PydanticInvalidForJsonSchema,
            TypeError) as error:
        raise _no_schema(tp, error) from error


def _no_schema(tp: Any, error: Exception) -> SchemaError:
    if isinstance(error, pydantic.PydanticSchemaGenerationError):
        # pydantic's own advice (arbitrary_types_allowed) would give no schema either.
        why = ("pydantic cannot read it from JSON; use built-in types, Literal, Enum, "
               "dataclasses, TypedDict or pydantic models")
    else:
        why = str(error).split("\n")[0]
    return SchemaError(f"no JSON Schema for the type {_type_name(tp)}: {why}")


# The integers a float64 holds exactly: pydantic reads a JSON integer written with a fraction or
# an exponent through one.
EXACT_INTEGER = 2**53
# Keywords whose value is a schema, a list of schemas, or a dict of schemas.
_SUBSCHEMA = ("additionalProperties", "items", "not", "contains", "propertyNames", "if", "then",
              "else", "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_DICTS = ("properties", "patternProperties", "$defs", "definitions",
                    "dependentSchemas")


def _bound_integers(schema: Any) -> Any:
    """``schema`` (pydantic's) with ``minimum >= -2**53`` and ``maximum <= 2**53`` on every
    integer; a new value, the input is left alone."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out:
            out[key] = _bound_integers(out[key])
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_bound_integers(s) for s in out[key]]
    for key in _SUBSCHEMA_DICTS:
        if isinstance(out.get(key), dict):
            out[key] = {k: _bound_integers(s) for k, s in out[key].items()}
    kinds = out.get("type")
    if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds
                              and "number" not in kinds):
        out["minimum"] = max(out.get("minimum", -EXACT_INTEGER), -EXACT_INTEGER)
        out["maximum"] = min(out.get("maximum", EXACT_INTEGER), EXACT_INTEGER)
    return out


def _type_name(tp: Any) -> str:
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)


# ------------------------------------------------------------------------------------ parsers
def _jsonschema_parser(schema: SchemaValue) -> Parser:
    validator_class = checked_validator_class(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)

    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise StructgenError(f"output is not JSON: {error.msg} at line {error.lineno}, "
                                 f"column {error.colno}") from error
        try:
            failure = validation_error(validator, value)
        except Unresolvable as error:
            raise SchemaError(f"schema reference cannot be resolved: {error}") from error
        if failure is not None:
            where = "/".join(str(part) for part in failure.absolute_path) or "the root"
            raise StructgenError(f"output does not validate against the schema at {where}: "
                                 f"{failure.message}") from failure
        return value

    return parse


def _model_parser(model: type[pydantic.BaseModel]) -> Parser:
    def parse(text: str) -> pydantic.BaseModel:
        try:
            return model.model_validate_json(text)
        except pydantic.ValidationError as error:
            raise _invalid_output(model.__qualname__, error) from error

    return parse


def _adapter_parser(adapter: pydantic.TypeAdapter) -> Parser:
    def parse(text: str) -> Any:
        try:
            return adapter.validate_json(text)
        except pydantic.ValidationError as error:
            raise _invalid_output(error.title, error) from error

    return parse


def _invalid_output(name: str, error: pydantic.ValidationError) -> StructgenError:
    problems = "; ".join(
        f"{'/'.join(str(p) for p in e['loc']) or 'the root'}: {e['msg']}" for e in error.errors())
    return StructgenError(f"output does not validate as {name}: {problems}")
