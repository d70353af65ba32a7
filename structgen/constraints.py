"""Constraint values: what users build with ``sg.regex``, ``sg.choice``, ``sg.sequence``,
``sg.after``. A constraint is an immutable description; ``sg.compile`` turns it into a
``TokenConstraint`` for one vocabulary.

Each constraint lowers to the grammar IR; for now every constraint is regular, so the IR is one
regular term.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from structgen.errors import StructgenError
from structgen.grammar.charset import ANY_CHAR
from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term, literal
from structgen.sources.regex import parse_regex


class Constraint:
    """Base class: something that can be compiled against a vocabulary."""

    def term(self) -> Term:
        """The constraint as a regular term of the grammar IR."""
        raise NotImplementedError

    @property
    def cache_key(self) -> tuple:
        """A hashable key: equal keys mean the same language."""
        raise NotImplementedError


@dataclass(frozen=True)
class Regex(Constraint):
    """Outputs must match ``pattern`` in full (``re.fullmatch`` semantics)."""

    pattern: str
    flags: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "_term", parse_regex(self.pattern, self.flags))

    def term(self) -> Term:
        return self._term

    @property
    def cache_key(self) -> tuple:
        return ("regex", self.pattern, int(self.flags))


@dataclass(frozen=True)
class _Composite(Constraint):
    """A constraint assembled from other constraints; its IR term is computed once."""

    kind: str
    parts: tuple
    _term: Term

    def term(self) -> Term:
        return self._term

    @property
    def cache_key(self) -> tuple:
        return (self.kind, tuple(p.cache_key if isinstance(p, Constraint) else p
                                 for p in self.parts))


def regex(pattern: str, flags: int = 0) -> Regex:
    """Outputs must match the regular expression ``pattern`` in full.

    Python ``re`` syntax plus Unicode properties (``\\p{L}``) and class set operations; see
    :mod:`structgen.sources.regex`. Raises ``RegexError`` or ``UnsupportedRegex`` with the
    position of the problem.
    """
    return Regex(pattern, flags)


def choice(options: Iterable[str | Constraint]) -> Constraint:
    """Outputs must be exactly one of ``options`` (literal strings or constraints)."""
    options = tuple(options)
    if not options:
        raise StructgenError("choice() needs at least one option")
    terms = tuple(literal(o) if isinstance(o, str) else _as_constraint(o).term() for o in options)
    return _Composite("choice", options, Alt(terms))


def sequence(*parts: str | Constraint) -> Constraint:
    """Outputs are the concatenation of one output of each part, in order."""
    terms = tuple(literal(p) if isinstance(p, str) else _as_constraint(p).term() for p in parts)
    return _Composite("sequence", parts, Seq(terms))


def after(trigger: str, constraint: Constraint) -> Constraint:
    """Free text up to and including the first ``trigger``, then an output of ``constraint``.

    Lets a model reason freely (e.g. until ``</think>``) and then answer in structure.
    """
    if not trigger:
        raise StructgenError("after() needs a non-empty trigger")
    trigger_term = literal(trigger)
    free_char = Seq((Look(trigger_term, ahead=True, negate=True), Chars(ANY_CHAR)))
    term = Seq((Repeat(free_char, 0, None), trigger_term, _as_constraint(constraint).term()))
    return _Composite("after", (trigger, constraint), term)


def _as_constraint(value) -> Constraint:
    if isinstance(value, Constraint):
        return value
    raise StructgenError(f"expected a constraint, got {type(value).__name__}")
