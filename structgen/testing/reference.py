"""Brute-force reference semantics of the regular IR, for tests.

``fullmatch(term, text)`` decides membership directly from the definitions in
``structgen.grammar.regular``, without automata: it is the oracle that compiled automata and the
source front ends are checked against. Simple rather than fast: meant for strings of a few dozen
characters.
"""

from __future__ import annotations

from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term

__all__ = ["fullmatch"]


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
