"""Brzozowski derivatives of regular terms, with exact lookarounds, over Unicode code points.

This is the engine behind every byte DFA. A *state* is a term describing the whole remaining
input (a "full remainder"), not just the rest of the pattern; that is what makes lookaheads
exact anywhere: a lookahead ``(?=B)`` reached with continuation ``K`` becomes ``K ∩ BΣ*``, and a
negative one ``K ∖ BΣ*``. Lookbehinds are decided by *trackers*: for each lookbehind body ``B``
the state carries the derivative of ``Σ*B`` by the input so far, whose nullability says whether
the text read so far ends with a match of ``B``.

Terms are hash-consed into small integers, so states compare and hash in O(1) and derivatives
are memoised. Concatenation is right-nested: ``Cat(head, tail)`` where ``head`` is an IR node
(a character set, alternation, repetition or lookaround) and ``tail`` is again a term. Bounded
repetitions keep their counts in the term (``Rep(body, min-1, max-1)`` after one iteration), so
``x{0,100000}`` is never unrolled: its DFA is built lazily, one counter value at a time.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from structgen.errors import UnsupportedRegex
from structgen.grammar.charset import ANY_CHAR, CharSet
from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term, subterms

# Term kinds (first element of a term key).
_EMPTY, _EPS, _CAT, _OR, _AND, _NOT, _END = range(7)
EMPTY = 0
EPS = 1
# The end of a grammar terminal's lexeme, after which the text goes on: a lookahead reaching
# it keeps reading that text (see ``TermAlgebra.end_obligation``). The lexeme cannot continue
# past it (its derivatives are empty), and the text may end there.
END = 2

# Head kinds.
_H_CHARS, _H_ALT, _H_REP, _H_LOOK = range(4)

# A repeated body that can match the empty string only under a lookaround is unrolled through its
# minimum count; bound that so hostile patterns fail clearly instead of recursing deeply.
_MAX_CONDITIONAL_UNROLL = 256


@dataclass
class TermAlgebra:
    """Interns terms and computes their derivatives; one instance per compiled regular language.

    The instance is append-only: term ids stay valid for its lifetime, so lazily built automata
    can refer to states by id.
    """

    heads: list[tuple] = field(default_factory=list)
    _head_ids: dict[tuple, int] = field(default_factory=dict)
    terms: list[tuple] = field(default_factory=lambda: [(_EMPTY,), (_EPS,), (_END,)])
    _term_ids: dict[tuple, int] = field(
        default_factory=lambda: {(_EMPTY,): EMPTY, (_EPS,): EPS, (_END,): END})
    lookbehinds: list[int] = field(default_factory=list)  # head ids of lookbehind heads
    _ir_heads: dict[Term, int] = field(default_factory=dict)
    _derivative_memo: dict[tuple, int] = field(default_factory=dict)
    _nullable_memo: dict[tuple, bool] = field(default_factory=dict)
    _first_memo: dict[tuple, tuple] = field(default_factory=dict)
    _ir_terms: dict[int, int] = field(default_factory=dict)  # head id -> term of head alone
    _clamp_memo: dict[int, dict[int, int]] = field(default_factory=dict)
    _head_look_memo: dict[int, bool] = field(default_factory=dict)
    _search_memo: dict[int, bool] = field(default_factory=dict)
    _concat_memo: dict[tuple, int] = field(default_factory=dict)
    _unroll_memo: dict[tuple, int] = field(default_factory=dict)
    _alternatives_memo: dict[int, list] = field(default_factory=dict)
    _shortest_memo: dict[int, float] = field(default_factory=dict)
    _relaxed_memo: dict[int, float] = field(default_factory=dict)
    _obligation_memo: dict[tuple, int] = field(default_factory=dict)
    _has_end_memo: dict[int, bool] = field(default_factory=dict)
    _after_end_memo: dict[int, int] = field(default_factory=dict)
    _sigma_star: int = -1
    _cuts: int = 0  # re-entries cut by ``_derive`` and ``_firsts`` so far (see there)

    # ---------------------------------------------------------------- construction from the IR
    def from_ir(self, term: Term, lexeme: bool = False) -> int:
        """The full-remainder term for ``term`` followed by the end of the input, or with
        ``lexeme`` by the end of a lexeme (``END``) after which the text goes on."""
        return self.concat_ir(term, END if lexeme else EPS)

    def concat_ir(self, node: Term, tail: int) -> int:
        """The term for ``node`` followed by the term ``tail`` (flattening sequences)."""
        if tail == EMPTY:
            return EMPTY
        if isinstance(node, Seq):
            # Memoized: the alternatives of a head are concatenated with the same tail at
            # every derivative that reaches them (a keyword list, at each character).
            memo_key = (node, tail)
            cached = self._concat_memo.get(memo_key)
            if cached is None:
                cached = tail
                for item in reversed(node.items):
                    cached = self.concat_ir(item, cached)
                    if cached == EMPTY:
                        break
                self._concat_memo[memo_key] = cached
            return cached
        if isinstance(node, Alt) and len(node.items) == 1:
            return self.concat_ir(node.items[0], tail)
        if isinstance(node, Repeat):
            if node.max == 0:
                return tail
            if node.min == 1 and node.max == 1:
                return self.concat_ir(node.item, tail)
        head = self._head(node)
        if head is None:
            return EMPTY
        return self.cat(head, tail)

    def chars_head(self, chars: CharSet) -> int:
        """The head of one character of ``chars`` (not empty)."""
        return self._head(Chars(chars))

    def lookbehind_head(self, body: Term, negate: bool = False) -> int:
        """The head of the lookbehind ``(?<=body)`` (``(?<!body)``), registering its tracker."""
        return self._head(Look(body, ahead=False, negate=negate))

    def _head(self, node: Term) -> int | None:
        """Intern an IR node as a head; None when it denotes the empty language."""
        if node in self._ir_heads:
            return self._ir_heads[node]
        key: tuple
        if isinstance(node, Chars):
            if not node.charset:
                return None
            key = (_H_CHARS, node.charset)
        elif isinstance(node, Alt):
            items = tuple(dict.fromkeys(node.items))
            if not items:
                return None
            key = (_H_ALT, items)
        elif isinstance(node, Repeat):
            lo, hi = node.min, node.max
            if self.empty_kind(node.item) == "always":
                lo = 0  # iterations that match nothing can fill any minimum count
            key = (_H_REP, node.item, lo, hi)
        elif isinstance(node, Look):
            key = (_H_LOOK, node.body, node.ahead, node.negate)
        else:
            raise TypeError(f"not a regular term: {node!r}")
        head_id = self._head_ids.get(key)
        if head_id is None:
            head_id = len(self.heads)
            self.heads.append(key)
            self._head_ids[key] = head_id
            if isinstance(node, Look) and not node.ahead:
                _refuse_nested_lookaround(node.body)
                self.lookbehinds.append(head_id)
        self._ir_heads[node] = head_id
        return head_id

    def empty_kind(self, node: Term) -> str:
        """Whether ``node`` matches the empty string: "never", "always", or "conditional"."""
        if isinstance(node, Chars):
            return "never"
        if isinstance(node, Look):
            return "conditional"
        if isinstance(node, Seq):
            kinds = [self.empty_kind(x) for x in node.items]
            if "never" in kinds:
                return "never"
            return "conditional" if "conditional" in kinds else "always"
        if isinstance(node, Alt):
            kinds = {self.empty_kind(x) for x in node.items}
            if "always" in kinds:
                return "always"
            return "conditional" if "conditional" in kinds else "never"
        if isinstance(node, Repeat):
            return "always" if node.min == 0 else self.empty_kind(node.item)
        raise TypeError(f"not a regular term: {node!r}")

    # ---------------------------------------------------------------- smart constructors
    def _intern(self, key: tuple) -> int:
        term_id = self._term_ids.get(key)
        if term_id is None:
            term_id = len(self.terms)
            self.terms.append(key)
            self._term_ids[key] = term_id
        return term_id

    def cat(self, head: int, tail: int) -> int:
        if tail == EMPTY:
            return EMPTY
        return self._intern((_CAT, head, tail))

    def union(self, items) -> int:
        flat: set[int] = set()
        for t in items:
            key = self.terms[t]
            if key[0] == _EMPTY:
                continue
            if key[0] == _OR:
                flat.update(key[1])
            else:
                flat.add(t)
        if not flat:
            return EMPTY
        if len(flat) == 1:
            return next(iter(flat))
        return self._intern((_OR, frozenset(flat)))

    def intersection(self, items) -> int:
        flat: set[int] = set()
        for t in items:
            key = self.terms[t]
            if key[0] == _EMPTY:
                return EMPTY
            if key[0] == _AND:
                flat.update(key[1])
            elif t != self.sigma_star():
                flat.add(t)
        if not flat:
            return self.sigma_star()
        if len(flat) == 1:
            return next(iter(flat))
        if EPS in flat:
            # Only the empty remainder can satisfy ε; decide the others on it now.
            return EPS if all(self.nullable(t, frozenset()) for t in flat) else EMPTY
        return self._intern((_AND, frozenset(flat)))

    def complement(self, t: int) -> int:
        key = self.terms[t]
        if key[0] == _NOT:
            return key[1]
        if t == EMPTY:
            return self.sigma_star()
        if t == self.sigma_star():
            return EMPTY
        return self._intern((_NOT, t))

    def sigma_star(self) -> int:
        if self._sigma_star < 0:
            self._sigma_star = self.concat_ir(Repeat(Chars(ANY_CHAR), 0, None), EPS)
        return self._sigma_star

    # ---------------------------------------------------------------- lookaheads as intersections
    def _lookahead(self, head: int, tail: int) -> int:
        _, body, _, negate = self.heads[head]
        prefix = self.concat_ir(body, self.sigma_star())
        return self.intersection([tail, self.complement(prefix) if negate else prefix])

    def _lookbehind_holds(self, head: int, behind: frozenset) -> bool:
        negate = self.heads[head][3]
        return (head in behind) != negate

    # ---------------------------------------------------------------- nullability
    def nullable(self, t: int, behind: frozenset) -> bool:
        """Whether ``t`` accepts the empty remainder, given the lookbehinds that hold here."""
        memo_key = (t, behind)
        cached = self._nullable_memo.get(memo_key)
        if cached is not None:
            return cached
        key = self.terms[t]
        kind = key[0]
        if kind == _EMPTY:
            result = False
        elif kind in (_EPS, _END):
            result = True
        elif kind == _OR:
            result = any(self.nullable(x, behind) for x in key[1])
        elif kind == _AND:
            result = all(self.nullable(x, behind) for x in key[1])
        elif kind == _NOT:
            result = not self.nullable(key[1], behind)
        else:
            result = self._nullable_cat(key[1], key[2], behind)
        self._nullable_memo[memo_key] = result
        return result

    def _nullable_cat(self, head: int, tail: int, behind: frozenset) -> bool:
        h = self.heads[head]
        kind = h[0]
        if kind == _H_CHARS:
            return False
        if kind == _H_ALT:
            return any(self.nullable(self.concat_ir(x, tail), behind)
                       for x, first in self._alternatives(head) if first is None)
        if kind == _H_REP:
            _, body, lo, hi = h
            if lo == 0:
                return self.nullable(tail, behind)
            if self.empty_kind(body) == "never":
                return False
            return self.nullable(self._unroll_once(body, lo, hi, tail), behind)
        if h[2]:  # a lookahead
            return self.nullable(self._lookahead(head, tail), behind)
        return self._lookbehind_holds(head, behind) and self.nullable(tail, behind)

    # ---------------------------------------------------------------- the ends of lexemes
    def has_end(self, t: int) -> bool:
        """Whether ``t`` is (part of) a lexeme's remainder, which reaches ``END``; the other
        terms are the remainders of lookaheads, which end in ``Σ*``."""
        cached = self._has_end_memo.get(t)
        if cached is None:
            key = self.terms[t]
            kind = key[0]
            if kind == _CAT:
                cached = self.has_end(key[2])
            elif kind in (_OR, _AND, _NOT):
                cached = any(self.has_end(x) for x in (key[1] if kind != _NOT else (key[1],)))
            else:
                cached = kind == _END
            self._has_end_memo[t] = cached
        return cached

    def end_obligation(self, t: int, behind: frozenset) -> int:
        """What the text after a lexeme must match for the lexeme to end here: the term of
        the lookaheads ``t``'s lexeme part has reached, which read on past its end (``Σ*``: no
        condition; ``EMPTY``: the lexeme cannot end here). Mirrors :meth:`nullable`, with
        ``END`` read as "any text follows" and the lookahead parts kept as they are."""
        memo_key = (t, behind)
        cached = self._obligation_memo.get(memo_key)
        if cached is not None:
            return cached
        key = self.terms[t]
        kind = key[0]
        if kind == _END:
            result = self.sigma_star()
        elif not self.has_end(t):
            result = t  # a lookahead's remainder: it reads the text after the lexeme
        elif kind == _OR:
            result = self.union(self.end_obligation(x, behind) for x in key[1])
        elif kind == _AND:
            result = self.intersection([self.end_obligation(x, behind) for x in key[1]])
        else:
            result = self._cat_obligation(key[1], key[2], behind)
        self._obligation_memo[memo_key] = result
        return result

    def any_text_after_end(self, t: int) -> int:
        """``t`` with the end of its lexeme read as "any text follows" (``END`` as ``Σ*``): the
        texts that begin with a completion of the lexeme (the empty one included) whose
        lookaheads hold on the rest."""
        cached = self._after_end_memo.get(t)
        if cached is None:
            key = self.terms[t]
            kind = key[0]
            if kind == _END:
                cached = self.sigma_star()
            elif not self.has_end(t):
                cached = t
            elif kind == _CAT:
                cached = self.cat(key[1], self.any_text_after_end(key[2]))
            elif kind == _OR:
                cached = self.union(self.any_text_after_end(x) for x in key[1])
            else:  # an intersection (lexeme parts never sit under a complement)
                cached = self.intersection([self.any_text_after_end(x) for x in key[1]])
            self._after_end_memo[t] = cached
        return cached

    def _cat_obligation(self, head: int, tail: int, behind: frozenset) -> int:
        h = self.heads[head]
        kind = h[0]
        if kind == _H_CHARS:
            return EMPTY
        if kind == _H_ALT:
            return self.union(self.end_obligation(self.concat_ir(x, tail), behind)
                              for x, first in self._alternatives(head) if first is None)
        if kind == _H_REP:
            _, body, lo, hi = h
            if lo == 0:
                return self.end_obligation(tail, behind)
            if self.empty_kind(body) == "never":
                return EMPTY
            return self.end_obligation(self._unroll_once(body, lo, hi, tail), behind)
        if h[2]:  # a lookahead
            return self.end_obligation(self._lookahead(head, tail), behind)
        return self.end_obligation(tail, behind) if self._lookbehind_holds(head, behind) else EMPTY

    def _alternatives(self, head: int) -> list[tuple[Term, CharSet | None]]:
        """The items of an alternation head, each with the characters it must start with (None
        when it may match the empty string or starts with something else): a derivative skips
        the items its character cannot start, such as all but a few of a keyword list."""
        found = self._alternatives_memo.get(head)
        if found is None:
            found = self._alternatives_memo[head] = [(x, _leading_chars(x))
                                                     for x in self.heads[head][1]]
        return found

    def _unroll_once(self, body: Term, lo: int, hi: int | None, tail: int) -> int:
        """``body`` followed by ``body{lo-1,hi-1}`` and ``tail``."""
        if lo > _MAX_CONDITIONAL_UNROLL and self.empty_kind(body) == "conditional":
            raise UnsupportedRegex(
                f"a repetition with minimum {lo} of a group that may match only a lookaround"
            )
        memo_key = (body, lo, hi, tail)
        cached = self._unroll_memo.get(memo_key)
        if cached is None:
            rest = Repeat(body, max(lo - 1, 0), None if hi is None else hi - 1)
            cached = self._unroll_memo[memo_key] = self.concat_ir(body,
                                                                  self.concat_ir(rest, tail))
        return cached

    # ---------------------------------------------------------------- first characters
    def first_sets(self, t: int, behind: frozenset) -> tuple[CharSet, ...]:
        """Character sets whose refinement partitions the alphabet into derivative classes.

        Memoized per subterm: the states of one automaton share most of their subterms (a
        complement or a counter that the other parts of an intersection leave as it is), and
        a liveness search asks this of thousands of them. From the top, a cut below only
        drops sets the path already has, so the result is kept whatever was cut."""
        result = self._firsts(t, behind, set())
        self._first_memo[(t, behind)] = result
        return result

    def _firsts(self, t: int, behind: frozenset, active: set) -> tuple[CharSet, ...]:
        """:meth:`first_sets`, ``active`` holding the terms on the path here: a term met again
        below itself (a nullable repetition's body) adds nothing new, so the path is cut
        there, and only results without a cut below are memoized (as in :meth:`_derive`)."""
        memo_key = (t, behind)
        cached = self._first_memo.get(memo_key)
        if cached is not None:
            return cached
        if t in active:
            self._cuts += 1
            return ()
        cuts = self._cuts
        active.add(t)
        try:
            found = self._first_parts(t, behind, active)
        finally:
            active.discard(t)
        result = found[0] if len(found) == 1 else tuple(dict.fromkeys(
            charset for part in found for charset in part))
        if self._cuts == cuts:
            self._first_memo[memo_key] = result
        return result

    def _first_parts(self, t: int, behind: frozenset, active: set) -> list[tuple]:
        """The first sets of ``t``'s parts (see :meth:`_firsts`)."""
        key = self.terms[t]
        kind = key[0]
        if kind in (_OR, _AND):
            return [self._firsts(x, behind, active) for x in key[1]]
        if kind == _NOT:
            return [self._firsts(key[1], behind, active)]
        if kind != _CAT:
            return [()]
        head, tail = key[1], key[2]
        h = self.heads[head]
        if h[0] == _H_CHARS:
            return [(h[1],)]
        if h[0] == _H_ALT:
            return [self._firsts(self.concat_ir(x, tail), behind, active) for x in h[1]]
        if h[0] == _H_REP:
            _, body, lo, hi = h
            parts = [self._firsts(self._unroll_once(body, lo, hi, tail), behind, active)]
            if lo == 0:
                parts.append(self._firsts(tail, behind, active))
            return parts
        if h[2]:
            return [self._firsts(self._lookahead(head, tail), behind, active)]
        if self._lookbehind_holds(head, behind):
            return [self._firsts(tail, behind, active)]
        return [()]

    # ---------------------------------------------------------------- derivatives
    def derivative(self, t: int, cp: int, behind: frozenset) -> int:
        """The term for the remainders ``r`` such that ``chr(cp) + r`` is in ``t``. Memoized
        even when ``_derive`` cut a cycle below: from the top, a cut only drops remainders the
        path already has."""
        result = self._derive(t, cp, behind, set())
        self._derivative_memo[(t, cp, behind)] = result
        return result

    def _derive(self, t: int, cp: int, behind: frozenset, active: set) -> int:
        """The derivative of ``t``, ``active`` holding the terms being derived on the path
        here. Memoized whenever no cut happened below (then the result does not depend on the
        path): terms share subterms, such as a keyword list's complement under every branch of
        an identifier, and each would otherwise be derived once per path."""
        memo_key = (t, cp, behind)
        cached = self._derivative_memo.get(memo_key)
        if cached is not None:
            return cached
        if t in active:
            # Re-entered through iterations that matched nothing: such a path only repeats
            # remainders already on the outer path, so it adds nothing (least fixed point).
            self._cuts += 1
            return EMPTY
        key = self.terms[t]
        kind = key[0]
        if kind <= _EPS or kind == _END:
            return EMPTY
        cuts = self._cuts
        active.add(t)
        try:
            if kind == _OR:
                result = self.union(self._derive(x, cp, behind, active) for x in key[1])
            elif kind == _AND:
                result = self.intersection([self._derive(x, cp, behind, active)
                                            for x in key[1]])
            elif kind == _NOT:
                result = self.complement(self._derive(key[1], cp, behind, active))
            else:
                result = self._derive_cat(key[1], key[2], cp, behind, active)
        finally:
            active.discard(t)
        if self._cuts == cuts:
            self._derivative_memo[memo_key] = result
        return result

    def _derive_cat(self, head: int, tail: int, cp: int, behind: frozenset, active: set) -> int:
        h = self.heads[head]
        kind = h[0]
        if kind == _H_CHARS:
            return tail if cp in h[1] else EMPTY
        if kind == _H_ALT:
            return self.union(
                self._derive(self.concat_ir(x, tail), cp, behind, active)
                for x, first in self._alternatives(head) if first is None or cp in first
            )
        if kind == _H_REP:
            _, body, lo, hi = h
            parts = [self._derive(self._unroll_once(body, lo, hi, tail), cp, behind, active)]
            if lo == 0:
                parts.append(self._derive(tail, cp, behind, active))
            return self.union(parts)
        if h[2]:
            return self._derive(self._lookahead(head, tail), cp, behind, active)
        if self._lookbehind_holds(head, behind):
            return self._derive(tail, cp, behind, active)
        return EMPTY

    def clamp_counters(self, t: int, limit: int) -> int:
        """``t`` with every repetition count above ``limit`` lowered to ``limit``.

        The result has the same prefixes of up to ``limit - 1`` characters as ``t``: within that
        many characters no clamped repetition can be left or exhausted earlier than before. Token
        masks only look that far ahead, so states differing only in large counters share a mask.
        """
        memo = self._clamp_memo.setdefault(limit, {})
        cached = memo.get(t)
        if cached is not None:
            return cached
        key = self.terms[t]
        kind = key[0]
        if kind in (_OR, _AND):
            parts = [self.clamp_counters(x, limit) for x in key[1]]
            result = self.union(parts) if kind == _OR else self.intersection(parts)
        elif kind == _NOT:
            result = self.complement(self.clamp_counters(key[1], limit))
        elif kind == _CAT:
            head, tail = key[1], key[2]
            h = self.heads[head]
            if h[0] == _H_REP and self.empty_kind(h[1]) != "conditional" and (
                h[2] > limit or (h[3] is not None and h[3] > limit)
            ):
                lo, hi = min(h[2], limit), None if h[3] is None else min(h[3], limit)
                head = self._head(Repeat(h[1], lo, hi))
            result = self.cat(head, self.clamp_counters(tail, limit))
        else:
            result = t
        memo[t] = result
        return result

    # ---------------------------------------------------------------- shortest matches
    def shortest_bytes(self, t: int) -> float | None:
        """The fewest UTF-8 bytes in a string ``t`` matches (``inf``: none); None when ``t`` has
        intersections, complements or lookarounds, where only a search can tell."""
        if self.needs_liveness_search(t):
            return None
        chain = []  # a right-nested concatenation, walked without recursion
        while t not in self._shortest_memo:
            key = self.terms[t]
            if key[0] != _CAT:
                self._shortest_memo[t] = self._shortest_plain(key)
                break
            chain.append((t, key[1]))
            t = key[2]
        total = self._shortest_memo[t]
        for term, head in reversed(chain):
            total = total + self._shortest_head(head)
            self._shortest_memo[term] = total
        return total

    def _shortest_plain(self, key: tuple) -> float:
        if key[0] == _EMPTY:
            return math.inf
        if key[0] in (_EPS, _END):
            return 0.0
        return min(self.shortest_bytes(x) for x in key[1])  # an alternation

    def _shortest_head(self, head: int) -> float:
        h = self.heads[head]
        if h[0] == _H_LOOK:
            return 0.0
        if h[0] == _H_CHARS:
            return _shortest_ir(Chars(h[1]))
        if h[0] == _H_ALT:
            return min(_shortest_ir(x) for x in h[1])
        return 0.0 if h[2] == 0 else h[2] * _shortest_ir(h[1])  # a repetition

    def relaxed_shortest(self, t: int) -> float:
        """A lower bound on the fewest UTF-8 bytes in a string ``t`` matches: the shortest
        match with lookarounds and complements read as true and intersections as their longest
        part. Guides the liveness search towards a witness (see ``LazyByteDFA.is_live``)."""
        chain = []
        while t not in self._relaxed_memo:
            key = self.terms[t]
            if key[0] != _CAT:
                if key[0] == _EMPTY:
                    found = math.inf
                elif key[0] in (_EPS, _END, _NOT):
                    found = 0.0
                elif key[0] == _OR:
                    found = min(self.relaxed_shortest(x) for x in key[1])
                else:  # an intersection
                    found = max(self.relaxed_shortest(x) for x in key[1])
                self._relaxed_memo[t] = found
                break
            chain.append((t, key[1]))
            t = key[2]
        total = self._relaxed_memo[t]
        for term, head in reversed(chain):
            total = total + self._shortest_head(head)
            self._relaxed_memo[term] = total
        return total

    def needs_liveness_search(self, t: int) -> bool:
        """True when ``t`` has intersections, complements or lookarounds: then a term that is
        not ``EMPTY`` may still match nothing, and only a search can tell.

        Memoized per term and computed from the children's answers, so a new derivative costs
        only its new nodes (derivatives share nearly all of their structure).
        """
        memo = self._search_memo
        cached = memo.get(t)
        if cached is not None:
            return cached
        stack = [t]
        while stack:
            x = stack[-1]
            if x in memo:
                stack.pop()
                continue
            key = self.terms[x]
            kind = key[0]
            if kind in (_AND, _NOT):
                found: bool | None = True
            elif kind == _OR:
                pending = [c for c in key[1] if c not in memo]
                found = any(memo[c] for c in key[1]) if not pending else None
            elif kind == _CAT:
                if self._head_has_look(key[1]):
                    found = True
                else:
                    pending = [] if key[2] in memo else [key[2]]
                    found = memo[key[2]] if not pending else None
            else:
                found = False
            if found is None:
                stack.extend(pending)
            else:
                memo[x] = found
                stack.pop()
        return memo[t]

    def _head_has_look(self, head: int) -> bool:
        cached = self._head_look_memo.get(head)
        if cached is None:
            h = self.heads[head]
            roots = list(h[1]) if h[0] == _H_ALT else [h[1]] if h[0] == _H_REP else []
            cached = h[0] == _H_LOOK or any(
                isinstance(x, Look) for root in roots for x in subterms(root))
            self._head_look_memo[head] = cached
        return cached


def _leading_chars(node: Term) -> CharSet | None:
    """The characters every match of ``node`` starts with, when its first element is a
    character class; else None."""
    while isinstance(node, Seq) and node.items:
        node = node.items[0]
    return node.charset if isinstance(node, Chars) else None


@lru_cache(maxsize=65536)
def _shortest_ir(node: Term) -> float:
    """The fewest UTF-8 bytes of a string an IR node matches, lookarounds read as true (zero
    width, no condition): exact for nodes without them, a lower bound otherwise."""
    if isinstance(node, Look):
        return 0.0
    if isinstance(node, Chars):
        if not node.charset:
            return math.inf
        first = node.charset.ranges[0][0]
        return 1.0 if first < 0x80 else 2.0 if first < 0x800 else 3.0 if first < 0x10000 else 4.0
    if isinstance(node, Seq):
        return sum(_shortest_ir(x) for x in node.items)
    if isinstance(node, Alt):
        return min((_shortest_ir(x) for x in node.items), default=math.inf)
    if isinstance(node, Repeat):
        return 0.0 if node.min == 0 else node.min * _shortest_ir(node.item)
    raise TypeError(f"no shortest match computed for {node!r}")


def _refuse_nested_lookaround(node: Term) -> None:
    """Lookbehind bodies are tracked forward; a lookaround inside one has no fixed meaning here."""
    if any(isinstance(x, Look) for x in subterms(node)):
        raise UnsupportedRegex("a lookaround or anchor inside a lookbehind")


sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
