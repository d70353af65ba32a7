"""Earley recognition over terminals: the parser half of the grammar automaton.

An Earley *set* holds items ``(rule, dot, origin)``: rule ``rule`` has matched its symbols before
``dot``, starting at set ``origin``. Sets are interned (equal contents, one id), so two parser
configurations that can continue in exactly the same ways share an id; for the recogniser that
is all a set needs to be. Items whose origin is the set itself carry ``SELF`` so that a set's
contents never depend on its own id. Ambiguous and left-recursive grammars need nothing special;
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

from structgen.errors import LimitExceeded
from structgen.grammar.cfg import Grammar, Nonterminal, Terminal, nullable

SELF = -1
ESCAPED = -2  # what a scan of a relative set returns when it completes an item of a slot
_START = "<start>"
# The fields of EarleyTables that belong to its sets (the rest describes the grammar).
_PER_TABLE = ("sets", "_set_ids", "_scan_memo", "_expected", "_accepting", "_waiting_memo",
              "_own_scan_memo", "_parts", "_relative_memo", "_union_memo")


@dataclass
class EarleyTables:
    """The grammar as flat tables, and the interned Earley sets built from it so far."""

    grammar: Grammar
    max_sets: int | None = None  # LimitExceeded beyond this many sets (None: no bound)
    rule_lhs: list[str] = field(default_factory=list)
    rule_rhs: list[tuple] = field(default_factory=list)
    by_lhs: dict[str, list[int]] = field(default_factory=dict)
    nullable: frozenset[str] = frozenset()
    sets: list[frozenset] = field(default_factory=list)
    _set_ids: dict[frozenset, int] = field(default_factory=dict)
    _scan_memo: dict[tuple[int, str], int] = field(default_factory=dict)
    _expected: dict[int, frozenset[str]] = field(default_factory=dict)
    _accepting: dict[int, bool] = field(default_factory=dict)
    _waiting_memo: dict[int, dict] = field(default_factory=dict)
    _prediction_memo: dict[str, tuple] = field(default_factory=dict)
    _own_scan_memo: dict[int, dict] = field(default_factory=dict)
    _block_scan_memo: dict[str, dict] = field(default_factory=dict)
    _parts: list[tuple[list, list[str]]] = field(default_factory=list)
    _relative_memo: dict[int, int] = field(default_factory=dict)
    _union_memo: dict[frozenset, int] = field(default_factory=dict)
    _relative_tables: EarleyTables | None = None

    def __post_init__(self) -> None:
        grammar = self.grammar
        self._add_rule(_START, (Nonterminal(grammar.start),))
        for lhs, alternatives in grammar.rules.items():
            for rhs in alternatives:
                self._add_rule(lhs, rhs)
        self.nullable = nullable(self.grammar)
        items, own, blocks, _ = self._closure({(0, 0, SELF)})
        self.start_set = self._intern(items, own, blocks)

    def _add_rule(self, lhs: str, rhs: tuple) -> None:
        self.by_lhs.setdefault(lhs, []).append(len(self.rule_lhs))
        self.rule_lhs.append(lhs)
        self.rule_rhs.append(rhs)

    def _intern(self, items: frozenset, own: list, blocks: list[str]) -> int:
        """The id of the set ``items``; a new set also keeps how its closure built it: its own
        items (the kernel and completions) and the nonterminals whose prediction blocks it
        holds, from which its scans are read (:meth:`scan`, :meth:`expected`)."""
        set_id = self._set_ids.get(items)
        if set_id is None:
            set_id = len(self.sets)
            if self.max_sets is not None and set_id >= self.max_sets:
                raise LimitExceeded(
                    f"parsing needs more than max_states={self.max_sets} Earley sets (a set "
                    "per distinct parser configuration met: deep nesting makes many)")
            self.sets.append(items)
            self._set_ids[items] = set_id
            self._parts.append((own, blocks))
        return set_id

    def _closure(self, kernel: set) -> tuple[frozenset, list, list[str], bool]:
        """Predict and complete until nothing changes; origins ``SELF`` mean the new set. Also
        says whether an item of a slot (see :meth:`relative`) completed: the set is then
        unknown, as that needs the real set behind the slot.

        The set keeps no completed item but the start rule's (:meth:`accepts`): a completed
        item has done all it can (advanced its parents) within the closure, and lexings of a
        token that end the same way differ mostly in such items (where each instruction of a
        word split into several began), so dropping them keeps one set for what would be
        exponentially many.

        Predictions do not depend on the context, so each nonterminal's are computed once
        (:meth:`_predictions`) and added as a block. Completions of predicted items (origin
        ``SELF``, so rules that matched nothing here) add nothing: an item waiting on a
        nullable nonterminal has already moved over it (Aycock and Horspool). What is left is
        the completions of items from earlier sets.
        """
        items: set[tuple[int, int, int]] = set(kernel)
        todo = list(items)
        own = list(items)  # the items not from a prediction block
        blocks: list[str] = []
        predicted: set[str] = set()
        escaped = False
        completed: set[tuple[int, int, int]] = set()  # not kept, but the start rule's
        while todo:
            item = todo.pop()
            rule, dot, origin = item
            rhs = self.rule_rhs[rule]
            if dot < len(rhs):
                symbol = rhs[dot]
                if isinstance(symbol, Nonterminal):
                    name = symbol.name
                    if name not in predicted:
                        block, names = self._predictions(name)
                        items |= block
                        predicted |= names
                        blocks.append(name)
                    if name in self.nullable:
                        item = (rule, dot + 1, origin)
                        if item not in items:
                            items.add(item)
                            todo.append(item)
                            own.append(item)
                continue
            if rule:
                completed.add(item)
            if origin < 0:
                escaped = escaped or origin != SELF
                continue
            for p_rule, p_dot, p_origin in self._waiting(origin).get(self.rule_lhs[rule], ()):
                item = (p_rule, p_dot + 1, p_origin)
                if item not in items:
                    items.add(item)
                    todo.append(item)
                    own.append(item)
        if completed:
            items -= completed
            own = [item for item in own if item not in completed]
        return frozenset(items), own, blocks, escaped

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
            parts = [self._parts[s] for s in set_ids]
            items = frozenset().union(*(self.sets[s] for s in set_ids))
            own = list(dict.fromkeys(item for own, _ in parts for item in own))
            blocks = list(dict.fromkeys(name for _, blocks in parts for name in blocks))
            cached = self._union_memo[set_ids] = self._intern(items, own, blocks)
        return cached

    def _relocated(self, set_id: int) -> set:
        """The items of set ``set_id`` with ``SELF`` origins replaced by ``set_id``."""
        return {(r, d, set_id if o == SELF else o) for r, d, o in self.sets[set_id]}

    def _waiting(self, set_id: int) -> dict[str, list[tuple[int, int, int]]]:
        """The (relocated) items of set ``set_id`` grouped by the nonterminal after their dot:
        the parents a completion in a later set advances."""
        cached = self._waiting_memo.get(set_id)
        if cached is None:
            cached = {}
            for r, d, o in self._relocated(set_id):
                rhs = self.rule_rhs[r]
                if d < len(rhs) and isinstance(rhs[d], Nonterminal):
                    cached.setdefault(rhs[d].name, []).append((r, d, o))
            self._waiting_memo[set_id] = cached
        return cached

    def scan(self, set_id: int, terminal: str) -> int:
        """The set reached from ``set_id`` by reading one ``terminal``; -1 if none, and
        :data:`ESCAPED` for a relative set whose scan needs the sets behind its slots."""
        key = (set_id, terminal)
        cached = self._scan_memo.get(key)
        if cached is None:
            kernel = set(self._own_scans(set_id).get(terminal, ()))
            for name in self._parts[set_id][1]:
                kernel.update((r, d, set_id) for r, d in self._block_scans(name).get(terminal, ()))
            cached = -1
            if kernel:
                items, own, blocks, escaped = self._closure(kernel)
                cached = ESCAPED if escaped else self._intern(items, own, blocks)
            self._scan_memo[key] = cached
        return cached

    def relative(self, set_id: int) -> int:
        """The shape of set ``set_id``: its id in the table of relative sets
        (:attr:`relative_tables`), where each earlier origin is a slot (module docstring)."""
        cached = self._relative_memo.get(set_id)
        if cached is None:
            origins = sorted({o for _, _, o in self.sets[set_id] if o != SELF})
            slot = {o: -2 - i for i, o in enumerate(origins)}
            slot[SELF] = SELF
            own, blocks = self._parts[set_id]
            cached = self.relative_tables._intern(
                frozenset((r, d, slot[o]) for r, d, o in self.sets[set_id]),
                [(r, d, slot[o]) for r, d, o in own], blocks)
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
            for r, d, o in self._parts[set_id][0]:
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
                *(self._block_scans(name) for name in self._parts[set_id][1]))
            self._expected[set_id] = cached
        return cached

    def accepts(self, set_id: int) -> bool:
        """Whether set ``set_id`` is a complete parse of the start symbol from the beginning."""
        cached = self._accepting.get(set_id)
        if cached is None:
            origin = SELF if set_id == self.start_set else self.start_set
            cached = (0, 1, origin) in self.sets[set_id]
            self._accepting[set_id] = cached
        return cached
