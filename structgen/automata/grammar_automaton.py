"""The byte automaton of a context-free grammar: Earley parsing over lazily lexed terminals.

A state is a set of *lexer threads* plus the Earley sets at the current position. A thread
``(set, terminal, dfa_state)`` says: the parser, in Earley set ``set``, is reading ``terminal``,
whose byte DFA is in ``dfa_state``. Each byte advances every thread in its terminal's DFA; a
thread whose terminal could end there also scans the terminal into its Earley set; the sets so
reached at one byte are made one (``_one_set``, as a chart keeps one set per position), which
spawns fresh threads for every terminal it expects (and for the ignored ones). Threads are
never dropped while their terminal can still grow, so every lexing of the input stays alive:
the language is exactly the grammar's, with no lexer over-constraining it.

States are interned, so repeated structure (the inside of a string, the elements of a list)
maps to the same state and its token mask is computed once. Rows are built on demand, only along
the bytes actually read; token masks are assembled from the threads' terminal DFAs instead
(see ``TokenConstraint._thread_mask``), so the grammar's own rows stay few.
"""

from __future__ import annotations

import numpy as np

from structgen.automata.byte_dfa import DEAD, LEXER_START, LazyAutomaton, LazyByteDFA, Limits
from structgen.automata.earley import ESCAPED, EarleyTables
from structgen.grammar.cfg import Grammar


class GrammarAutomaton(LazyAutomaton):
    """The lazily built byte automaton of ``grammar``; state ``start`` reads its first byte.

    ``grammar`` must be trimmed (every symbol productive and reachable) and its terminals must
    match non-empty strings, so every state reached can still finish.
    """

    def __init__(self, grammar: Grammar, limits: Limits | None = None):
        super().__init__(limits)
        self.grammar = grammar
        self.tables = EarleyTables(grammar, self.limits.max_states)
        self.terminal_names = list(grammar.terminals)
        self._terminal_index = {name: i for i, name in enumerate(self.terminal_names)}
        # Built on first use: a constraint's first masks read only the terminals it starts with.
        self._lexers: list[LazyByteDFA | None] = [None] * len(self.terminal_names)
        self._ignored = tuple(self._terminal_index[n] for n in sorted(grammar.ignore))
        self._states: dict[tuple[frozenset, frozenset], int] = {}
        self._spawn_memo: dict[int, frozenset] = {}
        self._relative_after_memo: dict[tuple[int, int], tuple[tuple, bool]] = {}
        start_sets = frozenset([self.tables.start_set])
        self.start = self._state(self._spawn(self.tables.start_set), start_sets)

    def language_is_empty(self) -> bool:
        return not self.accepting[self.start] and not self._payload[self.start][0]

    def _spawn(self, set_id: int) -> frozenset:
        """Threads that start a new lexeme in Earley set ``set_id``."""
        cached = self._spawn_memo.get(set_id)
        if cached is None:
            cached = frozenset((set_id, t, LEXER_START)
                               for t in self._starting_lexemes(self.tables, set_id))
            self._spawn_memo[set_id] = cached
        return cached

    def _starting_lexemes(self, tables: EarleyTables, set_id: int) -> set[int]:
        """The terminals (by number) a new lexeme may be of in set ``set_id`` of ``tables``:
        those the set expects, and the ignored ones."""
        return {self._terminal_index[n] for n in tables.expected(set_id)}.union(self._ignored)

    def _state(self, threads: frozenset, boundary: frozenset) -> int:
        key = (threads, boundary)
        state = self._states.get(key)
        if state is None:
            state = self._new_state(key)
            self._states[key] = state
            self.accepting[state] = any(self.tables.accepts(s) for s in boundary)
        return state

    def _build_row(self, state: int) -> np.ndarray:
        threads, _ = self._payload[state]
        moved: dict[int, set] = {}
        completed: dict[int, set] = {}
        for set_id, terminal, lexer_state in threads:
            lexer = self.lexer(terminal)
            lexer.materialize(lexer_state)
            row = lexer.trans[lexer_state]
            for byte in np.flatnonzero(row >= 0).tolist():
                nxt = int(row[byte])
                moved.setdefault(byte, set()).add((set_id, terminal, nxt))
                if lexer.accepting[nxt]:
                    completed.setdefault(byte, set()).add((set_id, terminal))
        out = np.full(256, DEAD, dtype=np.int32)
        ignored = set(self._ignored)
        for byte, alive in moved.items():
            boundary = set()
            for set_id, terminal in completed.get(byte, ()):
                if terminal in ignored:
                    boundary.add(set_id)  # ignored text leaves the parser where it was
                scanned = self.tables.scan(set_id, self.terminal_names[terminal])
                if scanned >= 0:
                    boundary.add(scanned)
            boundary = self._one_set(boundary)
            alive = {t for t in alive if not self._exhausted(t)}
            for set_id in boundary:
                alive |= self._spawn(set_id)
            if alive or any(self.tables.accepts(s) for s in boundary):
                out[byte] = self._state(frozenset(alive), boundary)
        return out

    def _one_set(self, boundary: set[int]) -> frozenset[int]:
        """The Earley sets where lexemes end at one byte, made one (``EarleyTables.union``):
        a word that splits into lexemes in many ways ends them in many sets, and each would
        start its own lexer threads, in every split point's set again. The start set (met
        after leading ignored text) stays apart."""
        start = self.tables.start_set
        rest = boundary - {start}
        if len(rest) > 1:
            rest = {self.tables.union(frozenset(rest))}
        return frozenset(rest | (boundary & {start}))

    def _exhausted(self, thread: tuple) -> bool:
        """A thread whose terminal has ended and cannot grow: only its scan matters now."""
        lexer, lexer_state = self.lexer(thread[1]), thread[2]
        if not lexer.accepting[lexer_state]:
            return False
        lexer.materialize(lexer_state)
        return not (lexer.trans[lexer_state] >= 0).any()

    def threads(self, state: int) -> frozenset:
        """The lexer threads of ``state``: ``(Earley set, terminal index, lexer DFA state)``."""
        return self._payload[state][0]

    def lexer(self, terminal: int) -> LazyByteDFA:
        """The byte DFA of terminal number ``terminal``."""
        lexer = self._lexers[terminal]
        if lexer is None:
            name = self.terminal_names[terminal]
            lexer = self._lexers[terminal] = LazyByteDFA(self.grammar.terminals[name], self.limits)
            assert lexer.start == LEXER_START
        return lexer

    def terminal_index(self, name: str) -> int:
        """The number of terminal ``name`` (its lexer is ``lexer(number)``)."""
        return self._terminal_index[name]

    def scanned_threads(self, set_id: int, terminal: int) -> frozenset:
        """The threads that start once the parser in Earley set ``set_id`` reads ``terminal``."""
        scanned = self.tables.scan(set_id, self.terminal_names[terminal])
        return self._spawn(scanned) if scanned >= 0 else frozenset()

    def relative_threads_after(self, shape: int, terminal: int) -> tuple[tuple, bool]:
        """The lexemes that may start once ``terminal`` ends in relative Earley set ``shape``
        (``EarleyTables.relative``), as ``(relative set, terminal index, scanned)``, where
        ``scanned`` is False for those after an ignored ``terminal``, which leaves the parser
        in ``shape``; and whether the scan of ``terminal`` escaped (needs the real set). Each
        relative set after a scan is itself made relative, so that the walks below it are
        shared by every context too."""
        key = (shape, terminal)
        cached = self._relative_after_memo.get(key)
        if cached is None:
            relative = self.tables.relative_tables
            boundary = [(shape, False)] if terminal in self._ignored else []
            scanned = relative.scan(shape, self.terminal_names[terminal])
            if scanned >= 0:
                boundary.append((relative.relative(scanned), True))
            threads = tuple((set_id, t, moved) for set_id, moved in boundary
                            for t in self._starting_lexemes(relative, set_id))
            cached = (threads, scanned == ESCAPED)
            self._relative_after_memo[key] = cached
        return cached
