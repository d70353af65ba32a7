"""Brute-force reference semantics of the regular IR, for tests.

``fullmatch(term, text)`` decides membership directly from the definitions in
``structgen.grammar.regular``, without automata: it is the oracle that compiled automata and the
source front ends are checked against. Simple rather than fast: meant for strings of a few dozen
characters.
"""

from __future__ import annotations

from structgen.grammar.cfg import Grammar, Nonterminal, Terminal, looks_outside, reads_ahead
from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term

__all__ = ["fullmatch", "grammar_accepts"]


def fullmatch(term: Term, text: str) -> bool:
    """Whether ``term`` matches all of ``text``."""
    return len(text) in _Matcher(text).ends(term, 0)


class _Matcher:
    """Memoized ``ends(term, i)``: the positions ``j`` such that ``term`` matches ``text[i:j]``.

    Lookarounds are evaluated against the whole text, as in Python's ``re``: a lookahead at ``i``
    holds when its body matches some prefix of ``text[i:]``, a lookbehind when its body matches
    some suffix of ``text[:i]``.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.memo: dict[tuple[int, int], frozenset[int]] = {}

    def ends(self, term: Term, i: int) -> frozenset[int]:
        """End positions of matches of ``term`` starting at ``i`` (cached per term object)."""
        key = (id(term), i)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self.compute(term, i)
        return found

    def compute(self, term: Term, i: int) -> frozenset[int]:
        """``ends`` without the cache, by the definition of each kind of term."""
        if isinstance(term, Chars):
            ok = i < len(self.text) and ord(self.text[i]) in term.charset
            return frozenset((i + 1,)) if ok else frozenset()
        if isinstance(term, Seq):
            positions = frozenset((i,))
            for item in term.items:
                positions = self.step(item, positions)
            return positions
        if isinstance(term, Alt):
            return frozenset().union(*(self.ends(item, i) for item in term.items))
        if isinstance(term, Repeat):
            return self.repeat(term, i)
        if isinstance(term, Look):
            if term.ahead:
                holds = bool(self.ends(term.body, i))
            else:
                holds = any(i in self.ends(term.body, k) for k in range(i + 1))
            return frozenset((i,)) if holds != term.negate else frozenset()
        raise TypeError(f"not a regular term: {term!r}")

    def step(self, term: Term, positions: frozenset[int]) -> frozenset[int]:
        """End positions of ``term`` started from any of ``positions``."""
        return frozenset().union(*(self.ends(term, p) for p in positions))

    def repeat(self, term: Repeat, i: int) -> frozenset[int]:
        """``Repeat`` without unrolling its bounds.

        The positions after exactly ``k`` iterations form a sequence of sets that is a function
        of the previous set, so it becomes periodic: once a set repeats, skip ahead to ``min``.
        Beyond ``min``, the extra iterations are a reachability search that stops when no new
        position appears (or after ``max - min`` rounds).
        """
        current = frozenset((i,))
        seen = {current: 0}
        k = 0
        while k < term.min:
            current = self.step(term.item, current)
            k += 1
            if not current:
                return current
            if current in seen:
                for _ in range((term.min - k) % (k - seen[current])):
                    current = self.step(term.item, current)
                break
            seen[current] = k
        reached = set(current)
        frontier = current
        rounds = 0
        while frontier and (term.max is None or rounds < term.max - term.min):
            frontier = self.step(term.item, frontier) - reached
            reached |= frontier
            rounds += 1
        return frozenset(reached)


def grammar_accepts(grammar: Grammar, text: str) -> bool:
    """Whether ``text`` is in the language of ``grammar`` (see :mod:`structgen.grammar.cfg`).

    An Earley recognizer over character positions: a terminal spans ``text[i:j]`` when its term
    matches that slice, its edge lookarounds reading the text around it (see :func:`_spans`),
    and before each terminal and at the end any run of ignored terminals may be skipped. Items
    are ``(rule, alternative, dot, origin)``; each chart column is
    closed under prediction and completion by a worklist, which also completes rules that derive
    the empty string (a rule completed at the current column is remembered, and items predicted
    afterwards that expect it advance at once).
    """
    spans = {name: _spans(term, text) for name, term in grammar.terminals.items()}
    gaps = _gaps(grammar, spans, len(text))
    chart: list[set[tuple[str, int, int, int]]] = [set() for _ in range(len(text) + 1)]
    chart[0] = {(grammar.start, k, 0, 0) for k in range(len(grammar.rules[grammar.start]))}
    for i in range(len(text) + 1):
        _close(grammar, chart, i)
        for name, k, dot, origin in chart[i]:
            alternative = grammar.rules[name][k]
            if dot < len(alternative) and isinstance(alternative[dot], Terminal):
                for start in gaps[i]:
                    for end in spans[alternative[dot].name][start]:
                        chart[end].add((name, k, dot + 1, origin))
    return any(
        name == grammar.start
        and origin == 0
        and dot == len(grammar.rules[name][k])
        and len(text) in gaps[i]
        for i in range(len(text) + 1)
        for name, k, dot, origin in chart[i]
    )


def _spans(term: Term, text: str) -> list[set[int]]:
    """``ends[i]``: the ``j > i`` where a lexeme of ``term`` starting at ``i`` may end.

    Its lookbehinds read the text before it and its lookaheads the text after it, so one
    matcher over the whole text gives every end at once. Where its lookaheads sit inside it
    (not at its end), a lexeme must also match with the text ending where it ends, as lark
    matches a lexeme shorter than the first match by itself.
    """
    n = len(text)
    matcher = _Matcher(text)
    ends = [{j for j in matcher.ends(term, i) if j > i} for i in range(n + 1)]
    if reads_ahead(term) and not looks_outside(term)[1]:
        up_to = [_Matcher(text[:j]) for j in range(n + 1)]
        ends = [{j for j in found if j in up_to[j].ends(term, i)}
                for i, found in enumerate(ends)]
    return ends


def _gaps(grammar: Grammar, spans: dict[str, list[set[int]]], n: int) -> list[set[int]]:
    """``gaps[i]``: the positions reachable from ``i`` over zero or more ignored terminals,
    each taken by its longest match."""
    gaps = [{i} for i in range(n + 1)]
    for i in reversed(range(n + 1)):
        for name in grammar.ignore:
            if spans[name][i]:
                gaps[i] |= gaps[max(spans[name][i])]
    return gaps


def _close(grammar: Grammar, chart: list[set[tuple[str, int, int, int]]], i: int) -> None:
    """Close ``chart[i]`` under Earley prediction and completion."""
    items = chart[i]
    completed_here: set[str] = set()
    agenda = list(items)

    def add(item: tuple[str, int, int, int]) -> None:
        if item not in items:
            items.add(item)
            agenda.append(item)

    while agenda:
        name, k, dot, origin = agenda.pop()
        alternative = grammar.rules[name][k]
        if dot == len(alternative):
            if origin == i:
                completed_here.add(name)
            for parent, pk, pdot, porigin in list(chart[origin]):
                expected = grammar.rules[parent][pk]
                if pdot < len(expected) and expected[pdot] == Nonterminal(name):
                    add((parent, pk, pdot + 1, porigin))
        elif isinstance(alternative[dot], Nonterminal):
            callee = alternative[dot].name
            for ck in range(len(grammar.rules[callee])):
                add((callee, ck, 0, i))
            if callee in completed_here:
                add((name, k, dot + 1, origin))
