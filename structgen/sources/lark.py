"""Lark front end: Lark EBNF text (or a ``.lark`` file) becomes a context-free :class:`Grammar`.

Lark itself reads the grammar and compiles its EBNF to BNF, so everything Lark accepts means
what it means to Lark: templates expanded, ``?``/``*``/``+``/``~n..m`` turned into rules,
``%import common.X`` resolved, ``?rule`` and ``_rule`` kept as ordinary rules (they only shape
Lark's trees, not the language). Each terminal's pattern becomes a regular term through
:func:`structgen.sources.regex.parse_regex`, given Lark's own ``to_regexp()`` text so that literal
escaping and flags (``"..."i``, ``/.../imsx``) are exactly Lark's.

Differences from Lark's Earley parser (``lexer="dynamic_complete"``), all on the lexing side:

* Terminal and rule priorities are ignored: they choose between parses, not what is a sentence.
* A terminal matches the texts ``re.match`` takes whole, as Lark lexes with it
  (:func:`structgen.grammar.regular.first_matches`): a lazy quantifier stops where the rest of
  the regex first matches (the ``.*?`` of ``ESCAPED_STRING`` at the first closing quote, so
  ``"a"b"`` is never one string), and an alternative is taken only where no earlier one leads
  to a match (``/a|ab/`` never takes ``ab``; Lark orders a terminal's ``A | B`` longest
  first). A greedy repetition's preference for one more round is not kept (``/a*(ab)?/``
  takes ``ab`` here, never in Lark), nor the order of alternatives inside a lazy repetition's
  item or a repetition bounded above 8.
* An ignored terminal takes its longest match, as Lark's lexer does; inside a rule inlined
  into one terminal (:func:`structgen.grammar.cfg.inline_regular`) only when its longest
  matches have a simple term, and such rules are not inlined otherwise.
* Lookarounds at a terminal's edges (also ``^``, ``$``, ``\\b``) see the text around its
  lexeme, as they do for the first match at a position in lark's lexer; lark's complete
  lexing also takes the prefixes of that match that match on their own text, which here must
  match in their place too. A lookbehind at a terminal's start may read one character.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import lark
from lark.exceptions import LarkError
from lark.load_grammar import load_grammar

from structgen.errors import GrammarError, RegexError
from structgen.grammar.cfg import Expansion, Grammar, Nonterminal, Terminal, edge_lookarounds, trim
from structgen.grammar.regular import Term, single_character
from structgen.sources.regex import parse_regex

__all__ = ["load_lark"]


def load_lark(source: str | os.PathLike, start: str = "start") -> Grammar:
    """Load a Lark grammar into the IR, trimmed of useless rules.

    Parameters:
        source: grammar text, or the path of a ``.lark`` file (a ``PathLike``, or a one-line
            string ending in ``.lark``); a file's relative ``%import`` resolves from its folder.
        start: the start rule.

    Raises:
        GrammarError: Lark rejects the grammar (with the line and column Lark reports, or of
            the offending name), a terminal is only ``%declare``-d, a terminal's regex is
            malformed or unsupported (naming the terminal), or ``start`` is undefined.
        EmptyLanguage: ``start`` derives no string.
    """
    text, path = _read(source)
    try:
        builder, _ = load_grammar(text, path or "<string>", [], False)
        terminal_defs, lark_rules, ignore = builder.compile([start], set())
    except (LarkError, OSError) as error:
        raise GrammarError(
            f"Lark rejects the grammar: {_first_line(error)}", *_lark_position(error, text)
        ) from error
    terminals = {t.name: _terminal_term(t, text) for t in terminal_defs}
    _check_edge_lookarounds(terminal_defs, terminals, text)
    rules = _rules(lark_rules)
    _refuse_declared(rules, terminals, text)
    return trim(Grammar(rules, terminals, start, frozenset(ignore)))


def _read(source: str | os.PathLike) -> tuple[str, str | None]:
    """The grammar text, and the file path when ``source`` names a file."""
    is_path = isinstance(source, os.PathLike) or (
        "\n" not in source and source.strip().endswith(".lark")
    )
    if not is_path:
        return source, None
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as error:
        raise GrammarError(f"cannot read grammar file {str(path)!r}: {error.strerror}") from error


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _lark_position(error: Exception, text: str) -> tuple[int | None, int | None]:
    """Line and column of a Lark error.

    Syntax errors carry them on the ``UnexpectedInput`` Lark raised them from. Semantic errors
    (undefined rule or template, bad ignore) carry none but name the symbol in quotes; its
    first whole-word occurrence in the text is then the use Lark complains about, since an
    undefined name occurs only where it is used.
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, lark.exceptions.UnexpectedInput):
            return cause.line, cause.column
        cause = cause.__context__
    named = re.search(r"'(\w+)'", str(error))
    return _locate(text, rf"\b{named.group(1)}\b") if named else (None, None)


def _locate(text: str, pattern: str) -> tuple[int | None, int | None]:
    """1-based line and column of the first match of ``pattern`` in ``text`` (of its group
    ``at`` if it has one)."""
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        return None, None
    start = found.start("at") if "at" in found.groupdict() else found.start()
    line_start = text.rfind("\n", 0, start) + 1
    return text.count("\n", 0, start) + 1, start - line_start + 1


def _terminal_term(definition: lark.lexer.TerminalDef, text: str) -> Term:
    """The regular term of a Lark terminal; its regex errors become GrammarErrors naming it."""
    pattern = definition.pattern
    try:
        term = _lexeme_term(pattern.to_regexp())
    except RegexError as error:
        line, column = _locate(text, rf"^\s*{re.escape(definition.name)}\b")
        if line is None:
            line, column = _locate(text, re.escape(pattern.value))
        raise GrammarError(
            f"terminal {definition.name} ({pattern.raw or pattern.value!r}): {error}", line, column
        ) from error
    return term


def _check_edge_lookarounds(definitions: list, terminals: dict[str, Term], text: str) -> None:
    """Refuse, naming them, the terminals whose edge lookarounds structgen cannot let see the
    text around their lexeme as lark's lexer does: a lookbehind at the start that reads more
    than one character."""
    for definition in definitions:
        term = terminals[definition.name]
        if all(single_character(look.body) is not None
               for look in edge_lookarounds(term, True)):
            continue
        pattern = definition.pattern
        raise GrammarError(
            f"terminal {definition.name} {pattern.raw or pattern.value!r}: a lookbehind at its "
            "start reads more than one character before it, which is not supported",
            *_locate(text, rf"^\s*{re.escape(definition.name)}\b"))


def _lexeme_term(regex: str) -> Term:
    """The texts Lark's lexer can take with ``regex``: those ``re.match`` takes whole, lazy
    quantifiers stopping at the first match of what follows them and alternatives tried in
    order (see the module docstring)."""
    return parse_regex(regex, exact_classes=True, first_match=True)


def _rules(lark_rules) -> dict[str, tuple[Expansion, ...]]:
    """Lark's BNF rules grouped by name, alternatives in Lark's order without duplicates."""
    grouped: dict[str, dict[Expansion, None]] = {}
    for rule in lark_rules:
        expansion = tuple(
            Terminal(str(s.name)) if s.is_term else Nonterminal(str(s.name)) for s in rule.expansion
        )
        grouped.setdefault(str(rule.origin.name), {})[expansion] = None
    return {name: tuple(alternatives) for name, alternatives in grouped.items()}


def _refuse_declared(rules, terminals, text: str) -> None:
    """Refuse terminals used without a definition: Lark allows them through ``%declare`` for a
    postlexer to produce, but without a definition they have no language to enforce."""
    declared = sorted(
        {
            s.name
            for alts in rules.values()
            for alt in alts
            for s in alt
            if isinstance(s, Terminal) and s.name not in terminals
        }
    )
    if declared:
        raise GrammarError(
            f"terminals declared with %declare have no definition to enforce: "
            f"{', '.join(declared)}",
            *_locate(text, rf"^[ \t]*(?P<at>%declare)\b.*\b{re.escape(declared[0])}\b"),
        )
