"""End-to-end JSON extraction on the default model: free generation against sg.generate_json.

Forty short texts (people, products, events, addresses, invoices, bug reports, books, flights,
recipes, contacts, job posts, weather, reviews, meetings, employees, orders), each with a schema
(pydantic models and JSON Schemas: strings, integers, numbers, booleans, enums, formats,
patterns, arrays, nested objects) and the gold answer. Each text is run greedily

* ``free``: unconstrained, the schema described in the prompt (``--shape``: a field list by
  default, or the JSON Schema itself, or an example document); the JSON is read from the output
  (Markdown fences removed, then the first JSON object decoded from the first ``{``; text after it
  ignored);
* ``json``: ``sg.generate_json`` with the same prompt;
* ``xgrammar``: transformers' ``model.generate`` with xgrammar's logits processor on the same
  prompt (``--variants xgrammar:fields:flexible``; xgrammar must be installed).

Per mode: parseable rate, schema-valid rate (``jsonschema``, the schema as given, formats
checked), field accuracy (the share of gold leaves matched exactly after light normalisation,
see :func:`normalise` and :func:`leaves`; an unparseable output matches none), tokens/s
(generated tokens over the wall time of the calls, prefill included) and wall time per object.
``generate_json`` closes its document in time to end within ``--max-tokens`` (its default,
``finish_within_max_tokens``); the ``cut`` ending turns that off, and an output cut at
``--max-tokens`` counts as unparseable. Compiling a constraint is timed apart:
``compile ms`` is the median over the distinct constraints of their first ``json_schema`` plus
``sg.compile`` (later uses hit the caches; ``-`` when an earlier variant compiled them all).

Run: ``python benchmarks/bench_extraction.py [--limit N] [--whitespace flexible|compact|pretty]
[--experiments | --variants json:fields:compact,...]``; ``--experiments`` also runs other prompt
shapes, whitespace modes, field orders and bounds on strings and arrays. Writes
``benchmarks/results/bench_extraction.json`` and ``extraction.png`` (``--output NAME`` renames
them).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pydantic

import structgen as sg

RESULTS = Path(__file__).resolve().parent / "results"
HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


# ------------------------------------------------------------------------------------ schemas
class Person(pydantic.BaseModel):
    name: str
    age: int
    city: str


class Product(pydantic.BaseModel):
    name: str
    price: float
    currency: Literal["USD", "EUR", "GBP"]
    in_stock: bool


EVENT = {"type": "object", "properties": {
    "title": {"type": "string"}, "date": {"type": "string", "format": "date"},
    "city": {"type": "string"}, "attendees": {"type": "integer", "minimum": 0},
}, "required": ["title", "date", "city", "attendees"]}

ADDRESS = {"type": "object", "properties": {
    "street": {"type": "string"}, "city": {"type": "string"},
    "postal_code": {"type": "string"}, "country": {"type": "string"},
}, "required": ["street", "city", "postal_code", "country"]}


class LineItem(pydantic.BaseModel):
    description: str
    quantity: int
    unit_price: float


class Invoice(pydantic.BaseModel):
    invoice_number: str
    total: float
    currency: Literal["USD", "EUR", "GBP"]
    paid: bool
    items: list[LineItem]


BUG_REPORT = {"type": "object", "properties": {
    "title": {"type": "string"},
    "severity": {"enum": ["low", "medium", "high", "critical"]},
    "component": {"type": "string"}, "reproducible": {"type": "boolean"},
    "steps": {"type": "array", "items": {"type": "string"}},
}, "required": ["title", "severity", "component", "reproducible", "steps"]}


class Book(pydantic.BaseModel):
    title: str
    author: str
    year: int
    genres: list[Literal["fiction", "fantasy", "history", "science", "biography", "mystery"]]


FLIGHT = {"type": "object", "properties": {
    "airline": {"type": "string"}, "flight_number": {"type": "string"},
    "origin": {"type": "string"}, "destination": {"type": "string"},
    "departure_time": {"type": "string", "pattern": HH_MM},
}, "required": ["airline", "flight_number", "origin", "destination", "departure_time"]}


class Recipe(pydantic.BaseModel):
    name: str
    servings: int
    prep_minutes: int
    vegetarian: bool
    ingredients: list[str]


CONTACT = {"type": "object", "properties": {
    "name": {"type": "string"}, "email": {"type": "string", "format": "email"},
    "phone": {"type": "string"},
}, "required": ["name", "email", "phone"]}


class JobPosting(pydantic.BaseModel):
    title: str
    company: str
    salary: int
    remote: bool
    level: Literal["junior", "mid", "senior"]


WEATHER = {"type": "object", "properties": {
    "city": {"type": "string"}, "temperature_c": {"type": "number"},
    "condition": {"enum": ["sunny", "cloudy", "rainy", "snowy"]},
    "wind_kmh": {"type": "integer", "minimum": 0},
}, "required": ["city", "temperature_c", "condition", "wind_kmh"]}


class Review(pydantic.BaseModel):
    movie: str
    rating: int = pydantic.Field(ge=1, le=5)
    sentiment: Literal["positive", "negative", "mixed"]


MEETING = {"type": "object", "properties": {
    "topic": {"type": "string"},
    "day": {"enum": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                     "Sunday"]},
    "start_time": {"type": "string", "pattern": HH_MM},
    "participants": {"type": "array", "items": {"type": "string"}},
}, "required": ["topic", "day", "start_time", "participants"]}


class Manager(pydantic.BaseModel):
    name: str
    email: str


class Employee(pydantic.BaseModel):
    name: str
    department: str
    manager: Manager


ORDER = {"type": "object", "properties": {
    "order_id": {"type": "string"},
    "customer": {"type": "object", "properties": {
        "name": {"type": "string"}, "city": {"type": "string"}}, "required": ["name", "city"]},
    "total": {"type": "number"}, "express": {"type": "boolean"},
}, "required": ["order_id", "customer", "total", "express"]}


# -------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    what: str                          # "the person": what the prompt asks to extract
    schema: Any                        # a pydantic model class or a JSON Schema
    text: str
    gold: dict


def _items(*rows):
    return [{"description": d, "quantity": q, "unit_price": p} for d, q, p in rows]


CASES = [
    Case("the person", Person, "Maria Gonzalez, 34, moved to Lisbon last spring to work as a "
         "nurse.", {"name": "Maria Gonzalez", "age": 34, "city": "Lisbon"}),
    Case("the person", Person, "At 71 years old, retired teacher Henry Walsh still rides his "
         "bike around Dublin every morning.", {"name": "Henry Walsh", "age": 71, "city": "Dublin"}),
    Case("the person", Person, "Kenji Tanaka (age 28) is a software engineer based in Osaka.",
         {"name": "Kenji Tanaka", "age": 28, "city": "Osaka"}),
    Case("the product", Product, "The AeroPress Go is back in stock at $39.95.",
         {"name": "AeroPress Go", "price": 39.95, "currency": "USD", "in_stock": True}),
    Case("the product", Product, "Sorry, the Nordic Wool Blanket (€89.00) is sold out until "
         "March.", {"name": "Nordic Wool Blanket", "price": 89.0, "currency": "EUR",
                    "in_stock": False}),
    Case("the product", Product, "Our best seller, the Thames Umbrella, costs £24.50 and ships "
         "today from stock.", {"name": "Thames Umbrella", "price": 24.5, "currency": "GBP",
                               "in_stock": True}),
    Case("the event", EVENT, "Join us for PyCon Lisbon on 2024-10-12! We expect around 900 "
         "attendees in Lisbon this year.", {"title": "PyCon Lisbon", "date": "2024-10-12",
                                            "city": "Lisbon", "attendees": 900}),
    Case("the event", EVENT, "The Harvest Jazz Night takes place in New Orleans on November 3, "
         "2023, with 250 guests invited.", {"title": "Harvest Jazz Night", "date": "2023-11-03",
                                            "city": "New Orleans", "attendees": 250}),
    Case("the event", EVENT, "Berlin Marathon 2025 will start on 21 September 2025; organisers "
         "expect 45000 runners in Berlin.", {"title": "Berlin Marathon 2025",
                                             "date": "2025-09-21", "city": "Berlin",
                                             "attendees": 45000}),
    Case("the address", ADDRESS, "Please send the package to 221B Baker Street, London NW1 6XE, "
         "United Kingdom.", {"street": "221B Baker Street", "city": "London",
                             "postal_code": "NW1 6XE", "country": "United Kingdom"}),
    Case("the address", ADDRESS, "Our new office: 1600 Amphitheatre Parkway, Mountain View, CA "
         "94043, USA.", {"street": "1600 Amphitheatre Parkway", "city": "Mountain View",
                         "postal_code": "94043", "country": "USA"}),
    Case("the address", ADDRESS, "Ship to Rue de Rivoli 99, 75001 Paris, France.",
         {"street": "Rue de Rivoli 99", "city": "Paris", "postal_code": "75001",
          "country": "France"}),
    Case("the invoice", Invoice, "Invoice INV-2041 from Acme Corp: 3 x Widget at $4.00 each and "
         "1 x Gadget at $12.50. Total due: $24.50 USD. Status: paid.",
         {"invoice_number": "INV-2041", "total": 24.5, "currency": "USD", "paid": True,
          "items": _items(("Widget", 3, 4.0), ("Gadget", 1, 12.5))}),
    Case("the invoice", Invoice, "Invoice F-778: 2 x Consulting hour at 150.00 EUR. Total 300.00 "
         "EUR, payment pending.", {"invoice_number": "F-778", "total": 300.0, "currency": "EUR",
                                   "paid": False,
                                   "items": _items(("Consulting hour", 2, 150.0))}),
    Case("the invoice", Invoice, "Invoice 5530: 10 x Notebook at £1.20, 5 x Pen at £0.80. Total "
         "£16.00. Paid in full.", {"invoice_number": "5530", "total": 16.0, "currency": "GBP",
                                   "paid": True,
                                   "items": _items(("Notebook", 10, 1.2), ("Pen", 5, 0.8))}),
    Case("the bug report", BUG_REPORT, "Title: Login button unresponsive. The login button on "
         "the settings page does nothing when clicked. Severity: high. Component: auth. It "
         "happens every time: open settings, click login.",
         {"title": "Login button unresponsive", "severity": "high", "component": "auth",
          "reproducible": True, "steps": ["open settings", "click login"]}),
    Case("the bug report", BUG_REPORT, "Crash when exporting PDF (critical). Component: export. "
         "It happens only occasionally and we could not reproduce it reliably. Steps: open a "
         "large document, choose Export PDF.",
         {"title": "Crash when exporting PDF", "severity": "critical", "component": "export",
          "reproducible": False, "steps": ["open a large document", "choose Export PDF"]}),
    Case("the bug report", BUG_REPORT, "Bug: Typo in footer. Low severity, component: website. "
         "Always visible: open the home page, scroll to the footer.",
         {"title": "Typo in footer", "severity": "low", "component": "website",
          "reproducible": True, "steps": ["open the home page", "scroll to the footer"]}),
    Case("the book", Book, "The Name of the Wind by Patrick Rothfuss, published in 2007, is a "
         "fantasy novel.", {"title": "The Name of the Wind", "author": "Patrick Rothfuss",
                            "year": 2007, "genres": ["fantasy"]}),
    Case("the book", Book, "Team of Rivals, Doris Kearns Goodwin's 2005 book, is a biography of "
         "Abraham Lincoln and a history of his cabinet.",
         {"title": "Team of Rivals", "author": "Doris Kearns Goodwin", "year": 2005,
          "genres": ["biography", "history"]}),
    Case("the book", Book, "In 1988 Stephen Hawking published A Brief History of Time, a "
         "popular science book.", {"title": "A Brief History of Time",
                                   "author": "Stephen Hawking", "year": 1988,
                                   "genres": ["science"]}),
    Case("the flight", FLIGHT, "Your flight LH 454 with Lufthansa departs Frankfurt at 13:35 and "
         "lands in San Francisco.", {"airline": "Lufthansa", "flight_number": "LH 454",
                                     "origin": "Frankfurt", "destination": "San Francisco",
                                     "departure_time": "13:35"}),
    Case("the flight", FLIGHT, "Delta flight DL 108 leaves New York at 07:05 for Atlanta.",
         {"airline": "Delta", "flight_number": "DL 108", "origin": "New York",
          "destination": "Atlanta", "departure_time": "07:05"}),
    Case("the recipe", Recipe, "Classic pancakes (serves 4, ready in 20 minutes, vegetarian): "
         "flour, milk, eggs, sugar, butter.",
         {"name": "Classic pancakes", "servings": 4, "prep_minutes": 20, "vegetarian": True,
          "ingredients": ["flour", "milk", "eggs", "sugar", "butter"]}),
    Case("the recipe", Recipe, "Chicken curry for 6 people. Preparation takes 45 minutes. You "
         "need chicken, onions, curry paste and coconut milk.",
         {"name": "Chicken curry", "servings": 6, "prep_minutes": 45, "vegetarian": False,
          "ingredients": ["chicken", "onions", "curry paste", "coconut milk"]}),
    Case("the recipe", Recipe, "Greek salad: 2 servings, 10 minutes, meat-free. Ingredients: "
         "tomatoes, cucumber, feta, olives.",
         {"name": "Greek salad", "servings": 2, "prep_minutes": 10, "vegetarian": True,
          "ingredients": ["tomatoes", "cucumber", "feta", "olives"]}),
    Case("the contact", CONTACT, "You can reach Priya Patel at priya.patel@example.com or call "
         "+1 415 555 0134.", {"name": "Priya Patel", "email": "priya.patel@example.com",
                              "phone": "+1 415 555 0134"}),
    Case("the contact", CONTACT, "Contact: Lars Nilsson, phone 08-123 456 78, e-mail "
         "lars@nilsson.se", {"name": "Lars Nilsson", "email": "lars@nilsson.se",
                             "phone": "08-123 456 78"}),
    Case("the job posting", JobPosting, "Acme Robotics is hiring a Senior Backend Engineer, "
         "fully remote, salary 145000 dollars a year.",
         {"title": "Senior Backend Engineer", "company": "Acme Robotics", "salary": 145000,
          "remote": True, "level": "senior"}),
    Case("the job posting", JobPosting, "Junior Data Analyst at Blue Harbor Bank, on-site in "
         "Boston, 58000 per year.", {"title": "Junior Data Analyst",
                                     "company": "Blue Harbor Bank", "salary": 58000,
                                     "remote": False, "level": "junior"}),
    Case("the job posting", JobPosting, "Greenleaf Studios seeks a mid-level UX Designer to work "
         "from its Austin office, paying 82000 a year.",
         {"title": "UX Designer", "company": "Greenleaf Studios", "salary": 82000,
          "remote": False, "level": "mid"}),
    Case("the weather report", WEATHER, "Oslo today: snow showers, -3.5 °C, wind 20 km/h.",
         {"city": "Oslo", "temperature_c": -3.5, "condition": "snowy", "wind_kmh": 20}),
    Case("the weather report", WEATHER, "Sunny skies over Madrid with 31 degrees Celsius and a "
         "light 8 km/h breeze.", {"city": "Madrid", "temperature_c": 31, "condition": "sunny",
                                  "wind_kmh": 8}),
    Case("the review", Review, "I watched Inception last night. Stunning visuals and a clever "
         "plot: 5 out of 5!", {"movie": "Inception", "rating": 5, "sentiment": "positive"}),
    Case("the review", Review, "Cats was a mess from start to finish. I'd give it 1 star.",
         {"movie": "Cats", "rating": 1, "sentiment": "negative"}),
    Case("the review", Review, "Dune: Part Two has great sound but a slow middle; 3/5 overall.",
         {"movie": "Dune: Part Two", "rating": 3, "sentiment": "mixed"}),
    Case("the meeting", MEETING, "Budget review on Tuesday at 14:00 with Alice, Bob and Chen.",
         {"topic": "Budget review", "day": "Tuesday", "start_time": "14:00",
          "participants": ["Alice", "Bob", "Chen"]}),
    Case("the meeting", MEETING, "Let's do the sprint planning Friday 09:30; invite Dana and "
         "Eli.", {"topic": "sprint planning", "day": "Friday", "start_time": "09:30",
                  "participants": ["Dana", "Eli"]}),
    Case("the employee", Employee, "Sofia Rossi works in Marketing; her manager is Tom Baker "
         "(tom.baker@corp.example).", {"name": "Sofia Rossi", "department": "Marketing",
                                       "manager": {"name": "Tom Baker",
                                                   "email": "tom.baker@corp.example"}}),
    Case("the order", ORDER, "Order A-1001 for Jane Doe in Seattle: total $87.20, express "
         "shipping selected.", {"order_id": "A-1001",
                                "customer": {"name": "Jane Doe", "city": "Seattle"},
                                "total": 87.2, "express": True}),
]


# ---------------------------------------------------------------------------- schema handling
def json_schema_of(source: Any) -> dict:
    """The JSON Schema of a case: as given, or the pydantic model's."""
    return source.model_json_schema() if isinstance(source, type) else source


MAX_LENGTH, MAX_ITEMS = 60, 8


def edit(schema: Any, how: str) -> Any:
    """``schema`` edited for an experiment: ``"reversed"`` lists every ``properties`` in reverse
    order; ``"bounded"`` caps strings at ``MAX_LENGTH`` characters and arrays at ``MAX_ITEMS``
    items (where the schema sets no bound), so that a looping model still has to close them."""
    if how == "none" or not isinstance(schema, (dict, list)):
        return schema
    if isinstance(schema, list):
        return [edit(s, how) for s in schema]
    out = {k: edit(v, how) for k, v in schema.items()}
    if how == "reversed" and isinstance(schema.get("properties"), dict):
        out["properties"] = dict(reversed(list(out["properties"].items())))
    if how == "bounded" and schema.get("type") == "string" and "enum" not in schema:
        out.setdefault("maxLength", MAX_LENGTH)
    if how == "bounded" and schema.get("type") == "array":
        out.setdefault("maxItems", MAX_ITEMS)
    return out


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return _resolve(root["$defs"][ref.split("/")[-1]], root)
    return schema


def describe(schema: dict, root: dict) -> str:
    """A field list in words: ``name (string), age (integer), manager (object: ...)``."""
    schema = _resolve(schema, root)
    parts = []
    for name, sub in schema.get("properties", {}).items():
        parts.append(f"{name} ({_kind(sub, root)})")
    return ", ".join(parts)


def _kind(sub: dict, root: dict) -> str:
    sub = _resolve(sub, root)
    if "enum" in sub:
        return "one of " + ", ".join(json.dumps(v) for v in sub["enum"])
    kind = sub.get("type", "any")
    if kind == "object":
        return f"object with {describe(sub, root)}"
    if kind == "array":
        return f"list of {_kind(sub.get('items', {}), root)}"
    extra = {"date": ", YYYY-MM-DD", "email": ", an e-mail address"}.get(sub.get("format"), "")
    if sub.get("pattern") == HH_MM:
        extra = ", HH:MM"
    return kind + extra


def skeleton(schema: dict, root: dict) -> Any:
    """An example document with a placeholder per leaf: ``{"name": "<string>", "age": 0}``."""
    schema = _resolve(schema, root)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: skeleton(v, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [skeleton(schema.get("items", {}), root)]
    return {"string": "...", "integer": 0, "number": 0.0, "boolean": False}.get(kind)


def prompt_for(case: Case, shape: str, schema: dict) -> str:
    """The prompt: the text, then the instruction in one of four shapes."""
    ask = f"{case.text}\n\nExtract {case.what} from the text above as a JSON object"
    if shape == "schema":
        return (f"{ask} matching this JSON Schema:\n{json.dumps(schema)}\n"
                "Reply with the JSON object only.")
    if shape == "fields":
        return f"{ask} with these fields: {describe(schema, schema)}.\nReply with the JSON only."
    if shape == "example":
        return (f"{ask} shaped like this example:\n{json.dumps(skeleton(schema, schema))}\n"
                "Reply with the JSON object only.")
    if shape == "bare":
        return f"{ask}."
    raise ValueError(f"unknown prompt shape {shape!r}")


# ------------------------------------------------------------------------------------ scoring
def normalise(value: Any) -> tuple:
    """Light normalisation of a leaf: strings case-folded, whitespace collapsed, a trailing
    period dropped; numbers compared as floats (``31`` equals ``31.0``, rounded to 6 places);
    booleans and null as they are. A value of another JSON type than the gold's never matches
    (``"34"`` is not ``34``)."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, (int, float)):
        return ("number", round(float(value), 6))
    if isinstance(value, str):
        return ("string", " ".join(value.split()).casefold().rstrip("."))
    if value is None:
        return ("null",)
    return ("other", json.dumps(value, sort_keys=True))


def leaves(gold: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """The gold's leaves: scalars, and lists of scalars (compared as multisets, one leaf)."""
    if isinstance(gold, dict):
        return [leaf for k, v in gold.items() for leaf in leaves(v, path + (k,))]
    if isinstance(gold, list) and any(isinstance(v, (dict, list)) for v in gold):
        return [leaf for i, v in enumerate(gold) for leaf in leaves(v, path + (i,))]
    return [(path, gold)]


_MISSING = object()


def _at(value: Any, path: tuple) -> Any:
    for step in path:
        found = (step in value if isinstance(value, dict) and isinstance(step, str) else
                 isinstance(value, list) and isinstance(step, int) and step < len(value))
        if found:
            value = value[step]
        else:
            return _MISSING
    return value


def leaf_matches(got: Any, gold: Any) -> bool:
    if isinstance(gold, list):
        return isinstance(got, list) and (sorted(map(normalise, got))
                                          == sorted(map(normalise, gold)))
    return got is not _MISSING and normalise(got) == normalise(gold)


def first_json_object(text: str) -> Any:
    """The JSON object that starts at the first ``{`` (Markdown fences removed), or
    ``_MISSING``."""
    text = re.sub(r"```(?:json)?", "", text)
    start = text.find("{")
    if start < 0:
        return _MISSING
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except ValueError:
        return _MISSING


# ------------------------------------------------------------------------------------ running
@dataclass
class Variant:
    mode: str                       # "free", "json", or "xgrammar" (its HF logits processor)
    shape: str = "schema"
    whitespace: str = "flexible"
    edit: str = "none"              # "reversed" (field order) or "bounded": see edit()
    ending: str = "finish"          # "finish" within max_tokens (the default) or "cut" there

    @property
    def name(self) -> str:
        parts = [self.mode, self.shape]
        if self.mode in ("json", "xgrammar"):
            parts.append(self.whitespace)
        if self.edit != "none":
            parts.append({"reversed": "reversed order"}.get(self.edit, self.edit))
        if self.mode == "json" and self.ending == "cut":
            parts.append("cut at max_tokens")
        return " / ".join(parts)


@dataclass
class Outcome:
    case: int
    text: str
    parseable: bool
    valid: bool
    matched: int
    leaves: int
    tokens: int
    seconds: float
    compile_ms: float | None = None
    error: str | None = None


@dataclass
class Run:
    variant: Variant
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        n = len(self.outcomes)
        seconds = sum(o.seconds for o in self.outcomes)
        tokens = sum(o.tokens for o in self.outcomes)
        compiles = [o.compile_ms for o in self.outcomes if o.compile_ms is not None]
        return {
            "parseable": sum(o.parseable for o in self.outcomes) / n,
            "valid": sum(o.valid for o in self.outcomes) / n,
            "field_accuracy": (sum(o.matched for o in self.outcomes)
                               / sum(o.leaves for o in self.outcomes)),
            "tokens_per_s": tokens / seconds,
            "s_per_object": seconds / n,
            "tokens_per_object": tokens / n,
            "compile_ms_median": statistics.median(compiles) if compiles else float("nan"),
        }


_COMPILED: set = set()


def run_case(model, index: int, case: Case, variant: Variant, max_tokens: int) -> Outcome:
    schema = edit(json_schema_of(case.schema), variant.edit)
    prompt = prompt_for(case, variant.shape, schema)
    compile_ms = error = None
    if variant.mode == "free":
        started = time.perf_counter()
        result = sg.generate(model, prompt, None, max_tokens=max_tokens, return_result=True)
        seconds = time.perf_counter() - started
        text, tokens = result.text, len(result.token_ids)
        value = first_json_object(text)
    elif variant.mode == "xgrammar":  # model.generate with xgrammar's logits processor
        from bench_drafts import xgrammar_call  # imports this module: import it late

        call = xgrammar_call(model, schema, variant.whitespace, max_tokens)
        outcome = call(prompt)
        text, tokens, seconds = outcome.text, outcome.tokens, outcome.seconds
        try:
            value = json.loads(text)
        except ValueError:
            value, error = _MISSING, "incomplete"
    else:
        source = case.schema if variant.edit == "none" else schema
        started = time.perf_counter()
        constraint = sg.json_schema(source, whitespace=variant.whitespace,
                                    extra_properties="forbid")
        sg.compile(constraint, model.vocab)
        if constraint.cache_key not in _COMPILED:  # first compiles only; later ones are cached
            _COMPILED.add(constraint.cache_key)
            compile_ms = (time.perf_counter() - started) * 1e3
        started = time.perf_counter()
        try:
            result = sg.generate_json(model, prompt, constraint, max_tokens=max_tokens,
                                      return_result=True,
                                      finish_within_max_tokens=variant.ending == "finish")
            text, tokens = result.text, len(result.token_ids)
            value = json.loads(text)
        except sg.IncompleteOutput as incomplete:
            text, value, error = incomplete.partial, _MISSING, "incomplete"
            tokens = max_tokens
        except sg.StructgenError as failure:  # reported, not fatal: one case, one failure
            text, value, error, tokens = "", _MISSING, f"{type(failure).__name__}: {failure}", 0
        seconds = time.perf_counter() - started
    parseable = value is not _MISSING
    valid = parseable and jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).is_valid(value)
    gold_leaves = leaves(case.gold)
    matched = sum(parseable and leaf_matches(_at(value, path), gold)
                  for path, gold in gold_leaves)
    return Outcome(index, text, parseable, valid, matched, len(gold_leaves), tokens, seconds,
                   compile_ms, error)


def _table(runs: list[Run]) -> str:
    header = (f"{'variant':<42}{'parseable':>10}{'valid':>8}{'fields':>8}{'tok/s':>8}"
              f"{'s/object':>10}{'tok/object':>11}{'compile ms':>11}")
    lines = [header, "-" * len(header)]
    for run in runs:
        s = run.summary()
        compile_ms = s["compile_ms_median"]
        lines.append(f"{run.variant.name:<42}{s['parseable']:>10.0%}{s['valid']:>8.0%}"
                     f"{s['field_accuracy']:>8.1%}{s['tokens_per_s']:>8.1f}"
                     f"{s['s_per_object']:>10.2f}{s['tokens_per_object']:>11.1f}"
                     + (f"{'-':>11}" if math.isnan(compile_ms) else f"{compile_ms:>11.1f}"))
    return "\n".join(lines)


def _plot(runs: list[Run], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    metrics = [("parseable", "parseable JSON"), ("valid", "schema-valid"),
               ("field_accuracy", "field accuracy")]
    fig, (rates, speed) = plt.subplots(1, 2, figsize=(12, 0.5 * len(runs) + 2.5),
                                       gridspec_kw={"width_ratios": [3, 1]})
    height = 0.8 / len(metrics)
    names = [run.variant.name for run in runs]
    for m, (key, label) in enumerate(metrics):
        ys = [i + (m - 1) * height for i in range(len(runs))]
        rates.barh(ys, [run.summary()[key] for run in runs], height, label=label)
    rates.set_yticks(range(len(runs)), names)
    rates.invert_yaxis()
    rates.set_xlim(0, 1)
    rates.set_xlabel("rate")
    rates.legend(loc="lower right")
    speed.barh(range(len(runs)), [run.summary()["s_per_object"] for run in runs], color="gray")
    speed.set_yticks(range(len(runs)), [""] * len(runs))
    speed.invert_yaxis()
    speed.set_xlabel("seconds per object")
    fig.suptitle(f"JSON extraction, SmolLM2-135M-Instruct, greedy, {len(runs[0].outcomes)} texts")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="run only the first N texts")
    parser.add_argument("--whitespace", default="flexible",
                        choices=["flexible", "compact", "pretty"],
                        help="whitespace of generate_json outputs in the main comparison")
    parser.add_argument("--shape", default="fields", choices=["schema", "fields", "example"],
                        help="how the prompt describes the schema in the main comparison "
                        "(default: a field list, the best shape for both modes)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--experiments", action="store_true",
                        help="also run other prompt shapes, whitespace modes, the reversed field "
                        "order and bounded strings and arrays")
    parser.add_argument("--variants", default=None,
                        help="run exactly these, comma-separated, each "
                        "mode[:shape[:whitespace[:edit[:ending]]]], e.g. json:fields:compact or "
                        "json:fields:flexible:none:cut (outputs cut at max_tokens instead of "
                        "finishing within it)")
    parser.add_argument("--output", default="extraction",
                        help="results go to results/bench_OUTPUT.json and OUTPUT.png")
    args = parser.parse_args()
    cases = CASES[: args.limit]
    variants = [Variant("free", args.shape), Variant("json", args.shape, args.whitespace)]
    if args.experiments:
        others = [Variant("free", shape) for shape in ("schema", "fields", "example")]
        others += [Variant("json", shape, args.whitespace)
                   for shape in ("schema", "fields", "example", "bare")]
        others += [Variant("json", args.shape, ws) for ws in ("flexible", "compact", "pretty")]
        others += [Variant("json", args.shape, args.whitespace, edit="reversed")]
        others += [Variant("json", args.shape, args.whitespace, ending="cut")]
        others += [Variant("json", args.shape, ws, edit="bounded")
                   for ws in ("flexible", "compact", "pretty")]
        variants += [v for v in others if v not in variants]
    if args.variants:
        variants = [Variant(*spec.split(":")) for spec in args.variants.split(",")]
    model = sg.load_model()
    sg.generate(model, "Hello", max_tokens=4)  # warm up
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs = []
    for variant in variants:
        run = Run(variant)
        runs.append(run)
        started = time.perf_counter()
        for index, case in enumerate(cases):
            outcome = run_case(model, index, case, variant, args.max_tokens)
            run.outcomes.append(outcome)
            print(f"  {variant.name} [{index + 1}/{len(cases)}] {case.what}: "
                  f"{outcome.matched}/{outcome.leaves} fields, {outcome.tokens} tokens, "
                  f"{outcome.seconds:.1f} s" + (f" ({outcome.error})" if outcome.error else ""),
                  flush=True)
        print(f"{variant.name}: {len(cases)} texts in {time.perf_counter() - started:.0f} s",
              flush=True)
        _save(args, len(cases), runs)  # after every variant: a long run keeps what it has
    print()
    print(_table(runs))
    _plot(runs, RESULTS / f"{args.output}.png")


def _save(args: argparse.Namespace, cases: int, runs: list[Run]) -> None:
    report = {"settings": vars(args), "cases": cases,
              "runs": [{"variant": asdict(run.variant), "name": run.variant.name,
                        "summary": run.summary(),
                        "outcomes": [asdict(o) for o in run.outcomes]} for run in runs]}
    (RESULTS / f"bench_{args.output}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
