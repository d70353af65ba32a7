"""Earley recognition over terminals: the parser half of the grammar automaton.

An Earley *set* holds items ``(rule, dot, origin)``: rule ``rule`` has matched its symbols before
``dot``, starting at set ``origin``. Sets are interned (equal contents, one id), so two parser
configurations that can continue in exactly the same ways share an id; for the recogniser that
is all a set needs to be. Items whose origin is the set itself carry ``SELF`` so that a set's
contents never depend on its own id. A set is kept as its *own* items (those a scan and its
completions made) and the nonterminals whose *prediction blocks* it holds: a block depends on
its nonterminal alone, is often most of a set (an expression predicts every precedence level)
and is never copied; the blocks are reduced to a canonical few, so that equal contents still
mean equal keys. Ambiguous and left-recursive grammars need nothing special;
nullable rules are handled by advancing over them when predicted (Aycock and Horspool).

*Relative* sets make parsing work reusable across contexts. Most sets differ only in the
earlier sets their items point back to (the inside of a parenthesis is the same at every
depth): on the grammars of ``grammars/`` a sentence's thousands of sets have only tens to a few
hundred distinct shapes. :meth:`EarleyTables.relative` gives a set's shape: the same items
with each earlier origin replaced by a *slot* (``-2 - i`` for the i-th distinct origin),
interned in a second table. Parsing on from a shape is parsing on from every set of that shape,
until an item whose origin is a slot completes: that needs the items of the real earlier set,
so the scan reports :data:`ESCAPED` and the caller goes on with the real set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from structgen.automata.byte_dfa import BudgetSpent
from structgen.errors import LimitExceeded
from structgen.grammar.cfg import Grammar, Nonterminal, Terminal, nullable

SELF = -1
ESCAPED = -2  # what a scan of a relative set returns when it completes an item of a slot
_START = "<start>"
# The fields of EarleyTables that belong to its sets (the rest describes the grammar).
_PER_TABLE = ("sets", "_set_ids", "_scan_memo", "_expected", "_accepting", "_waiting_memo",
              "_own_scan_memo", "_relative_memo", "_union_memo", "_completion_memo", "_spent")


@dataclass
class EarleyTables:
    """The grammar as flat tables, and the interned Earley sets built from it so far."""

    grammar: Grammar
    max_sets: int | None = None  # LimitExceeded beyond this many sets per budget (None: no
    # bound; see ``byte_dfa.start_budget``)
    rule_lhs: list[str] = field(default_factory=list)
    rule_rhs: list[tuple] = field(default_factory=list)
    by_lhs: dict[str, list[int]] = field(default_factory=dict)
    nullable: frozenset[str] = frozenset()
    sets: list[tuple[frozenset, frozenset[str]]] = field(default_factory=list)  # own, blocks
    _set_ids: dict[tuple[frozenset, frozenset[str]], int] = field(default_factory=dict)
    _scan_memo: dict[tuple[int, str], int] = field(default_factory=dict)
    _expected: dict[int, frozenset[str]] = field(default_factory=dict)
    _accepting: dict[int, bool] = field(default_factory=dict)
    _waiting_memo: dict[int, dict] = field(default_factory=dict)
    _prediction_memo: dict[str, tuple] = field(default_factory=dict)
    _own_scan_memo: dict[int, dict] = field(default_factory=dict)
    _block_scan_memo: dict[str, dict] = field(default_factory=dict)
    _block_waiting_memo: dict[str, dict] = field(default_factory=dict)
    _representative_memo: dict[str, str] = field(default_factory=dict)
    _canonical_memo: dict[frozenset[str], frozenset[str]] = field(default_factory=dict)
    _relative_memo: dict[int, int] = field(default_factory=dict)
    _union_memo: dict[frozenset, int] = field(default_factory=dict)
    _completion_memo: dict[tuple[int, str], tuple] = field(default_factory=dict)
    _relative_tables: EarleyTables | None = None
    _spent: BudgetSpent = field(default_factory=BudgetSpent)

    def __post_init__(self) -> None:
        grammar = self.grammar
        self._add_rule(_START, (Nonterminal(grammar.start),))
        for lhs, alternatives in grammar.rules.items():
            for rhs in alternatives:
                self._add_rule(lhs, rhs)
        self.nullable = nullable(self.grammar)
        own, blocks, _ = self._closure({(0, 0, SELF)})
        self.start_set = self._intern(own, blocks)

    def _add_rule(self, lhs: str, rhs: tuple) -> None:
        self.by_lhs.setdefault(lhs, []).append(len(self.rule_lhs))
        self.rule_lhs.append(lhs)
        self.rule_rhs.append(rhs)

    def _intern(self, own: frozenset, blocks: frozenset[str]) -> int:
        """The id of the set of own items ``own`` and prediction blocks ``blocks``
        (canonical, see :meth:`_canonical`)."""
        key = (own, blocks)
        set_id = self._set_ids.get(key)
        if set_id is None:
            set_id = len(self.sets)
            if (self.max_sets is not None
                    and set_id - self._spent.current(set_id).first_state >= self.max_sets):
                raise LimitExceeded(
                    f"parsing needs more than max_states={self.max_sets} Earley sets (a set "
                    "per distinct parser configuration met: deep nesting, or words that split "
                    "into terminals in many ways, make many)")
            self.sets.append(key)
            self._set_ids[key] = set_id
        return set_id

    def items(self, set_id: int) -> frozenset:
        """All the items of set ``set_id``: its own and its prediction blocks'."""
        own, blocks = self.sets[set_id]
        return own.union(*(self._predictions(name)[0] for name in blocks))

    def _closure(self, kernel: set) -> tuple[frozenset, frozenset[str], bool]:
        """Predict and complete until nothing changes; origins ``SELF`` mean the new set.
        Returns the set's own items and canonical prediction blocks, and whether an item of a
        slot (see :meth:`relative`) completed: the set is then unknown, as that needs the real
        set behind the slot.

        The set keeps no completed item but the start rule's (:meth:`accepts`): a completed
        item has done all it can (advanced its parents) within the closure, and lexings of a
        token that end the same way differ mostly in such items (where each instruction of a
        word split into several began), so dropping them keeps one set for what would be
        exponentially many.

        Predictions do not depend on the context, so each nonterminal's are computed once
        (:meth:`_predictions`) and held as a block. Completions of predicted items (origin
        ``SELF``, so rules that matched nothing here) add nothing: an item waiting on a
        nullable nonterminal has already moved over it (Aycock and Horspool). What is left is
        the completions of items from earlier sets, whose origins are never ``SELF`` (own
        items and block items never meet); each is itself a closure, of the parents waiting
        for that nonterminal in that set, the same whatever set is being built: it is
        computed once (``_completion_memo``, keyed by set and nonterminal).
        """
        frame = _Closing(None, list(kernel))
        self._run_closing(frame)
        own, blocks, escaped = frame.result()
        return own, self._canonical(blocks), escaped

    def _run_closing(self, frame: _Closing) -> None:
        """Run ``frame`` to its end, and first the closures of completions in earlier sets
        it needs (``_completion_memo``): an item names only sets older than the one
        holding it, so they are computed on a stack, not by recursion (right recursion
        completes one per nesting level)."""
        frames = [frame]
        while frames:
            top = frames[-1]
            needed = self._close(top)
            if needed is None:
                frames.pop()
                if top.key is not None:
                    self._completion_memo[top.key] = top.result()
            else:
                origin, lhs = needed
                frames.append(_Closing(needed, [(r, d + 1, o) for r, d, o in
                                                self._waiting(origin).get(lhs, ())]))

    def _close(self, frame: _Closing) -> tuple[int, str] | None:
        """Run ``frame``'s closure on; stop early at a completion in an earlier set whose
        closure is not known yet, returning its (set, nonterminal) (the item waits on top of
        the to-do list). Completions in the frame's own set are made in place."""
        own, todo = frame.own, frame.todo
        origin_here = frame.key[0] if frame.key is not None else None
        while todo:
            item = todo[-1]
            rule, dot, origin = item
            rhs = self.rule_rhs[rule]
            if dot < len(rhs):
                todo.pop()
                symbol = rhs[dot]
                if isinstance(symbol, Nonterminal):
                    name = symbol.name
                    if name not in frame.predicted:
                        frame.predicted |= self._predictions(name)[1]
                        frame.blocks.add(name)
                    if name in self.nullable:
                        item = (rule, dot + 1, origin)
                        if item not in own:
                            own.add(item)
                            todo.append(item)
                continue
            if rule:
                frame.completed.add(item)
            if origin < 0:
                todo.pop()
                frame.escaped = frame.escaped or origin != SELF
                continue
            lhs = self.rule_lhs[rule]
            if origin == origin_here:
                todo.pop()
                for p_rule, p_dot, p_origin in self._waiting(origin).get(lhs, ()):
                    item = (p_rule, p_dot + 1, p_origin)
                    if item not in own:
                        own.add(item)
                        todo.append(item)
                continue
            found = self._completion_memo.get((origin, lhs))
            if found is None:
                return origin, lhs
            todo.pop()
            completed, blocks, escaped = found
            own |= completed
            frame.blocks |= blocks
            frame.escaped = frame.escaped or escaped
        return None

    def _canonical(self, blocks: frozenset[str]) -> frozenset[str]:
        """The fewest prediction blocks that hold the items of ``blocks``: a block inside
        another's prediction goes, and of blocks that predict each other one stands for all
        (:meth:`_representative`). Equal items then have equal blocks. Memoized: the same
        blocks recur in set after set, and the test is quadratic in their number."""
        cached = self._canonical_memo.get(blocks)
        if cached is None:
            found = {self._representative(name) for name in blocks}
            if len(found) > 1:
                found = {name for name in found
                         if not any(name in self._predictions(other)[1]
                                    for other in found if other != name)}
            cached = self._canonical_memo[blocks] = frozenset(found)
        return cached

    def _representative(self, name: str) -> str:
        """The least nonterminal whose prediction is the same as ``name``'s (each predicts
        the other)."""
        found = self._representative_memo.get(name)
        if found is None:
            found = self._representative_memo[name] = min(
                other for other in self._predictions(name)[1]
                if name in self._predictions(other)[1])
        return found

    def _predictions(self, name: str) -> tuple[frozenset, frozenset[str]]:
        """The items (origin ``SELF``) a set gets by predicting nonterminal ``name``, closed
        under prediction and moving over nullable nonterminals, and the nonterminals that
        closure predicts."""
        cached = self._prediction_memo.get(name)
        if cached is None:
            names = {name}
            todo = [(r, 0, SELF) for r in self.by_lhs.get(name, ())]
            items = set(todo)
            while todo:
                rule, dot, _ = todo.pop()
                rhs = self.rule_rhs[rule]
                if dot < len(rhs) and isinstance(rhs[dot], Nonterminal):
                    found = []
                    symbol = rhs[dot].name
                    if symbol not in names:
                        names.add(symbol)
                        found = [(r, 0, SELF) for r in self.by_lhs.get(symbol, ())]
                    if symbol in self.nullable:
                        found.append((rule, dot + 1, SELF))
                    for item in found:
                        if item not in items:
                            items.add(item)
                            todo.append(item)
            cached = self._prediction_memo[name] = (frozenset(items), frozenset(names))
        return cached

    def union(self, set_ids: frozenset[int]) -> int:
        """One set for the sets ``set_ids``, all reached at the same point of the text (the
        lexemes that end at one byte, in any lexing): what a chart keeps at a position. Their
        items are read as they are, ``SELF`` included: an item of origin ``SELF`` has read no
        text yet (it was predicted, or stepped over nullable symbols only), so it may as well
        begin here, even in a set left before ignored text; and predictions do not depend on
        the set they are made in. The start set is never one of them (items name it as the
        start of the whole parse)."""
        cached = self._union_memo.get(set_ids)
        if cached is None:
            parts = [self.sets[s] for s in set_ids]
            cached = self._union_memo[set_ids] = self._intern(
                frozenset().union(*(own for own, _ in parts)),
                self._canonical(frozenset().union(*(blocks for _, blocks in parts))))
        return cached

    def _waiting(self, set_id: int) -> dict[str, list[tuple[int, int, int]]]:
        """The items of set ``set_id`` grouped by the nonterminal after their dot, ``SELF``
        origins made ``set_id``: the parents a completion in a later set advances."""
        cached = self._waiting_memo.get(set_id)
        if cached is None:
            found: dict[str, set[tuple[int, int, int]]] = {}
            own, blocks = self.sets[set_id]
            for r, d, o in own:
                rhs = self.rule_rhs[r]
                if d < len(rhs) and isinstance(rhs[d], Nonterminal):
                    found.setdefault(rhs[d].name, set()).add((r, d, set_id if o == SELF else o))
            for name in blocks:
                for symbol, items in self._block_waiting(name).items():
                    found.setdefault(symbol, set()).update((r, d, set_id) for r, d in items)
            cached = self._waiting_memo[set_id] = {k: list(v) for k, v in found.items()}
        return cached

    def _block_waiting(self, name: str) -> dict[str, list[tuple[int, int]]]:
        """The prediction block of ``name``, by the nonterminal after the dot: the (rule, dot)
        of each of its items waiting on one."""
        cached = self._block_waiting_memo.get(name)
        if cached is None:
            cached = {}
            for r, d, _ in self._predictions(name)[0]:
                rhs = self.rule_rhs[r]
                if d < len(rhs) and isinstance(rhs[d], Nonterminal):
                    cached.setdefault(rhs[d].name, []).append((r, d))
            self._block_waiting_memo[name] = cached
        return cached

    def scan(self, set_id: int, terminal: str) -> int:
        """The set reached from ``set_id`` by reading one ``terminal``; -1 if none, and
        :data:`ESCAPED` for a relative set whose scan needs the sets behind its slots."""
        key = (set_id, terminal)
        cached = self._scan_memo.get(key)
        if cached is None:
            kernel = set(self._own_scans(set_id).get(terminal, ()))
            for name in self.sets[set_id][1]:
                kernel.update((r, d, set_id) for r, d in self._block_scans(name).get(terminal, ()))
            cached = -1
            if kernel:
                own, blocks, escaped = self._closure(kernel)
                cached = ESCAPED if escaped else self._intern(own, blocks)
            self._scan_memo[key] = cached
        return cached

    def relative(self, set_id: int) -> int:
        """The shape of set ``set_id``: its id in the table of relative sets
        (:attr:`relative_tables`), where each earlier origin is a slot (module docstring)."""
        cached = self._relative_memo.get(set_id)
        if cached is None:
            own, blocks = self.sets[set_id]
            origins = sorted({o for _, _, o in own if o != SELF})
            slot = {o: -2 - i for i, o in enumerate(origins)}
            slot[SELF] = SELF
            cached = self.relative_tables._intern(
                frozenset((r, d, slot[o]) for r, d, o in own), blocks)
            self._relative_memo[set_id] = cached
        return cached

    @property
    def relative_tables(self) -> EarleyTables:
        """The table of relative sets: the same rule tables and predictions, its own sets."""
        if self._relative_tables is None:
            tables = copy.copy(self)
            for name in _PER_TABLE:
                setattr(tables, name, type(getattr(self, name))())
            tables._relative_tables = tables  # the shape of a relative set is in it too
            self._relative_tables = tables
        return self._relative_tables

    def _own_scans(self, set_id: int) -> dict[str, list]:
        """Per terminal, the set's own items before it (relocated, dot moved over it): with
        its prediction blocks' (:meth:`_block_scans`), the kernel of the set after it."""
        cached = self._own_scan_memo.get(set_id)
        if cached is None:
            cached = {}
            for r, d, o in self.sets[set_id][0]:
                rhs = self.rule_rhs[r]
                if d < len(rhs) and isinstance(rhs[d], Terminal):
                    cached.setdefault(rhs[d].name, []).append(
                        (r, d + 1, set_id if o == SELF else o))
            self._own_scan_memo[set_id] = cached
        return cached

    def _block_scans(self, name: str) -> dict[str, list[tuple[int, int]]]:
        """The prediction block of ``name``, by terminal: the (rule, dot after it) of each of
        its items before that terminal."""
        cached = self._block_scan_memo.get(name)
        if cached is None:
            cached = {}
            for r, d, _ in self._predictions(name)[0]:
                rhs = self.rule_rhs[r]
                if d < len(rhs) and isinstance(rhs[d], Terminal):
                    cached.setdefault(rhs[d].name, []).append((r, d + 1))
            self._block_scan_memo[name] = cached
        return cached

    def expected(self, set_id: int) -> frozenset[str]:
        """Terminal names that may come next in set ``set_id``."""
        cached = self._expected.get(set_id)
        if cached is None:
            cached = frozenset(self._own_scans(set_id)).union(
                *(self._block_scans(name) for name in self.sets[set_id][1]))
            self._expected[set_id] = cached
        return cached

    def accepts(self, set_id: int) -> bool:
        """Whether set ``set_id`` is a complete parse of the start symbol from the beginning."""
        cached = self._accepting.get(set_id)
        if cached is None:
            origin = SELF if set_id == self.start_set else self.start_set
            cached = (0, 1, origin) in self.sets[set_id][0]
            self._accepting[set_id] = cached
        return cached


@dataclass
class _Closing:
    """A closure under way (``EarleyTables._close``): of a new set (``key`` None) or of a
    completion (``key``: its set and nonterminal)."""

    key: tuple[int, str] | None
    todo: list
    own: set = field(default_factory=set)
    blocks: set = field(default_factory=set)
    predicted: set = field(default_factory=set)
    completed: set = field(default_factory=set)  # made, but not kept: the start rule's aside
    escaped: bool = False

    def __post_init__(self) -> None:
        self.own.update(self.todo)

    def result(self) -> tuple[frozenset, frozenset[str], bool]:
        """The items made, completed ones dropped (but the start rule's), the nonterminals
        predicted, and whether an item of a slot completed."""
        return frozenset(self.own - self.completed), frozenset(self.blocks), self.escaped
