"""The regex front end (structgen.sources.regex) against Python's ``re`` and ``unicodedata``.

The claim, for a pattern P with flags F (``re.compile(P, F)`` succeeding without a FutureWarning)
and any string s without surrogates, where ours(s) = reference.fullmatch(parse_regex(P, F), s):

* soundness, always: ours(s) implies re.fullmatch(P, s, F);
* equality, ours(s) == bool(re.fullmatch(P, s, F)), whenever
  - P uses none of the escapes \\d \\D \\w \\W \\s \\S, or
  - the pattern is in ASCII mode (re.ASCII or (?a)), or
  - s is ASCII and has none of \\x1c-\\x1f (Python's Unicode \\s matches those separators, our
    ASCII \\s does not; that is the only ASCII-visible effect of our subset rule for classes).

Python's ``re`` has no \\p{..} and no set operations: those are checked against unicodedata and
against set algebra on the operands' own (re-checked) sets.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import unicodedata
import warnings

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from structgen.errors import RegexError, UnsupportedRegex
from structgen.grammar.charset import CharSet
from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term
from structgen.sources.regex import parse_regex
from structgen.testing.reference import fullmatch
from structgen.testing.schema_suite import DATA_DIR

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# ---------------------------------------------------------------------------------------------
# Helpers


@functools.cache
def all_code_points() -> str:
    """Every code point, surrogates included, so a string index is a code point."""
    return "".join(map(chr, range(0x110000)))


def python_charset(pattern: str, flags: int = 0) -> CharSet:
    """The exact set of single characters ``re`` matches with a one-character pattern."""
    runs = re.finditer(f"(?:{pattern})+", all_code_points(), flags)
    return CharSet.of((m.start(), m.end() - 1) for m in runs)


def charset_of(term: Term) -> CharSet:
    """The set of one-character strings a single-character term matches."""
    if isinstance(term, Chars):
        return term.charset
    assert isinstance(term, Alt), term
    result = CharSet(())
    for item in term.items:
        result |= charset_of(item)
    return result


def subterms(term: Term):
    """Every node of a term."""
    stack = [term]
    while stack:
        t = stack.pop()
        yield t
        if isinstance(t, (Seq, Alt)):
            stack.extend(t.items)
        elif isinstance(t, Repeat):
            stack.append(t.item)
        elif isinstance(t, Look):
            stack.append(t.body)


def uses_class_escapes(pattern: str) -> bool:
    """Whether ``pattern`` contains one of \\d \\D \\w \\W \\s \\S (escape-aware)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if pattern[i + 1 : i + 2] in set("dDwWsS"):
                return True
            i += 2
        else:
            i += 1
    return False


ASCII_SEPARATORS = frozenset("\x1c\x1d\x1e\x1f")
ASCII_CLAIM = CharSet.of([(0, 0x7F)]) - CharSet.chars("".join(ASCII_SEPARATORS))


def equality_claimed(pattern: str, compiled: re.Pattern, s: str) -> bool:
    """The module docstring's condition for ours(s) == re's answer."""
    if not uses_class_escapes(pattern) or compiled.flags & re.ASCII:
        return True
    return s.isascii() and not ASCII_SEPARATORS & set(s)


def has_surrogate(s: str) -> bool:
    """Lone surrogates are outside every structgen alphabet (and not UTF-8 encodable)."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def check_against_re(pattern: str, flags: int, term: Term, s: str) -> None:
    """Soundness always; equality where the module docstring claims it."""
    compiled = re.compile(pattern, flags)
    ours = fullmatch(term, s)
    theirs = compiled.fullmatch(s) is not None
    assert not ours or theirs, f"{pattern!r} accepts {s!r}, which re rejects"
    if equality_claimed(pattern, compiled, s):
        assert ours == theirs, f"{pattern!r} rejects {s!r}, which re accepts"


# ---------------------------------------------------------------------------------------------
# Realistic patterns: languages compared with re on hypothesis-drawn strings.

SEMVER = (
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)
CORPUS = [
    # dates and times
    (r"\d{4}-\d{2}-\d{2}", 0),
    (r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", 0),
    (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", 0),
    (r"([01]?\d|2[0-3]):[0-5]\d", 0),
    # emails, phone numbers, identifiers, numbers
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", 0),
    (r"[\w.+-]+@[\w-]+(\.[\w-]+)+", 0),
    (r"\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}", 0),
    (r"\+?\d{1,3}[\s-]?\(?\d{1,4}\)?([\s-]?\d{2,4}){2,3}", 0),
    (r"[A-Za-z_][A-Za-z0-9_]*", 0),
    (r"[^\W\d]\w*", 0),
    (r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?", 0),
    (r"[+-]?(\d+\.?\d*|\.\d+)", 0),
    # IPv4, UUID, URLs, hex colours, semver
    (r"((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)", 0),
    (r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE),
    (r"https?://[\w.-]+(:\d{1,5})?(/[\w./%-]*)*(\?[\w=&%-]*)?(#\w*)?", 0),
    (r"#(?:[0-9a-fA-F]{3}){1,2}", 0),
    (SEMVER, 0),
    # nested and bounded quantifiers, lazy forms, braces that are literals
    (r"(a|b{2,3}){1,4}c?", 0),
    (r"((ab)*c)+d{0,2}", 0),
    (r"(x?){3,}y", 0),
    (r"(?:a{2}){2,3}?b*?", 0),
    (r"a{,3}b{2,}c{1}d{0}", 0),
    (r"x{}y{,}z{a", 0),
    # alternations of literals, groups
    (r"cat|category|dog|", 0),
    (r"(?:yes|no|maybe)!*", 0),
    (r"(?P<word>foo|bar)(?#a comment)(baz)?", 0),
    # classes with escapes
    (r"[\[\]\\^-]+", 0),
    (r"[]a-]+[^]x]", 0),
    (r"[\t\n\x20]*[^\s\d]+", 0),
    (r"[\x41-\x5A\u00e0-\u00ff\N{GREEK SMALL LETTER ALPHA}\0\101]+", 0),
    (r"[.*+?|(){}]\.\*", 0),
    # anchors and word boundaries
    (r"^abc$", 0),
    (r"^\w+\s*$", re.MULTILINE),
    (r"\Aab\Z|\Ac\n?\Z", 0),
    (r"(?m)^a+$\n^b$", 0),
    (r"\bfoo\b.*", 0),
    (r".*\Bx\B.*", 0),
    (r"\b|\B", 0),
    (r"a$\n?", 0),
    # lookarounds
    (r"^(?=.*[A-Z])(?=.*\d)[A-Za-z\d]{8,}$", 0),
    (r"^(?!.*--)[a-z-]+$", 0),
    (r"(?<=a)b|a(?<!a)c|^x", 0),
    (r"\w+(?<!_)(?<![.])", 0),
    (r"(?<=\d{2})x|ab(?=c)c|(?!a)\w", 0),
    (r"(?:(?!ab).)*", re.DOTALL),
    (r"(?!\d)\w+(?<!\s)", 0),
    (r"(?:(?!\d).)+(?<![^\W])\S", 0),
    (r"[^\W\d_]+(?!\s)", 0),
    # inline and scoped flags, verbose mode
    (r"(?i)hello world", 0),
    (r"(?i:ab)c(?-i:d)", re.IGNORECASE),
    (r"(?s:.)\n.", 0),
    (r"(?x) \d{3} [-\ ] \d{4}  # a phone number", 0),
    (r"\d+ \# [a-z]+ # digits, a hash, letters", re.VERBOSE),
    # IGNORECASE with non-ASCII letters
    (r"straße|STRASSE", re.IGNORECASE),
    (r"[à-ÿ]+ǅ", re.IGNORECASE),
    (r"(?i)[k-s]ſ\u212a", 0),
    (r"(?i)σ+|ß|\u0130", 0),
    (r"(?ia)[a-zé]+", 0),
    # ASCII mode
    (r"\w+\s\d\b", re.ASCII),
]

SPECIALS = "aZ09 _-.\n\téÉßẞſK\u212aİıσςΣ٣\u00a0\x1c\u2028"


def alphabet_for(pattern: str) -> str:
    """Characters relevant to a pattern: its own, their case variants, and awkward extras."""
    chars = set(SPECIALS)
    for c in pattern:
        if c.isprintable() or c in "\n\t":
            chars.update((c, c.lower()[0], c.upper()[0]))
    return "".join(sorted(chars))


@st.composite
def mutated(draw, positives, alphabet):
    """A near miss: a positive with one character inserted, removed or replaced."""
    s = draw(positives)
    i = draw(st.integers(0, len(s)))
    c = draw(st.sampled_from(alphabet))
    op = draw(st.sampled_from(["insert", "delete", "replace"]))
    if op == "insert":
        return s[:i] + c + s[i:]
    if op == "delete":
        return s[:i] + s[i + 1 :]
    return s[:i] + c + s[i + 1 :]


@functools.cache
def strings_for(pattern: str, flags: int):
    """Positives from hypothesis.from_regex, random strings, and mutated positives."""
    alphabet = alphabet_for(pattern)
    positives = st.from_regex(re.compile(pattern, flags), fullmatch=True).map(lambda s: s[:40])
    return st.one_of(
        positives,
        st.text(alphabet=alphabet, max_size=24),
        mutated(positives, alphabet),
    ).filter(lambda s: not has_surrogate(s))


@functools.cache
def parsed(pattern: str, flags: int) -> Term:
    """parse_regex, once per corpus entry."""
    return parse_regex(pattern, flags)


@pytest.mark.parametrize(("pattern", "flags"), CORPUS, ids=[p for p, _ in CORPUS])
@settings(SETTINGS, max_examples=80)
@given(data=st.data())
def test_corpus_language_agrees_with_re(pattern, flags, data):
    s = data.draw(strings_for(pattern, flags))
    check_against_re(pattern, flags, parsed(pattern, flags), s)


def test_corpus_is_accepted_by_re_without_warnings():
    for pattern, flags in CORPUS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(pattern, flags)


# ---------------------------------------------------------------------------------------------
# Single-character constructs: exact sets over every code point.

EXACT, SUBSET = True, False
SINGLE_CHARACTER = [
    (r".", 0, EXACT),
    (r".", re.DOTALL, EXACT),
    (r"\d", 0, SUBSET),
    (r"\D", 0, EXACT),
    (r"[^\d]", 0, EXACT),
    (r"[^\D]", 0, SUBSET),
    (r"\w", 0, SUBSET),
    (r"\W", 0, EXACT),
    (r"[^\w]", 0, EXACT),
    (r"[^\W]", 0, SUBSET),
    (r"\s", 0, SUBSET),
    (r"\S", 0, EXACT),
    (r"[^\S]", 0, SUBSET),
    (r"[^\d\W]", 0, SUBSET),
    (r"[\d\s_x-z]", 0, SUBSET),
    (r"\w", re.ASCII, EXACT),
    (r"[^\W\d]", re.ASCII, EXACT),
    (r"\S", re.ASCII, EXACT),
    (r"\w", re.IGNORECASE, SUBSET),
    (r"[^\W]", re.IGNORECASE, SUBSET),
    (r"k", re.IGNORECASE, EXACT),
    (r"[a-z]", re.IGNORECASE, EXACT),
    (r"[^a-z]", re.IGNORECASE, EXACT),
    (r"[^k]", re.IGNORECASE | re.ASCII, EXACT),
    (r"ß", re.IGNORECASE, EXACT),
    (r"[ß]", re.IGNORECASE, EXACT),
    (r"ß|a", re.IGNORECASE, EXACT),
    (r"[^ß\d]", re.IGNORECASE, EXACT),
    (r"\U00010400", re.IGNORECASE, EXACT),
    (r"[\U00010400x]", re.IGNORECASE, EXACT),
    (r"\U00010400|x", re.IGNORECASE, EXACT),
    (r"(?:\U00010400)|[ab]", re.IGNORECASE, EXACT),
    (r"[^\U00010400]", re.IGNORECASE, EXACT),
    (r"[\U00010400-\U00010410x]", re.IGNORECASE, EXACT),
    (r"[A-\U00010450]", re.IGNORECASE, EXACT),
    (r"[A-\U00010450]", re.IGNORECASE | re.ASCII, EXACT),
    (r"[\u1f80-\u1fff\u0345]", re.IGNORECASE, EXACT),
    (r"[\ud7ff-\ue000]", 0, EXACT),
]


@pytest.mark.parametrize(
    ("pattern", "flags", "exact"),
    SINGLE_CHARACTER,
    ids=[f"{p}-{f}" for p, f, _ in SINGLE_CHARACTER],
)
def test_single_character_sets(pattern, flags, exact):
    ours = charset_of(parse_regex(pattern, flags))
    theirs = python_charset(pattern, flags)
    assert not (ours - theirs), "never a superset"
    if exact:
        assert ours == theirs
    else:
        assert ours & ASCII_CLAIM == theirs & ASCII_CLAIM


@functools.cache
def case_universe() -> str:
    """Every code point that a case mapping moves or produces: outside it IGNORECASE is exact
    matching, so comparing on it (plus the pattern's own characters) is complete."""
    chars = set()
    for c in all_code_points():
        for mapped in (c.lower(), c.upper(), c.title(), c.casefold()):
            if mapped != c:
                chars.add(c)
                chars.update(mapped)
    return "".join(sorted(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF))


@pytest.mark.parametrize("flags", [re.IGNORECASE, re.IGNORECASE | re.ASCII])
def test_ignorecase_literal_matches_re_for_every_cased_character(flags):
    universe = case_universe()
    universe_set = CharSet.chars(universe)
    for c in universe:
        pattern = re.escape(c)
        ours = charset_of(parse_regex(pattern, flags))
        theirs = CharSet.chars(re.compile(pattern, flags).findall(universe))
        assert ours & universe_set == theirs, repr(c)
        assert not ours - universe_set - CharSet.chars(c), repr(c)


interesting_code_points = st.one_of(
    st.integers(0, 0x600),
    st.integers(0x1E00, 0x2200),
    st.integers(0xFB00, 0xFF50),
    st.integers(0x10400, 0x10500),
    st.integers(0x1E900, 0x1E960),
)


@settings(SETTINGS, max_examples=60)
@given(
    lo=interesting_code_points,
    width=st.integers(0, 400),
    extra=interesting_code_points,
    negate=st.booleans(),
    ascii_mode=st.booleans(),
)
def test_ignorecase_classes_match_re(lo, width, extra, negate, ascii_mode):
    hi = min(lo + width, 0x10FFFF)
    if 0xD800 <= lo <= 0xDFFF or 0xD800 <= hi <= 0xDFFF or 0xD800 <= extra <= 0xDFFF:
        return
    pattern = f"[{'^' if negate else ''}\\U{lo:08x}-\\U{hi:08x}\\U{extra:08x}]"
    flags = re.IGNORECASE | (re.ASCII if ascii_mode else 0)
    ours = charset_of(parse_regex(pattern, flags))
    compiled = re.compile(pattern, flags)
    probes = set(case_universe())
    for cp in (lo - 1, lo, hi, hi + 1, extra - 1, extra, extra + 1):
        if 0 <= cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF:
            probes.add(chr(cp))
    for c in probes:
        assert (ord(c) in ours) == (compiled.fullmatch(c) is not None), (pattern, c)


# ---------------------------------------------------------------------------------------------
# Unicode properties against unicodedata.

GROUPS = {
    "L": "Lu Ll Lt Lm Lo",
    "LC": "Lu Ll Lt",
    "M": "Mn Mc Me",
    "N": "Nd Nl No",
    "P": "Pc Pd Ps Pe Pi Pf Po",
    "S": "Sm Sc Sk So",
    "Z": "Zs Zl Zp",
    "C": "Cc Cf Cs Co Cn",
}
CATEGORIES = [c for group in "LMNPSZC" for c in GROUPS[group].split()]
LONG_NAMES = {
    "Letter": "L",
    "Cased_Letter": "LC",
    "Uppercase_Letter": "Lu",
    "lowercase letter": "Ll",
    "Titlecase-Letter": "Lt",
    "Other_Letter": "Lo",
    "Mark": "M",
    "Nonspacing_Mark": "Mn",
    "Number": "N",
    "Decimal_Number": "Nd",
    "Letter_Number": "Nl",
    "Punctuation": "P",
    "Dash_Punctuation": "Pd",
    "Open_Punctuation": "Ps",
    "Symbol": "S",
    "Currency_Symbol": "Sc",
    "Math_Symbol": "Sm",
    "Separator": "Z",
    "Space_Separator": "Zs",
    "Other": "C",
    "Control": "Cc",
    "Format": "Cf",
    "Private_Use": "Co",
    "Unassigned": "Cn",
}


def category_predicate(code: str):
    """Membership in a general category or group, straight from unicodedata."""
    members = set(GROUPS.get(code, code).split())
    return lambda cp: unicodedata.category(chr(cp)) in members


def property_cases():
    """(pattern, predicate on code points) for each spelling of each supported property."""
    cases = []
    for code in CATEGORIES + list(GROUPS):
        pred = category_predicate(code)
        cases += [
            (rf"\p{{{code}}}", pred),
            (rf"\P{{{code}}}", lambda cp, pred=pred: not pred(cp)),
            (rf"\p{{^{code}}}", lambda cp, pred=pred: not pred(cp)),
            (rf"\p{{gc={code}}}", pred),
        ]
        if len(code) == 1:
            cases.append((rf"\p{code}", pred))
    for name, code in LONG_NAMES.items():
        cases += [
            (rf"\p{{{name}}}", category_predicate(code)),
            (rf"\p{{General_Category={name}}}", category_predicate(code)),
        ]
    cases += [
        (r"\p{Any}", lambda cp: True),
        (r"\p{ASCII}", lambda cp: cp < 128),
        (r"\P{ascii}", lambda cp: cp >= 128),
        (r"\p{Assigned}", lambda cp: unicodedata.category(chr(cp)) != "Cn"),
        (r"[\p{Lu}\p{Nd}_]", lambda cp: unicodedata.category(chr(cp)) in ("Lu", "Nd") or cp == 95),
        (r"[^\p{L}]", lambda cp: not category_predicate("L")(cp)),
    ]
    return cases


PROPERTY_CASES = property_cases()
scalar_values = st.integers(0, 0x10FFFF).filter(lambda cp: not 0xD800 <= cp <= 0xDFFF)


@settings(SETTINGS, max_examples=300)
@given(case=st.sampled_from(PROPERTY_CASES), cp=scalar_values)
def test_property_membership_matches_unicodedata(case, cp):
    pattern, predicate = case
    assert (cp in charset_of(parse_regex(pattern))) == predicate(cp), (pattern, hex(cp))


@pytest.mark.parametrize("case", PROPERTY_CASES[::3], ids=lambda case: case[0])
def test_property_range_boundaries_match_unicodedata(case):
    pattern, predicate = case
    charset = charset_of(parse_regex(pattern))
    for lo, hi in charset.ranges:
        for cp in (lo - 1, lo, hi, hi + 1):
            if 0 <= cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF:
                assert (cp in charset) == predicate(cp), (pattern, hex(cp))


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        (r"\p{Greek}", "Greek"),
        (r"x\p{Script=Han}", "Script=Han"),
        (r"[a\p{sc=Latn}]", "sc=Latn"),
        (r"\P{Alphabetic}", "Alphabetic"),
        (r"(?:\p{White_Space})", "White_Space"),
    ],
)
def test_properties_unicodedata_cannot_list_are_unsupported(pattern, name):
    with pytest.raises(UnsupportedRegex) as info:
        parse_regex(pattern)
    assert name in str(info.value)
    assert info.value.pos == pattern.index("\\")


# ---------------------------------------------------------------------------------------------
# Set operations against explicit set algebra.

UNIVERSE = [cp for cp in range(0x250)] + [0x3A3, 0x3C3, 0x660, 0x663, 0x1E9E, 0x212A]
OPERANDS = [
    "a-m",
    "aeiou",
    "k-z0-5",
    r"\d",
    r"\w",
    r"\s",
    r"\p{Lu}",
    r"\p{L}",
    "[^x-z]",
    "[_A-F]",
]


def operand_set(body: str) -> set[int]:
    """An operand's members in UNIVERSE, from ``re`` (ASCII mode: exact) or unicodedata."""
    if body.startswith(r"\p"):
        pred = category_predicate(body[3:-1])
        return {cp for cp in UNIVERSE if pred(cp)}
    pattern = body if body.startswith("[") else f"[{body}]"
    compiled = re.compile(pattern, re.ASCII)
    return {cp for cp in UNIVERSE if compiled.fullmatch(chr(cp))}


def apply(op: str, a: set[int], b: set[int]) -> set[int]:
    """The set operation a V1 operator names."""
    return {"||": a | b, "&&": a & b, "--": a - b, "~~": a ^ b}[op]


@settings(SETTINGS, max_examples=150)
@given(
    a=st.sampled_from(OPERANDS),
    b=st.sampled_from(OPERANDS),
    op=st.sampled_from(["||", "&&", "--", "~~"]),
    negate=st.booleans(),
)
def test_set_operations_match_set_algebra(a, b, op, negate):
    if negate and a.startswith("["):
        return  # "[^[" is re's negated class containing "[" (no warning): not set syntax
    pattern = f"[{'^' if negate else ''}{a}{op}{b}]"
    expected = apply(op, operand_set(a), operand_set(b))
    if negate:
        expected = set(UNIVERSE) - expected
    charset = charset_of(parse_regex(pattern, re.ASCII))
    assert {cp for cp in UNIVERSE if cp in charset} == expected, pattern


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # implicit union binds tightest, then --, &&, ~~, || (the regex module's V1 order)
        (r"[[x]ab--a-b]", lambda S: (S("x") | S("ab")) - S("a-b")),
        (r"[a-c--b&&b-c]", lambda S: (S("a-c") - S("b")) & S("b-c")),
        (r"[a-c||x--c]", lambda S: S("a-c") | (S("x") - S("c"))),
        (r"[a-e~~c-g&&d]", lambda S: S("a-e") ^ (S("c-g") & S("d"))),
        (r"[a-c~~b||b]", lambda S: (S("a-c") ^ S("b")) | S("b")),
        (r"[[a-z][0-9]]", lambda S: S("a-z") | S("0-9")),
        (r"[[a-z]--[aeiou]]", lambda S: S("a-z") - S("aeiou")),
        (r"[\p{L}&&[^a-z]]", lambda S: S(r"\p{L}") & (set(UNIVERSE) - S("a-z"))),
        (r"[^a-f--[^c-z]]", lambda S: set(UNIVERSE) - (S("a-f") - S("[^c-z]"))),
    ],
)
def test_set_operation_precedence_and_nesting(pattern, expected):
    charset = charset_of(parse_regex(pattern, re.ASCII))
    assert {cp for cp in UNIVERSE if cp in charset} == expected(operand_set)


SET_EXPRESSIONS = {
    r"[\w--\d]": lambda S: S["w"] - S["d"],
    r"[^\w&&[^\s]]": lambda S: S["any"] - (S["w"] & (S["any"] - S["s"])),
    r"[\W~~\d]": lambda S: (S["W"] - S["d"]) | (S["d"] - S["W"]),
    r"[[^\S]||\D]": lambda S: (S["any"] - S["S"]) | S["D"],
    r"[\p{Nd}--\d]": lambda S: S["Nd"] - S["d"],
    r"[\p{Nd}~~\d]": lambda S: (S["Nd"] - S["d"]) | (S["d"] - S["Nd"]),
    r"[\p{N}&&\D]": lambda S: S["N"] & S["D"],
}


@functools.cache
def exact_sets() -> dict[str, CharSet]:
    """Python's exact escape classes (from re) and two categories (checked above)."""
    sets = {e: python_charset("\\" + e) for e in "dDwWsS"}
    sets.update(Nd=charset_of(parse_regex(r"\p{Nd}")), N=charset_of(parse_regex(r"\p{N}")))
    sets["any"] = CharSet.of([(0, 0x10FFFF)])
    return sets


@pytest.mark.parametrize("pattern", list(SET_EXPRESSIONS))
def test_set_operations_stay_under_unicode_semantics(pattern):
    """Without re.ASCII the operands' Unicode meaning is the reference: never more than it,
    and equal on ASCII (minus the separators)."""
    charset = charset_of(parse_regex(pattern))
    evaluated = SET_EXPRESSIONS[pattern](exact_sets())
    assert not charset - evaluated
    assert charset & ASCII_CLAIM == evaluated & ASCII_CLAIM


CLASS_PIECES = ["a", "b", "-", "&", "~", "|", "[", "]", "^", "\\]", "\\[", "\\d", "x-z", ":"]


@settings(SETTINGS, max_examples=300)
@given(body=st.lists(st.sampled_from(CLASS_PIECES), min_size=1, max_size=6).map("".join))
def test_classes_without_future_warning_keep_re_meaning(body):
    """Set syntax is read only where Python warns: elsewhere a class means what re says."""
    pattern = f"[{body}]"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            re.compile(pattern, re.ASCII)
        except re.error:
            with pytest.raises(RegexError):
                parse_regex(pattern, re.ASCII)
            return
    if any(issubclass(w.category, FutureWarning) for w in caught):
        return
    term = parse_regex(pattern, re.ASCII)
    for s in ["", "a", "b", "-", "&", "[", "]", "x", "5", ":", "^", "a]", "[]", "b]", "]]"]:
        assert fullmatch(term, s) == (re.fullmatch(pattern, s, re.ASCII) is not None), (pattern, s)


def test_posix_classes_are_unsupported():
    with pytest.raises(UnsupportedRegex, match="POSIX") as info:
        parse_regex("x[[:alpha:]]")
    assert info.value.pos == 2


# ---------------------------------------------------------------------------------------------
# Errors: positions like re.error, and unsupported constructs named.

PYTHON_ERRORS = [
    "(",
    "(a",
    "((a)",
    "a(b(c)",
    "a)",
    ")",
    "a|b)",
    "[a",
    "[",
    "[]",
    "[^]",
    "x[z-a]",
    r"[\d-z]",
    r"[a-\w]",
    r"[\x7a-a]",
    "a{3,2}",
    "a{99999999999}",
    "a{" + "9" * 5000 + "}",
    r"\q",
    r"ab\x4",
    r"\u12",
    r"\U0011ffff",
    r"\N{NOT A CHARACTER NAME}",
    r"\N",
    r"\N{",
    r"\N{}",
    r"\N{LATIN",
    "*",
    "a**",
    "a|*",
    "(*)",
    "^*",
    r"\b+",
    "a{2}{3}",
    "a*?*",
    "a{1,2}??",
    "(?",
    "(?z)",
    "(?P",
    "(?Px)",
    "(?P<>a)",
    "(?P<1a>x)",
    "(?P<a",
    "(?P<a>x)(?P<a>y)",
    "(?P=b)",
    "(?P<a>(?P=a))",
    "(?#abc",
    "(?i-i:a)",
    "(?-:a)",
    "(?i",
    "(?i-",
    "(?i-s",
    "(?L)",
    "(?au)",
    "(?a-a:b)",
    "(?-u:b)",
    "(?t:b)",
    "a(?i)",
    "(?:a(?i))",
    "x|(?i)y",
    "(?i)(?#c)a(?s)",
    r"\1",
    r"(a)\2",
    r"(a\1)",
    r"\400",
    r"[\400]",
    r"[\8]",
    r"[\A]",
    "a\\",
    "(?<=a",
    "(?<",
    "(?'n'a)",
    r"\k",
    r"\g<1>",
]


@pytest.mark.parametrize("pattern", PYTHON_ERRORS)
def test_rejected_like_re_at_the_same_position(pattern):
    with pytest.raises((re.error, OverflowError, ValueError)) as python:
        re.compile(pattern)
    with pytest.raises(RegexError) as ours:
        parse_regex(pattern)
    assert not isinstance(ours.value, UnsupportedRegex)
    if isinstance(python.value, re.error):
        assert ours.value.pos == python.value.pos, (str(python.value), str(ours.value))


def test_flag_argument_errors():
    with pytest.raises(RegexError):
        parse_regex("a", re.LOCALE)
    with pytest.raises(RegexError):
        parse_regex("a", re.ASCII | re.UNICODE)
    with pytest.raises(RegexError):
        parse_regex("(?u)a", re.ASCII)
    with pytest.raises(RegexError):
        parse_regex("a", 1 << 20)


UNSUPPORTED = [
    ("(?:ab)*+", "*+", "possessive quantifier"),
    ("a(bc){2,3}+c", "{2,3}+", "possessive quantifier"),
    ("(x|y)?+", "?+", "possessive quantifier"),
    ("(?>ab)c", "(?>", "atomic group"),
    ("(?>a*?)b", "(?>", "atomic group"),
    ("(?>a|b)", "(?>", "atomic group"),
    ("(a)\\1", "\\1", "backreference"),
    ("(?P<n>a)(?P=n)", "(?P=", "backreference"),
    ("(?P<n>a)\\k<n>", "\\k", "backreference"),
    ("(a)(?(1)b|c)", "(?(", "conditional"),
    ("(?R)", "(?R", "recursion"),
    ("a(?1)", "(?1", "recursion"),
    ("(?P<n>a)(?P>n)", "(?P>", "recursion"),
    ("(?t)a", None, "TEMPLATE"),
    ("a(?<=\\ba)", "(?<=", "a lookaround or anchor inside a lookbehind"),
    ("x(?<!(?=y)x)", "(?<!", "a lookaround or anchor inside a lookbehind"),
]


def assert_takes_what_re_match_takes(pattern: str, alphabet: str, length: int,
                                     flags: int = 0) -> None:
    """With ``first_match``, every text over ``alphabet`` up to ``length`` characters is
    matched in full exactly when ``re.match`` takes all of it."""
    term = parse_regex(pattern, flags, first_match=True)
    for n in range(length + 1):
        for letters in itertools.product(alphabet, repeat=n):
            text = "".join(letters)
            found = re.match(pattern, text, flags)
            assert fullmatch(term, text) == (found is not None and found.end() == len(text)), text


@pytest.mark.parametrize("pattern", [
    r"a*+", r"a++b", r"[ab]?+b", r"a{1,2}+a", r"x[^x]*+x", r"a{2}+", r"(?:b|a*+)a", r"a{,2}+b?",
    r"[ab]{2,}+", r"(?:a?+b)+", r"a*+(?=b)|ba", r"(?>a*)a", r"(?>[ab]+)b?", r"x(?>[^x]*)x",
    r"(?>a)b", r"(?>a{1,2})a", r"(?:(?>b?)a)+",
])
def test_possessive_quantifiers_of_one_character_never_give_back(pattern):
    """``c{m,n}+`` (or ``(?>c{m,n})``) takes the longest run of ``c`` it can and never gives
    any back, as ``re`` does (``a++a`` matches nothing; ``x[^x]*+x`` is every run between two
    ``x``): every text of up to five characters."""
    assert_takes_what_re_match_takes(pattern, "abx", 5)


@pytest.mark.parametrize(("pattern", "construct", "name"), UNSUPPORTED)
def test_unsupported_constructs_are_named_with_position(pattern, construct, name):
    with pytest.raises(UnsupportedRegex) as info:
        parse_regex(pattern)
    assert name in str(info.value)
    if construct is not None:
        assert info.value.pos == pattern.index(construct)


TOKENS = [
    "a", "b", "A", "1", "-", "_", "é", "ß", "\u212a", " ", "\n", "#", ",", "}", "]", "|",
    "(", ")", "(", ")", "[", "[^", "*", "+", "?", "{2}", "{1,3}", "{,2}", "{", "{3,1}",
    ".", "^", "$", "\\A", "\\Z", "\\b", "\\B", "\\d", "\\w", "\\s", "\\W", "\\D", "\\n",
    "\\x41", "\\u00e9", "\\0", "\\12", "\\1", "\\q", "\\", "\\8", "&&", "--",
    "(?:", "(?=", "(?!", "(?<=", "(?<!", "(?i)", "(?i:", "(?-i:", "(?s:", "(?m)", "(?x)",
    "(?a:", "(?P<n>", "(?P=n)", "(?#c)", "(?", "(?P", "(?<", "(?z", "*?", "+?",
]  # fmt: skip
PROBES = [
    "",
    "a",
    "b",
    "ab",
    "aa",
    "A",
    "1",
    "-",
    "a-b",
    "\n",
    "a\n",
    " ",
    "é",
    "É",
    "ß",
    "k",
    "bb",
]


@settings(SETTINGS, max_examples=1500)
@given(tokens=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8))
def test_random_patterns_agree_with_re(tokens):
    """Whatever re rejects is rejected (at re's position, outside our extensions), whatever it
    accepts is accepted or named unsupported, and the languages agree on probe strings."""
    pattern = "".join(tokens)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compiled = re.compile(pattern)
            python_error = None
        except (re.error, OverflowError, ValueError) as e:
            compiled, python_error = None, e
        warned = any(issubclass(w.category, FutureWarning) for w in caught)
    try:
        term = parse_regex(pattern)
    except UnsupportedRegex:
        return
    except RegexError as ours:
        if warned:
            return  # set syntax: our extension, checked above
        assert compiled is None, f"{pattern!r}: re accepts, we raised {ours}"
        extension = re.search(r"\(\?<[^=!]", pattern) or re.search(r"(?<!\\)(\\\\)*\\$", pattern)
        if isinstance(python_error, re.error) and not extension:
            assert ours.pos == python_error.pos, (str(python_error), str(ours))
        return
    if warned:
        return
    if compiled is None:
        # Only our extensions may be accepted: lookbehinds of any width, (?<name>...).
        assert "look-behind" in str(python_error) or "?<" in str(python_error), pattern
        return
    for s in PROBES:
        check_against_re(pattern, 0, term, s)


# ---------------------------------------------------------------------------------------------
# Structure, limits and speed.


@pytest.mark.parametrize("pattern", [r"a{0,100000}", r"(?:ab|c){5,2000000}", r"x{123456789,}"])
def test_large_bounds_stay_one_repeat(pattern):
    term = parse_regex(pattern)
    repeats = [t for t in subterms(term) if isinstance(t, Repeat)]
    assert len(repeats) == 1
    assert len(list(subterms(term))) < 10


@pytest.mark.parametrize(
    ("huge", "small"),
    [
        (r"(?:a|){1000000000}b", r"(?:a|){12}b"),
        (r"(?:ab){3,1000000}x", r"(?:ab){3,12}x"),
        (r"(?:a?b?){1000000,}c", r"(?:a?b?){12,}c"),
        (r"(?:(?=a)|b){999999}a", r"(?:(?=a)|b){11}a"),
        (r"(?:a{2}|b|){3,100000000}", r"(?:a{2}|b|){3,12}"),
    ],
)
def test_reference_matcher_handles_huge_bounds(huge, small):
    """On strings shorter than 10 the huge bound acts like ``small`` (re itself runs out of
    memory on some huge bounds, so it is asked about the small one)."""
    term = parse_regex(huge)
    for n in range(8):
        for s in {"a" * n, "ab" * (n // 2) + "x", "b" * n + "a", "a" * n + "c", "ba" * (n // 2)}:
            assert fullmatch(term, s) == bool(re.fullmatch(small, s)), s


@pytest.mark.parametrize(
    ("lazy", "greedy"),
    [(r"a*?b", r"a*b"), (r"(ab)+?", r"(ab)+"), (r"x??y", r"x?y"), (r"(?:q{3,}?)", r"(?:q{3,})")],
)
def test_lazy_quantifiers_have_the_greedy_language(lazy, greedy):
    assert parse_regex(lazy) == parse_regex(greedy)


@pytest.mark.parametrize("pattern", [r"^a", r"a$", r"\Aa\Z", r"\ba\B", r"(?m)^a$", r"(?=a)a(?<!b)"])
def test_anchors_are_kept_as_lookarounds(pattern):
    assert any(isinstance(t, Look) for t in subterms(parse_regex(pattern)))


def test_deep_nesting_parses_or_fails_cleanly():
    for depth in (200, 10000):
        for pattern in ("(" * depth + "a" + ")" * depth, "(?:a|" * depth + "b" + ")" * depth):
            try:
                term = parse_regex(pattern)
            except RegexError:
                assert depth > 200
                continue
            assert depth == 200
            assert fullmatch(term, "a") or fullmatch(term, "b")
    with pytest.raises(RegexError):
        parse_regex("[" * 10000 + "a" + "]" * 10000)


def test_long_patterns_keep_their_language():
    cases = [
        ("abcdefghij" * 500, ["abcdefghij" * 500, "abcdefghij" * 499]),
        ("|".join(f"word{i}" for i in range(1000)), ["word999", "word1000", "word"]),
        ("(?i)" + "Hello World [a-f0-9]{2}" * 200,
         ["hello world 0F" * 200, "Hello World 0g" * 200]),
    ]
    for pattern, samples in cases:
        term = parse_regex(pattern)
        for sample in samples:
            assert fullmatch(term, sample) == bool(re.fullmatch(pattern, sample)), sample[:20]


# ---------------------------------------------------------------------------------------------
# The ECMA-262 dialect (JSON Schema patterns). No JavaScript engine here: expectations come from
# the ECMA-262 grammar and semantics (u flag), from the JSON Schema Test Suite, and from Python's
# re on translations whose meaning is the same in both dialects.

SUITE = DATA_DIR / "json-schema-test-suite/tests"
ANY_STRING = Repeat(Chars(CharSet.of([(0, 0x10FFFF)])), 0, None)
LINE_TERMINATORS = "\n\r\u2028\u2029"
ECMA_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def ecma(pattern: str, flags: int = 0) -> Term:
    return parse_regex(pattern, flags, dialect="ecma")


def ecma_search(pattern: str, s: str) -> bool:
    """JSON Schema's ``pattern``: an unanchored search."""
    return fullmatch(Seq((ANY_STRING, ecma(pattern), ANY_STRING)), s)


def ecma_valid(pattern: str) -> bool:
    """Whether ``pattern`` is valid ECMA-262 syntax (an unsupported construct is still valid)."""
    try:
        ecma(pattern)
    except UnsupportedRegex:
        return True
    except RegexError:
        return False
    return True


def test_ecma_whitespace_is_whitespace_and_line_terminators_of_the_spec():
    """WhiteSpace = TAB VT FF ZWNBSP and the Space_Separator category; plus LineTerminator."""
    space_separators = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs"}
    spec = space_separators | set("\t\v\f\ufeff") | set(LINE_TERMINATORS)
    assert spec == set(ECMA_SPACE)
    assert charset_of(ecma(r"\s")) == CharSet.chars(ECMA_SPACE)
    assert charset_of(ecma(r"\S")) == ~CharSet.chars(ECMA_SPACE)
    assert charset_of(ecma(r"[^\s]")) == ~CharSet.chars(ECMA_SPACE)


ASCII_WORD = CharSet.of([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
ECMA_SETS = [
    (".", ~CharSet.chars(LINE_TERMINATORS)),
    (r"\d", CharSet.chars("0123456789")),
    (r"\D", ~CharSet.chars("0123456789")),
    (r"\w", ASCII_WORD),
    (r"\W", ~ASCII_WORD),
    (r"[\w-]", ASCII_WORD | CharSet.chars("-")),
    (r"[^\d\s]", ~(CharSet.chars("0123456789" + ECMA_SPACE))),
    ("[^]", CharSet.of([(0, 0x10FFFF)])),
    ("[]", CharSet(())),
    (r"\cA", CharSet.chars("\x01")),
    (r"\cj", CharSet.chars("\n")),
    (r"[\cZ]", CharSet.chars("\x1a")),
    (r"[\t\n\v\f\r]", CharSet.chars("\t\n\v\f\r")),
    (r"[\b]", CharSet.chars("\b")),
    (r"\0", CharSet.chars("\0")),
    (r"\x41", CharSet.chars("A")),
    (r"\u00e9", CharSet.chars("é")),
    (r"\u{1F600}", CharSet.chars("\U0001f600")),
    (r"\u{0000000041}", CharSet.chars("A")),
    (r"\uD83D\uDE00", CharSet.chars("\U0001f600")),
    (r"[\uD83D\uDE00-\uD83D\uDE4F]", CharSet.of([(0x1F600, 0x1F64F)])),
    (r"\uD83D", CharSet(())),
    (r"\/", CharSet.chars("/")),
    (r"[\-]", CharSet.chars("-")),
    (r"[a-c-e]", CharSet.chars("abc-e")),
    (r"[--a]", CharSet.of([(0x2D, 0x61)])),
    ("[[]", CharSet.chars("[")),
    (r"[\]\\^]", CharSet.chars("]\\^")),
    ("\U0001f600", CharSet.chars("\U0001f600")),
    ("\ud83d\ude00", CharSet.chars("\U0001f600")),
    (r"\p{Lu}", charset_of(parse_regex(r"\p{Lu}"))),
    (r"\p{Letter}", charset_of(parse_regex(r"\p{L}"))),
    (r"\P{gc=Decimal_Number}", ~charset_of(parse_regex(r"\p{Nd}"))),
    (r"\p{General_Category=punct}", charset_of(parse_regex(r"\p{P}"))),
    (r"\p{ASCII_Hex_Digit}", CharSet.chars("0123456789abcdefABCDEF")),
    (r"\p{Any}", CharSet.of([(0, 0x10FFFF)])),
    (r"\p{ASCII}", CharSet.of([(0, 0x7F)])),
]


@pytest.mark.parametrize(("pattern", "expected"), ECMA_SETS, ids=[p for p, _ in ECMA_SETS])
def test_ecma_single_character_sets(pattern, expected):
    assert charset_of(ecma(pattern)) == expected


@pytest.mark.parametrize("flags", [0, re.DOTALL])
def test_ecma_dot_and_dotall(flags):
    dot = charset_of(ecma(".", flags))
    assert dot == (CharSet.of([(0, 0x10FFFF)]) if flags else ~CharSet.chars(LINE_TERMINATORS))
    assert charset_of(ecma("(?s:.)")) == CharSet.of([(0, 0x10FFFF)])
    assert charset_of(ecma("(?-s:.)", re.DOTALL)) == ~CharSet.chars(LINE_TERMINATORS)


ECMA_SEARCHES = [
    # $ is the end of input only, ^ the start only
    ("a$", "a", True), ("a$", "a\n", False), ("^a", "\na", False), ("^a$", "a", True),
    ("^$", "", True), ("^$", "\n", False), ("a$|^b", "ba", True),
    # \b and \B use the ASCII word set; \B matches inside the empty string
    (r"\bé", "é", False), (r"\bfoo\b", "a foo.", True), (r"\bfoo\b", "afoo", False),
    (r"\Bfoo", "afoo", True), (r"^\B$", "", True), (r"\B", "a", False), (r"\bk", "\u212ak", True),
    # \d \w are ASCII, \s the spec's set
    (r"\d", "\u0663", False), (r"\w", "é", False), (r"^\s$", "\u00a0", True),
    (r"^\s$", "\x1c", False), (r"^\s$", "\u0085", False), (r"^\S$", "\u0085", True),
    # lookarounds, lookbehinds of any width
    (r"(?<=a+)b", "aab", True), (r"(?<=a+)b", "b", False), (r"(?<!x)y", "xy", False),
    (r"^(?=.*\d)(?=.*[a-z]).{4,}$", "ab12", True), (r"^(?=.*\d)(?=.*[a-z]).{4,}$", "abcd", False),
    (r"^(?!.*--)[a-z-]+$", "a-b", True), (r"^(?!.*--)[a-z-]+$", "a--b", False),
    # multiline flag spelled as a modifier, and line terminators beyond \n
    ("(?m:^b$)", "a\u2028b\rc", True), ("(?m:^b$)", "ab", False),
    # escapes and named groups
    (r"^\p{Letter}+$", "Hello", True), (r"^\p{Letter}+$", "π", True), (r"^\p{Letter}+$", "123", False),
    (r"^(?<year>\d{4})-(?<month>\d{2})$", "2024-05", True), (r"\u{1F600}", "x\U0001f600", True),
    (r"^.$", "\U0001f600", True), (r"^..$", "\U0001f600", False), (r"^\/$", "/", True),
    # duplicate names in different alternatives (ES2025)
    (r"^(?:(?<y>a)|(?<y>b))$", "b", True),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "text", "expected"), ECMA_SEARCHES)
def test_ecma_search_semantics(pattern, text, expected):
    assert ecma_search(pattern, text) == expected


ECMA_SYNTAX_ERRORS = [
    # Python-only syntax
    "(?P<name>x)", "(?P<n>a)(?P=n)", "(?#comment)a", "(?i)abc", "(?ims)abc", r"\Aab", r"ab\Z",
    "a{,3}", r"\N{DIGIT ONE}", r"\U0001F600", "(?a:x)", "(?x)a", "(?>a)", "a*+", "a++", "(?(1)a)",
    # u-mode strictness (an escaped ASCII symbol such as \- or \' is a literal: Annex B, and
    # what real schemas write; see test_ecma_identity_escapes_of_symbols_are_literals)
    r"\a", r"\e", r"\z", "a{", "{", "}", "]", "a{1", "x{2,1}", "a{1,2",
    r"[\1]", r"[\d-z]", r"[a-\d]", "[z-a]", r"\c", r"\c1", r"[\c_]", r"\x4", r"\xg0", r"\u12",
    r"\u{}", r"\u{110000}", r"\u{12", r"\00", r"\01", "^*", "$+", r"\b*", "(?=a)*", "(?<!a){2}",
    "a**", "a*??", "(", ")", "a)", "[", "[a", "\\", "(?", "(?<", "(?<>a)", "(?<1a>x)",
    "(?<a>x)(?<a>y)", r"(?<a>x)\k<b>", r"\k", r"\k<a", r"(a)\2", r"\p{letter}", r"\pL", r"\p{^L}",
    r"\p{gc=Foo}", r"\p{Foo}", r"\p{Lu=Yes}", r"\p{ASCII=Yes}", r"\p", r"\p{L", "(?ii:a)",
    "(?i-i:a)", "(?-:a)", "(?s-s:a)", "(?q:a)", "^(abc]", r"[\B]", r"[\k]",
]  # fmt: skip


@pytest.mark.parametrize("symbol", list("-_ '\"#%&,:;<=>@`~!"))
def test_ecma_identity_escapes_of_symbols_are_literals(symbol):
    assert ecma_search(f"^\\{symbol}$", symbol)
    assert ecma_search(f"^[\\{symbol}]$", symbol)
    assert not ecma_search(f"^\\{symbol}$", "\\" + symbol)


@pytest.mark.parametrize("pattern", ECMA_SYNTAX_ERRORS)
def test_ecma_syntax_errors(pattern):
    with pytest.raises(RegexError) as info:
        ecma(pattern)
    assert not isinstance(info.value, UnsupportedRegex)
    assert info.value.pos is not None and 0 <= info.value.pos <= len(pattern)


ECMA_UNSUPPORTED = [
    (r"(a)\1", "backreference", 3),
    (r"\1(a)", "backreference", 0),
    (r"(?<n>a)\k<n>", "backreference", 7),
    (r"\k<n>(?<n>a)", "backreference", 0),
    ("(?i:a)", "i modifier", 0),
    (r"\p{Script=Greek}", "script", 0),
    (r"\p{scx=Latn}", "script", 0),
    (r"\p{Alphabetic}", "binary property", 0),
    (r"[\p{White_Space}]", "binary property", 1),
]


@pytest.mark.parametrize(("pattern", "name", "pos"), ECMA_UNSUPPORTED)
def test_ecma_unsupported_constructs_are_named(pattern, name, pos):
    with pytest.raises(UnsupportedRegex) as info:
        ecma(pattern)
    assert name in str(info.value).lower()
    assert info.value.pos == pos


def test_ecma_syntax_errors_win_over_unsupported_constructs():
    """UnsupportedRegex means "valid but not enforceable": a later syntax error is reported."""
    for pattern in [r"(a)\1\q", r"\p{Script=Greek}(", r"(?i:a)]", r"\k<n>(?<n>a)\2"]:
        with pytest.raises(RegexError) as info:
            ecma(pattern)
        assert not isinstance(info.value, UnsupportedRegex), pattern


def test_ecma_flags():
    assert ecma_search("^b", "a\nb") is False
    assert fullmatch(Seq((ANY_STRING, ecma("^b$", re.MULTILINE), ANY_STRING)), "a\nb\rc")
    with pytest.raises(UnsupportedRegex):
        ecma("a", re.IGNORECASE)
    for flag in (re.VERBOSE, re.ASCII, re.LOCALE):
        with pytest.raises(RegexError):
            ecma("a", flag)
    assert ecma("a", re.UNICODE) == ecma("a")
    with pytest.raises(ValueError):
        parse_regex("a", dialect="perl")


def test_ecma_anchors_are_lookarounds_over_the_whole_input():
    assert ecma("^") == Look(Chars(CharSet.of([(0, 0x10FFFF)])), ahead=False, negate=True)
    assert ecma("$") == Look(Chars(CharSet.of([(0, 0x10FFFF)])), ahead=True, negate=True)


# ECMA tokens with Python equivalents of the same meaning: random patterns compared with re.
ECMA_TO_PYTHON = {
    "a": "a", "b": "b", "-": "-", "é": "é", "\U0001f600": "\U0001f600", " ": " ",
    ".": "[^\n\r\u2028\u2029]", "^": r"\A", "$": r"\Z",
    r"\d": "[0-9]", r"\D": "[^0-9]", r"\w": "[A-Za-z0-9_]", r"\W": "[^A-Za-z0-9_]",
    r"\s": "[" + ECMA_SPACE + "]", r"\S": "[^" + ECMA_SPACE + "]",
    r"\b": r"(?a:\b)", r"\B": r"(?:(?a:\B)|\A\Z)",
    "(": "(", ")": ")", "(?:": "(?:", "(?=": "(?=", "(?!": "(?!", "(?<=": "(?<=", "(?<!": "(?<!",
    "(?<n>": "(?P<n>", "|": "|", "*": "*", "+": "+", "?": "?", "{2}": "{2}", "{1,3}": "{1,3}",
    "{2,}": "{2,}", "*?": "*?", "[ab]": "[ab]", "[^a]": "[^a]", "[a-c]": "[a-c]",
    r"[\d]": "[0-9]", r"[^\w]": "[^A-Za-z0-9_]", r"\n": r"\n", r"\u00e9": "é", r"\x41": "A",
    r"\u{1F600}": "\U0001f600", r"\cJ": r"\n", r"\/": "/", r"\.": r"\.", "[^]": "(?s:.)",
    "[]": "(?!)",
}  # fmt: skip
ECMA_PROBES = ["", "a", "b", "ab", "aa", "ba", "abb", "\n", "a\n", " ", "é", "\u2028", "0", "00",
               "_", "\U0001f600", "a b", "-", "A", "a-b", "\u00a0", "\x1c", "aé"]  # fmt: skip


@settings(SETTINGS, max_examples=1500)
@given(tokens=st.lists(st.sampled_from(sorted(ECMA_TO_PYTHON)), min_size=1, max_size=7))
def test_ecma_random_patterns_agree_with_translations_to_re(tokens):
    """Where both dialects accept the token sequence, the languages agree on probe strings;
    ECMA-only failures (u-mode rules) must be RegexError, never a crash."""
    pattern = "".join(tokens)
    translated = "".join(ECMA_TO_PYTHON[t] for t in tokens)
    try:
        term = ecma(pattern)
    except RegexError:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = re.compile(translated)
    except (re.error, OverflowError):
        return  # e.g. a variable-width lookbehind, which Python lacks
    for s in ECMA_PROBES:
        assert fullmatch(term, s) == (compiled.fullmatch(s) is not None), (pattern, s)


# The JSON Schema Test Suite: pattern and patternProperties (string instances and property
# names, with a small validator for the other keywords these files use), and format "regex".


def suite_groups(draft: str, name: str) -> list[dict]:
    return json.loads((SUITE / draft / name).read_text())


def json_type(value) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    return {str: {"string"}, list: {"array"}, dict: {"object"}}[type(value)]


def validates(schema, instance) -> bool:
    """The keywords of pattern.json and patternProperties.json, with ECMA patterns as searches."""
    if isinstance(schema, bool):
        return schema
    ok = True
    for key, value in schema.items():
        if key == "pattern":
            ok &= not isinstance(instance, str) or ecma_search(value, instance)
        elif key == "patternProperties":
            if isinstance(instance, dict):
                for name, item in instance.items():
                    for pattern, sub in value.items():
                        if ecma_search(pattern, name):
                            ok &= validates(sub, item)
        elif key == "type":
            ok &= value in json_type(instance)
        elif key == "maximum":
            ok &= not {"number"} & json_type(instance) or instance <= value
        else:
            assert key == "$schema", f"the suite uses a keyword this test does not know: {key}"
    return ok


@pytest.mark.parametrize("draft", ["draft2020-12", "draft7"])
@pytest.mark.parametrize("name", ["pattern.json", "patternProperties.json"])
def test_ecma_agrees_with_the_json_schema_test_suite(draft, name):
    checked = 0
    for group in suite_groups(draft, name):
        for case in group["tests"]:
            expected = case["valid"]
            assert validates(group["schema"], case["data"]) == expected, case["description"]
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("draft", ["draft2020-12", "draft7"])
def test_ecma_syntax_agrees_with_the_suite_format_regex(draft):
    """format "regex": a string instance is valid iff it is an ECMA-262 regex."""
    folder = SUITE / draft / "optional" / "format"
    names = [n for n in ("regex.json", "ecmascript-regex.json") if (folder / n).exists()]
    assert "regex.json" in names
    checked = 0
    for name in names:
        for group in json.loads((folder / name).read_text()):
            for case in group["tests"]:
                if isinstance(case["data"], str):
                    assert ecma_valid(case["data"]) == case["valid"], (name, case["data"])
                    checked += 1
    assert checked >= 2


@pytest.mark.parametrize(("pattern", "order_skips"), [
    (r"a|ab", True), (r"(a|ab)+", True), (r"(?:x|xy|xyz)z?", True), (r"a(b|bc)*c", True),
    (r"<[^>]*>|[^|]+", True), (r"(?:a|ab)?b", True), (r"(a|ab){2,3}", True),
    (r"(?:x|xy){1,4}y", True), (r"(ab|a){2,3}b", False),
    (r"(a|ab)c", False), (r"(a|ab)(c|bcd)", False), (r"(?:a|b|ab)\b", False),
    (r"(in|int)(?![a-z])", False),
])
def test_alternatives_are_tried_in_order_like_re_match(pattern, order_skips):
    """With ``first_match``, an alternative is taken only where no earlier one leads to a
    match, as ``re.match`` tries them: ``a|ab`` never takes ``ab`` whole, ``a(b|bc)*c`` takes
    ``abc`` but not ``abcc``; where the rest decides (``(a|ab)c`` on ``abc``), a later one
    still is; in each round of a bounded repetition with the rounds still to come. Every text of up to five characters over the pattern's letters and one other;
    ``order_skips``: whether some full match is one that the order of trial skips."""
    term = parse_regex(pattern, first_match=True)
    alphabet = sorted({c for c in pattern if c.isalpha() or c in "<>|"} | {"x"})[:5]
    refused = 0
    for n in range(6):
        for letters in itertools.product(alphabet, repeat=n):
            text = "".join(letters)
            found = re.match(pattern, text)
            taken = found is not None and found.end() == len(text)
            assert fullmatch(term, text) == taken, text
            refused += not taken and re.fullmatch(pattern, text) is not None
    assert bool(refused) == order_skips


@settings(max_examples=120, deadline=None)
@given(words=st.lists(st.text("abAB", min_size=1, max_size=3), min_size=2, max_size=6),
       case=st.booleans(),
       rest=st.sampled_from(["", "b", "a?", "(?=b)", "[ab]b", "|x", "(?:bba|b)", "b+a"]))
@example(words=["a", "Ab", "b"], case=True, rest="")
@example(words=["ab", "a"], case=False, rest="(?:bba|b)")  # a longer word first
def test_word_lists_are_tried_in_order_like_re_match(words, case, rest):
    """Alternatives of fixed strings (told apart by their characters, not an automaton): a
    text is matched in full exactly when ``re.match`` takes all of it, case-insensitive or
    not, whatever follows the list. Every text of up to five characters."""
    pattern = f"(?:{'|'.join(words)}){rest}"
    assert_takes_what_re_match_takes(pattern, "abAx", 5, re.IGNORECASE if case else 0)


@settings(max_examples=80, deadline=None)
@given(branches=st.lists(st.sampled_from([r"a+", r"a+b", r"b*a", r"[ab]b", r"a?b+", r"(?:ab)+",
                                          r"a+ba", r"b|ab", r"a{2}b?", r"[ab]+a", r"ba*"]),
                         min_size=2, max_size=9),
       rest=st.sampled_from(["", "b", "a?", "(?=b)", "b+a"]))
@example(branches=[r"a+", r"b*a", r"[ab]b", r"a?b+", r"ba*", r"a+ba", r"[ab]+a", r"a+b"],
         rest="")  # few shadowing branches among many: found by halving the candidates
def test_patterned_alternatives_are_tried_in_order_like_re_match(branches, rest):
    """Alternatives that are no fixed strings, each decided against the earlier ones on
    automata (asked of groups of them, halved where one shadows): a text is matched in full
    exactly when ``re.match`` takes all of it. Every text of up to five characters."""
    pattern = f"(?:{'|'.join(f'(?:{b})' for b in branches)}){rest}"
    assert_takes_what_re_match_takes(pattern, "abx", 5)


@settings(max_examples=80, deadline=None)
@given(branches=st.lists(st.sampled_from(["a", "b", "[ab]", "[^a]", "[^b]", "x", "ab", "a|b"]),
                         min_size=2, max_size=5),
       repeat=st.sampled_from(["", "+", "*", "{2}", "{1,3}"]),
       rest=st.sampled_from(["", "b", "a?", "(?=b)", "x+"]))
def test_branches_within_earlier_ones_read_nothing_past_the_match(branches, repeat, rest):
    """One-character branches overlapping earlier ones (``([^a]| )+``, ``(DIGIT|\\w)*``)
    lose the characters the earlier ones take, and repeated branches go, instead of being
    guarded by a lookahead that reads past the match: still exactly what ``re.match`` takes
    whole, and no lookahead where the pattern has none. Every text of up to five
    characters."""
    pattern = f"(?:{'|'.join(f'(?:{b})' for b in branches)}){repeat}{rest}"
    assert_takes_what_re_match_takes(pattern, "abx", 5)
    if all(len(b) == 1 or b.startswith("[") for b in branches) and "(?" not in rest:
        term = parse_regex(pattern, first_match=True)
        assert not any(isinstance(node, Look) for node in subterms(term)), pattern


@pytest.mark.parametrize("pattern", [
    r"a+(b.*?c)?", r'".*?"', r"a+b*?", r"<c+?>|#", r".+?(?=;)", r"x(a.*?)b", r"(?:a.*?b)+c",
    r'".*?(?<!\\)(\\\\)*?"', r"a{2,4}?b", r"a*?(ab)?", r"(?:a+?b)*", r"(?:ab??)+c",
])
def test_lazy_quantifiers_stop_at_the_first_match_like_re_match(pattern):
    """With ``first_match``, a text is matched in full exactly when ``re.match`` takes all of
    it: a lazy quantifier stops where the rest of the pattern first matches (``".*?"`` at the
    first quote), greedy parts around it keep all their matches (``a+b*?`` takes ``aa``).
    Every text of up to six characters over the pattern's letters and one other."""
    alphabet = sorted({c for c in pattern if c.isalpha() or c in '"\\;<>#'} | {"x"})[:5]
    assert_takes_what_re_match_takes(pattern, "".join(alphabet), 6)

