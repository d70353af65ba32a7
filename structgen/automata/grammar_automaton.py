"""The byte automaton of a context-free grammar: Earley parsing over lazily lexed terminals.

A state is a set of *lexer threads* plus the Earley sets at the current position. A thread
``(set, lexer, dfa_state)`` says: the parser, in Earley set ``set``, is reading a terminal with
``lexer`` (its byte DFA, or that DFA read with guards, below), in ``dfa_state``. Each byte
advances every thread in its lexer; a
thread whose terminal could end there also scans the terminal into its Earley set; the sets so
reached at one byte are made one (``_one_set``, as a chart keeps one set per position), which
spawns fresh threads for every terminal it expects (and for the ignored ones). Threads are
never dropped while their terminal can still grow, so every lexing of the input stays alive:
the language is exactly the grammar's, with no lexer over-constraining it.

Lookarounds see the text around their lexeme, as lark's lexer, which matches on the whole
text, lets them: a lexeme may end with a *guard*, the lookaheads that read on into the text
after it (a state of its terminal's DFA, see ``LazyByteDFA``); the threads after it read their
lexemes together with it (``GuardedLexer``) until it holds whatever follows. A lookbehind at a terminal's start
reads the character before it: every lexeme's DFA tracks which of those one-character bodies
its last character matches, and the lexemes after it start accordingly. Ignored text is taken
by its longest match, as lark's lexer takes it: its guard refuses what would lengthen it.

States are interned, so repeated structure (the inside of a string, the elements of a list)
maps to the same state and its token mask is computed once. Rows are built on demand, only along
the bytes actually read; token masks are assembled from the threads' terminal DFAs instead
(see ``TokenConstraint._thread_mask``), so the grammar's own rows stay few.
"""

from __future__ import annotations

import itertools
import time
from typing import NamedTuple

import numpy as np

from structgen.automata.byte_dfa import (
    DEAD,
    LEXER_START,
    LazyAutomaton,
    LazyByteDFA,
    Limits,
    intern,
)
from structgen.automata.earley import ESCAPED, EarleyTables
from structgen.errors import EmptyLanguage, GrammarError
from structgen.grammar.cfg import (
    Grammar,
    edge_lookarounds,
    looks_outside,
    reads_ahead,
    terminal_followers,
    trim,
)
from structgen.grammar.regular import single_character

NO_GUARDS: frozenset = frozenset()
# Character states of a terminal read to find whether its end lookaheads let a text follow.
_MAX_END_SEARCH_STATES = 1000


class EndContext(NamedTuple):
    """What a lexeme end leaves to the lexemes after it: ``guards``, the lookaheads still
    reading on, as ``(terminal, guard state of its DFA)`` pairs, all of which must hold; and
    ``held``, the numbers of the grammar's context bodies its last character matches."""

    guards: frozenset
    held: frozenset


PLAIN_END = 0  # the number of ``EndContext(NO_GUARDS, frozenset())``: no guard, no body held


class GuardedLexer(LazyAutomaton):
    """A terminal's lexer read together with guards left by the lexemes before it: a state
    is ``(lexer state, pending guards)``; a byte that a guard refuses is refused, and a guard
    that holds whatever follows is dropped. Its lexeme ends where the terminal's does, and
    passes on the guards still pending with its own (``end_classes``: (pending guards, the
    terminal's end class)). One per terminal, whatever the guards: lexemes that start under
    different guards (an identifier after each of a keyword's prefixes) share one automaton,
    and so one walk of the vocabulary trie."""

    def __init__(self, automaton: GrammarAutomaton, terminal: int):
        super().__init__(automaton.limits)
        self.base = automaton.lexer(terminal)
        self._guard_lexer = automaton.lexer
        self._states: dict[tuple, int] = {}
        self.end_classes: list[tuple[frozenset, int]] = []
        self._end_class_ids: dict[tuple[frozenset, int], int] = {}
        self._starts: dict[tuple[frozenset, frozenset], int] = {}

    def start_after(self, held: frozenset, guards: frozenset) -> int:
        """The start state under ``guards`` after a character matching context bodies
        ``held``."""
        key = (held, guards)
        state = self._starts.get(key)
        if state is None:
            state = self._starts[key] = self._state(self.base.start_after(held), guards)
        return state

    def _state(self, base_state: int, guards: frozenset) -> int:
        key = (base_state, guards)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._new_state(key)
            base_class = self.base.end_class[base_state]
            if base_class >= 0:
                self.accepting[state] = True
                self.end_class[state] = intern((guards, int(base_class)), self.end_classes,
                                               self._end_class_ids)
        return state

    def base_state(self, state: int) -> tuple[int, frozenset]:
        """The terminal's lexer state and the guards still pending in ``state``."""
        return self._payload[state]

    def _build_row(self, state: int) -> np.ndarray:
        base_state, guards = self._payload[state]
        base = self.base
        base.materialize(base_state)
        row = base.trans[base_state]
        out = np.full(256, DEAD, dtype=np.int32)
        for byte in np.flatnonzero(row >= 0).tolist():
            pending = []
            for terminal, guard in guards:
                lexer = self._guard_lexer(terminal)
                guard = lexer.step(guard, byte)
                if guard < 0:
                    break
                if not lexer.guard_discharged(guard):
                    pending.append((terminal, guard))
            else:
                out[byte] = self._state(int(row[byte]), frozenset(pending))
        return out


class GrammarAutomaton(LazyAutomaton):
    """The lazily built byte automaton of ``grammar``; state ``start`` reads its first byte.

    ``grammar`` must be trimmed (every symbol productive and reachable) and its terminals must
    match non-empty strings, so every state reached can still finish (but where a lookahead
    at a terminal's end contradicts every text the grammar lets follow).

    A state is ``(threads, boundary)``: threads ``(Earley set, lexer, lexer state)``, where
    lexer numbers below the number of terminals are the terminals' own DFAs and the others
    guarded lexers (``GuardedLexer``, ``lexer_terminal``); and the ``(Earley set, end
    context)`` pairs where lexemes ended at the last byte (``end_contexts``).
    """

    def __init__(self, grammar: Grammar, limits: Limits | None = None):
        super().__init__(limits)
        self.grammar = grammar
        self.terminal_names = list(grammar.terminals)
        self._terminal_index = {name: i for i, name in enumerate(self.terminal_names)}
        self.context = _context_bodies(grammar)
        self._ignored = tuple(self._terminal_index[n] for n in sorted(grammar.ignore))
        # Ignored text is taken by its longest match, as lark's lexer takes it (a lazy
        # terminal's term already stops at its first): a guard after it refuses what would
        # lengthen it.
        self._longest = frozenset(self._ignored)
        self._lookahead_ends = frozenset(  # the terminals whose lookaheads may read on
            i for i, name in enumerate(self.terminal_names)
            if reads_ahead(grammar.terminals[name]))
        self._lexeme_ends = self._lookahead_ends | self._longest
        self._looking_back = frozenset(  # terminals whose first lexeme may see the start
            i for i, name in enumerate(self.terminal_names)
            if looks_outside(grammar.terminals[name])[0])
        self._read_alone_too = frozenset(  # lookaheads inside: see ``LazyByteDFA``'s ``alone``
            t for t in self._lookahead_ends
            if not looks_outside(grammar.terminals[self.terminal_names[t]])[1])
        # Built on first use: a constraint's first masks read only the terminals it starts with.
        count = len(self.terminal_names)
        self._lexers: list[LazyByteDFA | GuardedLexer | None] = [None] * count
        self._lexer_terminals: list[int] = list(range(count))
        self._guarded_lexer_ids: dict[int, int] = {}
        # End contexts are numbered (``PLAIN_END`` first): walks key their caches with them.
        self.end_contexts: list[EndContext] = [EndContext(NO_GUARDS, frozenset())]
        self._end_context_ids: dict[EndContext, int] = {self.end_contexts[0]: PLAIN_END}
        self._class_contexts: dict[tuple[int, int], int] = {}
        self._context_splits: dict[int, tuple[int, np.ndarray]] = {}
        self._starting_memo: dict[tuple[int, int], tuple | None] = {}
        self._states: dict[tuple[frozenset, frozenset], int] = {}
        self._spawn_memo: dict[tuple[int, int], frozenset] = {}
        self._starting_lexemes_memo: dict[tuple[bool, int], tuple[int, ...]] = {}
        self._single_steps: dict[tuple[int, int], int] = {}
        self.grammar = grammar = self._without_contradicted_lookarounds(grammar)
        self.tables = EarleyTables(grammar, self.limits.max_states)
        start_sets = frozenset([(self.tables.start_set, PLAIN_END)])
        self.start = self._state(self._spawn(self.tables.start_set, PLAIN_END), start_sets)

    def _without_contradicted_lookarounds(self, grammar: Grammar) -> Grammar:
        """``grammar`` less the alternatives where a terminal's lookarounds refuse whatever
        the grammar lets stand next to it: a terminal whose every lexeme ends with a lookahead
        before text that none lets through (``A B`` with ``A: /a+(?=c)/`` and ``B: "b"``;
        ``\\b`` or ``$`` before a letter), or one whose lookbehind at its start refuses every
        character that may come before it (``/(?<!a)b/`` after ``"a"``).

        Why: the lexeme would be offered and then lead nowhere, a dead end in the middle of a
        generation (masks cannot see it: they decide tokens inside a terminal from its own
        DFA, whatever follows). Decided on the one character next to the lexeme, from what
        may stand there at each occurrence (``terminal_followers``, ignored text included),
        so an alternative is dropped only when it derives nothing lark would accept; a
        lookahead that reads further, or a terminal in a rule used in several places, may
        still leave one. The terminals stay numbered as in ``grammar``.
        """
        outward = {name: looks_outside(term) for name, term in grammar.terminals.items()
                   if name not in grammar.ignore}
        ahead = {name for name, (_, forward) in outward.items() if forward}
        behind = {name for name, (backward, _) in outward.items() if backward}
        if not ahead and not behind:
            return grammar
        firsts: dict[str, tuple[frozenset[int], bool]] = {}
        gaps = self._first_characters(grammar.ignore, firsts)
        verdicts: dict[tuple, bool] = {}
        while True:
            dropped = set()
            for (lhs, a, i), after in terminal_followers(grammar).items():
                name = grammar.rules[lhs][a][i].name
                if (name in ahead and not self._may_end_before(name, after, gaps, firsts,
                                                               verdicts)
                        or not self._may_be_followed(name, after, behind, grammar.ignore,
                                                     verdicts)):
                    dropped.add((lhs, a))
            if not dropped:
                return grammar
            rules = {lhs: tuple(alt for a, alt in enumerate(alternatives)
                                if (lhs, a) not in dropped)
                     for lhs, alternatives in grammar.rules.items()}
            try:
                trimmed = trim(Grammar(rules, grammar.terminals, grammar.start, grammar.ignore))
            except EmptyLanguage as error:
                raise EmptyLanguage(f"{error}: the lookarounds at the edges of its terminals "
                                    "refuse every text the grammar lets stand next to them"
                                    ) from None
            grammar = Grammar(trimmed.rules, grammar.terminals, grammar.start, grammar.ignore)

    def _may_end_before(self, name: str, followers: tuple[frozenset[str], bool],
                        gaps: tuple[frozenset[int], bool],
                        firsts: dict[str, tuple[frozenset[int], bool]],
                        verdicts: dict[tuple, bool]) -> bool:
        """Whether a lexeme of terminal ``name`` may end before what ``followers`` (from
        ``terminal_followers``) lets come next: a lexeme of those terminals, ignored text
        (``gaps``: its first characters, see :meth:`_first_characters`), or the end of the
        text."""
        after, may_end = followers
        chars, beyond_ascii = self._first_characters(after, firsts)
        key = ("ahead", name, chars | gaps[0], beyond_ascii or gaps[1], may_end)
        found = verdicts.get(key)
        if found is None:
            lexer = self.lexer(self._terminal_index[name])
            starts = self.start_contexts(name)
            found = verdicts[key] = starts is None or lexer.some_end(
                lambda guard, _: guard is None or lexer.guard_lets_through(guard, *key[2:]),
                _MAX_END_SEARCH_STATES, starts)
        return found

    def _may_be_followed(self, name: str, followers: tuple[frozenset[str], bool],
                         behind: set[str], ignored: frozenset[str],
                         verdicts: dict[tuple, bool]) -> bool:
        """Whether something may follow a lexeme of terminal ``name`` where ``followers``
        (from ``terminal_followers``) may: the end of the text, ignored text, a terminal
        without a lookbehind at its start (none of those in ``behind``), or one whose
        lookbehind lets the last character of some lexeme of ``name`` through."""
        after, may_end = followers
        if may_end or ignored or not after <= behind:
            return True
        starts = self.start_contexts(name)
        if starts is None:
            return True
        lexer = self.lexer(self._terminal_index[name])
        for follower in sorted(after):
            key = ("behind", follower, name)
            found = verdicts.get(key)
            if found is None:
                starts_after = self.lexer(self._terminal_index[follower]).starts_after
                found = verdicts[key] = lexer.some_end(
                    lambda _, held, starts_after=starts_after: starts_after(held),
                    _MAX_END_SEARCH_STATES, starts)
            if found:
                return True
        return False

    def _first_characters(self, names, memo: dict[str, tuple[frozenset[int], bool]]
                          ) -> tuple[frozenset[int], bool]:
        """The ASCII characters that a lexeme of one of the terminals ``names`` may begin
        with, whatever comes before it (:meth:`start_contexts`), and whether it may begin
        with another character (``LazyByteDFA.first_characters``)."""
        chars: set[int] = set()
        beyond_ascii = False
        for name in names:
            found = memo.get(name)
            if found is None:
                starts = self.start_contexts(name)
                found = memo[name] = (
                    (frozenset(range(128)), True) if starts is None
                    else self.lexer(self._terminal_index[name]).first_characters(starts))
            chars |= found[0]
            beyond_ascii = beyond_ascii or found[1]
        return frozenset(chars), beyond_ascii

    def start_contexts(self, name: str) -> tuple[frozenset[int], ...] | None:
        """The sets of context bodies (``LazyByteDFA.start_after``) that the character before a
        lexeme of terminal ``name`` may match, as far as its start can tell them apart: one
        (none) without a lookbehind at its start, every set of the grammar's few bodies with
        one, None (any) past four bodies."""
        if not looks_outside(self.grammar.terminals[name])[0]:
            return (frozenset(),)
        if len(self.context) > 4:
            return None
        return tuple(frozenset(held) for n in range(len(self.context) + 1)
                     for held in itertools.combinations(range(len(self.context)), n))

    def language_is_empty(self) -> bool:
        return not self.accepting[self.start] and not self._payload[self.start][0]

    def _spawn(self, set_id: int, context: int) -> frozenset:
        """Threads that start a new lexeme in Earley set ``set_id`` after a lexeme end that
        left end context number ``context``."""
        key = (set_id, context)
        cached = self._spawn_memo.get(key)
        if cached is None:
            cached = frozenset((set_id,) + start
                               for t in self._starting_lexemes(self.tables, set_id)
                               if (start := self.lexeme_start(t, context)) is not None)
            self._spawn_memo[key] = cached
        return cached

    def lexeme_start(self, terminal: int, context: int) -> tuple[int, int] | None:
        """``(lexer, state)`` where a lexeme of ``terminal`` starts after a lexeme end that
        left end context ``context``; None when its guards refuse every first byte, or its
        lookbehind the character before it (the start of the text included). Guards
        that read none of its first bytes (``\\b`` before a space) leave the terminal's own
        lexer, so that it shares its walks with every other context."""
        if context == PLAIN_END and terminal not in self._looking_back:
            return terminal, LEXER_START
        key = (terminal, context)
        if key in self._starting_memo:
            return self._starting_memo[key]
        lexer = self.lexer(terminal)
        found: tuple[int, int] | None = (terminal, lexer.start_after(self.end_contexts[context].held))
        lexer.materialize(found[1])
        if not (lexer.trans[found[1]] >= 0).any():  # its lookbehind refuses what came before
            found = None
        elif (self.context_split(context)[1] & (lexer.trans[found[1]] >= 0)).any():
            found = (self.guarded_lexer_id(terminal), self.guarded_start(terminal, context))
            if not (self.lexer(found[0]).trans[found[1]] >= 0).any():
                found = None
        self._starting_memo[key] = found
        return found

    def guarded_start(self, terminal: int, context: int) -> int:
        """The state of ``terminal``'s guarded lexer (:meth:`guarded_lexer_id`) where a lexeme
        starts after a lexeme end that left end context ``context`` (its row built)."""
        guards, held = self.end_contexts[context]
        lexer = self.lexer(self.guarded_lexer_id(terminal))
        state = lexer.start_after(held, guards)
        lexer.materialize(state)
        return state

    def context_split(self, context: int) -> tuple[int, np.ndarray]:
        """End context ``context`` as ``(its base, the bytes its guards read)``: the base is
        the context without guards (the character class alone), and a lexeme whose first byte
        is none of those bytes starts as after the base (the guards hold whatever it is, as
        a keyword's prefix left pending by an identifier holds before a space). Those bytes,
        as 256 booleans, are those that a guard refuses or that leave one pending."""
        found = self._context_splits.get(context)
        if found is None:
            guards, held = self.end_contexts[context]
            base = intern(EndContext(NO_GUARDS, held), self.end_contexts, self._end_context_ids)
            reads = np.zeros(256, dtype=np.bool_)
            for terminal, guard in guards:
                reads |= self.lexer(terminal).guard_reads(guard)
            found = self._context_splits[context] = (base, reads)
        return found

    def _starting_lexemes(self, tables: EarleyTables, set_id: int) -> tuple[int, ...]:
        """The terminals (by number) a new lexeme may be of in set ``set_id`` of ``tables``
        (the real or the relative ones): those the set expects, and the ignored ones."""
        key = (tables is self.tables, set_id)
        found = self._starting_lexemes_memo.get(key)
        if found is None:
            found = self._starting_lexemes_memo[key] = tuple(sorted(
                {self._terminal_index[n] for n in tables.expected(set_id)}.union(self._ignored)))
        return found

    def _state(self, threads: frozenset, boundary: frozenset) -> int:
        key = (threads, boundary)
        state = self._states.get(key)
        if state is None:
            state = self._new_state(key)
            self._states[key] = state
            self.accepting[state] = any(
                self.tables.accepts(s) and self._may_end_text(context) for s, context in boundary)
        return state

    def _may_end_text(self, context: int) -> bool:
        """Whether the text may end under the guards of end context ``context`` (``$`` and
        ``\\b`` may hold there)."""
        return all(self.lexer(t).accepting[g] for t, g in self.end_contexts[context].guards)

    def step(self, state: int, byte: int) -> int:
        """The state after ``byte``, without building the whole row: reading a token needs
        the transitions of its bytes only, and a row holds one for each of the tens of bytes
        that may follow (each an Earley scan and a spawn), while masks are assembled from the
        lexers (``TokenConstraint._thread_mask``). Kept; a row built later agrees with it
        (states are interned)."""
        if self.known[state]:
            return int(self.trans[state, byte])
        key = (state, byte)
        found = self._single_steps.get(key)
        if found is None:
            started = time.perf_counter()
            alive: set = set()
            completed: set = set()
            for thread in self._payload[state][0]:
                lexer = self.lexer(thread[1])
                self._read(thread, lexer, lexer.step(thread[2], byte), alive, completed)
            found = self._single_steps[key] = self._successor(alive, completed)
            self._count_seconds(time.perf_counter() - started)
        return found

    def _build_row(self, state: int) -> np.ndarray:
        threads, _ = self._payload[state]
        moved: dict[int, set] = {}
        completed: dict[int, set] = {}
        for thread in threads:
            lexer = self.lexer(thread[1])
            lexer.materialize(thread[2])
            row = lexer.trans[thread[2]]
            for byte in np.flatnonzero(row >= 0).tolist():
                self._read(thread, lexer, int(row[byte]), moved.setdefault(byte, set()),
                           completed.setdefault(byte, set()))
        out = np.full(256, DEAD, dtype=np.int32)
        for byte, alive in moved.items():
            out[byte] = self._successor(alive, completed[byte])
        return out

    def _read(self, thread: tuple, lexer, nxt: int, alive: set, completed: set) -> None:
        """Record that ``thread``'s lexer went to state ``nxt`` on a byte (``DEAD``: it
        refused it): the thread moved on, and its lexeme may have ended there."""
        if nxt < 0:
            return
        set_id, lexer_id, _ = thread
        alive.add((set_id, lexer_id, nxt) if lexer_id < len(self.terminal_names) else
                  self._unguarded(set_id, lexer_id, nxt))
        if lexer.accepting[nxt]:
            completed.add((set_id, lexer_id, int(lexer.end_class[nxt])))

    def _successor(self, alive: set, completed: set) -> int:
        """The state after a byte that moved the threads ``alive`` and ended the lexemes
        ``completed`` (``(Earley set, lexer, end class)``); ``DEAD`` when none moved."""
        if not alive:
            return DEAD
        ends: dict[int, set[int]] = {}  # per end context, the sets where lexemes ended
        for set_id, lexer_id, end_class in completed:
            terminal = self._lexer_terminals[lexer_id]
            sets = ends.setdefault(self.end_context(lexer_id, end_class), set())
            if terminal in self._ignored:
                sets.add(set_id)  # ignored text leaves the parser where it was
            scanned = self.tables.scan(set_id, self.terminal_names[terminal])
            if scanned >= 0:
                sets.add(scanned)
        boundary = frozenset((set_id, context) for context, sets in ends.items()
                             for set_id in self._one_set(sets))
        alive = {t for t in alive if not self._exhausted(t)}
        for set_id, context in boundary:
            alive |= self._spawn(set_id, context)
        if alive or boundary:  # boundary alone: the guards refuse all that may follow
            return self._state(frozenset(alive), boundary)
        return DEAD

    def _unguarded(self, set_id: int, lexer_id: int, lexer_state: int) -> tuple:
        """The thread ``(set_id, lexer_id, lexer_state)`` of a guarded lexer, on its terminal's
        own lexer once its guards are done (so that it meets the threads that never had any)."""
        base_state, guards = self._lexers[lexer_id].base_state(lexer_state)
        if guards:
            return (set_id, lexer_id, lexer_state)
        return (set_id, self._lexer_terminals[lexer_id], base_state)

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
        """The lexer threads of ``state``: ``(Earley set, lexer number, lexer state)``."""
        return self._payload[state][0]

    def lexer(self, lexer_id: int) -> LazyByteDFA | GuardedLexer:
        """Lexer number ``lexer_id``: a terminal's byte DFA (numbered as the terminal), or
        a terminal read with guards (:meth:`guarded_lexer_id`)."""
        lexer = self._lexers[lexer_id]
        if lexer is None:
            name = self.terminal_names[lexer_id]
            lexer = self._lexers[lexer_id] = LazyByteDFA(
                self.grammar.terminals[name], self.limits, lexeme=lexer_id in self._lexeme_ends,
                longest=lexer_id in self._longest, alone=lexer_id in self._read_alone_too,
                context=self.context)
            assert lexer.start == LEXER_START
        return lexer

    def guarded_lexer_id(self, terminal: int) -> int:
        """The number of the lexer reading ``terminal`` under guards (``GuardedLexer``)."""
        found = self._guarded_lexer_ids.get(terminal)
        if found is None:
            found = self._guarded_lexer_ids[terminal] = len(self._lexer_terminals)
            self._lexer_terminals.append(terminal)
            self._lexers.append(GuardedLexer(self, terminal))
        return found

    def lexer_terminal(self, lexer_id: int) -> int:
        """The terminal lexer ``lexer_id`` reads."""
        return self._lexer_terminals[lexer_id]

    def terminal_state(self, lexer_id: int, lexer_state: int) -> int:
        """The state of the terminal's own DFA in ``lexer_state`` of lexer ``lexer_id``."""
        if lexer_id < len(self.terminal_names):
            return lexer_state
        return self._lexers[lexer_id].base_state(lexer_state)[0]

    def end_context(self, lexer_id: int, end_class: int) -> int:
        """The number of the end context (``end_contexts``) that a lexeme of lexer
        ``lexer_id`` leaves when it ends in end class ``end_class``."""
        key = (lexer_id, end_class)
        found = self._class_contexts.get(key)
        if found is None:
            terminal = self._lexer_terminals[lexer_id]
            lexer = self.lexer(lexer_id)
            pending = NO_GUARDS
            if isinstance(lexer, GuardedLexer):
                pending, end_class = lexer.end_classes[end_class]
            guard, held = self.lexer(terminal).end_classes[end_class]
            guards = pending | {(terminal, guard)} if guard >= 0 else pending
            found = self._class_contexts[key] = intern(
                EndContext(guards, held), self.end_contexts, self._end_context_ids)
        return found


    def terminal_index(self, name: str) -> int:
        """The number of terminal ``name`` (its lexer is ``lexer(number)``)."""
        return self._terminal_index[name]

    def spawned_threads(self, set_id: int, context: int) -> frozenset:
        """The threads that start a lexeme in Earley set ``set_id`` after a lexeme end that
        left end context number ``context``."""
        return self._spawn(set_id, context)

    def relative_threads_after(self, shape: int, terminal: int,
                               context: int) -> tuple[tuple, bool]:
        """The lexemes that may start once ``terminal`` ends in relative Earley set ``shape``
        (``EarleyTables.relative``) leaving end context ``context``, as ``(relative set, lexer, start
        state, scanned)``, where ``scanned`` is False for those after an ignored ``terminal``,
        which leaves the parser in ``shape``; and whether the scan of ``terminal`` escaped
        (needs the real set). Each relative set after a scan is itself made relative, so that
        the walks below it are shared by every context too. Not memoized: its caller
        (``TokenConstraint._shape_frame``) keeps the answer."""
        relative = self.tables.relative_tables
        boundary = [(shape, False)] if terminal in self._ignored else []
        scanned = relative.scan(shape, self.terminal_names[terminal])
        if scanned >= 0:
            boundary.append((relative.relative(scanned), True))
        threads = tuple((set_id, *start, moved) for set_id, moved in boundary
                        for t in self._starting_lexemes(relative, set_id)
                        if (start := self.lexeme_start(t, context)) is not None)
        return threads, scanned == ESCAPED


def _context_bodies(grammar: Grammar) -> tuple:
    """The bodies of the lookbehinds at the starts of ``grammar``'s terminals (``^`` and
    ``\\b`` included), which read the character before a lexeme; each must match one
    character."""
    bodies: dict = {}
    for name, term in grammar.terminals.items():
        for look in edge_lookarounds(term, True):
            if single_character(look.body) is None:
                raise GrammarError(
                    f"terminal {name}: a lookbehind at its start reads more than one character "
                    "before it, which is not supported")
            bodies.setdefault(look.body, None)
    return tuple(bodies)
