"""A lazily built byte-level DFA for a regular term.

States come in two kinds: *character states*, at a code point boundary, which are derivative
terms (plus lookbehind trackers), and *mid-character states*, inside a multi-byte UTF-8
encoding, which remember the byte ranges still expected and the character state they lead to.
Rows of the transition table are computed on first use, so a pattern with huge counters
(``x{0,100000}``) only ever materialises the states actually visited.

The table is a dense ``int32`` array (states × 256) so numba kernels can walk it; ``DEAD`` marks
bytes that leave the language (or lead only to states that can never accept); ``known`` flags
the rows computed so far (the others hold ``UNKNOWN``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from structgen.automata.derivatives import EMPTY, TermAlgebra
from structgen.automata.utf8 import utf8_sequences
from structgen.errors import LimitExceeded
from structgen.grammar.charset import ANY_CHAR, MAX_CODE_POINT, CharSet
from structgen.grammar.regular import (
    Chars,
    Look,
    Repeat,
    Seq,
    Term,
    single_character,
    subterms,
)

DEAD = -1
UNKNOWN = -2


@dataclass(frozen=True)
class Limits:
    """User-set bounds on one compiled constraint; exceeding one raises ``LimitExceeded``.

    ``max_states``: byte DFA states materialised (and, for a grammar, Earley sets built) by one
    automaton within one budget (see :func:`start_budget`: a compile, or one sequence);
    ``max_compile_seconds``: time one automaton spends building rows within one budget;
    ``max_mask_cache_bytes``: memory held by cached token masks.
    """

    max_states: int = 200_000
    max_compile_seconds: float = 30.0
    max_mask_cache_bytes: int = 512 * 2**20


_budget = 0  # the number of the current budget, see ``start_budget``


def start_budget() -> None:
    """Start a new budget for the work that ``Limits`` bounds: a compile, or a fresh matcher
    (one sequence's work). A compiled constraint is shared by every sequence that uses it and
    keeps the states it built lazily, so a bound over its whole life would sooner or later
    refuse inputs that are easy by themselves (a server reusing one grammar); within one budget
    the bounds still stop a pathological constraint before it exhausts memory or time."""
    global _budget
    _budget += 1


class BudgetSpent:
    """What one automaton built within the current budget: states (or sets) and seconds."""

    __slots__ = ("budget", "first_state", "seconds")

    def __init__(self):
        self.budget = -1
        self.first_state = 0
        self.seconds = 0.0

    def current(self, states: int) -> BudgetSpent:
        """This, restarted if a new budget began; ``states``: how many the automaton holds."""
        if self.budget != _budget:
            self.budget, self.first_state, self.seconds = _budget, states, 0.0
        return self


def _minterms(sets) -> list[CharSet]:
    """The coarsest partition of the alphabet that refines every set in ``sets``.

    A sweep over all range boundaries: each elementary interval between consecutive boundaries
    gets the signature of the sets containing it, and intervals with equal signatures form one
    block. Linear in the total number of ranges: in plain Python for the few ranges of most
    rows (numpy's fixed costs made those ten times slower), with numpy for Unicode classes,
    which have hundreds.
    """
    sets = list(dict.fromkeys(sets))
    if not sets:
        return [ANY_CHAR]
    cached = _MINTERM_CACHE.get(tuple(sets))
    if cached is not None:
        return cached
    if sum(len(s.ranges) for s in sets) <= _FEW_RANGES:
        blocks = _interval_blocks(sets)
    else:
        blocks = _interval_blocks_numpy(sets)
    result = [c for c in (CharSet.of(r) for r in blocks) if c]
    if len(_MINTERM_CACHE) > 4096:
        _MINTERM_CACHE.clear()
    _MINTERM_CACHE[tuple(sets)] = result
    return result


_FEW_RANGES = 200


def _interval_blocks(sets: list[CharSet]) -> list[list[tuple[int, int]]]:
    """:func:`_minterms`' blocks as lists of ranges, in plain Python."""
    points = {0, MAX_CODE_POINT + 1}
    for s in sets:
        for lo, hi in s.ranges:
            points.add(lo)
            points.add(hi + 1)
    points = sorted(points)
    index = {p: k for k, p in enumerate(points)}
    signature = [0] * (len(points) - 1)
    for bit, s in enumerate(sets):
        flag = 1 << bit
        for lo, hi in s.ranges:
            for k in range(index[lo], index[hi + 1]):
                signature[k] |= flag
    blocks: dict[int, list[tuple[int, int]]] = {}
    for k, group in enumerate(signature):
        blocks.setdefault(group, []).append((points[k], points[k + 1] - 1))
    return list(blocks.values())


def _interval_blocks_numpy(sets: list[CharSet]) -> list[list[tuple[int, int]]]:
    """:func:`_minterms`' blocks as lists of ranges, with numpy."""
    bounds = [np.asarray(s.ranges, dtype=np.int64).reshape(-1, 2) for s in sets]
    points = np.unique(np.concatenate(
        [np.array([0, MAX_CODE_POINT + 1])] + [b[:, 0] for b in bounds] + [b[:, 1] + 1 for b in bounds]
    ))
    starts = points[:-1]
    member = np.zeros((len(starts), len(sets)), dtype=np.bool_)
    for column, b in enumerate(bounds):
        if len(b):
            index = np.searchsorted(b[:, 0], starts, side="right") - 1
            member[:, column] = (index >= 0) & (starts <= b[np.maximum(index, 0), 1])
    signatures = np.packbits(member, axis=1)
    _, group = np.unique(signatures, axis=0, return_inverse=True)
    ends = points[1:] - 1
    blocks: dict[int, list[tuple[int, int]]] = {}
    for g, lo, hi in zip(group.ravel().tolist(), starts.tolist(), ends.tolist()):
        blocks.setdefault(g, []).append((lo, hi))
    return list(blocks.values())


_MINTERM_CACHE: dict[tuple[CharSet, ...], list[CharSet]] = {}


def _lookbehind_nodes(term: Term) -> list[Look]:
    return [x for x in subterms(term) if isinstance(x, Look) and not x.ahead]


class LazyAutomaton:
    """A byte automaton whose states and rows are built on demand.

    Subclasses intern their states (``_new_state``) and fill rows in ``_build_row``; this class
    owns the dense table the numba kernels walk (``trans``, ``known``, ``accepting``), the
    resource limits, and the time spent building.
    """

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self._spent = BudgetSpent()
        self._payload: list = []
        self.trans = np.full((64, 256), UNKNOWN, dtype=np.int32)
        self.known = np.zeros(64, dtype=np.uint8)  # 1 once the state's row is built
        self.accepting = np.zeros(64, dtype=np.bool_)
        # Per accepting state, the number of its *end class* (see ``LazyByteDFA``); -1 elsewhere.
        self.end_class = np.full(64, -1, dtype=np.int32)

    @property
    def num_states(self) -> int:
        return len(self._payload)

    def _new_state(self, payload) -> int:
        state = len(self._payload)
        if state - self._spent.current(state).first_state >= self.limits.max_states:
            raise LimitExceeded(
                f"the automaton needs more than max_states={self.limits.max_states} states"
            )
        if state >= self.trans.shape[0]:
            grown = np.full((2 * self.trans.shape[0], 256), UNKNOWN, dtype=np.int32)
            grown[: self.trans.shape[0]] = self.trans
            self.trans = grown
            self.known = np.concatenate([self.known, np.zeros_like(self.known)])
            self.accepting = np.concatenate([self.accepting, np.zeros_like(self.accepting)])
            self.end_class = np.concatenate([self.end_class, np.full_like(self.end_class, -1)])
        self._payload.append(payload)
        return state

    def _build_row(self, state: int) -> np.ndarray:
        raise NotImplementedError

    def materialize(self, state: int) -> None:
        """Compute the transition row of ``state`` if it is not known yet."""
        if self.known[state]:
            return
        started = time.perf_counter()
        row = self._build_row(state)
        self.trans[state] = row
        self.known[state] = 1
        self._count_seconds(time.perf_counter() - started)

    def _count_seconds(self, spent: float) -> None:
        """Add ``spent`` to the time spent building, within ``max_compile_seconds``."""
        budget = self._spent.current(len(self._payload))
        budget.seconds += spent
        if budget.seconds > self.limits.max_compile_seconds:
            raise LimitExceeded(
                f"building the automaton took over max_compile_seconds="
                f"{self.limits.max_compile_seconds}"
            )

    def step(self, state: int, byte: int) -> int:
        """The state after ``byte``, materialising the row on demand; ``DEAD`` if rejected."""
        if not self.known[state]:
            self.materialize(state)
        return int(self.trans[state, byte])

    def walk(self, state: int, data: bytes) -> int:
        """The state after ``data`` from ``state`` (``DEAD`` stays dead)."""
        if state < 0:
            return DEAD
        for byte in data:
            state = self.step(state, byte)
            if state < 0:
                return DEAD
        return state

    def mask_representative(self, state: int, depth: int) -> int:
        """A state with the same byte strings of length ``<= depth`` ahead (default: itself)."""
        return state

    def language_is_empty(self) -> bool:
        raise NotImplementedError


LEXER_START = 0  # the start state of every LazyByteDFA, known before one is built


def intern(key, items: list, ids: dict) -> int:
    """The number of ``key`` in ``items`` (appended there, and to ``ids``, when new)."""
    found = ids.get(key)
    if found is None:
        found = ids[key] = len(items)
        items.append(key)
    return found


class LazyByteDFA(LazyAutomaton):
    """The byte DFA of one regular term, grown on demand; state 0 is the start.

    As a grammar's terminal (``lexeme``), the term is followed by the end of its lexeme
    (``END``) rather than of the text, so that its lookaheads read the text after the lexeme:
    a state where the lexeme may end then has a *guard*, the state of the lookaheads still
    reading on (``TermAlgebra.end_obligation``), itself a state of this DFA over the text
    that follows; its accepting states are those where the text may end. ``context`` are the
    one-character lookbehind bodies the grammar's terminals read before their start: this DFA
    tracks which of them hold at each lexeme end, for the lexemes after it
    (:meth:`start_after`). With ``alone`` a lexeme must also match by itself, its lookaheads
    reading the end of the text where it ends, as lark's complete lexing matches a lexeme
    shorter than the first match at its position: it may end only where its guard accepts
    the empty text (``(?!if\\b)[a-z]+`` does not end as ``if`` before ``x``).

    Each accepting state has an *end class*, ``end_classes[end_class[state]]``: the pair
    (guard state, or -1 when the lexeme ends unconditionally; the indices of the ``context``
    bodies that its last character matches).

    ``algebra`` may be shared by automata of related terms, which then share the memoized
    derivatives of their common parts.
    """

    def __init__(self, term: Term, limits: Limits | None = None, *, lexeme: bool = False,
                 longest: bool = False, alone: bool = False, context: tuple[Term, ...] = (),
                 algebra: TermAlgebra | None = None):
        super().__init__(limits)
        self.algebra = algebra if algebra is not None else TermAlgebra()
        self.lexeme = lexeme
        # A lexeme that must also match by itself ends only where its lookaheads would hold
        # if the text ended there (see ``_find_guard_key``).
        self._alone = alone
        # An ignored terminal's lexeme is its longest match, as lark's lexer takes it: it may
        # end only where the text after it does not make a longer one (see ``_guard_key``).
        self._longest = longest
        for look in _lookbehind_nodes(term):
            self.algebra.lookbehind_head(look.body, look.negate)
        self.context = context
        self._context_heads = tuple(self.algebra.lookbehind_head(body) for body in context)
        lookbehinds = self.algebra.lookbehinds
        trackers = tuple(
            self.algebra.concat_ir(
                Seq((Repeat(Chars(ANY_CHAR), 0, None), self.algebra.heads[h][1])), 1
            )
            for h in lookbehinds
        )
        self._char_states: dict[tuple[int, tuple[int, ...]], int] = {}
        self._mid_states: dict[frozenset, int] = {}
        self._live: dict[tuple[int, tuple[int, ...]], bool] = {}
        self.end_classes: list[tuple[int, frozenset[int]]] = []
        self._end_class_ids: dict[tuple[int, frozenset[int]], int] = {}
        self._starts: dict[frozenset[int], int] = {}
        self._guard_keys: dict[tuple, tuple | None] = {}
        self.start_key = (self.algebra.from_ir(term, lexeme), trackers)
        self.start = self._char_state(self.start_key)  # the first state: LEXER_START

    def _behind(self, trackers: tuple[int, ...]) -> frozenset:
        empty = frozenset()
        return frozenset(
            h
            for h, tracker in zip(self.algebra.lookbehinds, trackers)
            if self.algebra.nullable(tracker, empty)
        )

    def _char_state(self, key: tuple[int, tuple[int, ...]]) -> int:
        state = self._char_states.get(key)
        if state is None:
            state = self._new_state(("char", key))
            self._char_states[key] = state
            term, trackers = key
            behind = self._behind(trackers)
            if self.lexeme and self.algebra.has_end(term):
                guard = self._guard(key)
                if guard is not None:
                    self.accepting[state] = True
                    self.end_class[state] = self._end_class(guard, behind)
            elif self.algebra.nullable(term, behind):
                self.accepting[state] = True
                self.end_class[state] = self._end_class(-1, behind)
        return state

    def _guard(self, key) -> int | None:
        """The guard of a lexeme ending in the character state ``key``: -1 for none, a state
        of this DFA for lookaheads that read on, None when the lexeme cannot end there."""
        found = self._guard_key(key)
        if found is None:
            return None
        if found[0] == self.algebra.sigma_star():
            return -1
        return self._char_state(found)

    def _guard_key(self, key) -> tuple | None:
        """The character-state key of :meth:`_guard`'s state (``Σ*`` for none); None when it
        is dead. Memoized: the liveness search asks it of states that become states later."""
        if key not in self._guard_keys:
            self._guard_keys[key] = self._find_guard_key(key)
        return self._guard_keys[key]

    def _find_guard_key(self, key) -> tuple | None:
        term, trackers = key
        behind = self._behind(trackers)
        obligation = self.algebra.end_obligation(term, behind)
        if self._alone and not self.algebra.nullable(obligation, behind):
            return None
        if self._longest and obligation != EMPTY:
            obligation = self.algebra.intersection(
                [obligation, self.algebra.complement(self._longer_match(term, behind))])
        if obligation == EMPTY:
            return None
        # A guard that holds if the text ends here is live; others need the search.
        if not self.algebra.nullable(obligation, behind) and not self.is_live(
                (obligation, trackers)):
            return None
        return obligation, trackers

    def _longer_match(self, term: int, behind: frozenset) -> int:
        """The texts after which the lexeme in state ``term`` has a longer match: a first
        character it reads, then the rest of a (possibly empty) completion."""
        algebra = self.algebra
        parts = []
        for block in _minterms(algebra.first_sets(term, behind)):
            rest = algebra.derivative(term, block.ranges[0][0], behind)
            if rest != EMPTY:
                parts.append(algebra.cat(algebra.chars_head(block),
                                         algebra.any_text_after_end(rest)))
        return algebra.union(parts)

    def _end_class(self, guard: int, behind: frozenset) -> int:
        return intern((guard, self._held(behind)), self.end_classes, self._end_class_ids)

    def _held(self, behind: frozenset) -> frozenset[int]:
        """The numbers of the ``context`` bodies that hold where the lookbehinds ``behind``
        hold: those the last character matches."""
        return frozenset(i for i, head in enumerate(self._context_heads) if head in behind)

    def guard_discharged(self, state: int) -> bool:
        """Whether guard ``state`` holds whatever text follows (its lookaheads are done)."""
        kind, payload = self._payload[state]
        return kind == "char" and payload[0] == self.algebra.sigma_star()

    def guard_reads(self, state: int) -> np.ndarray:
        """The bytes that guard ``state`` reads, as 256 booleans: the first bytes of the
        characters it refuses or still reads on after (a byte that begins several characters
        when it does for one of them). Found from its term, without building its row."""
        kind, payload = self._payload[state]
        if kind != "char":  # inside a character (guards hold at character boundaries)
            return np.ones(256, dtype=np.bool_)
        term, trackers = payload
        algebra = self.algebra
        behind = self._behind(trackers)
        reads = np.zeros(256, dtype=np.bool_)
        for block in _minterms(algebra.first_sets(term, behind)):
            if algebra.derivative(term, block.ranges[0][0], behind) != algebra.sigma_star():
                for sequence in utf8_sequences(block):
                    reads[sequence[0][0]:sequence[0][1] + 1] = True
        return reads

    def start_after(self, held: frozenset[int]) -> int:
        """The start state of a lexeme after a character that matches the ``context`` bodies
        numbered ``held`` (and no other): its lookbehinds see that character. ``LEXER_START``
        for none, as at the start of the text."""
        state = self._starts.get(held)
        if state is None:
            term, trackers = self.start_key
            algebra = self.algebra
            shown = {self.context[i]: single_character(self.context[i]) for i in held}
            trackers = tuple(
                algebra.derivative(tracker, shown[body].ranges[0][0], frozenset())
                if (body := algebra.heads[h][1]) in shown else tracker
                for h, tracker in zip(algebra.lookbehinds, trackers)
            )
            state = self._starts[held] = self._char_state((term, trackers))
        return state

    def _start_key(self, held: frozenset[int]) -> tuple:
        """The character-state key of :meth:`start_after`'s state."""
        return self._payload[self.start_after(held)][1]

    def _mid_state(self, items: frozenset) -> int:
        state = self._mid_states.get(items)
        if state is None:
            state = self._new_state(("mid", items))
            self._mid_states[items] = state
        return state

    # ---------------------------------------------------------------- character level
    def char_transitions(self, key) -> list[tuple[CharSet, tuple]]:
        """``(charset, next key)`` pairs leaving a character state, dead targets removed."""
        by_target: dict[tuple, list[CharSet]] = {}
        for block, nxt_key in self._char_steps(key):
            by_target.setdefault(nxt_key, []).append(block)
        return [
            (CharSet.of([r for b in blocks for r in b.ranges]), k)
            for k, blocks in by_target.items()
            if self.is_live(k)
        ]

    def _char_steps(self, key) -> list[tuple[CharSet, tuple]]:
        """``(block, next key)`` for each block of characters that leaves the character state
        ``key`` alike; targets whose term is empty left out, others kept even if dead."""
        term, trackers = key
        algebra = self.algebra
        behind = self._behind(trackers)
        sets = list(algebra.first_sets(term, behind))
        empty = frozenset()
        for tracker in trackers:
            sets.extend(algebra.first_sets(tracker, empty))
        steps = []
        for block in _minterms(sets):
            cp = block.ranges[0][0]
            nxt = algebra.derivative(term, cp, behind)
            if nxt != EMPTY:
                steps.append((block, (nxt, tuple(algebra.derivative(t, cp, empty)
                                                 for t in trackers))))
        return steps

    def some_end(self, holds, max_states: int,
                 after: Iterable[frozenset[int]] = (frozenset(),)) -> bool:
        """Whether some lexeme of this terminal, started after a character matching the
        ``context`` bodies of one of the sets ``after`` (see :meth:`start_after`), ends where
        ``holds(guard, held)`` is true: ``guard`` the character-state key of the lookaheads
        still reading on there (None for none), ``held`` the numbers of the ``context`` bodies
        its last character matches. Searched character by character, without building byte
        rows (which would spell out the large character sets of lookarounds), stopping at the
        first such end; True where it cannot tell (more than ``max_states`` states)."""
        algebra = self.algebra
        todo = list({self._start_key(held) for held in after})
        seen = set(todo)
        while todo:
            key = todo.pop()
            if self._finishes(key):
                guard = self._guard_key(key) if self.lexeme and algebra.has_end(key[0]) else None
                if guard is not None and guard[0] == algebra.sigma_star():
                    guard = None
                if holds(guard, self._held(self._behind(key[1]))):
                    return True
            for _, nxt in self._char_steps(key):
                if nxt not in seen:
                    if len(seen) >= max_states:
                        return True
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    def guard_lets_through(self, guard: tuple, chars_after: frozenset[int], beyond_ascii: bool,
                           text_may_end: bool) -> bool:
        """Whether the lookaheads of ``guard`` (a key from :meth:`some_end`) may hold where the
        text goes on with one of the ASCII characters ``chars_after`` (with ``beyond_ascii``,
        with some other character too: then they are taken to), or, with ``text_may_end``,
        where it ends."""
        if beyond_ascii or (text_may_end and self._finishes(guard)):
            return True
        term, behind = guard[0], self._behind(guard[1])
        return any(self.algebra.derivative(term, c, behind) != EMPTY for c in chars_after)

    def starts_after(self, held: frozenset[int]) -> bool:
        """Whether a match may start after a character matching the ``context`` bodies
        numbered ``held`` (and no other; none at the start of the text): whether its
        lookbehinds let some first character through then."""
        return bool(self._char_steps(self._start_key(held)))

    def first_characters(self, after: Iterable[frozenset[int]] = (frozenset(),)
                         ) -> tuple[frozenset[int], bool]:
        """The ASCII characters a match may begin with after a character matching the
        ``context`` bodies of one of the sets ``after`` (see :meth:`start_after`), and whether
        it may begin with another character: read off the start states' derivatives (a
        superset: whether the rest can finish is not searched), without building byte rows."""
        chars: set[int] = set()
        beyond_ascii = False
        for held in after:
            for block, _ in self._char_steps(self._start_key(held)):
                for lo, hi in block.ranges:
                    chars.update(range(lo, min(hi, 127) + 1))
                    beyond_ascii = beyond_ascii or hi > 127
        return frozenset(chars), beyond_ascii

    def language_is_empty(self) -> bool:
        return not self.is_live(self.start_key)

    def is_live(self, key) -> bool:
        """Whether some string leads from the character state ``key`` to acceptance.

        Terms without intersections, complements or lookarounds are live unless empty; the
        others are searched depth-first.
        """
        cached = self._live.get(key)
        if cached is not None:
            return cached
        term = key[0]
        algebra = self.algebra
        if term == EMPTY:
            return False
        if not algebra.needs_liveness_search(term):
            self._live[key] = True
            return True
        # Best-first, by a lower bound on the rest of a match (lookarounds read as true): a
        # satisfiable lookaround usually has a short witness down one branch, which this finds
        # without visiting every state up to its depth (breadth-first) or running down a long
        # counter first (depth-first: `maxLength: 1024` on an email address). The
        # verdict is cached for every state the search settles, not just ``key``: the states
        # on the path to a witness are live, and after a failed search every state explored is
        # dead (its successors were all explored). Counters make long chains of new states, so
        # caching only ``key`` would search them again from each one.
        frontier, parent = [(algebra.relaxed_shortest(term), 0, key)], {key: None}
        witness = None
        while frontier:
            k = heapq.heappop(frontier)[2]
            known = self._live.get(k)
            if known is False:
                continue
            behind = self._behind(k[1])
            if known or self._finishes(k):
                witness = k
                break
            if len(parent) > self.limits.max_states:
                raise LimitExceeded(
                    f"deciding whether a lookaround state can finish needs more than "
                    f"max_states={self.limits.max_states} states"
                )
            sets = list(algebra.first_sets(k[0], behind))
            for tracker in k[1]:
                sets.extend(algebra.first_sets(tracker, frozenset()))
            for block in _minterms(sets):
                cp = block.ranges[0][0]
                t = algebra.derivative(k[0], cp, behind)
                if t == EMPTY:
                    continue
                nk = (t, tuple(algebra.derivative(x, cp, frozenset()) for x in k[1]))
                if nk not in parent:
                    parent[nk] = k
                    if self._live.get(nk) or self._finishes(nk):
                        witness = nk  # goal test on generation: a closing quote ends at once
                        break
                    heapq.heappush(frontier, (algebra.relaxed_shortest(t), len(parent), nk))
            if witness is not None:
                break
        if witness is None:
            for k in parent:
                self._live[k] = False
            return False
        while witness is not None:
            self._live[witness] = True
            witness = parent[witness]
        return True

    def _finishes(self, key) -> bool:
        """Whether the character state ``key`` is a goal of the liveness search: the text may
        end there, or for a lexeme, the lexeme may end (its guard being live)."""
        term, trackers = key
        if self.lexeme and self.algebra.has_end(term):
            return self._guard_key(key) is not None
        return self.algebra.nullable(term, self._behind(trackers))

    def shortest_completion(self, state: int) -> float | None:
        """The fewest bytes from ``state`` to acceptance, read off the state's term (``inf``:
        none); None where lookarounds make a search necessary."""
        kind, payload = self._payload[state]
        if kind == "char":
            return self.algebra.shortest_bytes(payload[0])
        best = math.inf
        for rest, key in payload:  # inside a character: its remaining bytes, then the term
            after = self.algebra.shortest_bytes(key[0])
            if after is None:
                return None
            best = min(best, len(rest) + after)
        return best

    # ---------------------------------------------------------------- byte level
    def _build_row(self, state: int) -> np.ndarray:
        kind, payload = self._payload[state]
        if kind == "char":
            items = [
                (seq, key)
                for charset, key in self.char_transitions(payload)
                for seq in utf8_sequences(charset)
            ]
        else:
            items = list(payload)
        row = np.full(256, DEAD, dtype=np.int32)
        multi_byte = []
        for seq, key in items:
            lo, hi = seq[0]
            if len(seq) == 1:
                row[lo : hi + 1] = self._char_state(key)  # deterministic: ranges never overlap
            else:
                multi_byte.append((lo, hi, (seq[1:], key)))
        if multi_byte:
            # Lead bytes covered by the same items go to the same mid-character state: sweep the
            # range boundaries so each distinct item set is interned once, not once per byte.
            cuts = sorted({lo for lo, _, _ in multi_byte} | {hi + 1 for _, hi, _ in multi_byte})
            for a, b in itertools.pairwise(cuts):
                entries = frozenset(e for lo, hi, e in multi_byte if lo <= a and b - 1 <= hi)
                if entries:
                    row[a:b] = self._mid_state(entries)
        return row

    def mask_representative(self, state: int, depth: int) -> int:
        """A state with the same byte strings of length ``<= depth`` ahead as ``state``.

        Large repetition counts are clamped (see ``TermAlgebra.clamp_counters``), so the states of
        ``x{0,100000}`` share a handful of representatives and hence of token masks.
        """
        kind, payload = self._payload[state]
        limit = depth + 1
        if kind == "char":
            term, trackers = payload
            return self._char_state((self.algebra.clamp_counters(term, limit), trackers))
        items = frozenset(
            (rest, (self.algebra.clamp_counters(key[0], limit), key[1])) for rest, key in payload
        )
        return self._mid_state(items)
