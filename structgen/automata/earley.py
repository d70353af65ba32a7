"""Earley recognition over terminals: the parser half of the grammar automaton.

An Earley *set* holds items ``(rule, dot, origin)``: rule ``rule`` has matched its symbols before
``dot``, starting at set ``origin``. Sets are interned (equal contents, one id), so two parser
configurations that can continue in exactly the same ways share an id; for the recogniser that
is all a set needs to be. Items whose origin is the set itself carry ``SELF`` so that a set's
contents never depend on its own id. Ambiguous and left-recursive grammars need nothing special;
nullable rules are handled by advancing over them when predicted (Aycock and Horspool).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from structgen.grammar.cfg import Grammar, Nonterminal, Terminal, nullable

SELF = -1
_START = "<start>"


@dataclass
class EarleyTables:
    """The grammar as flat tables, and the interned Earley sets built from it so far."""

    grammar: Grammar
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

    def __post_init__(self) -> None:
        grammar = self.grammar
        self._add_rule(_START, (Nonterminal(grammar.start),))
        for lhs, alternatives in grammar.rules.items():
            for rhs in alternatives:
                self._add_rule(lhs, rhs)
        self.nullable = nullable(self.grammar)
        self.start_set = self._intern(self._closure({(0, 0, SELF)}))

    def _add_rule(self, lhs: str, rhs: tuple) -> None:
        self.by_lhs.setdefault(lhs, []).append(len(self.rule_lhs))
        self.rule_lhs.append(lhs)
        self.rule_rhs.append(rhs)

    def _intern(self, items: frozenset) -> int:
        set_id = self._set_ids.get(items)
        if set_id is None:
            set_id = len(self.sets)
            self.sets.append(items)
            self._set_ids[items] = set_id
        return set_id

    def _closure(self, kernel: set) -> frozenset:
        """Predict and complete until nothing changes; origins ``SELF`` mean the new set."""
        items: set[tuple[int, int, int]] = set()
        todo: list[tuple[int, int, int]] = []
        # The items of this set by the nonterminal after their dot: the parents a completion
        # with origin SELF advances (kept as items arrive, instead of scanning the set).
        waiting: dict[str, list[tuple[int, int, int]]] = {}
        predicted: set[str] = set()

        def add(item: tuple[int, int, int]) -> None:
            items.add(item)
            todo.append(item)
            rhs = self.rule_rhs[item[0]]
            if item[1] < len(rhs) and isinstance(rhs[item[1]], Nonterminal):
                waiting.setdefault(rhs[item[1]].name, []).append(item)

        for item in kernel:
            if item not in items:
                add(item)
        while todo:
            rule, dot, origin = todo.pop()
            rhs = self.rule_rhs[rule]
            if dot < len(rhs):
                symbol = rhs[dot]
                if isinstance(symbol, Nonterminal):
                    new = []
                    if symbol.name not in predicted:  # a nonterminal's rules enter once
                        predicted.add(symbol.name)
                        new = [(r, 0, SELF) for r in self.by_lhs.get(symbol.name, ())]
                    if symbol.name in self.nullable:
                        new.append((rule, dot + 1, origin))
                    for item in new:
                        if item not in items:
                            add(item)
                continue
            lhs = self.rule_lhs[rule]
            if origin == SELF:
                parents = list(waiting.get(lhs, ()))
            else:
                parents = self._waiting(origin).get(lhs, ())
            for p_rule, p_dot, p_origin in parents:
                item = (p_rule, p_dot + 1, p_origin)
                if item not in items:
                    add(item)
        return frozenset(items)

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
        """The set reached from ``set_id`` by reading one ``terminal``; -1 if none."""
        key = (set_id, terminal)
        cached = self._scan_memo.get(key)
        if cached is None:
            symbol = Terminal(terminal)
            kernel = {
                (r, d + 1, o)
                for r, d, o in self._relocated(set_id)
                if d < len(self.rule_rhs[r]) and self.rule_rhs[r][d] == symbol
            }
            cached = self._intern(self._closure(kernel)) if kernel else -1
            self._scan_memo[key] = cached
        return cached

    def expected(self, set_id: int) -> frozenset[str]:
        """Terminal names that may come next in set ``set_id``."""
        cached = self._expected.get(set_id)
        if cached is None:
            cached = frozenset(
                self.rule_rhs[r][d].name
                for r, d, _ in self.sets[set_id]
                if d < len(self.rule_rhs[r]) and isinstance(self.rule_rhs[r][d], Terminal)
            )
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
