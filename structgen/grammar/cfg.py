"""The context-free part of the grammar IR: rules over terminals whose languages are regular terms.

Every grammar source (Lark, JSON Schema) lowers to a :class:`Grammar`; the matcher stage builds
one byte automaton per terminal and parses the terminal sequence. This module holds the IR and
the compile-time passes over it, each a pure function from grammar to grammar or to a set of
names: :func:`validate`, :func:`nullable`, :func:`productive`, :func:`reachable`, :func:`trim`,
:func:`inline_regular`, :func:`terminal_followers`, and :func:`render` for messages.

Semantics. A text is in the language when it splits as ``g0 t1 g1 t2 ... tk gk`` where the
terminal names ``T1 .. Tk`` are derived from ``start``, each ``ti`` fully matches the term of
``Ti``, and each gap ``gi`` is a (possibly empty) run of texts each fully matching the term of an
``ignore`` terminal, each the longest such match there (a lazy quantifier's term already
stops at its first, see ``regular.first_matches``). This is Lark's ``%ignore``: ignored text
may stand between any two terminals and at both ends of the input, never inside a terminal;
its lexer takes an ignored terminal's first match, the longest for a greedy pattern (a
``#[^\\n]*`` comment runs to the end of its line). Terminals never match the
empty string (a lexer would loop on them; Lark refuses them too); a rule may derive the empty
string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

from structgen.errors import EmptyLanguage, GrammarError
from structgen.grammar.charset import ANY_CHAR, CharSet
from structgen.grammar.regular import (
    NOTHING,
    Alt,
    Chars,
    Look,
    Repeat,
    Seq,
    Term,
    concat,
    single_character,
    subterms,
    tree_size,
)

__all__ = [
    "Expansion",
    "Grammar",
    "Nonterminal",
    "Symbol",
    "Terminal",
    "inline_regular",
    "non_empty_part",
    "nullable",
    "productive",
    "reachable",
    "render",
    "term_nullable",
    "terminal_followers",
    "trim",
    "validate",
]


@dataclass(frozen=True, slots=True)
class Nonterminal:
    """A reference to the rule ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Terminal:
    """A reference to the terminal ``name``."""

    name: str


Symbol = Nonterminal | Terminal
Expansion = tuple[Symbol, ...]


@dataclass(frozen=True, eq=True)
class Grammar:
    """An immutable, hashable context-free grammar; validated on construction.

    ``rules`` maps each nonterminal to its alternatives (tuples of symbols, ``()`` for the empty
    string), ``terminals`` maps each terminal to its regular term, ``ignore`` names the terminals
    that may appear between any two terminals (see the module docstring). The mappings are
    read-only copies; their order is kept for rendering but not part of equality.
    """

    rules: Mapping[str, tuple[Expansion, ...]]
    terminals: Mapping[str, Term]
    start: str
    ignore: frozenset[str] = frozenset()
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules = {name: tuple(tuple(alt) for alt in alts) for name, alts in self.rules.items()}
        object.__setattr__(self, "rules", MappingProxyType(rules))
        object.__setattr__(self, "terminals", MappingProxyType(dict(self.terminals)))
        object.__setattr__(self, "ignore", frozenset(self.ignore))
        key = (frozenset(rules.items()), frozenset(self.terminals.items()), self.start, self.ignore)
        object.__setattr__(self, "_hash", hash(key))
        validate(self)

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return render(self)


def validate(grammar: Grammar) -> None:
    """Raise :class:`GrammarError` unless every name the grammar uses is defined.

    Checked once, on construction, so that every later pass may look names up blindly. Also
    refuses terminals that match the empty string: the matcher lexes terminals at boundaries and
    could not make progress on them.
    """
    if grammar.start not in grammar.rules:
        raise GrammarError(f"the start rule {grammar.start!r} is not defined")
    undefined: dict[str, str] = {}
    for name, alternatives in grammar.rules.items():
        for symbol in (s for alt in alternatives for s in alt):
            known = grammar.rules if isinstance(symbol, Nonterminal) else grammar.terminals
            if symbol.name not in known:
                kind = "rule" if isinstance(symbol, Nonterminal) else "terminal"
                undefined.setdefault(f"{kind} {symbol.name!r}", name)
    for name in grammar.ignore - grammar.terminals.keys():
        undefined.setdefault(f"terminal {name!r}", "%ignore")
    if undefined:
        listed = ", ".join(f"{what} (used in {where})" for what, where in undefined.items())
        raise GrammarError(f"undefined symbols: {listed}")
    empty = [name for name, term in grammar.terminals.items() if term_nullable(term)]
    if empty:
        raise GrammarError(f"terminals matching the empty string: {', '.join(empty)}")


@lru_cache(maxsize=1 << 16)  # terms share subterms: memoized, a check is linear in the DAG
def term_nullable(term: Term) -> bool:
    """Whether ``term`` may match the empty string; a lookaround counts as nullable.

    Lookarounds are zero-width, so treating them as nullable only over-approximates: a terminal
    refused for it would be a zero-width assertion with at most an optional body.
    """
    if isinstance(term, Chars):
        return False
    if isinstance(term, Seq):
        return all(term_nullable(item) for item in term.items)
    if isinstance(term, Alt):
        return any(term_nullable(item) for item in term.items)
    if isinstance(term, Repeat):
        return term.min == 0 or term_nullable(term.item)
    return isinstance(term, Look)


@lru_cache(maxsize=4096)
def reads_ahead(term: Term) -> bool:
    """Whether ``term`` has a lookahead (anchors and ``\\b`` included): as a grammar's
    terminal its lookaheads read the text after its lexeme too, as lark's lexer, which
    matches the whole text, lets them."""
    return any(isinstance(node, Look) and node.ahead for node in subterms(term))


def looks_outside(term: Term) -> tuple[bool, bool]:
    """Whether a match of ``term`` may begin with a lookbehind (which then reads the text
    before the match) and end with a lookahead (which reads the text after it): anchors and
    ``\\b`` included, as they are lookarounds."""
    return bool(edge_lookarounds(term, True)), bool(edge_lookarounds(term, False))


@lru_cache(maxsize=1 << 16)
def edge_lookarounds(term: Term, start: bool) -> tuple[Look, ...]:
    """The lookarounds facing out of ``term`` that may sit at its ``start`` (lookbehinds,
    ``^`` and ``\\b`` included, which read the text before a match) or its end (lookaheads),
    each once."""
    if isinstance(term, Look):
        return (term,) if term.ahead != start else ()
    if isinstance(term, Alt):
        parts = [edge_lookarounds(item, start) for item in term.items]
    elif isinstance(term, Repeat):
        parts = [edge_lookarounds(term.item, start)] if term.max != 0 else []
    elif isinstance(term, Seq):
        parts = []
        for item in term.items if start else reversed(term.items):
            parts.append(edge_lookarounds(item, start))
            if not term_nullable(item):
                break
    else:
        parts = []
    return tuple(dict.fromkeys(look for part in parts for look in part))


def non_empty_part(term: Term) -> Term:
    """The non-empty strings of ``term``.

    Built structurally when ``term`` has no lookaround, so the terminal it becomes keeps cheap
    derivatives: the strings of ``x1 ... xn`` with every ``xi`` nullable are those whose first
    non-empty piece comes from some ``xi``, i.e. ``non_empty(xi) x(i+1) ... xn``; those of
    ``x{lo,hi}`` start with a non-empty ``x`` followed by ``x{lo-1,hi-1}``. With a lookaround
    (zero-width, so not expressible piece by piece) the term is guarded by a negative lookahead
    for the end instead.
    """
    if any(isinstance(node, Look) for node in subterms(term)):
        return Seq((Look(Seq((term, Look(Chars(ANY_CHAR), True, True))), True, False),
                    Chars(ANY_CHAR), Repeat(Chars(ANY_CHAR), 0, None)))
    memo: dict[int, Term] = {}

    def part(node: Term) -> Term:
        known = memo.get(id(node))
        if known is not None:
            return known
        if not term_nullable(node):
            result = node
        elif isinstance(node, Seq):
            firsts = [(part(item), node.items[i + 1:]) for i, item in enumerate(node.items)]
            result = _alt(concat(first, *rest) for first, rest in firsts
                          if first != NOTHING) or NOTHING
        elif isinstance(node, Alt):
            result = _alt(p for p in map(part, node.items) if p != NOTHING) or NOTHING
        else:  # a nullable Repeat
            assert isinstance(node, Repeat)
            first = part(node.item)
            if node.max == 0 or first == NOTHING:
                result = NOTHING
            else:
                rest = Repeat(node.item, max(node.min - 1, 0),
                              None if node.max is None else node.max - 1)
                result = concat(first, rest)
        memo[id(node)] = result
        return result

    return part(term)


def _fixpoint(grammar: Grammar, holds) -> frozenset[str]:
    """The least set of nonterminals closed under ``holds(alternative, found) -> bool``."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, alternatives in grammar.rules.items():
            if name not in found and any(holds(alt, found) for alt in alternatives):
                found.add(name)
                changed = True
    return frozenset(found)


def nullable(grammar: Grammar) -> frozenset[str]:
    """The nonterminals that derive the empty string.

    Parsers need them to skip rules that consume nothing (Earley's completion of empty rules,
    the matcher's "may end here" test).
    """
    return _fixpoint(
        grammar, lambda alt, found: all(isinstance(s, Nonterminal) and s.name in found for s in alt)
    )


def productive(grammar: Grammar) -> frozenset[str]:
    """The nonterminals that derive at least one string of terminals.

    An alternative using an unproductive symbol can never complete, so :func:`trim` drops it: a
    matcher that kept it would offer tokens leading to dead ends. A terminal whose term is
    ``NOTHING`` is unproductive.
    """

    def holds(alt: Expansion, found: set[str]) -> bool:
        return all(
            grammar.terminals[s.name] != NOTHING if isinstance(s, Terminal) else s.name in found
            for s in alt
        )

    return _fixpoint(grammar, holds)


def reachable(grammar: Grammar) -> frozenset[str]:
    """The nonterminals reachable from ``start``; the others cannot affect the language."""
    seen = {grammar.start}
    stack = [grammar.start]
    while stack:
        for alt in grammar.rules[stack.pop()]:
            for symbol in alt:
                if isinstance(symbol, Nonterminal) and symbol.name not in seen:
                    seen.add(symbol.name)
                    stack.append(symbol.name)
    return frozenset(seen)


def terminal_followers(grammar: Grammar) -> dict[tuple[str, int, int], tuple[frozenset[str], bool]]:
    """For each terminal occurrence, keyed ``(rule, alternative index, position)``: the
    terminals that may come right after it in a sentence, and whether the sentence may end
    right after it (ignored terminals, which may come anywhere, aside).

    The classic FIRST and FOLLOW sets: what follows an occurrence is the first terminals of
    the rest of its alternative, and, where that rest may be empty, what follows its rule
    anywhere in the grammar (so an over-approximation where a rule is used in several
    places). The matcher uses it to drop occurrences that the lookarounds of the lexemes on
    either side of them refuse.
    """
    empty = nullable(grammar)
    first: dict[str, set[str]] = {name: set() for name in grammar.rules}

    def first_of(symbols: Expansion) -> tuple[set[str], bool]:
        """The first terminals of ``symbols`` and whether they may derive the empty string."""
        found: set[str] = set()
        for symbol in symbols:
            if isinstance(symbol, Terminal):
                found.add(symbol.name)
                return found, False
            found |= first[symbol.name]
            if symbol.name not in empty:
                return found, False
        return found, True

    def grow(table: dict, name: str, items: Iterable) -> bool:
        size = len(table[name])
        table[name].update(items)
        return len(table[name]) != size

    changed = True
    while changed:
        changed = False
        for name, alternatives in grammar.rules.items():
            for alt in alternatives:
                changed |= grow(first, name, first_of(alt)[0])
    end = object()  # stands for the end of the sentence in the follow sets
    follow: dict[str, set] = {name: set() for name in grammar.rules}
    follow[grammar.start].add(end)
    changed = True
    while changed:
        changed = False
        for name, alternatives in grammar.rules.items():
            for alt in alternatives:
                for i, symbol in enumerate(alt):
                    if isinstance(symbol, Nonterminal):
                        after, may_vanish = first_of(alt[i + 1:])
                        changed |= grow(follow, symbol.name,
                                        after | follow[name] if may_vanish else after)
    followers = {}
    for name, alternatives in grammar.rules.items():
        for a, alt in enumerate(alternatives):
            for i, symbol in enumerate(alt):
                if isinstance(symbol, Terminal):
                    after, may_vanish = first_of(alt[i + 1:])
                    if may_vanish:
                        after = after | follow[name]
                    followers[name, a, i] = (frozenset(after - {end}), end in after)
    return followers


def trim(grammar: Grammar) -> Grammar:
    """The same language without useless parts: alternatives using unproductive symbols, rules
    unreachable from ``start``, and terminals nothing uses (ignored terminals are kept).

    Raises :class:`EmptyLanguage` when ``start`` derives no string: no generation could finish.
    """
    alive = productive(grammar)
    if grammar.start not in alive:
        raise EmptyLanguage(f"the start rule {grammar.start!r} derives no string")

    def usable(alt: Expansion) -> bool:
        return all(
            s.name in alive if isinstance(s, Nonterminal) else grammar.terminals[s.name] != NOTHING
            for s in alt
        )

    rules = {name: tuple(filter(usable, alts)) for name, alts in grammar.rules.items()}
    live = Grammar(
        {n: alts for n, alts in rules.items() if n in alive},
        grammar.terminals,
        grammar.start,
        grammar.ignore,
    )
    keep = reachable(live)
    rules = {name: alts for name, alts in live.rules.items() if name in keep}
    return _with_rules(grammar, rules)


def _with_rules(
    grammar: Grammar,
    rules: Mapping[str, tuple[Expansion, ...]],
    extra_terminals: Mapping[str, Term] = MappingProxyType({}),
) -> Grammar:
    """A grammar with ``rules``, keeping only the terminals they or ``ignore`` use."""
    terminals = {**grammar.terminals, **extra_terminals}
    used = {
        s.name for alts in rules.values() for alt in alts for s in alt if isinstance(s, Terminal)
    } | grammar.ignore
    kept = {name: term for name, term in terminals.items() if name in used}
    return Grammar(rules, kept, grammar.start, grammar.ignore)


class _Language(NamedTuple):
    """A regular language of texts, split as (contains the empty text, term of the rest).

    Keeping the empty text apart lets an inlined rule become a terminal, which must not match
    the empty string, while the rule itself stays nullable. ``nonempty`` is ``None`` when the
    language holds at most the empty text. A non-empty text never starts or ends with ignored
    text: gaps are inserted only between two terminals, see :func:`inline_regular`.
    """

    empty: bool
    nonempty: Term | None


def _alt(items: Iterable[Term]) -> Term | None:
    """Alternation without duplicates; ``None`` for no alternative at all."""
    unique = tuple(dict.fromkeys(items))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else Alt(unique)


def _concat(left: _Language, right: _Language, gap: Term | None) -> _Language:
    """``left`` then ``right``, with ``gap`` (ignored text) between two non-empty parts."""
    options = []
    if left.nonempty is not None and right.nonempty is not None:
        middle = (gap,) if gap is not None else ()
        options.append(concat(left.nonempty, *middle, right.nonempty))
    if right.empty and left.nonempty is not None:
        options.append(left.nonempty)
    if left.empty and right.nonempty is not None:
        options.append(right.nonempty)
    return _Language(left.empty and right.empty, _alt(options))


def _union(languages: Iterable[_Language]) -> _Language:
    """The union of ``languages``."""
    languages = list(languages)
    nonempty = _alt(lang.nonempty for lang in languages if lang.nonempty is not None)
    return _Language(any(lang.empty for lang in languages), nonempty)


def _star(language: _Language, gap: Term | None) -> _Language:
    """Zero or more repetitions, with ``gap`` between consecutive ones."""
    if language.nonempty is None:
        return _Language(True, None)
    step = concat(gap, language.nonempty) if gap is not None else language.nonempty
    return _Language(True, concat(language.nonempty, Repeat(step, 0, None)))


_EPSILON_LANGUAGE = _Language(True, None)


def _split_self_reference(name: str, alt: Expansion) -> tuple[str, Expansion] | None:
    """Classify an alternative of rule ``name`` by where it refers to ``name`` itself.

    Returns ``("base", alt)``, ``("left", suffix)`` for ``name suffix``, ``("right", prefix)``
    for ``prefix name``, ``("unit", ())`` for ``name`` alone, or ``None`` when the reference is
    anywhere else (or repeated): such a rule may be self-embedding, hence not regular.
    """
    count = sum(1 for s in alt if s == Nonterminal(name))
    if count == 0:
        return ("base", alt)
    if count > 1:
        return None
    if len(alt) == 1:
        return ("unit", ())
    if alt[0] == Nonterminal(name):
        return ("left", alt[1:])
    if alt[-1] == Nonterminal(name):
        return ("right", alt[:-1])
    return None


def _regular_order(grammar: Grammar) -> list[str]:
    """The regular nonterminals, each listed after the nonterminals it uses.

    A nonterminal is regular here when each alternative uses only terminals, earlier regular
    nonterminals, and itself at the very start or end (left- or right-linear recursion, which
    is what Lark's ``x*`` and ``x+`` compile to). Mutual recursion is left to the parser.
    """
    order: list[str] = []
    done: set[str] = set()
    pending = list(grammar.rules)
    gaps_kept_out = any(_has_lookaround(grammar.terminals[n])
                        or _longest_matches(grammar.terminals[n]) is None for n in grammar.ignore)
    changed = True
    while changed:
        changed = False
        for name in pending:
            if name not in done and _is_regular(grammar, name, done, gaps_kept_out):
                order.append(name)
                done.add(name)
                changed = True
        pending = [name for name in pending if name not in done]
    return order


def _is_regular(grammar: Grammar, name: str, done: set[str], gaps_kept_out: bool) -> bool:
    """Whether rule ``name`` is regular once the rules in ``done`` are (see above).

    A rule using a terminal with a lookaround is not: inside a longer terminal, a lookaround
    would see other text (the negative lookahead that makes ``ESCAPED_STRING`` stop at its
    first closing quote would reject a list of strings). Nor, when an ignored terminal cannot
    be put inside a terminal (``gaps_kept_out``: it has a lookaround, as ``%ignore
    C_COMMENT``, or its longest matches have no simple term, see :func:`_longest_matches`), is
    a rule whose terminal would hold ignored text: one with a self-reference or a sequence of
    symbols.
    """
    for alt in grammar.rules[name]:
        split = _split_self_reference(name, alt)
        if split is None:
            return False
        if gaps_kept_out and (split[0] != "base" or len(split[1]) > 1):
            return False
        for symbol in split[1]:
            if isinstance(symbol, Nonterminal) and symbol.name not in done:
                return False
            if isinstance(symbol, Terminal) and _has_lookaround(grammar.terminals[symbol.name]):
                return False
    return True


@lru_cache(maxsize=4096)
def _longest_matches(term: Term) -> Term | None:
    """An ignored terminal's longest matches, which is how lark's lexer takes ignored text,
    as a term for the gaps inside an inlined terminal; None unless it is a fixed number of
    characters (each match is then the longest) or such a prefix then a run of one character
    class (``#[^\\n]*``, ``[ \\t]+``, ``--[^\\n]*``), whose matches are longest exactly
    when no character of that class follows."""
    items = term.items if isinstance(term, Seq) else (term,)
    if all(single_character(item) is not None for item in items):
        return term
    if not isinstance(items[-1], Repeat) or items[-1].max is not None:
        return None
    run = single_character(items[-1].item)
    if run is None or any(single_character(item) is None for item in items[:-1]):
        return None
    return Seq((*items, Look(Chars(run), ahead=True, negate=True)))


@lru_cache(maxsize=4096)
def _has_lookaround(term: Term) -> bool:
    return any(isinstance(node, Look) for node in subterms(term))


def _rule_language(
    grammar: Grammar, name: str, languages: Mapping[str, _Language], gap: Term | None
) -> _Language:
    """The text language of regular rule ``name`` as ``right* base left*``.

    For ``N -> r N | N l | b`` the least solution is ``R* B L*``: each derivation applies some
    right steps, one base alternative, and some left steps.
    """

    def sequence(alt: Expansion) -> _Language:
        result = _EPSILON_LANGUAGE
        for symbol in alt:
            part = (
                languages[symbol.name]
                if isinstance(symbol, Nonterminal)
                else _Language(False, grammar.terminals[symbol.name])
            )
            result = _concat(result, part, gap)
        return result

    parts: dict[str, list[_Language]] = {"base": [], "left": [], "right": [], "unit": []}
    for alt in grammar.rules[name]:
        kind, symbols = _split_self_reference(name, alt)
        parts[kind].append(sequence(symbols))
    language = _union(parts["base"])
    if parts["right"]:
        language = _concat(_star(_union(parts["right"]), gap), language, gap)
    if parts["left"]:
        language = _concat(language, _star(_union(parts["left"]), gap), gap)
    return language


def _fresh_name(name: str, taken: set[str]) -> str:
    """``name`` in upper case (Lark's convention for terminals), made unique among ``taken``."""
    candidate = name.upper()
    suffix = 1
    while candidate in taken:
        candidate = f"{name.upper()}_{suffix}"
        suffix += 1
    taken.add(candidate)
    return candidate


# The most nodes an inlined rule's term may have written out (``regular.tree_size``). A whole
# sentence of a non-recursive grammar can inline into one terminal whose automaton states are
# unions of hundreds of ways on: in a real-world grammar of clauses over overlapping names (2.5
# million nodes written out), a first mask took up to 0.5 s and those along its 20 example
# sentences 6.6 s; left to the parser, 0.23 s. Real lexemes spelled over rules (keywords letter by
# letter, numbers, dates, chess moves) stay far below; whole small grammars of a few thousand
# nodes (``grammars/cron.lark``, a CSV record) are still faster as one automaton.
_MAX_INLINED = 5000


def inline_regular(grammar: Grammar) -> Grammar:
    """Replace every regular rule by a terminal whose term is the rule's text language.

    Why: grammars spell keywords one character per rule (``select_: s e l e c t``) or split a
    lexeme over small rules; as terminals, the matcher decides tokens inside them from the
    terminal automaton alone instead of consulting the parser at every character. Regular rules
    are the non-recursive ones built from terminals and other regular rules, plus left- or
    right-linear self-recursion (``list: item | list "," item``); see :func:`_regular_order`.

    ``%ignore`` is kept exact by putting ``(ignored)*`` between consecutive terminals inside the
    new term (each ignored terminal by its longest matches, see :func:`_longest_matches`), and
    nowhere else: in the original grammar ignored text may stand between any two
    terminals, including two inside the inlined rule (``s e`` accepts ``"s e"``), so leaving it
    out would shrink the language; the gaps at the edges of the new terminal remain gaps of the
    outer sentence, so adding ignored text there too would only add ambiguity. Inlining only
    when ``ignore`` is empty would be exact as well but would skip nearly every real grammar.

    A rule that derives the empty string keeps a rule ``N: N_TERMINAL | <empty>``, since
    terminals never match the empty string; other inlined rules disappear and their uses refer
    to the new terminal. Rules used only by other inlined rules disappear entirely.
    """
    grammar = trim(grammar)
    order = _regular_order(grammar)
    if not order:
        return grammar
    gap_term = _alt(_longest_matches(grammar.terminals[name]) or grammar.terminals[name]
                    for name in sorted(grammar.ignore))
    gap = Repeat(gap_term, 0, None) if gap_term is not None else None
    languages: dict[str, _Language] = {}
    sizes: dict = {}  # tree sizes by term, shared: a rule's term holds the terms of its parts
    for name in order:
        if any(isinstance(s, Nonterminal) and s.name != name and s.name not in languages
               for alt in grammar.rules[name] for s in alt):
            continue  # it uses a rule left to the parser
        language = _rule_language(grammar, name, languages, gap)
        if language.nonempty is not None and tree_size(language.nonempty,
                                                       sizes) > _MAX_INLINED:
            continue  # too large to be one lexeme: left to the parser
        languages[name] = language
    order = [name for name in order if name in languages]
    regular = set(order)
    used_outside = {
        s.name
        for name, alts in grammar.rules.items()
        if name not in regular
        for alt in alts
        for s in alt
        if isinstance(s, Nonterminal)
    }
    taken = set(grammar.terminals)
    new_terminals: dict[str, Term] = {}
    replacement: dict[str, Symbol] = {}
    rules: dict[str, tuple[Expansion, ...]] = {}
    for name in order:
        if name not in used_outside and name != grammar.start:
            continue
        language = languages[name]
        alternatives: list[Expansion] = []
        if language.nonempty is not None:
            terminal = _fresh_name(name, taken)
            new_terminals[terminal] = language.nonempty
            alternatives.append((Terminal(terminal),))
            if not language.empty and name != grammar.start:
                replacement[name] = Terminal(terminal)
                continue
        if language.empty:
            alternatives.append(())
        rules[name] = tuple(alternatives)
    for name, alts in grammar.rules.items():
        if name not in regular:
            rules[name] = tuple(
                tuple(replacement.get(s.name, s) if isinstance(s, Nonterminal) else s for s in alt)
                for alt in alts
            )
    ordered = {name: rules[name] for name in grammar.rules if name in rules}
    return _with_rules(grammar, ordered, new_terminals)


def render(grammar: Grammar) -> str:
    """The grammar as Lark-like text, for error messages and ``structgen check``.

    Terminals are written as Python regexes (case-insensitivity already expanded into classes).
    The text loads back with Lark when the names follow Lark's conventions and no lookbehind has
    variable width.
    """
    lines = []
    for name, alternatives in grammar.rules.items():
        shown = [" ".join(s.name for s in alt) if alt else "" for alt in alternatives]
        lines.append(f"{name}: " + "\n    | ".join(shown))
    for name, term in grammar.terminals.items():
        lines.append(f"{name}: /{_regex(term).replace('/', chr(92) + '/')}/")
    lines.extend(f"%ignore {name}" for name in sorted(grammar.ignore))
    return "\n".join(lines) + "\n"


def _regex(term: Term) -> str:
    """``term`` in Python regex syntax."""
    if isinstance(term, Chars):
        return _charset_regex(term.charset)
    if isinstance(term, Seq):
        return "".join(_grouped(item, Alt) for item in term.items)
    if isinstance(term, Alt):
        return "|".join(_regex(item) for item in term.items) if term.items else "(?!)"
    if isinstance(term, Repeat):
        bounds = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((term.min, term.max))
        if bounds is None:
            upper = "" if term.max is None else str(term.max)
            bounds = f"{{{term.min}}}" if term.max == term.min else f"{{{term.min},{upper}}}"
        return _grouped(term.item, Alt, Seq, Repeat) + bounds
    if isinstance(term, Look):
        kind = (
            ("=" if not term.negate else "!") if term.ahead else ("<=" if not term.negate else "<!")
        )
        return f"(?{kind}{_regex(term.body)})"
    raise TypeError(f"not a regular term: {term!r}")


def _grouped(term: Term, *kinds: type) -> str:
    """``term`` wrapped in a non-capturing group when it is one of ``kinds`` (and not a single
    character, which never needs one)."""
    text = _regex(term)
    if isinstance(term, kinds) and not (isinstance(term, Seq) and len(term.items) == 1):
        return f"(?:{text})"
    return text


def _charset_regex(charset: CharSet) -> str:
    if charset == ANY_CHAR:
        return r"[\s\S]"
    if len(charset.ranges) == 1 and charset.ranges[0][0] == charset.ranges[0][1]:
        return _char_regex(charset.ranges[0][0])
    negate = len((~charset).ranges) < len(charset.ranges)
    ranges = (~charset).ranges if negate else charset.ranges
    body = "".join(
        _char_regex(lo) if lo == hi else f"{_char_regex(lo)}-{_char_regex(hi)}" for lo, hi in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


def _char_regex(cp: int) -> str:
    """One code point, escaped so it reads the same inside and outside a class."""
    if 0x20 < cp < 0x7F:
        return re.escape(chr(cp))
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"
