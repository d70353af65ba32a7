"""Constraint values: what users build with ``sg.regex``, ``sg.grammar``, ``sg.json_schema``,
``sg.choice``, ``sg.sequence`` and ``sg.after``. A constraint is an immutable description of a language;
``sg.compile`` turns it into a ``TokenConstraint`` for one vocabulary.

Each constraint lowers to the grammar IR: a regular term when the language is regular (regexes,
literal choices), else a context-free ``Grammar``. Combining constraints keeps the regular case
regular, so the fast DFA path is used whenever it can be.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structgen.errors import EmptyLanguage, GrammarError, StructgenError
from structgen.grammar.cfg import Grammar as GrammarIR
from structgen.grammar.cfg import Nonterminal, Terminal, inline_regular
from structgen.grammar.charset import ANY_CHAR
from structgen.grammar.regular import NOTHING, Alt, Chars, Look, Repeat, Seq, Term, literal
from structgen.sources.regex import parse_regex

Language = Term | GrammarIR

GRAMMARS_DIR = Path(__file__).resolve().parent.parent / "grammars"


class Constraint:
    """Base class: something that can be compiled against a vocabulary."""

    def language(self) -> Language:
        """The constraint in the grammar IR: a regular term, or a context-free grammar."""
        raise NotImplementedError

    @property
    def cache_key(self) -> tuple:
        """A hashable key: equal keys mean the same language."""
        raise NotImplementedError


@dataclass(frozen=True)
class Regex(Constraint):
    """Outputs must match ``pattern`` in full (``re.fullmatch`` semantics)."""

    pattern: str
    flags: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "_term", parse_regex(self.pattern, self.flags))

    def language(self) -> Term:
        return self._term

    @property
    def cache_key(self) -> tuple:
        return ("regex", self.pattern, int(self.flags))


@dataclass(frozen=True)
class ContextFree(Constraint):
    """Outputs must be sentences of a context-free grammar (from Lark EBNF)."""

    source: str
    start: str = "start"

    def __post_init__(self) -> None:
        located = _grammar_source(self.source)
        stamp = None
        if isinstance(located, Path):
            located = located.absolute()  # the same name elsewhere is another file
            try:
                found = located.stat()
                stamp = (found.st_mtime_ns, found.st_size)
            except OSError:
                pass  # load_lark says it cannot read the file
        object.__setattr__(self, "_language", _grammar_language(located, self.start, stamp))

    def language(self) -> Language:
        return self._language

    @property
    def cache_key(self) -> tuple:
        return ("grammar", self.source, self.start)


@dataclass(frozen=True)
class _Composite(Constraint):
    """A constraint assembled from other constraints; its language is computed once."""

    kind: str
    parts: tuple
    _language: Language

    def language(self) -> Language:
        return self._language

    @property
    def cache_key(self) -> tuple:
        return (self.kind, tuple(p.cache_key if isinstance(p, Constraint) else p
                                 for p in self.parts))


def regex(pattern: str, flags: int = 0) -> Regex:
    """Outputs must match the regular expression ``pattern`` in full.

    Python ``re`` syntax plus Unicode properties (``\\p{L}``) and class set operations; see
    :mod:`structgen.sources.regex`. Raises ``RegexError`` or ``UnsupportedRegex`` with the
    position of the problem.
    """
    return Regex(pattern, flags)


def grammar(source: str | os.PathLike, start: str = "start") -> ContextFree:
    """Outputs must be sentences of a Lark EBNF grammar.

    ``source`` is grammar text, a path to a ``.lark`` file, or the name of a ready grammar in
    ``grammars/`` (``"json"``, ``"sql"``, ``"arithmetic"``, ...). Raises ``GrammarError`` with
    the line and column of a problem.
    """
    return ContextFree(os.fspath(source), start)


@dataclass(frozen=True, eq=False)
class JsonSchema(Constraint):
    """Outputs must be JSON documents valid under a JSON Schema (see :func:`json_schema`)."""

    source: Any
    whitespace: str = "flexible"
    property_order: str = "schema"
    extra_properties: str = "spec"
    strict: bool = True

    def __post_init__(self) -> None:
        from structgen.sources.jsonschema import Settings, compile_schema
        from structgen.sources.types import schema_and_parser

        schema, parser = schema_and_parser(self.source)
        settings = Settings(self.whitespace, self.property_order, self.extra_properties,
                            self.strict)
        language = compile_schema(schema, settings)
        if isinstance(language, GrammarIR):
            # Not ``inline_regular``: the compiler keeps values regular exactly up to the size
            # where one term's derivatives stop being cheap (see ``MAX_TERM_SIZE``).
            language = _regular_or_grammar(language)
        if language == NOTHING:
            raise EmptyLanguage("the JSON Schema accepts no value")
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "_parser", parser)
        object.__setattr__(self, "_language", language)
        object.__setattr__(self, "_key", ("json_schema", json.dumps(schema), settings))

    def language(self) -> Language:
        return self._language

    def parse(self, text: str) -> Any:
        """The validated value of a generated document: a pydantic instance for a model, the
        Python value otherwise."""
        return self._parser(text)

    @property
    def cache_key(self) -> tuple:
        return self._key


def json_schema(source: Any, *, whitespace: str = "flexible", property_order: str = "schema",
                extra_properties: str = "spec", strict: bool = True) -> JsonSchema:
    """Outputs must be JSON documents valid under ``source``: a JSON Schema (a dict, ``True``
    or ``False``, or JSON text), a pydantic model class, or a Python type.

    ``whitespace``: ``"flexible"`` (any JSON whitespace between tokens, a bounded run per gap),
    ``"compact"`` (none) or ``"pretty"`` (exactly ``json.dumps(indent=2)``).
    ``property_order="schema"``: declared properties in schema order, then undeclared keys.
    ``extra_properties``: ``"spec"`` (what the schema allows) or ``"forbid"`` (no undeclared
    keys next to declared ``properties``, the default of ``generate_json``).
    Raises ``SchemaError`` for an invalid schema and ``UnsupportedKeyword`` (naming the keyword
    and its JSON pointer) for an assertion that cannot be enforced; ``strict=False`` drops such
    keywords with a warning instead.
    """
    return JsonSchema(source, whitespace, property_order, extra_properties, strict)


def _grammar_source(source: str) -> str | Path:
    if "\n" not in source and ":" not in source:
        named = GRAMMARS_DIR / f"{source}.lark"
        if named.is_file():
            return named
        if not source.endswith(".lark"):
            known = sorted(p.stem for p in GRAMMARS_DIR.glob("*.lark"))
            raise GrammarError(f"no ready grammar named {source!r} (known: {', '.join(known)})")
    if source.endswith(".lark") and "\n" not in source:
        return Path(source)
    return source


@functools.lru_cache(maxsize=64)
def _grammar_language(located: str | Path, start: str, stamp: tuple | None) -> Language:
    """The language of a Lark grammar, text or file (``stamp``: its modification time and
    size, so that an edited file is read again). Kept for the process: a server builds the
    same grammar constraint request after request, and reading one takes Lark's loader and
    the terminals' regexes tens of milliseconds; the result is immutable."""
    from structgen.sources.lark import load_lark

    return _regular_or_grammar(inline_regular(load_lark(located, start)))


def _regular_or_grammar(grammar_ir: GrammarIR) -> Language:
    """The single terminal's term when the whole grammar inlined to ``start: T`` without
    ignored text; otherwise the grammar."""
    alternatives = grammar_ir.rules[grammar_ir.start]
    if (not grammar_ir.ignore and len(grammar_ir.rules) == 1 and len(alternatives) == 1
            and len(alternatives[0]) == 1 and isinstance(alternatives[0][0], Terminal)):
        return grammar_ir.terminals[alternatives[0][0].name]
    return grammar_ir


def _as_grammar(language: Language, prefix: str) -> GrammarIR:
    """``language`` as a grammar whose rule and terminal names all start with ``prefix``."""
    if isinstance(language, Term):
        name = f"{prefix}T"
        return GrammarIR({prefix: ((Terminal(name),),)}, {name: language}, prefix)

    def rename(symbol):
        cls = Nonterminal if isinstance(symbol, Nonterminal) else Terminal
        return cls(prefix + symbol.name)

    rules = {prefix + lhs: tuple(tuple(rename(s) for s in alt) for alt in alts)
             for lhs, alts in language.rules.items()}
    terminals = {prefix + name: term for name, term in language.terminals.items()}
    return GrammarIR(rules, terminals, prefix + language.start,
                     frozenset(prefix + n for n in language.ignore))


def _combine(kind: str, languages: list[Language]) -> Language:
    """Concatenation (``kind == "sequence"``) or union of languages, regular when all are."""
    if all(isinstance(x, Term) for x in languages):
        return Seq(tuple(languages)) if kind == "sequence" else Alt(tuple(languages))
    parts = [_as_grammar(x, f"p{i}_") for i, x in enumerate(languages)]
    if any(p.ignore for p in parts):
        raise GrammarError(
            f"{kind}() cannot combine a grammar with %ignore: its ignored text would also be "
            "allowed inside the other parts"
        )
    rules, terminals = {}, {}
    for p in parts:
        rules.update(p.rules)
        terminals.update(p.terminals)
    starts = [Nonterminal(p.start) for p in parts]
    rules["start"] = (tuple(starts),) if kind == "sequence" else tuple((s,) for s in starts)
    return GrammarIR(rules, terminals, "start")


def choice(options: Iterable[str | Constraint]) -> Constraint:
    """Outputs must be exactly one of ``options`` (literal strings or constraints)."""
    options = tuple(options)
    if not options:
        raise StructgenError("choice() needs at least one option")
    languages = [literal(o) if isinstance(o, str) else _as_constraint(o).language()
                 for o in options]
    return _Composite("choice", options, _combine("choice", languages))


def sequence(*parts: str | Constraint) -> Constraint:
    """Outputs are the concatenation of one output of each part, in order."""
    languages = [literal(p) if isinstance(p, str) else _as_constraint(p).language()
                 for p in parts]
    return _Composite("sequence", parts, _combine("sequence", languages))


def after(trigger: str, constraint: Constraint) -> Constraint:
    """Free text up to and including the first ``trigger``, then an output of ``constraint``.

    Lets a model reason freely (e.g. until ``</think>``) and then answer in structure.
    """
    if not trigger:
        raise StructgenError("after() needs a non-empty trigger")
    trigger_term = literal(trigger)
    free_char = Seq((Look(trigger_term, ahead=True, negate=True), Chars(ANY_CHAR)))
    head = Seq((Repeat(free_char, 0, None), trigger_term))
    language = _combine("sequence", [head, _as_constraint(constraint).language()])
    return _Composite("after", (trigger, constraint), language)


def _as_constraint(value) -> Constraint:
    if isinstance(value, Constraint):
        return value
    raise StructgenError(f"expected a constraint, got {type(value).__name__}")
