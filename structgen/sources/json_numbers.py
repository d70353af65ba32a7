"""JSON number literals whose values satisfy JSON Schema's numeric keywords, as regular terms.

The JSON Schema compiler calls :func:`number_term` for the number leaves of a schema (``type``
``number``/``integer``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
``multipleOf``). The keywords constrain the *value* of a number, but a model writes a *literal*
(RFC 8259: ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?``), and every value has infinitely many
(``5``, ``5.0``, ``5.000``, ``0.5e1``, ``50e-1``). The term is sound, every literal it matches has
a valid value, and as complete as a regular language of reasonable size can be:

* Literals without an exponent: every valid one is matched (``5.000`` for ``minimum: 5``), for
  every supported ``multipleOf`` (below).
* Literals with an exponent, bounds: comparing ``0.0…05e{n}`` with a bound other than 0 is not
  regular (the exponent that reaches the bound depends on the number of zeros), so exponent forms
  are kept only where no bound cuts the side of 0: the zeros (``-0``, ``0.00e5``) whenever 0 is
  valid, every positive literal when every positive value is (``minimum <= 0``, no maximum), and
  likewise the negative ones. A side that a bound cuts has no exponent forms.
* Literals with an exponent, steps: ``integer`` and every ``multipleOf`` combine into one step
  ``M``, their least common multiple (``1`` for ``integer``). Write ``M = a * 10**-p`` with the
  least ``p >= 0``, ``a = 2**u * 5**v * c`` with ``c`` prime to 10, ``k = max(u, v)``; and write a
  literal's mantissa as its significant digits ``D`` times ``10**-s``: ``s`` counts the fraction
  digits up to the last nonzero one, or is minus the number of trailing zeros of the integer part
  when the fraction is zero. The literal with exponent ``e`` is kept when ``|s| <= 10``,
  ``e >= s - p + k`` and ``c`` divides ``D``: then ``D * 10**(e - s)`` is a multiple of ``M``
  whatever ``D``'s last digits are. More than 10 trailing zeros count as 11. Left out: more than
  10 significant fraction digits (``1.00000000001e11`` for ``integer``), more than 11 trailing
  zeros taken back by the exponent (``1000000000000e-12``), and literals that rely on ``D``'s own
  factors 2 and 5 (``1.2e1`` for ``multipleOf: 2``, ``5e-1`` for ``multipleOf: 0.5``). The limit
  10 keeps the automaton small: it has to remember ``s``, so its states grow with the limit's
  square (about 280 states for ``integer`` with 10, 850 with 20).

``multipleOf`` is decided on ``N = x * 10**p``: ``N`` must be an integer (no nonzero fraction digit
after the ``p``-th), its last ``k`` digits must be one of the ``10**k / (2**u * 5**v)`` multiples of
``2**u * 5**v`` (at most 2000 such suffixes: 16 and 3125 pass, 32 and 64 do not), and ``c`` must
divide its digits. The suffixes are part of the range construction; divisibility by ``c`` is not,
since its term comes from a cyclic automaton by state elimination and grows exponentially with
``c``: only ``c = 3`` stays small (31 nodes; 7 needs 7851 and makes each state of the lazy DFA
ten times as slow to build). Any other step raises :class:`UnsupportedKeyword` naming
``multipleOf``, unless both bounds are finite and hold at most 1000 multiples: those are then
listed one by one (without exponent forms, but for the zeros).

Divisibility by ``c`` is an intersection, written as a lookahead in front of the unsigned literal:
its body is a run of digits and points divisible by ``c``, an optional exponent, and the assertion
that no character that can continue a number (``[0-9.eE+-]``) follows. That pins the body to
exactly the literal the rest of the term matches, whether the term stands alone or is embedded in
JSON text, where a number is always followed by a delimiter, whitespace or the end.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from enum import Enum
from fractions import Fraction

from structgen.errors import SchemaError, UnsupportedKeyword
from structgen.grammar.charset import CharSet
from structgen.grammar.regular import EPSILON, NOTHING, Alt, Chars, Look, Repeat, Seq, Term

__all__ = ["number_term"]

# A mantissa shifted by more than this many digits is not matched with an exponent (see above).
_MAX_SHIFT = 10
# The most ``k``-digit suffixes divisibility by ``2**u 5**v`` may leave (``k = max(u, v)``).
_MAX_SUFFIXES = 2000
# The most tree nodes (counted without sharing) of one divisibility term. Divisibility by 3
# needs 31; by 7, 7851, and then each state of the lazy DFA, which derives through the
# intersection, costs about ten times as much to build.
_MAX_DIVISIBILITY_NODES = 1000
# The most multiples listed one by one when a step cannot be expressed otherwise.
_MAX_ENUMERATED = 1000


def _chars(text: str) -> Chars:
    return Chars(CharSet.chars(text))


_DIGIT = _chars("0123456789")
_NONZERO = _chars("123456789")
_ZERO = _chars("0")
_POINT = _chars(".")
_MINUS = _chars("-")
_ZEROS = Repeat(_ZERO, 0, None)
_DIGITS = Repeat(_DIGIT, 0, None)
_EXPONENT = Seq((_chars("eE"), Repeat(_chars("+-"), 0, 1), Repeat(_DIGIT, 1, None)))
_INTEGER_PART = Alt((_ZERO, Seq((_NONZERO, _DIGITS))))
_JSON_NUMBER = Seq((
    Repeat(_MINUS, 0, 1),
    _INTEGER_PART,
    Repeat(Seq((_POINT, Repeat(_DIGIT, 1, None))), 0, 1),
    Repeat(_EXPONENT, 0, 1),
))
# Every literal of the value 0.
_ZERO_LITERALS = Seq((
    Repeat(_MINUS, 0, 1),
    _ZERO,
    Repeat(Seq((_POINT, Repeat(_ZERO, 1, None))), 0, 1),
    Repeat(_EXPONENT, 0, 1),
))
# "No character that could continue a number literal follows."
_NUMBER_END = Look(_chars("0123456789.eE+-"), ahead=True, negate=True)


def _alt(items: Iterable[Term]) -> Term:
    """Alternation without empty-language members; ``NOTHING`` if none is left."""
    kept = tuple(dict.fromkeys(x for x in items if x != NOTHING))
    if not kept:
        return NOTHING
    return kept[0] if len(kept) == 1 else Alt(kept)


def _seq(*items: Term) -> Term:
    """Concatenation; ``NOTHING`` if any part is empty."""
    if NOTHING in items:
        return NOTHING
    kept = tuple(x for x in items if x != EPSILON)
    if not kept:
        return EPSILON
    return kept[0] if len(kept) == 1 else Seq(kept)


@functools.cache
def _digit_set(digits: tuple[int, ...]) -> Chars:
    return _chars("".join(str(d) for d in digits))


# ---------------------------------------------------------------------------- scaled literals


class _Tail(Enum):
    """What may follow the digits fixed by ``N`` (the fraction digits after position ``p``)."""

    EXACT = "nothing, not even a decimal point"
    ZERO = "zeros"
    FREE = "any digits"
    NONZERO = "digits that are not all zeros"
    NONE = "no literal at all"


def _tail_term(tail: _Tail, nonempty: bool) -> Term:
    """The fraction digits beyond position ``p`` allowed by ``tail``; at least one if
    ``nonempty`` (the decimal point was just written)."""
    if tail is _Tail.EXACT:
        return NOTHING if nonempty else EPSILON
    if tail is _Tail.ZERO:
        return Repeat(_ZERO, int(nonempty), None)
    if tail is _Tail.FREE:
        return Repeat(_DIGIT, int(nonempty), None)
    if tail is _Tail.NONZERO:
        return Seq((_ZEROS, _NONZERO, _DIGITS))
    return NOTHING


_State = tuple  # (remaining, lo_rest, at_lo, hi_rest, at_hi, window)


class _ScaledLiterals:
    """Literals (no sign, no exponent) of the values ``(N + t) * 10**-p`` for integers ``N`` in a
    range, ``0 <= t < 1`` fixed by a :class:`_Tail`.

    ``N`` is read as a digit string padded with zeros to at least ``p + 1`` digits: its last ``p``
    digits are the first ``p`` fraction digits, the others the integer part. A literal may drop
    trailing fraction digits that are zeros (``1.5`` for ``N = 150, p = 2``), or the whole
    fraction, and may append the digits allowed by the tail (``1.500``).

    The terms come from the classic range-splitting construction, run as a digit automaton: a
    state is the number of digits left, the rest of the lower (upper) bound while the digits read
    so far equal its prefix, and the suffix read so far of the last ``k`` digits, which must be one
    of ``suffixes`` (the ``k``-digit remainders allowed by divisibility). The automaton is acyclic
    per length, so each state becomes one shared term, built from the last digit back without
    recursion; lengths above the bounds' share one ``[1-9][0-9]{m,n}`` prefix.
    """

    def __init__(self, p: int, suffixes: frozenset[str] = frozenset({""}),
                 tail: Callable[[bool, bool], _Tail] = lambda at_lo, at_hi: _Tail.ZERO):
        self.p = p
        self.k = len(next(iter(suffixes)))
        self.prefixes = {s[:i] for s in suffixes for i in range(self.k + 1)}
        self.tail = tail

    def term(self, lo: int, hi: int | None) -> Term:
        """The literals for ``N`` in ``lo..hi`` (``hi=None``: unbounded)."""
        p, k = self.p, self.k
        if hi is not None and lo > hi:
            return NOTHING
        first = p + 1
        width_lo = max(len(str(lo)), first)
        width_hi = None if hi is None else max(len(str(hi)), first)
        explicit_top = max(width_lo, k + 1)
        widths = [n for n in range(first, explicit_top + 1) if width_hi is None or n <= width_hi]
        if width_hi is not None and width_hi > explicit_top:
            widths.append(width_hi)
        starts = []
        for n in widths:
            low = max(lo, 10 ** (n - 1) if n > first else 0)
            high = 10**n - 1 if hi is None else min(hi, 10**n - 1)
            if low > high:
                continue
            window = self._window_start(n)
            if window is not False:
                starts.append(((n, str(low).zfill(n), low == lo, str(high).zfill(n),
                                high == hi, window), None))
        # Lengths strictly between the explicit ones: a nonzero digit, free digits, then the last
        # ``max(p, k)`` digits, where the decimal point and the suffix window are.
        middle_lo = explicit_top + 1
        middle_hi = None if width_hi is None else width_hi - 1
        if middle_hi is None or middle_lo <= middle_hi:
            t = max(p, k)
            state = (t, None, False, None, False, self._window_start(t))
            most = None if middle_hi is None else middle_hi - 1 - t
            starts.append((state, _seq(_NONZERO, Repeat(_DIGIT, middle_lo - 1 - t, most))))
        terms = self._build([s for s, _ in starts])
        return _alt(
            terms[state] if prefix is None else _seq(prefix, terms[state])
            for state, prefix in starts
        )

    def _window_start(self, n: int) -> str | None | bool:
        """The window of a number padded to ``n`` digits: None while more than ``k`` digits are
        left, else the suffix read so far (leading zeros when ``n < k``); False if none fits."""
        if n > self.k:
            return None
        window = "0" * (self.k - n)
        return window if window in self.prefixes else False

    def _edges(self, state: _State) -> list[tuple[tuple[int, ...], _State]]:
        """The digits leaving ``state``, grouped by the state they lead to."""
        remaining, lo_rest, at_lo, hi_rest, at_hi, window = state
        low = int(lo_rest[0]) if lo_rest is not None else 0
        high = int(hi_rest[0]) if hi_rest is not None else 9
        targets: dict[_State, list[int]] = {}
        for d in range(low, high + 1):
            next_lo = lo_rest[1:] if lo_rest is not None and d == low else None
            next_hi = hi_rest[1:] if hi_rest is not None and d == high else None
            if window is None:
                next_window = "" if remaining - 1 == self.k else None
            else:
                next_window = window + str(d)
                if next_window not in self.prefixes:
                    continue
            target = (remaining - 1, next_lo, at_lo and next_lo is not None,
                      next_hi, at_hi and next_hi is not None, next_window)
            targets.setdefault(target, []).append(d)
        return [(tuple(digits), target) for target, digits in targets.items()]

    def _build(self, starts: list[_State]) -> dict[_State, Term]:
        """The term of every state reachable from ``starts``: from state ``s`` with ``r`` digits
        left, the rest of the literal (the integer part's digits if ``r > p``, then the point)."""
        edges: dict[_State, list[tuple[tuple[int, ...], _State]]] = {}
        frontier = list(dict.fromkeys(starts))
        while frontier:
            state = frontier.pop()
            if state in edges or state[0] == 0:
                continue
            edges[state] = self._edges(state)
            frontier.extend(t for _, t in edges[state] if t not in edges)
        reachable = set(starts) | {t for out in edges.values() for _, t in out}
        p, k = self.p, self.k
        # For states in the fraction (r <= p): ``truncatable``: the literal may stop here (the
        # remaining digits are zeros); ``rest``: the fraction digits from here, maybe none;
        # ``digits``: the same, at least one.
        truncatable: dict[_State, bool] = {}
        rest: dict[_State, Term] = {}
        digits: dict[_State, Term] = {}
        whole: dict[_State, Term] = {}
        # Different states often have equal terms; sharing one object per term keeps later
        # equality tests (the automaton interns terms) at the top level instead of deep.
        shared: dict[Term, Term] = {}
        for state in sorted(reachable, key=lambda s: s[0]):
            remaining = state[0]
            # A free state (no bound followed, suffix window not reached) starts a run of any
            # digits, written as one counted repetition: a chain of single digits would make the
            # term's depth, and the work of every pass over it, grow with the bounds' lengths.
            free = state[1] is None and state[3] is None and state[5] is None
            if remaining == 0:
                tail = self.tail(state[1] is not None and state[2],
                                 state[3] is not None and state[4])
                truncatable[state] = tail in (_Tail.EXACT, _Tail.ZERO, _Tail.FREE)
                rest[state] = _tail_term(tail, nonempty=False)
                digits[state] = _tail_term(tail, nonempty=True)
            elif remaining <= p:
                out = edges[state]
                truncatable[state] = any(0 in ds and truncatable[t] for ds, t in out)
                if free:
                    run = remaining - k
                    window = rest[(k, None, False, None, False, "")]
                    full = _seq(Repeat(_DIGIT, run, run), window)
                    rest[state] = (_alt((Repeat(_DIGIT, 0, run - 1), full))
                                   if truncatable[state] else full)
                    digits[state] = _seq(_DIGIT, rest[out[0][1]])
                else:
                    digits[state] = _alt(_seq(_digit_set(ds), rest[t]) for ds, t in out)
                    rest[state] = _alt((EPSILON if truncatable[state] else NOTHING,
                                        digits[state]))
                rest[state] = shared.setdefault(rest[state], rest[state])
                digits[state] = shared.setdefault(digits[state], digits[state])
            if remaining == p:
                whole[state] = _alt((EPSILON if truncatable[state] else NOTHING,
                                     _seq(_POINT, digits[state])))
            elif remaining > p and free and remaining - 1 > max(p, k):
                bottom = max(p, k)
                run = remaining - bottom
                whole[state] = _seq(Repeat(_DIGIT, run, run),
                                    whole[(bottom, None, False, None, False,
                                           "" if bottom == k else None)])
            elif remaining > p:
                whole[state] = _alt(_seq(_digit_set(ds), whole[t]) for ds, t in edges[state])
            if state in whole:
                whole[state] = shared.setdefault(whole[state], whole[state])
        return whole


def _integers(lo: int, hi: int | None) -> Term:
    """Decimal integers ``lo..hi`` (``hi=None``: unbounded), no sign, no leading zeros."""
    return _ScaledLiterals(0, tail=lambda at_lo, at_hi: _Tail.EXACT).term(lo, hi)


def _exponent_at_least(least: int) -> Term:
    """An exponent part ``[eE][+-]?[0-9]+`` whose value is at least ``least``."""
    if least <= 0:
        value = _alt((
            Seq((Repeat(_chars("+"), 0, 1), Repeat(_DIGIT, 1, None))),
            _seq(_MINUS, _ZEROS, _integers(0, -least)),
        ))
    else:
        value = _seq(Repeat(_chars("+"), 0, 1), _ZEROS, _integers(least, None))
    return _seq(_chars("eE"), value)


# ---------------------------------------------------------------------------- steps


class _Step:
    """A ``multipleOf`` step ``M = a * 10**-p`` (``p >= 0``, ``a`` not a multiple of 10 unless
    ``p == 0``), with ``a = 2**u 5**v c`` and ``c`` prime to 10.

    ``x`` is a multiple of ``M`` iff ``N = x * 10**p`` is an integer whose last ``k = max(u, v)``
    digits are one of ``suffixes`` and whose digits are divisible by ``c``. ``unsupported`` says
    why the step cannot be expressed, if it cannot.
    """

    def __init__(self, step: Fraction):
        self.p = max(_multiplicity(step.denominator, 2), _multiplicity(step.denominator, 5))
        a = step.numerator * 10**self.p // step.denominator
        smooth = 2 ** _multiplicity(a, 2) * 5 ** _multiplicity(a, 5)
        self.smooth = smooth
        self.c = a // smooth
        self.k = max(_multiplicity(a, 2), _multiplicity(a, 5))
        count = 10**self.k // smooth
        self.suffixes = (
            None if count > _MAX_SUFFIXES
            else frozenset({""}) if self.k == 0
            else frozenset(str(r).zfill(self.k) for r in range(0, 10**self.k, smooth))
        )
        self.check = EPSILON if self.c == 1 else _divisibility_check(self.c)
        self.unsupported = None
        if self.suffixes is None:
            self.unsupported = (
                f"divisibility by {smooth} depends on the last {self.k} digits, which can end "
                f"in {count} ways (at most {_MAX_SUFFIXES} are supported)")
        elif self.check is None:
            self.unsupported = (
                f"divisibility by {self.c} has no regular term of reasonable size (of the "
                f"factors prime to 10, only 3 has one)")


def _divisibility_check(c: int) -> Term | None:
    """Lookaheads requiring the digits of the literal that follows (no sign) to be divisible by
    ``c``; None when a divisibility term is too large."""
    powers = _prime_powers(c)
    if powers is None:
        return None
    checks = []
    for power in powers:
        digits = _divisible_digits(power)
        if digits is None:
            return None
        checks.append(Look(Seq((digits, Repeat(_EXPONENT, 0, 1), _NUMBER_END)),
                           ahead=True, negate=False))
    return _seq(*checks)


def _multiplicity(n: int, prime: int) -> int:
    count = 0
    while n % prime == 0:
        n //= prime
        count += 1
    return count


def _prime_powers(n: int) -> list[int] | None:
    """The prime power factors of ``n``, smallest prime first; None when one is above 64 (its
    divisibility term would be far too large anyway)."""
    powers = []
    for prime in range(2, 65):
        if n % prime == 0:
            power = 1
            while n % prime == 0:
                n //= prime
                power *= prime
            if power > 64:
                return None
            powers.append(power)
    return powers if n == 1 else None


def _divisible_digits(q: int) -> Term | None:
    """Strings over ``[0-9.]`` whose digits, read as one integer, are divisible by ``q`` (prime to
    10); None when the term exceeds ``_MAX_DIVISIBILITY_NODES`` tree nodes.

    The automaton has a state per remainder (``r`` goes to ``(10 r + d) mod q`` on digit ``d``;
    ``.`` loops) and becomes a term by state elimination. The term's tree size grows
    exponentially with ``q``, so the size is tracked while eliminating and the construction
    stops as soon as it is exceeded.
    """
    edges: dict[tuple[int, int], set[str]] = {}
    for r in range(q):
        edges.setdefault((r, r), set()).add(".")
        for d in range(10):
            edges.setdefault((r, (10 * r + d) % q), set()).add(str(d))
    terms: dict[tuple[int, int], Term] = {e: _chars("".join(sorted(s))) for e, s in edges.items()}
    sizes = dict.fromkeys(terms, 1)
    alive = list(range(q))
    for state in range(q - 1, 0, -1):
        alive.remove(state)
        loop = terms.pop((state, state), None)
        loop_size = sizes.pop((state, state), 0) + 1
        incoming = [i for i in alive if (i, state) in terms]
        outgoing = [j for j in alive if (state, j) in terms]
        for i in incoming:
            for j in outgoing:
                path = _seq(terms[i, state],
                            Repeat(loop, 0, None) if loop is not None else EPSILON,
                            terms[state, j])
                size = sizes[i, state] + loop_size + sizes[state, j] + 1
                if (i, j) in terms:
                    path = Alt((terms[i, j], path))
                    size += sizes[i, j] + 1
                if size > _MAX_DIVISIBILITY_NODES:
                    return None
                terms[i, j], sizes[i, j] = path, size
        for key in [e for e in terms if state in e]:
            del terms[key], sizes[key]
    return Repeat(terms[0, 0], 0, None)


# ---------------------------------------------------------------------------- bounds


class _Bounds:
    """An interval of values: ``lo``/``hi`` (None: unbounded) with their exclusivity."""

    def __init__(self, lo: Fraction | None, lo_exclusive: bool, hi: Fraction | None,
                 hi_exclusive: bool):
        self.lo, self.lo_exclusive = lo, lo_exclusive and lo is not None
        self.hi, self.hi_exclusive = hi, hi_exclusive and hi is not None

    def contains(self, x: Fraction) -> bool:
        above = self.lo is None or x > self.lo or (x == self.lo and not self.lo_exclusive)
        below = self.hi is None or x < self.hi or (x == self.hi and not self.hi_exclusive)
        return above and below

    def negated(self) -> _Bounds:
        """The interval of ``-x`` for ``x`` in this one."""
        return _Bounds(None if self.hi is None else -self.hi, self.hi_exclusive,
                       None if self.lo is None else -self.lo, self.lo_exclusive)

    def positive(self) -> _Bounds | None:
        """This interval cut to ``x > 0``; None when that leaves nothing."""
        if self.hi is not None and self.hi <= 0:
            return None
        if self.lo is None or self.lo <= 0:
            return _Bounds(Fraction(0), True, self.hi, self.hi_exclusive)
        return self

    def multiples(self, step: Fraction) -> tuple[int | None, int | None]:
        """The least and greatest ``n`` with ``n * step`` inside (None: unbounded)."""
        first = last = None
        if self.lo is not None:
            q = self.lo / step
            first = math.floor(q) + 1 if self.lo_exclusive else math.ceil(q)
        if self.hi is not None:
            q = self.hi / step
            last = math.ceil(q) - 1 if self.hi_exclusive else math.floor(q)
        return first, last


def _decimal_places(x: Fraction) -> int:
    """The number of fraction digits of the decimal ``x``."""
    return max(_multiplicity(x.denominator, 2), _multiplicity(x.denominator, 5))


def _positive_any(bounds: _Bounds) -> Term:
    """Positive literals with values in ``bounds`` (``lo >= 0``, exclusive at 0)."""
    if bounds.lo == 0 and bounds.hi is None:
        mantissa = _alt((Seq((_NONZERO, _DIGITS, Repeat(Seq((_POINT, Repeat(_DIGIT, 1, None))),
                                                           0, 1))),
                         Seq((_ZERO, _POINT, _ZEROS, _NONZERO, _DIGITS))))
        return _seq(mantissa, Repeat(_EXPONENT, 0, 1))
    p = max(_decimal_places(bounds.lo), 0 if bounds.hi is None else _decimal_places(bounds.hi))
    scale = 10**p
    lo = int(bounds.lo * scale)
    hi = None if bounds.hi is None else int(bounds.hi * scale)

    def tail(at_lo: bool, at_hi: bool) -> _Tail:
        # Between the bounds' digits anything may follow; at a bound, what follows decides.
        if at_hi and bounds.hi_exclusive:
            return _Tail.NONE
        if at_lo and bounds.lo_exclusive:
            return _Tail.NONE if at_hi else _Tail.NONZERO
        return _Tail.ZERO if at_hi else _Tail.FREE

    return _ScaledLiterals(p, tail=tail).term(lo, hi)


def _positive_multiples(bounds: _Bounds, step: _Step) -> Term:
    """Positive literals of multiples of ``step`` in ``bounds``, with exponent forms when every
    positive value is inside."""
    first, last = bounds.multiples(Fraction(step.smooth, 10**step.p))
    first = max(first, 1) * step.smooth
    last = None if last is None else last * step.smooth
    literals = _ScaledLiterals(step.p, step.suffixes).term(first, last)
    if bounds.lo == 0 and bounds.hi is None:
        literals = _alt((literals, _exponent_multiples(step)))
    return _seq(step.check, literals)


def _exponent_multiples(step: _Step) -> Term:
    """Positive literals with an exponent that are multiples of ``step`` whatever the digits
    (divisibility by ``c`` aside): mantissas shifted ``s`` digits (see the module docstring)
    with an exponent of at least ``s - p + k``."""
    offset = step.k - step.p
    nonzero_end = Alt((_NONZERO, Seq((_NONZERO, _DIGITS, _NONZERO))))
    zero_fraction = Repeat(Seq((_POINT, Repeat(_ZERO, 1, None))), 0, 1)
    branches = [
        _seq(_INTEGER_PART, _POINT, Repeat(_DIGIT, s - 1, s - 1), _NONZERO, _ZEROS,
             _exponent_at_least(s + offset))
        for s in range(1, _MAX_SHIFT + 1)
    ]
    branches += [
        _seq(nonzero_end, Repeat(_ZERO, t, t), zero_fraction, _exponent_at_least(offset - t))
        for t in range(_MAX_SHIFT + 1)
    ]
    # Even more trailing zeros: the exponent the shortest of them needs is enough for all.
    branches.append(_seq(nonzero_end, Repeat(_ZERO, _MAX_SHIFT + 1, None), zero_fraction,
                         _exponent_at_least(offset - _MAX_SHIFT - 1)))
    return _alt(branches)


def _value_literals(value: Fraction) -> Term:
    """The literals without exponent of one value (of every zero literal, for 0)."""
    if value == 0:
        return _ZERO_LITERALS
    p = _decimal_places(value)
    n = int(abs(value) * 10**p)
    digits = _ScaledLiterals(p).term(n, n)
    return digits if value > 0 else _seq(_MINUS, digits)


# ---------------------------------------------------------------------------- the front door


def _exact(value: Decimal | int, keyword: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise SchemaError(f"{keyword} must be a Decimal or an int, not {value!r}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise SchemaError(f"{keyword} must be finite, not {value}")
    return Fraction(value)


def _combined_step(integer: bool, multiple_of: Sequence[Decimal]) -> Fraction | None:
    """The least common multiple of the steps (``1`` for ``integer``); None without any."""
    steps = [Fraction(1)] if integer else []
    for m in multiple_of:
        step = _exact(m, "multipleOf")
        if step <= 0:
            raise SchemaError(f"multipleOf must be greater than 0, not {m}")
        steps.append(step)
    if not steps:
        return None
    numerator, denominator = steps[0].numerator, steps[0].denominator
    for s in steps[1:]:
        numerator = math.lcm(numerator, s.numerator)
        denominator = math.gcd(denominator, s.denominator)
    return Fraction(numerator, denominator)


def number_term(*, integer: bool, lower: Decimal | None = None, lower_exclusive: bool = False,
                upper: Decimal | None = None, upper_exclusive: bool = False,
                multiple_of: Sequence[Decimal] = ()) -> Term:
    """The JSON number literals whose values satisfy the numeric keywords.

    Cached: building one takes milliseconds (``integer`` alone is the multiples of 1 with their
    exponent forms), and real schemas repeat the same few (``integer``, ``minimum: 0``).

    Parameters:
        integer: only values that are mathematically integers (``1.0`` and ``1e2`` are).
        lower, lower_exclusive: ``minimum`` (or ``exclusiveMinimum`` when exclusive).
        upper, upper_exclusive: ``maximum`` (or ``exclusiveMaximum`` when exclusive).
        multiple_of: every ``multipleOf``; the value divided by each must be an integer.

    Returns:
        A term over ASCII matching only RFC 8259 number literals with allowed values (sound);
        ``NOTHING`` when no value is allowed. Without bounds, steps or ``integer`` it is exactly
        the JSON number grammar. What else is left out is in the module docstring: exponent
        forms on a side of 0 that a bound cuts, and some exponent forms of multiples.

    Raises:
        UnsupportedKeyword: a ``multipleOf`` step whose divisibility test is too large as a
            regular term (see the module docstring), unless the bounds leave few multiples.
        SchemaError: a bound or step that is not a finite number, or a step that is not positive.
    """
    return _number_term(integer, lower, lower_exclusive, upper, upper_exclusive,
                        tuple(multiple_of))


@functools.lru_cache(maxsize=4096)
def _number_term(integer: bool, lower: Decimal | None, lower_exclusive: bool,
                 upper: Decimal | None, upper_exclusive: bool,
                 multiple_of: tuple[Decimal, ...]) -> Term:
    lo = None if lower is None else _exact(
        lower, "exclusiveMinimum" if lower_exclusive else "minimum")
    hi = None if upper is None else _exact(
        upper, "exclusiveMaximum" if upper_exclusive else "maximum")
    bounds = _Bounds(lo, lower_exclusive, hi, upper_exclusive)
    step_value = _combined_step(integer, multiple_of)
    if step_value is None:
        if lo is None and hi is None:
            return _JSON_NUMBER
        if lo is not None and hi is not None and not (
                lo < hi or (lo == hi and not bounds.lo_exclusive and not bounds.hi_exclusive)):
            return NOTHING
        return _alt(_sides(bounds, _positive_any))
    first, last = bounds.multiples(step_value)
    if first is not None and last is not None and first > last:
        return NOTHING
    step = _Step(step_value)
    if step.unsupported is None:
        return _alt(_sides(bounds, lambda side: _positive_multiples(side, step)))
    if first is not None and last is not None and last - first < _MAX_ENUMERATED:
        return _alt(_value_literals(n * step_value) for n in range(first, last + 1))
    shown = ", ".join(str(m) for m in multiple_of) or "1"
    raise UnsupportedKeyword("multipleOf", (
        f"multipleOf {shown}{' for an integer' if integer else ''}: the multiples of "
        f"{_format(step_value)} cannot be matched exactly: {step.unsupported}; bounds holding "
        f"at most {_MAX_ENUMERATED} multiples would let them be listed"))


def _sides(bounds: _Bounds, positive: Callable[[_Bounds], Term]) -> list[Term]:
    """The zero literals (if 0 is allowed), the positive and the negative literals."""
    parts = [_ZERO_LITERALS if bounds.contains(Fraction(0)) else NOTHING]
    above = bounds.positive()
    if above is not None:
        parts.append(positive(above))
    below = bounds.negated().positive()
    if below is not None:
        parts.append(_seq(_MINUS, positive(below)))
    return parts


def _format(x: Fraction) -> str:
    """``x`` as a decimal numeral."""
    p = _decimal_places(x)
    return str(Decimal(x.numerator * 10**p // x.denominator).scaleb(-p))
