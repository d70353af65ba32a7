"""JSON number terms for numeric schema keywords: sound always, complete as promised.

The membership oracle for values is exact rational arithmetic on the literal (``Fraction`` of
its ``Decimal``); the oracle for syntax is RFC 8259's grammar as a Python regex. Most strings are
checked on the real lazy byte DFA (fast); ``reference.fullmatch`` confirms it on short strings,
lookaheads included. ``_promised`` restates the module's completeness promise independently:
the tests check that a term accepts exactly the promised literals.
"""

from __future__ import annotations

import functools
import itertools
import re
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structgen.automata.byte_dfa import LazyByteDFA
from structgen.errors import SchemaError, UnsupportedKeyword
from structgen.grammar.regular import NOTHING, Seq, literal
from structgen.sources.json_numbers import number_term
from structgen.testing import reference

JSON_NUMBER = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?")
MAX_SHIFT = 10  # the module's documented limit on exponent shifts


class Case(NamedTuple):
    integer: bool = False
    lower: str | None = None
    lower_exclusive: bool = False
    upper: str | None = None
    upper_exclusive: bool = False
    multiple_of: tuple[str, ...] = ()

    def kwargs(self) -> dict:
        return {
            "integer": self.integer,
            "lower": None if self.lower is None else Decimal(self.lower),
            "lower_exclusive": self.lower_exclusive,
            "upper": None if self.upper is None else Decimal(self.upper),
            "upper_exclusive": self.upper_exclusive,
            "multiple_of": [Decimal(m) for m in self.multiple_of],
        }


CASES = [
    Case(),
    Case(integer=True),
    Case(lower="5"),
    Case(lower="5", lower_exclusive=True),
    Case(upper="5", upper_exclusive=True),
    Case(lower="-1.5", upper="12.25"),
    Case(lower="-1.5", lower_exclusive=True, upper="12.25", upper_exclusive=True),
    Case(integer=True, lower="-1.5", upper="12.25", upper_exclusive=True),
    Case(integer=True, lower="-3", lower_exclusive=True, upper="3"),
    Case(lower="0"),
    Case(lower="0", lower_exclusive=True),
    Case(upper="0"),
    Case(upper="0", upper_exclusive=True),
    Case(lower="0", upper="0"),
    Case(lower="-0.05", upper="0.05", upper_exclusive=True),
    Case(lower="1e-7"),
    Case(upper="-0.001", upper_exclusive=True),
    Case(multiple_of=("0.5",)),
    Case(multiple_of=("0.01",), lower="-1", upper="1"),
    Case(multiple_of=("2",), lower="0", lower_exclusive=True),
    Case(multiple_of=("3",)),
    Case(integer=True, multiple_of=("3",), lower="-20", upper="40"),
    Case(multiple_of=("10",), lower="-50"),
    Case(multiple_of=("0.25",), upper="3"),
    Case(integer=True, multiple_of=("1.5",)),
    Case(multiple_of=("16",)),
    Case(multiple_of=("7",), lower="-30", upper="100"),
    Case(multiple_of=("0.3",)),
    Case(multiple_of=("0.5", "0.75")),
    Case(integer=True, multiple_of=("100",), lower="0"),
    Case(integer=True, lower="0", lower_exclusive=True),
    Case(multiple_of=("12",), upper="0"),
    Case(multiple_of=("0.001",), lower="0.0005"),
    Case(multiple_of=("1e-3",), upper="2.5", upper_exclusive=True),
    Case(multiple_of=("5e2",)),
    Case(lower="12345678901234567890.25"),
    Case(integer=True, upper="1e18", upper_exclusive=True),
]


def _case_id(case: Case) -> str:
    return ",".join(f"{k}={v}" for k, v in case._asdict().items()
                    if v not in (None, False, ())) or "plain"


CASE_IDS = [_case_id(c) for c in CASES]


@functools.cache
def _dfa(case: Case) -> LazyByteDFA:
    return LazyByteDFA(number_term(**case.kwargs()))


def _accepts(dfa: LazyByteDFA, text: str) -> bool:
    state = dfa.walk(dfa.start, text.encode())
    return state >= 0 and bool(dfa.accepting[state])


def _value(text: str) -> Fraction:
    return Fraction(Decimal(text))


def _step(case: Case) -> Fraction | None:
    """The combined multipleOf step (least common multiple; 1 for integers)."""
    steps = [Fraction(1)] if case.integer else []
    steps += [Fraction(Decimal(m)) for m in case.multiple_of]
    if not steps:
        return None
    step = steps[0]
    for s in steps[1:]:
        step = Fraction(step.numerator * s.numerator // _gcd(step.numerator, s.numerator),
                        _gcd(step.denominator, s.denominator))
    return step


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _satisfies(value: Fraction, case: Case) -> bool:
    """Whether ``value`` is valid for the keywords, by exact arithmetic."""
    if case.lower is not None:
        lo = _value(case.lower)
        if value < lo or (case.lower_exclusive and value == lo):
            return False
    if case.upper is not None:
        hi = _value(case.upper)
        if value > hi or (case.upper_exclusive and value == hi):
            return False
    if case.integer and value.denominator != 1:
        return False
    return all((value / _value(m)).denominator == 1 for m in case.multiple_of)


def _power(n: int, prime: int) -> int:
    count = 0
    while n and n % prime == 0:
        n //= prime
        count += 1
    return count


def _promised(text: str, case: Case) -> bool:
    """The module docstring's promise: is ``text`` a literal the term must accept?"""
    match = JSON_NUMBER.fullmatch(text)
    if match is None:
        return False
    value = _value(text)
    if not _satisfies(value, case):
        return False
    _, integer_part, fraction, exponent = match.groups()
    if exponent is None or value == 0:
        return True
    # With an exponent, only on a side of 0 that no bound cuts.
    lo = None if case.lower is None else _value(case.lower)
    hi = None if case.upper is None else _value(case.upper)
    if value > 0 and not (hi is None and (lo is None or lo <= 0)):
        return False
    if value < 0 and not (lo is None and (hi is None or hi >= 0)):
        return False
    step = _step(case)
    if step is None:
        return True
    p = max(_power(step.denominator, 2), _power(step.denominator, 5))
    a = step.numerator * 10**p // step.denominator
    k = max(_power(a, 2), _power(a, 5))
    c = a // (2 ** _power(a, 2) * 5 ** _power(a, 5))
    fraction = fraction or ""
    if fraction.strip("0"):
        shift = len(fraction.rstrip("0"))
    else:
        shift = -(len(integer_part) - len(integer_part.rstrip("0")))
    if shift > MAX_SHIFT:
        return False
    shift = max(shift, -MAX_SHIFT - 1)
    return int(exponent) >= shift - p + k and int(integer_part + fraction) % c == 0


# ---------------------------------------------------------------------------- literals

_digits = st.text("0123456789", min_size=1, max_size=5)
_zeroish = st.text("0", min_size=1, max_size=4)


@st.composite
def number_literals(draw) -> str:
    """Literals of the JSON grammar, weighted towards zeros, trailing zeros and exponents."""
    sign = draw(st.sampled_from(["", "-"]))
    integer_part = draw(st.one_of(
        st.just("0"),
        st.builds(lambda first, rest: first + rest, st.sampled_from("123456789"),
                  st.text("0123456789", max_size=4)),
        st.builds(lambda first, zeros: first + zeros, st.sampled_from("123456789"), _zeroish),
    ))
    fraction = draw(st.one_of(st.just(""), _digits.map("." .__add__),
                              _zeroish.map("." .__add__),
                              st.builds(lambda d, z: "." + d + z, _digits, _zeroish)))
    exponent = draw(st.one_of(
        st.just(""),
        st.builds(lambda e, s, d: e + s + d, st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
                  st.text("0123456789", min_size=1, max_size=3)),
    ))
    return sign + integer_part + fraction + exponent


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(CASES), number_literals())
def test_accepts_exactly_the_promised_literals(case, text):
    """Sound (every accepted literal is valid) and complete as promised, on random literals."""
    assert JSON_NUMBER.fullmatch(text)
    accepted = _accepts(_dfa(case), text)
    if accepted:
        assert _satisfies(_value(text), case), (case, text)
    assert accepted == _promised(text, case), (case, text)


_decimals = st.one_of(
    st.integers(-30, 30).map(str),
    st.builds(lambda n, e: str(Decimal(n).scaleb(e)), st.integers(-3000, 3000),
              st.integers(-4, 2)),
    st.sampled_from(["0", "-0", "0.5", "-0.5", "1e-3", "1e2", "-1e2", "2.50"]),
)
_steps = st.sampled_from(["0.5", "0.01", "2", "3", "10", "0.25", "1", "5", "100", "0.2", "6",
                          "1.5", "16", "0.125", "40", "0.3", "12", "7", "0.75", "1e-3", "5e2"])
random_cases = st.builds(
    Case, integer=st.booleans(), lower=st.none() | _decimals, lower_exclusive=st.booleans(),
    upper=st.none() | _decimals, upper_exclusive=st.booleans(),
    multiple_of=st.lists(_steps, max_size=2).map(tuple),
)


@settings(max_examples=60, deadline=None)
@given(random_cases, st.lists(number_literals(), min_size=10, max_size=10))
def test_random_keywords_accept_exactly_the_promised_literals(case, texts):
    """Random combinations of keywords, bounds included as literals; steps whose divisibility
    cannot be expressed (7 without two bounds) must be refused naming multipleOf."""
    try:
        term = number_term(**case.kwargs())
    except UnsupportedKeyword as error:
        assert error.keyword == "multipleOf"
        assert _step(case).numerator % 7 == 0  # the only factor prime to 10 but 3 in _steps
        return
    dfa = LazyByteDFA(term)
    bounds = [b for b in (case.lower, case.upper) if b is not None]
    texts = texts + [format(Decimal(b), "f") for b in bounds]
    for text in texts:
        if JSON_NUMBER.fullmatch(text) is None:
            continue
        accepted = _accepts(dfa, text)
        if accepted:
            assert _satisfies(_value(text), case), (case, text)
        assert accepted == _promised(text, case), (case, text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CASES), st.text("0123456789.eE+-x ", max_size=10))
def test_never_accepts_a_non_number(case, text):
    if JSON_NUMBER.fullmatch(text) is None:
        assert not _accepts(_dfa(case), text), (case, text)


MALFORMED = ["", "-", "01", "-01", "00", "1.", ".5", "-.5", "+1", "1e", "1e+", "1E-", "--1",
             "e5", "1e1.5", "0x1", "1.5.2", " 1", "1 ", "Infinity", "NaN", "1_000", "5.e3"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_malformed_numbers_never_match(case):
    term = number_term(**case.kwargs())
    for text in MALFORMED:
        assert not _accepts(_dfa(case), text), text
        assert not reference.fullmatch(term, text), text


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reference_semantics_agree_with_the_dfa(case):
    """The brute-force oracle (lookaheads evaluated by definition) agrees with the DFA."""
    term = number_term(**case.kwargs())
    texts = ["0", "-0", "0.0", "0e3", "-0.00E-1", "3", "5", "5.0", "5.000", "6", "-1.5", "-1.50",
             "-1.49", "12.25", "12.250", "12.2501", "0.5", "1.5e1", "10e-1", "-3", "-3.0", "3e0",
             "-12", "100", "1e2", "2e-2", "0.01", "0.001", "0.0005", "7", "-28", "98", "16",
             "1.25", "12345", "1e-7", "0.0000001", "0.00000011", "-0.05", "0.3", "0.6", "1.5"]
    for text in texts:
        assert reference.fullmatch(term, text) == _accepts(_dfa(case), text), text


# ---------------------------------------------------------------------------- exhaustive


SMALL_CASES = [
    Case(lower="5"),
    Case(lower="5", lower_exclusive=True),
    Case(lower="-1.5", upper="12.25"),
    Case(lower="-1.5", lower_exclusive=True, upper="12.25", upper_exclusive=True),
    Case(integer=True, lower="-1.5", upper="12.25"),
    Case(integer=True, lower="-10", lower_exclusive=True, upper="250", upper_exclusive=True),
    Case(lower="-0.05", upper="0.5"),
    Case(multiple_of=("0.5",)),
    Case(multiple_of=("0.01",), lower="-3.5"),
    Case(multiple_of=("2",), upper="99"),
    Case(multiple_of=("3",)),
    Case(integer=True, multiple_of=("3",), lower="-100", upper="600"),
    Case(multiple_of=("10",)),
    Case(multiple_of=("0.25",), lower="-7.5", lower_exclusive=True),
    Case(multiple_of=("7",), lower="-300", upper="300"),
    Case(multiple_of=("0.04",), lower="0", upper="50"),
]


def _hundredths_checker(case: Case):
    """``_satisfies`` for the value ``v / 100``, on the integer ``v`` (fast enough to run on
    every small literal)."""
    lo = None if case.lower is None else _value(case.lower) * 100
    hi = None if case.upper is None else _value(case.upper) * 100
    steps = [Fraction(100)] if case.integer else []
    steps += [_value(m) * 100 for m in case.multiple_of]

    def check(v: int) -> bool:
        if lo is not None and (v < lo or (case.lower_exclusive and v == lo)):
            return False
        if hi is not None and (v > hi or (case.upper_exclusive and v == hi)):
            return False
        return all(v * s.denominator % s.numerator == 0 for s in steps)

    return check


@pytest.mark.parametrize("case", SMALL_CASES, ids=[_case_id(c) for c in SMALL_CASES])
def test_exhaustive_small_literals(case):
    """Every string ``-?\\d{1,3}(\\.\\d{1,2})?`` (leading zeros included): accepted iff it is
    JSON and its value is valid (without exponents the term is exact). The DFA is stepped along
    the strings' shared prefixes."""
    dfa = _dfa(case)
    valid = _hundredths_checker(case)

    def accepts(state: int) -> bool:
        return state >= 0 and bool(dfa.accepting[state])

    def step(state: int, char: str) -> int:
        return state if state < 0 else dfa.step(state, ord(char))

    for sign, n in itertools.product(("", "-"), range(1, 4)):
        for digits in itertools.product("0123456789", repeat=n):
            integer_part = "".join(digits)
            json_ok = integer_part == "0" or integer_part[0] != "0"
            scale = -1 if sign else 1
            state = dfa.start
            for char in sign + integer_part:
                state = step(state, char)
            whole = int(integer_part) * 100
            assert accepts(state) == (json_ok and valid(scale * whole)), sign + integer_part
            point = step(state, ".")
            for first in "0123456789":
                tenth = step(point, first)
                v = whole + 10 * int(first)
                assert accepts(tenth) == (json_ok and valid(scale * v)), (
                    f"{sign}{integer_part}.{first}")
                for second in "0123456789":
                    v2 = v + int(second)
                    assert accepts(step(tenth, second)) == (json_ok and valid(scale * v2)), (
                        f"{sign}{integer_part}.{first}{second}")


# ---------------------------------------------------------------------------- specific promises


def test_no_keywords_is_exactly_the_json_grammar():
    term = number_term(integer=False)
    dfa = LazyByteDFA(term)
    alphabet = "01-.eE+5"
    for n in range(7):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            assert _accepts(dfa, text) == (JSON_NUMBER.fullmatch(text) is not None), text


def test_boundaries_inclusive_and_exclusive():
    for text in ["5", "5.0", "5.000", "5.0000000000000000000"]:
        assert _accepts(_dfa(Case(lower="5")), text)
        assert not _accepts(_dfa(Case(lower="5", lower_exclusive=True)), text)
        assert _accepts(_dfa(Case(upper="5")), text)
        assert not _accepts(_dfa(Case(upper="5", upper_exclusive=True)), text)
    exclusive = _dfa(Case(lower="5", lower_exclusive=True))
    assert _accepts(exclusive, "5.0000000000000000000001")
    assert not _accepts(_dfa(Case(upper="5")), "5.0000000000000000000001")
    assert not _accepts(_dfa(Case(lower="5")), "4.9999999999999999999999")


def test_sign_only_bounds_keep_exponent_forms():
    at_least_zero = _dfa(Case(lower="0"))
    for text in ["0", "-0", "0e5", "-0.000E-7", "1e5", "2.5E-300", "0.0001e+2"]:
        assert _accepts(at_least_zero, text), text
    assert not _accepts(at_least_zero, "-1e-5")
    positive = _dfa(Case(lower="0", lower_exclusive=True))
    assert _accepts(positive, "1e-9")
    for text in ["0", "-0", "0e5", "0.00E-1", "-1e5"]:
        assert not _accepts(positive, text), text
    at_most_zero = _dfa(Case(upper="0"))
    for text in ["-0", "0.0e9", "-1e5", "-0.5E-2"]:
        assert _accepts(at_most_zero, text), text
    assert not _accepts(at_most_zero, "1e-300")


def test_cut_sides_drop_exponents_but_keep_zero():
    case = Case(lower="-1.5", upper="12.25")
    for text in ["0e7", "-0E-1", "12.25", "-1.5"]:
        assert _accepts(_dfa(case), text), text
    for text in ["1e1", "1.2e1", "-1e0"]:  # valid values, left out by design
        assert not _accepts(_dfa(case), text), text
    below = _dfa(Case(lower="-3"))  # every positive value is allowed: exponents there
    assert _accepts(below, "7e300") and _accepts(below, "-3") and not _accepts(below, "-3e0")


def test_integer_exponent_forms():
    dfa = _dfa(Case(integer=True))
    for text in ["1e2", "1.5e1", "1.50E+1", "100e-2", "120e-1", "0.05e2", "-7E0", "0e-9",
                 "3.0", "1.0e-0", "1" + "0" * 11 + "e-11", "1" + "0" * 15 + "e-11"]:
        assert _accepts(dfa, text), text
    for text in ["1.5", "1e-1", "1.25e1", "15e-1", "0.5e0", "1" + "0" * 15 + "e-16"]:
        assert not _accepts(dfa, text), text
    # The shift limit: 10 significant fraction digits with an exponent still work, 11 do not.
    ten = "1." + "0" * 9 + "1"
    assert _accepts(dfa, ten + "e10") and not _accepts(dfa, ten + "e9")
    assert not _accepts(dfa, "1." + "0" * 10 + "1e11")
    # Left out by design: more than 11 trailing zeros, taken back by an exponent below -11.
    assert not _accepts(dfa, "1" + "0" * 15 + "e-15")


def test_large_and_tiny_bounds():
    tiny = _dfa(Case(lower="1e-30", lower_exclusive=True))
    assert _accepts(tiny, "0." + "0" * 29 + "11")
    assert not _accepts(tiny, "0." + "0" * 29 + "1")
    assert not _accepts(tiny, "0." + "0" * 30 + "9")
    assert _accepts(tiny, "1e-300") is False  # a cut side has no exponent forms
    big = _dfa(Case(lower="12345678901234567890.25"))
    assert _accepts(big, "12345678901234567890.25")
    assert _accepts(big, "12345678901234567890.2500")
    assert not _accepts(big, "12345678901234567890.2499999")
    assert _accepts(big, "12345678901234567891")
    assert _accepts(big, "99999999999999999999999999")
    assert not _accepts(big, "9999999999999999999")
    huge = _dfa(Case(integer=True, upper="1e18", upper_exclusive=True))
    assert _accepts(huge, "999999999999999999") and _accepts(huge, "-" + "9" * 30)
    assert not _accepts(huge, "1000000000000000000")
    assert not _accepts(huge, "1000000000000000000.0")
    assert not _accepts(huge, "999999999999999999.5")


def test_multiple_of_combinations():
    halves = _dfa(Case(multiple_of=("0.5",)))
    for text in ["0.5", "1.50", "-2", "3.0", "1e3", "2.5e1", "0.05e2", "-0"]:
        assert _accepts(halves, text), text
    for text in ["0.25", "1.51", "0.05", "2.55e1"]:
        assert not _accepts(halves, text), text
    # Left out by design: the exponent alone does not make these multiples, the digit 5 does.
    assert not _accepts(halves, "0.05e1") and not _accepts(halves, "5e-1")
    hundreds = _dfa(Case(integer=True, multiple_of=("100",), lower="0"))
    assert _accepts(hundreds, "0") and _accepts(hundreds, "1200") and _accepts(hundreds, "1e5")
    assert not _accepts(hundreds, "1250") and not _accepts(hundreds, "50")
    sixteen = _dfa(Case(multiple_of=("16",)))
    for n in range(-200, 2000, 7):
        assert _accepts(sixteen, str(n)) == (n % 16 == 0), n
    threes = _dfa(Case(multiple_of=("3",)))
    for n in range(-300, 3000, 11):
        assert _accepts(threes, str(n)) == (n % 3 == 0), n
        assert _accepts(threes, f"{n}.000") == (n % 3 == 0), n
    assert _accepts(threes, "1.2e1") and not _accepts(threes, "1.3e1")
    assert _accepts(threes, "-123456789012345678901234567890")
    assert not _accepts(threes, "123456789012345678901234567891")


def test_lookahead_intersection_works_inside_a_larger_term():
    """The divisibility lookahead ends at a non-number character, not at the end of the text."""
    inner = number_term(integer=False, multiple_of=[Decimal(3)])
    array = Seq((literal("["), inner, literal(","), inner, literal("]")))
    dfa = LazyByteDFA(array)
    assert _accepts(dfa, "[12,3e1]") and _accepts(dfa, "[-0.0,9]")
    assert not _accepts(dfa, "[12,4]") and not _accepts(dfa, "[13,3]")
    assert reference.fullmatch(array, "[12,3e1]") and not reference.fullmatch(array, "[13,3]")


def test_empty_ranges_are_nothing():
    d = Decimal
    assert number_term(integer=False, lower=d(5), upper=d(3)) == NOTHING
    assert number_term(integer=False, lower=d(5), upper=d(5), upper_exclusive=True) == NOTHING
    assert number_term(integer=True, lower=d("1.2"), upper=d("1.8")) == NOTHING
    assert number_term(integer=True, lower=d(1), lower_exclusive=True, upper=d(2),
                       upper_exclusive=True) == NOTHING
    assert number_term(integer=False, multiple_of=[d(10)], lower=d(1), upper=d(9)) == NOTHING
    assert number_term(integer=False, multiple_of=[d(11)], lower=d(1), upper=d(10)) == NOTHING
    assert number_term(integer=False, lower=d(0), upper=d(0)) != NOTHING


@pytest.mark.parametrize("multiple_of,bounds", [
    (["7"], {}),
    (["7"], {"lower": "0"}),
    (["11"], {"lower": "0", "upper": "1000000"}),
    (["0.13"], {}),
    (["64"], {}),
    (["3", "9"], {"upper": "5"}),
])
def test_unsupported_steps_are_refused(multiple_of, bounds):
    kwargs = {k: Decimal(v) for k, v in bounds.items()}
    with pytest.raises(UnsupportedKeyword) as caught:
        number_term(integer=False, multiple_of=[Decimal(m) for m in multiple_of], **kwargs)
    assert caught.value.keyword == "multipleOf"
    assert "multipleOf" in str(caught.value) and multiple_of[-1] in str(caught.value)


def test_refused_steps_with_few_multiples_are_listed():
    """multipleOf 7 between -30 and 100 is in CASES and checked exhaustively; check 64 too."""
    dfa = LazyByteDFA(number_term(integer=True, multiple_of=[Decimal(64)],
                                  lower=Decimal(-200), upper=Decimal(1000)))
    for n in range(-300, 1100):
        assert _accepts(dfa, str(n)) == (n % 64 == 0 and -200 <= n <= 1000), n
    assert _accepts(dfa, "128.00") and _accepts(dfa, "0e4") and not _accepts(dfa, "1.28e2")


def test_invalid_keyword_values():
    with pytest.raises(SchemaError):
        number_term(integer=False, multiple_of=[Decimal(0)])
    with pytest.raises(SchemaError):
        number_term(integer=False, multiple_of=[Decimal(-2)])
    with pytest.raises(SchemaError):
        number_term(integer=False, lower=Decimal("NaN"))
