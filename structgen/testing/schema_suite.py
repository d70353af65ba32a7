"""The official JSON Schema Test Suite and JSONSchemaBench, as test and benchmark cases.

``json_schema`` constraints write declared properties in schema order, so an instance is
serialized the way a generator following the schema would write it: compactly, with each
object's keys in the order its schema declares them (see :func:`order_like_schema`), then the
remaining keys as they come.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import validators

from structgen.automata.byte_dfa import Limits
from structgen.automata.matcher import _automaton
from structgen.grammar.cfg import Grammar
from structgen.grammar.regular import Term
from structgen.sources.jsonschema import MAX_FLOATING_KEYS

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SUITE_DIR = DATA_DIR / "json-schema-test-suite" / "tests"
BENCH_DIR = DATA_DIR / "jsonschemabench" / "dev"

# Files of the suite that test what a generator cannot be asked to do: fetching remote
# references, and the meta-schema vocabulary switch.
SKIPPED_FILES = frozenset({"refRemote.json", "vocabulary.json"})


DIALECTS = {
    "draft2020-12": "https://json-schema.org/draft/2020-12/schema",
    "draft2019-09": "https://json-schema.org/draft/2019-09/schema",
    "draft7": "http://json-schema.org/draft-07/schema#",
    "draft6": "http://json-schema.org/draft-06/schema#",
    "draft4": "http://json-schema.org/draft-04/schema#",
}


@dataclass(frozen=True)
class Case:
    """One schema with labelled instances."""

    source: str
    description: str
    schema: Any
    instances: tuple[tuple[Any, bool], ...]


def suite_cases(draft: str, *, formats: bool = True) -> Iterator[Case]:
    """The suite's cases for ``draft`` (``"draft2020-12"`` or ``"draft7"``): every top-level
    keyword file, plus ``optional/format`` when ``formats`` (structgen asserts formats)."""
    root = SUITE_DIR / draft
    files = sorted(root.glob("*.json"))
    if formats:
        files += sorted((root / "optional" / "format").glob("*.json"))
    for path in files:
        if path.name in SKIPPED_FILES:
            continue
        for group in json.loads(path.read_text()):
            schema = group["schema"]
            if isinstance(schema, dict) and "$schema" not in schema:
                # The suite runs each file under its draft; structgen reads the dialect from
                # ``$schema`` (2020-12 when absent), so older drafts name theirs.
                schema = {"$schema": DIALECTS[draft], **schema}
            yield Case(str(path.relative_to(SUITE_DIR)), group["description"], schema,
                       tuple((t["data"], t["valid"]) for t in group["tests"]))


def bench_cases(subset: str) -> Iterator[Case]:
    """JSONSchemaBench's development sample for ``subset`` (a file stem in ``dev/``)."""
    with open(BENCH_DIR / f"{subset}.jsonl") as lines:
        for line in lines:
            row = json.loads(line)
            yield Case(row["id"], row["id"], row["schema"],
                       tuple((t["data"], t["valid"]) for t in row.get("tests", ())))


def bench_subsets() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.jsonl"))


def serialize(instance: Any, schema: Any) -> str:
    """``instance`` as compact JSON with keys in schema order."""
    return json.dumps(order_like_schema(instance, schema), separators=(",", ":"),
                      ensure_ascii=False)


def order_like_schema(instance: Any, schema: Any) -> Any:
    """``instance`` with every object's declared keys first, in the order the schema at that
    location declares them (its own ``properties``, then those reached through ``$ref``,
    ``allOf``, ``anyOf``, ``oneOf``, ``if``/``then``/``else`` and ``dependentSchemas``)."""
    if not isinstance(schema, (dict, bool)):
        return instance
    cls = validators.validator_for(schema) if isinstance(schema, dict) else \
        validators.validator_for({})
    resolver = cls(schema)._resolver
    return _order(instance, [(schema, resolver)])


def _in_place(schemas: list[tuple[Any, Any]]) -> list[tuple[dict, Any]]:
    """The schemas applying at the same location, in declaration order, each once."""
    out: list[tuple[dict, Any]] = []
    seen: set[int] = set()
    stack = list(reversed(schemas))
    while stack:
        schema, resolver = stack.pop()
        if not isinstance(schema, dict) or id(schema) in seen:
            continue
        seen.add(id(schema))
        out.append((schema, resolver))
        found: list[tuple[Any, Any]] = []
        for keyword, value in schema.items():
            if keyword in ("$ref", "$dynamicRef") and isinstance(value, str):
                try:
                    resolved = resolver.lookup(value)
                except Exception:  # noqa: BLE001, S112 - unresolvable refs simply add nothing
                    continue
                found.append((resolved.contents, resolved.resolver))
            elif keyword in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
                found.extend((x, resolver) for x in value)
            elif keyword in ("if", "then", "else", "not"):
                if keyword != "not":
                    found.append((value, resolver))
            elif keyword == "dependentSchemas" and isinstance(value, dict):
                found.extend((x, resolver) for x in value.values())
        stack.extend(reversed(found))
    return out


def _order(instance: Any, schemas: list[tuple[Any, Any]]) -> Any:
    applying = _in_place(schemas)
    for schema, _ in applying:
        for value in ([schema["const"]] if "const" in schema else []) + \
                (schema["enum"] if isinstance(schema.get("enum"), list) else []):
            if isinstance(value, dict) and _same_json(value, instance):
                return value  # an enumerated object is written as the schema spells it
    if isinstance(instance, dict):
        declared: list[str] = []
        for schema, _ in applying:
            properties = schema.get("properties")
            if isinstance(properties, dict):
                declared.extend(k for k in properties if k not in declared)
        required = sorted({k for schema, _ in applying if isinstance(schema.get("required"), list)
                           for k in schema["required"]} - set(declared))
        if len(required) <= MAX_FLOATING_KEYS:
            required = []  # a few required undeclared keys may come in any order
        keys = [k for k in declared + required if k in instance]
        keys += [k for k in instance if k not in keys]
        return {k: _order(instance[k], _child_schemas(applying, k)) for k in keys}
    if isinstance(instance, list):
        return [_order(x, _item_schemas(applying, i)) for i, x in enumerate(instance)]
    return instance


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality as the text shows it (unlike ``==``, ``0`` is not ``false``)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _child_schemas(applying, key: str) -> list[tuple[Any, Any]]:
    out = []
    for schema, resolver in applying:
        properties = schema.get("properties")
        if isinstance(properties, dict) and key in properties:
            out.append((properties[key], resolver))
            continue
        matched = [(s, resolver) for p, s in (schema.get("patternProperties") or {}).items()
                   if _search(p, key)]
        out.extend(matched)
        if not matched and "additionalProperties" in schema:
            out.append((schema["additionalProperties"], resolver))
    return out


def _item_schemas(applying, index: int) -> list[tuple[Any, Any]]:
    out = []
    for schema, resolver in applying:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):
            prefix, items = items, schema.get("additionalItems")
        if isinstance(prefix, list) and index < len(prefix):
            out.append((prefix[index], resolver))
        elif items is not None:
            out.append((items, resolver))
    return out


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def accepts(language: Term | Grammar, text: str) -> bool:
    """Whether the compiled language accepts ``text`` (walked byte by byte, no vocabulary)."""
    automaton = _automaton(language, Limits())
    state = automaton.walk(automaton.start, text.encode())
    return state >= 0 and bool(automaton.accepting[state])
