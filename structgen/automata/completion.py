"""Shortest completions: how many bytes a constraint state still needs before it accepts.

Decoding within a token budget (``finish_within_max_tokens``) needs, for the state after a
candidate token, the length of the shortest text that completes the match. Counting only bytes
that are tokens by themselves makes it an upper bound on the tokens needed, and a guarantee: the
completion can always be spelled one byte per token. The ball of states around a state is large
(every layout of every value ahead), so both automata read the answer off the state itself:

* :class:`RegularCompletion` (a regular constraint, and each terminal's lexer): a state is a
  term, whose shortest match is a sum of minima over its structure
  (``TermAlgebra.shortest_bytes``). Terms with lookarounds, and vocabularies that lack some
  single-byte token, are searched instead (:func:`bfs_completion`, breadth first, stopping at
  the first accepting state or where a known distance settles it; the states on the shortest
  path found get their exact distances cached).
* :class:`GrammarCompletion` (a grammar automaton): a state is a set of lexer threads (Earley
  set, terminal, lexer state): the shortest completion finishes one
  thread's lexeme (a search in the terminal's DFA), then derives the parse's remaining symbols
  by their shortest yields, climbing the items' origins (Earley items ``(rule, dot, origin)``).
  Everything is cached per Earley set and per nonterminal, so a new state costs a few lookups.
  Where a lookahead reads past a lexeme into the next ones (a guard), what it asks of them is
  not counted: the length is then a lower bound (searching the automaton instead visits tens
  of thousands of states, a second or more per token on ``sql``, and gives up).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from structgen.automata.byte_dfa import LazyAutomaton
from structgen.automata.earley import SELF
from structgen.automata.grammar_automaton import GrammarAutomaton
from structgen.grammar.cfg import Nonterminal

INFINITE = math.inf


def bfs_completion(automaton: LazyAutomaton, state: int, usable: np.ndarray,
                   known: dict[int, int], limit: int) -> int | None:
    """The fewest ``usable`` bytes that take ``automaton`` from ``state`` to acceptance.

    ``known`` holds exact distances found before (read and extended). Returns None when no
    usable path exists or more than ``limit`` states would have to be searched.
    """
    cached = known.get(state)
    if cached is not None:
        return cached
    parent: dict[int, int | None] = {state: None}
    frontier = [state]
    depth = 0
    best: float = INFINITE
    best_end = -1
    while frontier:
        for s in frontier:
            here = 0 if automaton.accepting[s] else known.get(s)
            if here is not None and depth + here < best:
                best, best_end = depth + here, s
        if best <= depth + 1:  # every state further on is at least depth + 1 away
            break
        following = []
        for s in frontier:
            automaton.materialize(s)
            row = automaton.trans[s][usable]
            for t in np.unique(row[row >= 0]).tolist():
                if t not in parent:
                    parent[t] = s
                    following.append(t)
        if len(parent) > limit:
            return None
        frontier = following
        depth += 1
    if best_end < 0:
        return None
    # The states on the path found, from its end back to ``state``, are each one byte
    # further from acceptance than the next: a part of a shortest path is a shortest path.
    steps_left = 0 if automaton.accepting[best_end] else known[best_end]
    s: int | None = best_end
    while s is not None:
        known.setdefault(s, steps_left)
        steps_left += 1
        s = parent[s]
    return int(best)


class RegularCompletion:
    """Shortest completions of a :class:`LazyByteDFA`'s states (see the module docstring).

    ``structural``: every byte the automaton reads is ``usable`` (the language was restricted to
    what the vocabulary spells, and each such byte is a token), so lengths may be read off terms.
    """

    def __init__(self, automaton: LazyAutomaton, usable: np.ndarray, structural: bool,
                 limit: int):
        self.automaton = automaton
        self.usable = usable
        self.limit = limit
        self._structural = structural
        self._known: dict[int, int] = {}

    def state(self, state: int) -> float:
        """The fewest usable bytes from ``state`` to acceptance (``INFINITE``: none or unknown)."""
        if self._structural:
            found = self.automaton.shortest_completion(state)
            if found is not None:
                return found
        found = bfs_completion(self.automaton, state, self.usable, self._known, self.limit)
        return INFINITE if found is None else found


class GrammarCompletion:
    """Shortest completions of a :class:`GrammarAutomaton`'s states (see the module docstring).

    ``usable`` marks the bytes a completion may use; a terminal or rule that cannot be spelled
    with them counts as infinitely long. ``structural``: every byte the automaton reads is
    usable, so lengths may be read off terms.
    """

    def __init__(self, automaton: GrammarAutomaton, usable: np.ndarray, structural: bool,
                 limit: int):
        self.automaton = automaton
        self.tables = automaton.tables
        self._usable = usable
        self._ignored = {automaton.terminal_index(name) for name in automaton.grammar.ignore}
        self._lexers = [RegularCompletion(automaton.lexer(t), usable, structural, limit)
                        for t in range(len(automaton.terminal_names))]
        self._terminal_length = [self._shortest_lexeme(t)
                                 for t in range(len(automaton.terminal_names))]
        self._yield = self._shortest_yields()
        self._suffix: dict[tuple[int, int], float] = {}
        self._climb: dict[int, dict[str, float]] = {}
        self._finish: dict[int, float] = {}
        self._states: dict[int, float] = {}
        self._first_bytes: dict[int, np.ndarray] = {}

    def _shortest_lexeme(self, terminal: int) -> float:
        """The fewest bytes of a lexeme of ``terminal``, whatever character comes before it
        (a lookbehind at its start may refuse to start at the start of the text alone)."""
        lexer = self._lexers[terminal]
        starts = self.automaton.start_contexts(self.automaton.terminal_names[terminal])
        if starts is None:
            return 1.0  # too many lookbehind bodies to try: the least a lexeme can be
        return min(lexer.state(lexer.automaton.start_after(held)) for held in starts)

    def state(self, state: int) -> float:
        """The fewest bytes from byte-automaton ``state`` to acceptance (``INFINITE``: none)."""
        cached = self._states.get(state)
        if cached is not None:
            return cached
        automaton = self.automaton
        best = 0.0 if automaton.accepting[state] else INFINITE
        if best:
            names = automaton.terminal_names
            for set_id, lexer_id, lexer_state in automaton.threads(state):
                terminal = automaton.lexer_terminal(lexer_id)
                rest = self.lexeme_rest(terminal, automaton.terminal_state(lexer_id, lexer_state))
                if rest >= best:
                    continue
                after = INFINITE
                scanned = self.tables.scan(set_id, names[terminal])
                if scanned >= 0:
                    after = self.finish(scanned)
                if terminal in self._ignored:
                    after = min(after, self._after_ignored(
                        set_id, terminal, automaton.terminal_state(lexer_id, lexer_state), rest))
                best = min(best, rest + after)
        self._states[state] = best
        return best

    def _after_ignored(self, set_id: int, terminal: int, lexer_state: int,
                       rest: float) -> float:
        """The fewest bytes that complete the parse from Earley set ``set_id`` after ignored
        text of ``terminal`` ends (``rest`` bytes on from ``lexer_state``). Ignored text is
        taken by its longest match: where it ends right here and could go on (a ``#``
        comment before anything but a newline), the next byte must be one it cannot go on
        with; when no terminal the set expects may begin so, another ignored lexeme must come
        first (the comment's newline), and its bytes count too."""
        after = self.finish(set_id)
        if rest or not after:
            return after  # it ends further on, or the text may end here
        lexer = self.automaton.lexer(terminal)
        lexer.materialize(lexer_state)
        stops = lexer.trans[lexer_state] < 0  # the bytes that do not lengthen it
        if not stops.any() or (stops & self._expected_first_bytes(set_id)).any():
            return after
        between = INFINITE
        for ignored in self._ignored:
            gap = self.automaton.lexer(ignored)
            gap.materialize(gap.start)
            starts = stops & self._usable & (gap.trans[gap.start] >= 0)
            for byte in np.flatnonzero(starts).tolist():
                onward = self._lexers[ignored].state(int(gap.trans[gap.start, byte]))
                between = min(between, 1 + onward)
        return between + after if between < INFINITE else after

    def _expected_first_bytes(self, set_id: int) -> np.ndarray:
        """The bytes a lexeme of a terminal that Earley set ``set_id`` expects may begin with,
        as 256 booleans (cached per set)."""
        found = self._first_bytes.get(set_id)
        if found is None:
            found = np.zeros(256, dtype=np.bool_)
            for name in self.tables.expected(set_id):
                lexer = self.automaton.lexer(self.automaton.terminal_index(name))
                lexer.materialize(lexer.start)
                found |= lexer.trans[lexer.start] >= 0
            self._first_bytes[set_id] = found
        return found

    def lexeme_rest(self, terminal: int, lexer_state: int) -> float:
        """The fewest bytes that end ``terminal``'s lexeme from its lexer's ``lexer_state``."""
        return self._lexers[terminal].state(lexer_state)

    def finish(self, set_id: int) -> float:
        """The fewest bytes that complete the parse from Earley set ``set_id`` (a boundary
        between terminals): some item's remaining symbols, then its ancestors'."""
        cached = self._finish.get(set_id)
        if cached is None:
            cached = INFINITE
            for rule, dot, origin in self.tables.items(set_id):
                rest = self._rest(rule, dot)
                if rest < cached:
                    above = self._climbs(set_id if origin == SELF else origin)
                    cached = min(cached, rest + above.get(self.tables.rule_lhs[rule], INFINITE))
            self._finish[set_id] = cached
        return cached

    def _climbs(self, set_id: int) -> dict[str, float]:
        """For each nonterminal some item of Earley set ``set_id`` waits for: the fewest bytes
        that complete the parse once that nonterminal is derived starting there.

        Parents in earlier sets are constants (computed first, iteratively, since origin chains
        grow with the input); parents predicted in this set itself depend on other entries of
        this table, a shortest-path problem solved with Dijkstra.
        """
        pending = [set_id]
        while pending:
            top = pending[-1]
            if top in self._climb:
                pending.pop()
                continue
            missing = [o for o in self._parent_origins(top) if o not in self._climb]
            if missing:
                pending.extend(missing)
                continue
            self._climb[top] = self._solve_climbs(top)
            pending.pop()
        return self._climb[set_id]

    def _parent_origins(self, set_id: int) -> set[int]:
        return {o for _, _, o in self.tables.sets[set_id][0] if o != SELF}

    def _solve_climbs(self, set_id: int) -> dict[str, float]:
        tables = self.tables
        costs: dict[str, float] = {}
        internal: dict[str, list[tuple[str, float]]] = {}  # child -> (parent lhs, rest)
        if set_id == tables.start_set:
            costs[tables.rule_lhs[0]] = 0.0  # the start rule: nothing above it
        for rule, dot, origin in tables.items(set_id):
            rhs = tables.rule_rhs[rule]
            if dot >= len(rhs) or not isinstance(rhs[dot], Nonterminal):
                continue
            child = rhs[dot].name
            rest = self._rest(rule, dot + 1)
            lhs = tables.rule_lhs[rule]
            if origin == SELF:
                internal.setdefault(lhs, []).append((child, rest))
            else:
                total = rest + self._climb[origin].get(lhs, INFINITE)
                if total < costs.get(child, INFINITE):
                    costs[child] = total
        queue = [(cost, name) for name, cost in costs.items()]
        heapq.heapify(queue)
        done: set[str] = set()
        while queue:
            cost, name = heapq.heappop(queue)
            if name in done:
                continue
            done.add(name)
            for child, rest in internal.get(name, ()):
                total = cost + rest
                if total < costs.get(child, INFINITE):
                    costs[child] = total
                    heapq.heappush(queue, (total, child))
        return costs

    def _rest(self, rule: int, dot: int) -> float:
        """The shortest yield of rule ``rule``'s symbols from ``dot`` on."""
        key = (rule, dot)
        cached = self._suffix.get(key)
        if cached is None:
            cached = sum(self._symbol_length(s, self._yield)
                         for s in self.tables.rule_rhs[rule][dot:])
            self._suffix[key] = cached
        return cached

    def _symbol_length(self, symbol, yields: dict[str, float]) -> float:
        """A terminal's shortest lexeme, or a nonterminal's shortest yield in ``yields``."""
        if isinstance(symbol, Nonterminal):
            return yields.get(symbol.name, INFINITE)
        index = self.automaton.terminal_index(symbol.name)
        return self._terminal_length[index]

    def _shortest_yields(self) -> dict[str, float]:
        """The shortest byte length each nonterminal derives (a fixpoint over the rules)."""
        tables = self.tables
        lengths: dict[str, float] = {}
        changed = True
        while changed:
            changed = False
            for lhs, rhs in zip(tables.rule_lhs, tables.rule_rhs):
                total = sum(self._symbol_length(symbol, lengths) for symbol in rhs)
                if total < lengths.get(lhs, INFINITE):
                    lengths[lhs] = total
                    changed = True
        return lengths
