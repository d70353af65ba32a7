"""structgen.sources.json_strings: decoded-string terms become exact JSON-text terms.

The claims, for a decoded term ``c`` and ``E = json_string_term(c)``:

* soundness: every text ``E`` matches is a JSON string literal (``json.loads`` reads it as a str
  with no lone surrogate) whose value ``c`` matches in full;
* completeness: every JSON encoding of every value ``c`` matches is matched by ``E``: raw
  characters, short escapes, ``\\u`` escapes in either case (mixed too), surrogate pairs;
* both hold with lookaheads, lookbehinds and anchors in ``c``, also when ``E`` sits inside a
  larger text (after another string, inside an object).

Short texts are decided by the reference matcher, longer ones by the byte DFA.
"""

from __future__ import annotations

import functools
import itertools
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structgen.automata.byte_dfa import DEAD, LazyByteDFA, Limits
from structgen.errors import RegexError, UnsupportedKeyword, UnsupportedRegex
from structgen.grammar.charset import ANY_CHAR, CharSet
from structgen.grammar.regular import NOTHING, Alt, Chars, Look, Repeat, Seq, Term, literal
from structgen.sources.json_strings import (
    ANY_STRING,
    END,
    START,
    encoded_chars,
    intersect,
    json_string_literal_term,
    json_string_term,
    pattern_search_term,
    string_length_term,
)
from structgen.sources.regex import parse_regex
from structgen.testing.reference import fullmatch
from structgen.testing.schema_suite import DATA_DIR

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
SUITE = DATA_DIR / "json-schema-test-suite/tests"

# ---------------------------------------------------------------------------------------------
# Encodings and decoding, written independently of the module under test.

SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
         "\r": "\\r", "\t": "\\t"}  # fmt: skip


def case_variants(text: str) -> list[str]:
    """``text`` with every subset of its hex letters uppercased (the ``u`` stays lowercase)."""
    options = [(c, c.upper()) if c in "abcdef" else (c,) for c in text]
    return sorted({"".join(p) for p in itertools.product(*options)})


def hex_escapes(c: str) -> list[str]:
    """``\\uXXXX`` or the surrogate pair of ``c``, in lowercase (case variants come later)."""
    cp = ord(c)
    if cp <= 0xFFFF:
        return [f"\\u{cp:04x}"]
    v = cp - 0x10000
    return [f"\\u{0xD800 + (v >> 10):04x}\\u{0xDC00 + (v & 0x3FF):04x}"]


def spellings(c: str) -> list[str]:
    """Every JSON spelling of the code point ``c`` inside a string literal."""
    out = [] if c in '"\\' or ord(c) < 0x20 else [c]
    if c in SHORT:
        out.append(SHORT[c])
    for escape in hex_escapes(c):
        out.extend(case_variants(escape))
    return out


def all_encodings(value: str) -> list[str]:
    return ['"' + "".join(p) + '"' for p in itertools.product(*map(spellings, value))]


def random_encoding(value: str, rng: random.Random) -> str:
    """Per character: raw, short escape, \\u lowercase, \\u uppercase or a random mix."""
    parts = []
    for c in value:
        options = [] if c in '"\\' or ord(c) < 0x20 else [c]
        if c in SHORT:
            options.append(SHORT[c])
        escape = hex_escapes(c)[0]
        options += [escape, escape.upper().replace("\\U", "\\u"),
                    "".join(rng.choice((x.lower(), x.upper())) if x.isalpha() and x != "u" else x
                            for x in escape)]  # fmt: skip
        parts.append(rng.choice(options))
    return '"' + "".join(parts) + '"'


def decode(text: str) -> str | None:
    """The value of a JSON string literal without lone surrogates; None for anything else."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return None
    return value


def dfa_accepts(dfa: LazyByteDFA, text: str) -> bool:
    state = dfa.walk(dfa.start, text.encode())
    return state >= 0 and bool(dfa.accepting[state])


def encoded(content: Term) -> Term:
    return json_string_term(content)


# ---------------------------------------------------------------------------------------------
# Random decoded terms: characters that are awkward to encode, lookarounds and anchors.

ALPHABET = 'ab"\\/\n\x00\x1f\x7fé\u2028\ud7ff\ue000\uffff\U0001f600\U0010ffffDu8nc0'
charsets = st.one_of(
    st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=4).map(lambda cs: CharSet.chars("".join(cs))),
    st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=3).map(lambda cs: ~CharSet.chars("".join(cs))),
    st.just(ANY_CHAR),
)  # fmt: skip


def _terms(leaves, allow_looks: bool):
    def extend(inner):
        options = [
            st.lists(inner, max_size=3).map(lambda xs: Seq(tuple(xs))),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: Alt(tuple(xs))),
            st.tuples(inner, st.integers(0, 2), st.sampled_from([0, 1, 2, None])).map(
                lambda x: Repeat(x[0], x[1], None if x[2] is None else x[1] + x[2])
            ),
        ]
        if allow_looks:
            options += [
                st.tuples(inner, st.booleans()).map(lambda x: Look(x[0], True, x[1])),
                st.tuples(look_free, st.booleans()).map(lambda x: Look(x[0], False, x[1])),
            ]
        return st.one_of(options)

    return st.recursive(leaves, extend, max_leaves=6)


look_free = _terms(charsets.map(Chars), allow_looks=False)
decoded_terms = _terms(st.one_of(charsets.map(Chars), st.just(START), st.just(END)), True)
# Fragments that read as escapes once encoded raw ("\\u005c" ends like an encoded backslash):
# where a lookbehind read backwards would mis-split the text.
TRAPS = ["\\u005c", "\\u0061", "\\n", "\\\\", '\\"', "D83D", "\\uD83D", "u0061"]
values = st.lists(st.one_of(st.sampled_from(ALPHABET), st.sampled_from(TRAPS)), max_size=4).map(
    "".join
)


@st.composite
def mutation(draw, text: str) -> str:
    """A near miss of an encoded text: one character inserted, deleted or replaced."""
    i = draw(st.integers(0, len(text)))
    c = draw(st.sampled_from('"\\uU0aAdD8cCfF/n\x01é'))
    op = draw(st.sampled_from(["insert", "delete", "replace"]))
    if op == "insert":
        return text[:i] + c + text[i:]
    if op == "delete":
        return text[:i] + text[i + 1 :]
    return text[:i] + c + text[i + 1 :]


@settings(SETTINGS, max_examples=400)
@given(content=decoded_terms, value=values, data=st.data())
def test_encodings_are_matched_iff_the_value_is(content, value, data):
    """Completeness and soundness on valid encodings: json.dumps in both modes and random
    mixes, each matched exactly when the decoded term matches the value."""
    term = encoded(content)
    expected = fullmatch(content, value)
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    texts = {json.dumps(value), json.dumps(value, ensure_ascii=False)}
    texts |= {random_encoding(value, rng) for _ in range(3)}
    for text in texts:
        assert fullmatch(term, text) == expected, (content, value, text)
    near = data.draw(mutation(min(texts)))
    if fullmatch(term, near):
        decoded = decode(near)
        assert decoded is not None and fullmatch(content, decoded), (content, near)


@settings(SETTINGS, max_examples=300)
@given(
    body=look_free,
    negate=st.booleans(),
    after=charsets,
    value=st.lists(st.sampled_from(TRAPS + ["\\", "n", "a", '"', "c"]), max_size=4).map("".join),
)
def test_lookbehinds_see_the_decoded_text_not_its_spelling(body, negate, after, value):
    """``.*(?<=B)[x].*`` on values made of fragments that look like escapes once encoded."""
    content = Seq((ANY_STRING, Look(body, False, negate), Chars(after), ANY_STRING))
    term = encoded(content)
    expected = fullmatch(content, value)
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert fullmatch(term, text) == expected, (content, text)


@settings(SETTINGS, max_examples=150)
@given(content=decoded_terms, prefix=values, suffix=values, data=st.data())
def test_embedded_between_other_strings_keeps_its_meaning(content, prefix, suffix, data):
    """Inside ``{"<prefix>":<string>,"<suffix>":1}`` the lookbehinds of the middle string see
    only its own value, whatever the neighbouring strings hold (quotes, backslashes...)."""
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    value = data.draw(values)
    term = Seq((json_string_literal_term(prefix), literal(":"), encoded(content), literal(","),
                json_string_term(ANY_STRING), literal(":1}")))  # fmt: skip
    whole = Seq((literal("{"), term))
    text = "{" + random_encoding(prefix, rng) + ":" + random_encoding(value, rng) + ","
    text += random_encoding(suffix, rng) + ":1}"
    assert fullmatch(whole, text) == fullmatch(content, value), (content, text)


@functools.cache
def walk_alphabet() -> str:
    """Text characters a random walk tries: everything an encoding uses, plus extras."""
    return '"\\u/nbfrtDd8cCeE0123456789aAF é\u2028\x7f\U0001f600\x00\x1f{}:'


def random_accepted_texts(dfa: LazyByteDFA, rng: random.Random, count: int) -> list[str]:
    """Texts the DFA accepts, by random walks through live states."""
    out = []
    for _ in range(count):
        state, text = dfa.start, ""
        for _ in range(40):
            if dfa.accepting[state] and rng.random() < 0.25:
                out.append(text)
                break
            moves = []
            for c in walk_alphabet():
                nxt = dfa.walk(state, c.encode())
                if nxt != DEAD:
                    moves.append((c, nxt))
            if not moves:
                if dfa.accepting[state]:
                    out.append(text)
                break
            c, state = rng.choice(moves)
            text += c
    return out


@settings(SETTINGS, max_examples=120)
@given(content=decoded_terms, seed=st.integers(0, 2**32))
def test_every_text_the_automaton_accepts_decodes_to_a_matching_value(content, seed):
    """Soundness on the automaton's own language: random walks through its live states."""
    term = encoded(content)
    dfa = LazyByteDFA(term, Limits())
    for text in random_accepted_texts(dfa, random.Random(seed), 12):
        value = decode(text)
        assert value is not None, (content, text)
        assert fullmatch(content, value), (content, text)
        assert fullmatch(term, text), (content, text)


# ---------------------------------------------------------------------------------------------
# Exhaustive checks on small cases.

EXHAUSTIVE_VALUES = ["", "a", '"', "\\", "/", "\n", "\x00", "\x7f", "é", "\U0001f600", "aé", '"\\']


@pytest.mark.parametrize("value", EXHAUSTIVE_VALUES)
def test_literal_term_matches_exactly_the_encodings_of_its_value(value):
    term = json_string_literal_term(value)
    encodings = all_encodings(value)
    for text in encodings:
        assert fullmatch(term, text), text
    others = {'"' + "".join(p) + '"' for v in EXHAUSTIVE_VALUES if v != value
              for p in itertools.product(*(spellings(c)[:3] for c in v))}  # fmt: skip
    for text in others:
        assert not fullmatch(term, text), text


def test_every_spelling_of_awkward_code_points_is_matched_and_nothing_else():
    """Every spelling (all case mixes) of code points at the edges of each encoding form is
    matched by the one-character term, and the other characters' spellings are not."""
    points = [0, 0x1F, 0x20, 0x22, 0x2F, 0x5C, 0x7F, 0xE9, 0xD7FF, 0xE000, 0xFFFF, 0x10000,
              0x1F600, 0x103FF, 0x10400, 0x10FFFF]  # fmt: skip
    for cp in points:
        c = chr(cp)
        term = Chars(CharSet.chars(c))
        text_term = encoded(term)
        dfa = LazyByteDFA(text_term, Limits())
        for text in all_encodings(c):
            assert fullmatch(text_term, text) and dfa_accepts(dfa, text), (hex(cp), text)
            assert decode(text) == c
        for other in points:
            if other != cp:
                for text in all_encodings(chr(other))[:8]:
                    assert not dfa_accepts(dfa, text), (hex(cp), text)


def test_lone_surrogates_and_malformed_escapes_are_never_matched():
    dfa = LazyByteDFA(encoded(ANY_STRING), Limits())
    for text in ['"\\ud800"', '"\\uDC00"', '"\\ud83d"', '"\\ude00\\ud83d"', '"\\ud83da"',
                 '"\\u12"', '"\\x41"', '"\\U0041"', '"\\a"', '"\\"', '"\x01"', '"a"b"', '"\n"',
                 '"\\ud83d\\u0041"']:  # fmt: skip
        assert not dfa_accepts(dfa, text), text
    for text in ['"\\ud83d\\ude00"', '"\\uD83D\\uDE00"', '"\\uDBFF\\uDFFF"', '"\\uffff"', '""']:
        assert dfa_accepts(dfa, text), text


@pytest.mark.parametrize("lo,hi", [(0, 0x10FFFF), (0x41, 0x5A), (0xFF, 0x100), (0xD7FF, 0xE000),
                                   (0xFFFF, 0x10000), (0x103FF, 0x10400), (0x1F600, 0x1F64F),
                                   (0x12345, 0x10FEDC)])  # fmt: skip
def test_range_splitting_is_exact_on_every_code_point_of_a_window(lo, hi):
    """The hex digits of ``\\u`` escapes and surrogate pairs spell exactly the set: every code
    point near the edges of the range (and a sample inside) is checked in lower and upper case."""
    term = encoded(Chars(CharSet.of([(lo, hi)])))
    dfa = LazyByteDFA(term, Limits())
    rng = random.Random(lo ^ hi)
    probes = {lo - 2, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, hi + 2}
    probes |= {rng.randint(max(0, lo - 5000), min(0x10FFFF, hi + 5000)) for _ in range(200)}
    for cp in sorted(probes):
        if not 0 <= cp <= 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            continue
        for escape in hex_escapes(chr(cp)):
            for text in ('"' + escape + '"', '"' + escape.upper().replace("\\U", "\\u") + '"'):
                assert dfa_accepts(dfa, text) == (lo <= cp <= hi), (hex(cp), text)


def test_one_character_terms_are_compact_and_shared():
    """Encodings are cached per set and share sub-terms (a full hex block is one node)."""
    assert encoded_chars(ANY_CHAR) is encoded_chars(ANY_CHAR)

    def nodes(term: Term) -> int:
        seen, stack = set(), [term]
        while stack:
            t = stack.pop()
            if id(t) in seen:
                continue
            seen.add(id(t))
            if isinstance(t, (Seq, Alt)):
                stack.extend(t.items)
            elif isinstance(t, (Repeat, Look)):
                stack.append(t.item if isinstance(t, Repeat) else t.body)
        return len(seen)

    assert nodes(encoded_chars(ANY_CHAR)) < 40
    letters = parse_regex(r"\p{L}", dialect="ecma")
    assert nodes(encoded_chars(letters.charset)) < 2500


# ---------------------------------------------------------------------------------------------
# Anchors and lookarounds from real patterns, alone and embedded.

ANCHOR_CASES = [
    ("^a", ["a", "ab", "a\n"], ["", "ba", "\na", "\\a", '"a']),
    ("b$", ["b", "ab", "\nb"], ["", "ba", "b\n", 'b"', "b\\"]),
    ("^(?=x)", ["x", "xy"], ["", "yx", '"x']),
    ("a(?!b)", ["a", "ac", "aba", "a\\b"], ["", "ab", "abab", "b"]),
    ("^$", [""], ["a", "\n", '"']),
    (r"(?<=\\)n", ["\\n", "\\\\n"], ["n", "\n", "\\\\", "\\u005cn", "\\\\u005cn"]),
    (r'(?<!")a', ["a", "ba", '"ba'], ['"a', 'b"a']),
    (r"\bx\b", ["x", "a x", '"x"', "\\x"], ["ax", "x_", "xx"]),
    (r"^\\$", ["\\"], ["\\\\", "", "n"]),
    ('^"', ['"', '""'], ["", 'a"']),
]


@pytest.mark.parametrize("pattern,matching,others", ANCHOR_CASES, ids=[c[0] for c in ANCHOR_CASES])
def test_anchored_patterns_after_encoding(pattern, matching, others):
    content = pattern_search_term(pattern)
    for v in matching:
        assert fullmatch(content, v), v
    for v in others:
        assert not fullmatch(content, v), v
    rng = random.Random(pattern)
    alone = encoded(content)
    wrappers = [
        (Seq((literal('{"k":'), alone, literal("}"))), '{"k":', "}"),
        (Seq((literal('["'), literal('\\\\",'), alone, literal("]"))), '["\\\\",', "]"),
        (Seq((json_string_term(ANY_STRING), literal(":"), alone)), None, ""),
    ]
    for term, before, after in wrappers:
        dfa = LazyByteDFA(term, Limits())
        for v in matching + others:
            for encoding in [json.dumps(v), json.dumps(v, ensure_ascii=False)] + [None] * 3:
                encoding = encoding or random_encoding(v, rng)
                if before is None:
                    key = rng.choice(['"\\""', '"\\\\"', '"a\\u0022"', '""', '"\\\\\\""'])
                    text = key + ":" + encoding
                else:
                    text = before + encoding + after
                assert dfa_accepts(dfa, text) == (v in matching), (pattern, text)
                if len(text) <= 30:
                    assert fullmatch(term, text) == (v in matching), (pattern, text)


@pytest.mark.parametrize("low,high", [(None, None), (40, 50)])
def test_long_values_through_the_automaton(low, high):
    """Values of up to a few hundred characters, decided by the DFA (the reference matcher would
    be slow): a pattern, a lookbehind, and (second case) a length window, all intersected."""
    rng = random.Random(7)
    terms = [pattern_search_term("^[a-z\\\\é\U0001f600]+$"), pattern_search_term("(?<=q)z")]
    if low is not None:
        terms.append(string_length_term(low, high))
    dfa = LazyByteDFA(encoded(intersect(*terms)), Limits())
    lengths = [300, 180] if low is None else [low - 1, low, high, high + 1, 45]
    for _ in range(6):
        for n in lengths:
            body = [rng.choice("abcé\\\U0001f600") for _ in range(n - 2)]
            with_qz = rng.random() < 0.7
            at = rng.randrange(len(body) + 1)
            body[at:at] = ["q", "z"] if with_qz else ["z", "q"]
            value = "".join(body)
            expected = with_qz and (low is None or low <= len(value) <= high)
            for text in (json.dumps(value), random_encoding(value, rng)):
                assert dfa_accepts(dfa, text) == expected, (len(value), with_qz)


# ---------------------------------------------------------------------------------------------
# The helpers the schema compiler uses.


def test_string_length_counts_code_points_with_one_counter():
    term = string_length_term(2, 3)
    assert term == Repeat(Chars(ANY_CHAR), 2, 3)
    big = string_length_term(5, 100000)
    assert isinstance(big, Repeat) and big.max == 100000
    assert string_length_term(4, 3) == NOTHING
    assert string_length_term(0, None) == ANY_STRING
    with pytest.raises(ValueError):
        string_length_term(-1, None)
    dfa = LazyByteDFA(encoded(term), Limits())
    for value in ["", "a", "ab", "\U0001f600\U0001f600", "é\n\\", "abcd"]:
        assert dfa_accepts(dfa, json.dumps(value)) == (2 <= len(value) <= 3), value
    assert not dfa_accepts(dfa, '"\\ud800\\ud800"')
    long_dfa = LazyByteDFA(encoded(big), Limits())
    assert dfa_accepts(long_dfa, json.dumps("x" * 5000))
    assert not dfa_accepts(long_dfa, json.dumps("x" * 4))


INTERSECTIONS = [
    ((pattern_search_term("^a"), string_length_term(2, 3)), ["ab", "abc", "a\\\""], ["a", "abcd", "ba"]),
    ((pattern_search_term("b$"), pattern_search_term("^a")), ["ab", "a\nb"], ["b", "a", "ba"]),
    ((pattern_search_term("x"), pattern_search_term("y"), string_length_term(0, 2)),
     ["xy", "yx"], ["x", "xay", ""]),
    ((pattern_search_term("^(?!.*--)"), pattern_search_term("^[a-z-]+$")), ["a-b", "a"], ["a--b", ""]),
    ((literal("abc"),), ["abc"], ["ab"]),
    ((ANY_STRING, ANY_STRING), ["", "x"], []),
    ((NOTHING, ANY_STRING), [], ["", "x"]),
]  # fmt: skip


@pytest.mark.parametrize("terms,inside,outside", INTERSECTIONS)
def test_intersect_is_the_intersection_also_after_encoding(terms, inside, outside):
    both = intersect(*terms)
    term = Seq((literal("["), encoded(both), literal(',"z"]')))
    rng = random.Random(len(inside))
    for value in inside + outside:
        expected = all(fullmatch(t, value) for t in terms)
        assert expected == (value in inside)
        assert fullmatch(both, value) == expected, value
        text = "[" + random_encoding(value, rng) + ',"z"]'
        assert fullmatch(term, text) == expected, text


def test_intersect_needs_a_term():
    with pytest.raises(ValueError):
        intersect()


def test_lookarounds_inside_lookbehinds_are_refused():
    with pytest.raises(UnsupportedKeyword) as info:
        json_string_term(Look(Seq((Chars(ANY_CHAR), START)), False, False))
    assert info.value.keyword == "pattern"
    with pytest.raises(UnsupportedKeyword) as info:
        json_string_term(
            Look(Look(literal("a"), True, False), False, True), keyword="propertyNames"
        )
    assert info.value.keyword == "propertyNames"


def test_pattern_errors_keep_their_regex_classes():
    with pytest.raises(RegexError) as info:
        pattern_search_term("(?P<n>a)")
    assert not isinstance(info.value, UnsupportedRegex)
    with pytest.raises(UnsupportedRegex):
        pattern_search_term(r"(a)\1")


def test_literal_with_a_lone_surrogate_is_empty():
    assert json_string_literal_term("a\ud800") == NOTHING


# ---------------------------------------------------------------------------------------------
# The JSON Schema Test Suite's pattern instances, written as JSON text.


def suite_pattern_instances():
    """(pattern, string instance, valid) from pattern.json, and (pattern, property name) pairs
    from patternProperties.json, with the name's expected match decided by the decoded term."""
    cases = []
    for draft in ("draft2020-12", "draft7"):
        for group in json.loads((SUITE / draft / "pattern.json").read_text()):
            for test in group["tests"]:
                if isinstance(test["data"], str):
                    cases.append((group["schema"]["pattern"], test["data"], test["valid"]))
        for group in json.loads((SUITE / draft / "patternProperties.json").read_text()):
            for pattern in group["schema"]["patternProperties"]:
                for test in group["tests"]:
                    if isinstance(test["data"], dict):
                        cases.extend((pattern, key, None) for key in test["data"])
    return cases


def test_suite_pattern_instances_as_json_text():
    cases = suite_pattern_instances()
    assert len(cases) > 20
    rng = random.Random(0)
    for pattern, value, valid in cases:
        content = pattern_search_term(pattern)
        expected = fullmatch(content, value)
        if valid is not None:
            assert expected == valid, (pattern, value)
        term = Seq((literal("{"), encoded(content), literal(":0}")))
        dfa = LazyByteDFA(term, Limits())
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False),
                     random_encoding(value, rng)):  # fmt: skip
            assert dfa_accepts(dfa, "{" + text + ":0}") == expected, (pattern, text)
