"""Lark front end: Lark EBNF text (or a ``.lark`` file) becomes a context-free :class:`Grammar`.

Lark itself reads the grammar and compiles its EBNF to BNF, so everything Lark accepts means
what it means to Lark: templates expanded, ``?``/``*``/``+``/``~n..m`` turned into rules,
``%import common.X`` resolved, ``?rule`` and ``_rule`` kept as ordinary rules (they only shape
Lark's trees, not the language). Each terminal's pattern becomes a regular term through
:func:`structgen.sources.regex.parse_regex`, given Lark's own ``to_regexp()`` text so that literal
escaping and flags (``"..."i``, ``/.../imsx``) are exactly Lark's.

Differences from Lark's Earley parser (``lexer="dynamic_complete"``), all on the lexing side:

* Terminal and rule priorities are ignored: they choose between parses, not what is a sentence.
* A terminal matches every text its regex fully matches, except that a regex with a lazy
  quantifier matches only texts none of whose proper prefixes it matches (its shortest matches):
  Lark lexes with ``re.match``, where the lazy ``.*?`` of ``ESCAPED_STRING`` stops at the first
  closing quote, so ``"a"b"`` is never one string. Other order-dependent patterns may still
  differ (``/a|ab/`` never lexes ``ab`` in Lark; here it does).
* Ignored text may be split anywhere (see :mod:`structgen.grammar.cfg`); Lark skips the longest
  match of an ignored terminal only, which matters when a terminal may start with ignored text.
* Lookarounds in a terminal see only the terminal's own text.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import lark
from lark.exceptions import LarkError
from lark.load_grammar import load_grammar

from structgen.automata.byte_dfa import LazyByteDFA, Limits
from structgen.errors import GrammarError, LimitExceeded, RegexError
from structgen.grammar.cfg import Expansion, Grammar, Nonterminal, Terminal, looks_outside, trim
from structgen.grammar.charset import ANY_CHAR
from structgen.grammar.regular import Alt, Chars, Look, Seq, Term
from structgen.sources.regex import parse_regex

__all__ = ["load_lark"]

_EMPTINESS_SEARCH = Limits(max_states=20_000, max_compile_seconds=2.0)


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


def _matches_nothing(term: Term) -> bool:
    """Whether ``term`` matches no string, as far as a short search can tell (a search that
    runs into its bounds counts as a match: the terminal is then only warned of)."""
    try:
        return LazyByteDFA(term, _EMPTINESS_SEARCH).language_is_empty()
    except LimitExceeded:
        return False


def _check_edge_lookarounds(definitions: list, terminals: dict[str, Term], text: str) -> None:
    """Refuse, or warn of, terminals whose lookaround faces out of their match (a lookbehind
    or ``^`` at the start, a lookahead, ``$`` or ``\\b`` at the end).

    structgen matches a terminal on its own text, where lark's lexer lets the longest match at
    a position see the text around it. A terminal that then matches nothing (text up to the
    next lexeme, ``/.+?(?=\\n)/``) is refused, naming it, rather than silently never
    matching; the others (``/select\\b/``, ``%ignore /^\\n/``) are named in one warning, as
    they may accept or refuse what lark's would not.
    """
    facing_out = []
    for definition in definitions:
        before, after = looks_outside(terminals[definition.name])
        if not (before or after):
            continue
        line, column = _locate(text, rf"^\s*{re.escape(definition.name)}\b")
        pattern = definition.pattern
        named = f"{definition.name} {pattern.raw or pattern.value!r}"
        edges = " and ".join(edge for edge, facing in (("start", before), ("end", after))
                             if facing)
        if _matches_nothing(terminals[definition.name]):
            raise GrammarError(
                f"terminal {named} matches nothing here: a lookaround at its {edges} reads text "
                "outside it, which it does not see (structgen matches a terminal on its own "
                "text; lark's lexer shows the longest match at a position the text around it)",
                line, column)
        facing_out.append(f"{named} ({f'line {line}, ' if line is not None else ''}{edges})")
    if facing_out:
        shown = ", ".join(facing_out[:8]) + (
            f" and {len(facing_out) - 8} more" if len(facing_out) > 8 else "")
        warnings.warn(
            f"terminals whose lookaround faces out of them (a lookbehind or ^ at the start, a "
            f"lookahead, $ or \\b at the end): {shown}. structgen matches a terminal on its own "
            "text, which starts and ends there; lark's lexer shows the longest match at a "
            "position the text around it, so strings that depend on that text are matched "
            "differently", stacklevel=3)


def _lexeme_term(regex: str) -> Term:
    """The texts Lark's lexer can take with ``regex``: all of its matches, or for a lazy
    alternative its shortest ones (see the module docstring). A terminal that is an alternation
    of others (``VALUE: SIGNED_FLOAT | ESCAPED_STRING``) is split first, so that only the lazy
    alternative is cut down: ``re.match`` tries the alternatives one by one."""
    if not _has_lazy_quantifier(regex):
        return parse_regex(regex)
    alternatives = _top_level_alternatives(regex)
    if len(alternatives) > 1:
        return Alt(tuple(_lexeme_term(alternative) for alternative in alternatives))
    return _shortest_matches(parse_regex(regex))


def _top_level_alternatives(regex: str) -> list[str]:
    """``regex`` split at its top-level ``|``, looking inside groups ``(?:...)`` that enclose
    all of it; ``[regex]`` when there is no such alternation."""
    while True:
        depth, cuts, closes_at = 0, [], None
        for i, char in _structural_chars(regex):
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0 and closes_at is None:
                    closes_at = i
            elif char == "|" and depth == 0:
                cuts.append(i)
        if cuts:
            bounds = [-1, *cuts, len(regex)]
            return [regex[a + 1:b] for a, b in zip(bounds, bounds[1:])]
        if regex.startswith("(?:") and closes_at == len(regex) - 1:
            regex = regex[3:-1]
            continue
        return [regex]


def _structural_chars(regex: str):
    """``(index, char)`` for the characters of ``regex`` outside escapes and classes."""
    i, in_class = 0, False
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if regex[i + 1 : i + 2] == "]":
                i += 1  # a leading "]" is a literal member
        else:
            yield i, char
        i += 1


def _shortest_matches(term: Term) -> Term:
    """The texts of ``term`` none of whose proper prefixes are in ``term``: what a first-match
    lexer takes from a lazy pattern. (A lookahead inside a terminal sees only its own text.)"""
    longer = Seq((term, Chars(ANY_CHAR)))
    return Seq((Look(longer, ahead=True, negate=True), term))


def _has_lazy_quantifier(regex: str) -> bool:
    """Whether ``regex`` has ``*?``, ``+?``, ``??`` or ``{m,n}?`` outside classes and escapes."""
    return any(char in "*+?}" and regex[i + 1 : i + 2] == "?"
               and not (char == "?" and regex[i - 1 : i] == "(")  # "(?" opens a group
               for i, char in _structural_chars(regex))


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
