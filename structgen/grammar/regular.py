"""The regular part of the grammar IR: regular-expression terms over Unicode code points.

Every source (regex, grammar terminal, JSON Schema leaf) lowers to these terms; the automata
stage turns them into byte-level DFAs. Terms are immutable and hashable. Lookarounds are kept as
terms (``Look``) rather than expanded, because their meaning depends on the whole string around
them: the automaton stage gives them their exact regular semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from functools import lru_cache

from structgen.grammar.charset import CharSet

_COMPARED_FIELDS: dict[type, tuple[str, ...]] = {}


class Term:
    """Base class of regular terms.

    Terms are dictionary keys all over the automaton stage, so each caches its hash: hashing a
    deep term must not walk it again.
    """

    __slots__ = ()

    def __post_init__(self) -> None:
        names = _COMPARED_FIELDS.get(type(self))
        if names is None:  # dataclasses.fields() is slow, and terms are built by the million
            names = _COMPARED_FIELDS[type(self)] = tuple(
                f.name for f in fields(self) if f.compare)
        values = tuple(getattr(self, name) for name in names)
        object.__setattr__(self, "_hash", hash((type(self).__name__, values)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        # Identity and the cached hash settle nearly every comparison at once; only equal
        # hashes compare fields, which again short-circuit on shared subterms.
        if self is other:
            return True
        if type(other) is not type(self) or self._hash != other._hash:
            return False
        return _same_term(self, other)


@dataclass(frozen=True, slots=True, eq=False)
class Chars(Term):
    """Exactly one code point from ``charset``."""

    charset: CharSet
    _hash: int = field(init=False, repr=False, compare=False)
    __hash__ = Term.__hash__


@dataclass(frozen=True, slots=True, eq=False)
class Seq(Term):
    """Concatenation; ``Seq(())`` is the empty string."""

    items: tuple[Term, ...]
    _hash: int = field(init=False, repr=False, compare=False)
    __hash__ = Term.__hash__


@dataclass(frozen=True, slots=True, eq=False)
class Alt(Term):
    """Alternation; ``Alt(())`` is the empty language."""

    items: tuple[Term, ...]
    _hash: int = field(init=False, repr=False, compare=False)
    __hash__ = Term.__hash__


@dataclass(frozen=True, slots=True, eq=False)
class Repeat(Term):
    """``item`` repeated between ``min`` and ``max`` times (``max=None``: unbounded)."""

    item: Term
    min: int
    max: int | None
    _hash: int = field(init=False, repr=False, compare=False)
    __hash__ = Term.__hash__


@dataclass(frozen=True, slots=True, eq=False)
class LazyRepeat(Repeat):
    """A lazy ``Repeat`` (``*?``), as the regex parser leaves it for :func:`first_matches`
    (its language is a ``Repeat``'s); no other stage sees one."""

    __hash__ = Term.__hash__


@dataclass(frozen=True, slots=True, eq=False)
class Look(Term):
    """A zero-width assertion about the text after (``ahead``) or before the current position.

    ``body`` must match a prefix of the rest of the string (lookahead) or a suffix of the text
    so far (lookbehind); ``negate`` inverts the condition.
    """

    body: Term
    ahead: bool
    negate: bool
    _hash: int = field(init=False, repr=False, compare=False)
    __hash__ = Term.__hash__


def _same_term(a: Term, b: Term) -> bool:
    """Structural equality, each pair of nodes compared once: terms are DAGs with shared
    subterms, and two equal DAGs built apart would otherwise be compared once per path."""
    stack, done = [(a, b)], set()
    while stack:
        x, y = stack.pop()
        if x is y or (id(x), id(y)) in done:
            continue
        if type(x) is not type(y) or x._hash != y._hash:
            return False
        done.add((id(x), id(y)))
        if isinstance(x, (Seq, Alt)):
            if len(x.items) != len(y.items):
                return False
            stack.extend(zip(x.items, y.items))
        elif isinstance(x, Repeat):
            if (x.min, x.max) != (y.min, y.max):
                return False
            stack.append((x.item, y.item))
        elif isinstance(x, Look):
            if (x.ahead, x.negate) != (y.ahead, y.negate):
                return False
            stack.append((x.body, y.body))
        elif x.charset != y.charset:
            return False
    return True


EPSILON = Seq(())
NOTHING = Alt(())


def concat(*terms: Term) -> Term:
    """Concatenation, nested sequences flattened (the empty string vanishes) and a lone term
    returned as is."""
    parts: list[Term] = []
    for term in terms:
        parts.extend(term.items if type(term) is Seq else (term,))
    return parts[0] if len(parts) == 1 else Seq(tuple(parts))


def tree_size(term: Term, memo: dict[int, tuple[Term, int]] | None = None) -> int:
    """The number of nodes of ``term`` written out as a tree (shared subterms counted at each
    use): what a derivative of an automaton state walks through. ``memo`` (by id, holding the
    terms so that no id is reused) carries the sizes over from call to call."""
    memo = {} if memo is None else memo
    stack = [term]
    while stack:
        node = stack[-1]
        if id(node) in memo:
            stack.pop()
            continue
        children = _children(node)
        missing = [child for child in children if id(child) not in memo]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        memo[id(node)] = (node, 1 + sum(memo[id(child)][1] for child in children))
    return memo[id(term)][1]


def _children(term: Term) -> tuple[Term, ...]:
    """The direct subterms of ``term``."""
    if isinstance(term, (Seq, Alt)):
        return term.items
    if isinstance(term, Repeat):
        return (term.item,)
    if isinstance(term, Look):
        return (term.body,)
    return ()


def subterms(term: Term) -> Iterator[Term]:
    """Every node of ``term``, each once (by identity), parents before children.

    Terms share subterms (a schema's optional properties nest), so walking the tree instead of
    the DAG can take exponential time.
    """
    stack, seen = [term], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(_children(node))


def first_matches(term: Term, shadowing: Callable[[tuple[Term, ...], Term], list] | None = None
                  ) -> Term:
    """``term`` matching, in full, the texts that ``re.match`` takes whole: where the regex
    engine's order of trial decides, the first choice that leads to a match wins.

    A lazy repetition (:class:`LazyRepeat`) stops where the rest of the term first matches:
    ``X*?C`` becomes ``(?:(?!C)X)*C``, where ``C`` is everything after the repetition to the
    end of ``term`` (through the enclosing groups and loops), so ``".*?"`` ends at the first
    quote and the greedy parts around a lazy one keep all their matches (``a+b*?`` matches
    ``aa``). A lazy repetition inside another's item stops where the outer one does (a nested
    ``.*?`` with its own whole continuation would make the term explode: jinja's
    ``\\{\\{('.*?'|.*?)*?\\}\\}`` then ends at the first ``}}``, quoted or not).

    An alternative is taken only where no earlier one leads to a match: ``(A|B)C`` becomes
    ``(A|(?!AC)B)C`` (``a|ab`` never takes ``ab``; lark's ``P: /<[^>]*>/ | /[^|]+/`` takes
    ``<x>`` from ``<x>y``, never the whole). ``shadowing(branches, rest)`` lists, for each
    branch, the earlier ones some text of which (with ``rest``) begins some text of it (with
    ``rest``): its guard holds only those (the others refuse nothing, and would only cost);
    None puts them all. Alternatives inside a lazy repetition's item or a repetition bounded
    above 8 (``(a|ab){2,9}``; below, rounds are written out one by one), and greedy
    repetitions, which prefer one more round to leaving, keep all their matches (``a*(ab)?``
    matches ``ab``, which ``re.match`` never takes whole).

    A lookaround's body is read for its language alone."""
    ordered_parts = _with_ordered_parts(term)
    if not ordered_parts:
        return term
    greedy_memo: dict[int, Term] = {}

    def greedy(node: Term) -> Term:
        """``node`` with its lazy repetitions read as greedy ones (the same language)."""
        if id(node) not in ordered_parts:
            return node
        found = greedy_memo.get(id(node))
        if found is None:
            if isinstance(node, (Seq, Alt)):
                found = type(node)(tuple(greedy(item) for item in node.items))
            elif isinstance(node, Repeat):
                found = Repeat(greedy(node.item), node.min, node.max)
            else:
                found = Look(greedy(node.body), node.ahead, node.negate)
            greedy_memo[id(node)] = found
        return found

    memo: dict[tuple, Term] = {}
    keep: list = []  # the continuations, alive while their ids key ``memo``

    def visit(node: Term, rest: Term, stop: Term | None, ordered: bool = True) -> Term:
        """``node`` rewritten, ``rest`` following it; ``stop``: the continuation of the
        lazy repetition whose item holds ``node``, if any; ``ordered``: whether alternatives
        get their guards (not where ``rest`` holds more than what may follow, as in the
        item of ``x{2,50}``, whose rounds are not told apart: a guard would then refuse too
        much)."""
        if id(node) not in ordered_parts:
            return node
        key = (id(node), id(rest), id(stop), ordered)
        found = memo.get(key)
        if found is not None:
            return found
        keep.append((rest, stop))
        if isinstance(node, Seq):
            items = []
            after = rest
            for item in reversed(node.items):
                items.append(visit(item, after, stop, ordered))
                after = concat(greedy(item), after)
            found = Seq(tuple(reversed(items)))
        elif isinstance(node, Alt):
            alternatives = _uncovered_branches(node.items)
            items = [visit(item, rest, stop, ordered) for item in alternatives]
            if stop is None and ordered:
                branches = tuple(map(greedy, alternatives))
                before = (shadowing(branches, rest) if shadowing is not None
                          else [range(i) for i in range(len(branches))])
                for i, earlier in enumerate(before):
                    if earlier:
                        first = concat(_alternatives(tuple(branches[j] for j in earlier)), rest)
                        items[i] = Seq((Look(first, ahead=True, negate=True), items[i]))
            found = _alternatives(tuple(items))
        elif isinstance(node, LazyRepeat):
            until = rest if stop is None else stop
            item = visit(node.item, EPSILON, until)
            more = None if node.max is None else node.max - node.min
            loop = Repeat(Seq((Look(until, ahead=True, negate=True), item)), 0, more)
            found = concat(Repeat(item, node.min, node.min), loop) if node.min else loop
        elif isinstance(node, Repeat) and node.max is not None and 1 < node.max <= _UNROLLED:
            # Each round of ``x{2,5}`` has its own continuation (rounds still to come, then
            # ``rest``): written out round by round, the alternatives in each get their guards.
            item = greedy(node.item)

            def one_round(k: int) -> Term:
                more = node.max - k - 1
                after = Repeat(item, max(0, node.min - k - 1), more) if more else EPSILON
                return visit(node.item, concat(after, rest), stop, ordered)

            found = EPSILON
            for k in range(node.max - 1, node.min - 1, -1):
                found = Repeat(concat(one_round(k), found), 0, 1)
            found = concat(*(one_round(k) for k in range(node.min)), found)
        elif isinstance(node, Repeat):
            again = (EPSILON if node.max == 1 else
                     Repeat(greedy(node.item), 0, None if node.max is None else node.max - 1))
            exact = node.max is None or node.max == 1
            found = Repeat(visit(node.item, concat(again, rest), stop, ordered and exact),
                           node.min, node.max)
        else:
            found = greedy(node)  # a lookaround: its body is read for its language alone
        memo[key] = found
        return found

    return visit(term, EPSILON, None)


_UNROLLED = 8  # bounded repetitions up to this count are written out round by round


def _uncovered_branches(branches: tuple[Term, ...]) -> tuple[Term, ...]:
    """``branches`` less what earlier ones already match: a branch the same as an earlier
    one goes, and a one-character branch loses the characters of earlier one-character
    branches (``(DIGIT|\\w)`` is ``[0-9]|[^\\W0-9]``; ``([^a]| )+`` keeps one branch). On
    such a character ``re.match`` never takes the later branch where an earlier one would not
    lead to a match too (tried first, the earlier one reads the same text and goes on alike);
    the language is the same; and guarded instead, the branch would carry a lookahead reading
    past its lexeme for nothing."""
    kept: list[Term] = []
    covered = CharSet(())
    for branch in branches:
        chars = single_character(branch)
        if chars is not None:
            new = chars & ~covered
            if new == CharSet(()):
                continue
            covered = covered | chars
            if new != chars:
                branch = Chars(new)
        elif any(_same_term(branch, earlier) for earlier in kept):
            continue
        kept.append(branch)
    return tuple(kept)


def _alternatives(items: tuple[Term, ...]) -> Term:
    """The alternation of ``items`` (the one item itself when alone)."""
    return items[0] if len(items) == 1 else Alt(items)


def _with_ordered_parts(term: Term) -> set[int]:
    """The ids of the nodes of ``term`` that have in them a lazy repetition or an alternation
    of two or more branches (a regex's nesting is bounded, so recursion is safe)."""
    found: set[int] = set()
    done: set[int] = set()

    def visit(node: Term) -> bool:
        if id(node) not in done:
            done.add(id(node))
            if isinstance(node, (Seq, Alt)):
                ordered = isinstance(node, Alt) and len(node.items) > 1
                for item in node.items:  # every one: each is marked
                    ordered = visit(item) or ordered
            elif isinstance(node, Repeat):
                ordered = visit(node.item) or isinstance(node, LazyRepeat)
            elif isinstance(node, Look):
                ordered = visit(node.body)
            else:
                ordered = False
            if ordered:
                found.add(id(node))
        return id(node) in found

    visit(term)
    return found


def single_character(term: Term) -> CharSet | None:
    """The characters of ``term`` when it matches exactly one character; else None."""
    if isinstance(term, Chars):
        return term.charset
    if isinstance(term, Seq) and len(term.items) == 1:
        return single_character(term.items[0])
    if isinstance(term, Repeat) and term.min == term.max == 1:
        return single_character(term.item)
    if isinstance(term, Alt) and term.items:
        parts = [single_character(item) for item in term.items]
        if all(part is not None for part in parts):
            union = parts[0]
            for part in parts[1:]:
                union = union | part
            return union
    return None


@lru_cache(maxsize=1 << 14)
def literal(text: str) -> Term:
    """The term matching exactly ``text``; cached, since schemas spell the same property names,
    brackets and keywords over and over, and equal terms built apart compare slowly."""
    return Seq(tuple(_code_point(c) for c in text))


@lru_cache(maxsize=1 << 12)
def _code_point(char: str) -> Chars:
    return Chars(CharSet.of([(ord(char), ord(char))]))


def restrict_alphabet(term: Term, alphabet: CharSet) -> Term:
    """``term`` with every character set intersected with ``alphabet``, simplified so that a
    part that can no longer match anything disappears (and the empty language is ``NOTHING``).

    Used to drop characters a vocabulary cannot produce: afterwards a term without lookarounds
    is empty exactly when it is ``NOTHING``.
    """
    memo: dict[int, Term] = {}

    def visit(node: Term) -> Term:
        cached = memo.get(id(node))
        if cached is not None:
            return cached
        if isinstance(node, Chars):
            charset = node.charset & alphabet
            result: Term = Chars(charset) if charset else NOTHING
        elif isinstance(node, Seq):
            items = tuple(visit(x) for x in node.items)
            result = NOTHING if NOTHING in items else Seq(items)
        elif isinstance(node, Alt):
            items = tuple(x for x in map(visit, node.items) if x != NOTHING)
            result = items[0] if len(items) == 1 else Alt(items)
        elif isinstance(node, Repeat):
            item = visit(node.item)
            if item == NOTHING:
                result = EPSILON if node.min == 0 else NOTHING
            else:
                result = Repeat(item, node.min, node.max)
        elif isinstance(node, Look):
            body = visit(node.body)
            if body == NOTHING:
                result = EPSILON if node.negate else NOTHING
            else:
                result = Look(body, node.ahead, node.negate)
        else:
            raise TypeError(f"not a regular term: {node!r}")
        memo[id(node)] = result
        return result

    return visit(term)
