"""Regex constraints at the byte and token level: soundness, completeness, exactness of EOS.

Reference semantics: ``structgen.testing.reference.fullmatch`` on the IR (exact), and Python's
``re.fullmatch`` (every accepted string must match it: soundness).
"""

from __future__ import annotations

import functools
import itertools
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.automata.byte_dfa import LazyByteDFA, Limits
from structgen.sources.regex import parse_regex
from structgen.testing import reference
from tests.corpus import EMPTY_PATTERNS, PATTERNS

PATTERN_IDS = [p for p, _ in PATTERNS]

_MERGES = [b"ab", b"abc", b"12", b"123", b"00", b"-0", b"hel", b"hello", b" wor", b"ld", b"@", b".com",
           b"\xc3\xa9", b"\xc3\xa9\xc3\xa9", b"xx", b"T1", b":0", b"\xe6\xbc", b"\xa2\xe5"]


@pytest.fixture(scope="module")
def toy_vocab() -> sg.Vocabulary:
    """Every single byte plus some merges (some splitting characters), and one EOS id."""
    tokens = [bytes([b]) for b in range(256)] + _MERGES + [None]
    return sg.Vocabulary(tokens, eos_token_ids=[len(tokens) - 1], size=len(tokens) + 5)


def _alphabet(pattern: str) -> str:
    """Characters that exercise ``pattern``: its literals plus a few of each common class."""
    letters = {c for c in pattern if c.isprintable()}
    return "".join(sorted(letters | set("aZ09 -.\n_é")))


def _dfa_accepts(dfa: LazyByteDFA, text: str) -> bool:
    state = dfa.walk(dfa.start, text.encode())
    return state >= 0 and bool(dfa.accepting[state])


@functools.cache
def _parsed(pattern: str, flags: int):
    return parse_regex(pattern, flags)


def _python_matches(pattern: str, flags: int, text: str) -> bool | None:
    """re.fullmatch, or None where Python cannot parse our extensions (\\p, set operations)."""
    try:
        with_warnings_off = re.compile(pattern, flags)
    except re.error:
        return None
    return with_warnings_off.fullmatch(text) is not None


@pytest.mark.parametrize("pattern,flags", PATTERNS, ids=PATTERN_IDS)
def test_byte_dfa_agrees_with_reference_on_all_short_strings(pattern, flags):
    term = parse_regex(pattern, flags)
    dfa = LazyByteDFA(term)
    alphabet = _alphabet(pattern)
    rng = random.Random(pattern)
    samples = ["".join(t) for n in range(4) for t in itertools.product(alphabet[:8], repeat=n)]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(4, 12)))
                for _ in range(300)]
    for text in samples:
        accepted = _dfa_accepts(dfa, text)
        assert accepted == reference.fullmatch(term, text), text
        if accepted:
            assert _python_matches(pattern, flags, text) in (True, None), text


@pytest.mark.parametrize("pattern,flags", PATTERNS, ids=PATTERN_IDS)
def test_accepted_strings_match_python_re(pattern, flags):
    """Sample strings from the DFA itself (random walks) and check them with ``re``."""
    dfa = LazyByteDFA(parse_regex(pattern, flags))
    rng = random.Random(0)
    produced = 0
    for _ in range(200):
        state, data = dfa.start, bytearray()
        for _ in range(40):
            if dfa.accepting[state] and rng.random() < 0.3:
                break
            dfa.materialize(state)
            live = np.flatnonzero(dfa.trans[state] >= 0)
            if len(live) == 0:
                break
            byte = int(rng.choice(live))
            data.append(byte)
            state = int(dfa.trans[state, byte])
        if dfa.accepting[state]:
            text = data.decode("utf-8")  # a char-boundary accepting state: valid UTF-8
            produced += 1
            assert reference.fullmatch(_parsed(pattern, flags), text)
            assert _python_matches(pattern, flags, text) in (True, None), text
    assert produced > 0


@pytest.mark.parametrize("pattern", EMPTY_PATTERNS)
def test_empty_languages_are_refused_at_compile_time(pattern, toy_vocab):
    with pytest.raises(sg.EmptyLanguage):
        sg.compile(sg.regex(pattern), toy_vocab)


@functools.lru_cache(maxsize=4)
def _tokens_by_bytes(vocab: sg.Vocabulary) -> dict[bytes, list[int]]:
    by_bytes: dict[bytes, list[int]] = {}
    for token_id, data in enumerate(vocab.tokens):
        if data:
            by_bytes.setdefault(data, []).append(token_id)
    return by_bytes


def _random_tokenization(text: bytes, vocab: sg.Vocabulary, rng: random.Random
                         ) -> list[int] | None:
    """A random segmentation of ``text`` into vocabulary tokens (each step uniform among the
    tokens that leave a segmentable rest), or None if the vocabulary cannot spell ``text``."""
    by_bytes = _tokens_by_bytes(vocab)
    max_len = max(map(len, by_bytes))
    reachable = [False] * (len(text) + 1)  # reachable[i]: text[i:] can be segmented
    reachable[len(text)] = True
    for i in range(len(text) - 1, -1, -1):
        reachable[i] = any(
            text[i:j] in by_bytes and reachable[j]
            for j in range(i + 1, min(len(text), i + max_len) + 1)
        )
    if not reachable[0]:
        return None
    ids, i = [], 0
    while i < len(text):
        options = [j for j in range(i + 1, min(len(text), i + max_len) + 1)
                   if text[i:j] in by_bytes and reachable[j]]
        j = rng.choice(options)
        ids.append(rng.choice(by_bytes[text[i:j]]))
        i = j
    return ids


def _assert_tokens_accepted(compiled, vocab, ids, pattern, flags):
    term = _parsed(pattern, flags)
    matcher = compiled.matcher()
    text = b""
    for token_id in ids:
        mask = matcher.mask()
        assert mask[token_id >> 5] >> (token_id & 31) & 1, (text, vocab.token_bytes(token_id))
        assert matcher.allowed(token_id)
        assert matcher.advance(token_id)
        text += vocab.token_bytes(token_id)
        eos_allowed = all(matcher.allowed(e) for e in vocab.eos_token_ids)
        try:
            complete = reference.fullmatch(term, text.decode())
        except UnicodeDecodeError:
            complete = False
        assert eos_allowed == complete == matcher.is_accepting(), text
    assert matcher.is_accepting()


@pytest.mark.parametrize("pattern,flags", PATTERNS, ids=PATTERN_IDS)
def test_every_tokenization_of_a_match_is_accepted(pattern, flags, smollm2_tokenizer,
                                                   smollm2_vocab):
    term = parse_regex(pattern, flags)
    compiled = sg.compile(sg.regex(pattern, flags), smollm2_vocab)
    dfa = LazyByteDFA(term)
    rng = random.Random(1)
    matches = set()
    for _ in range(300):  # sample matches by random walks of the byte DFA
        state, data = dfa.start, bytearray()
        for _ in range(80):
            if dfa.accepting[state] and rng.random() < 0.25:
                break
            dfa.materialize(state)
            live = np.flatnonzero(dfa.trans[state] >= 0)
            if len(live) == 0:
                break
            byte = int(rng.choice(live))
            data.append(byte)
            state = int(dfa.trans[state, byte])
        if dfa.accepting[state]:
            matches.add(data.decode())
    checked = 0
    for text in sorted(matches)[:25]:
        if _random_tokenization(text.encode(), smollm2_vocab, random.Random(0)) is None:
            continue  # uses bytes no SmolLM2 token contains (e.g. 0xF1): not producible
        checked += 1
        canonical = smollm2_tokenizer.encode(text, add_special_tokens=False)
        if b"".join(smollm2_vocab.token_bytes(t) for t in canonical) == text.encode():
            _assert_tokens_accepted(compiled, smollm2_vocab, canonical, pattern, flags)
        for seed in range(3):
            ids = _random_tokenization(text.encode(), smollm2_vocab, random.Random(seed))
            _assert_tokens_accepted(compiled, smollm2_vocab, ids, pattern, flags)
    assert checked >= min(5, len(matches)) > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), index=st.integers(0, len(PATTERNS) - 1))
def test_random_mask_walks_are_sound(data, index, toy_vocab):
    """Follow random allowed tokens until EOS: the text must match, and EOS is offered exactly
    when the text so far is a complete match."""
    pattern, flags = PATTERNS[index]
    term = parse_regex(pattern, flags)
    compiled = sg.compile(sg.regex(pattern, flags), toy_vocab)
    matcher = compiled.matcher()
    text = b""
    for _ in range(60):
        mask = matcher.mask()
        allowed = np.flatnonzero(np.unpackbits(mask.view(np.uint8), bitorder="little"))
        allowed = allowed[allowed < toy_vocab.size]
        assert len(allowed), text
        token_id = int(data.draw(st.sampled_from(sorted(allowed.tolist()))))
        if token_id in toy_vocab.eos_token_ids:
            assert reference.fullmatch(term, text.decode())
            assert _python_matches(pattern, flags, text.decode()) in (True, None)
            break
        assert matcher.advance(token_id)
        text += toy_vocab.token_bytes(token_id)


@pytest.mark.parametrize("pattern,flags", PATTERNS[:12], ids=PATTERN_IDS[:12])
def test_rollback_and_copy_restore_state_exactly(pattern, flags, toy_vocab):
    compiled = sg.compile(sg.regex(pattern, flags), toy_vocab)
    rng = random.Random(2)
    matcher = compiled.matcher()
    states, masks = [matcher.state], [matcher.mask().copy()]
    for _ in range(12):
        allowed = [t for t in range(toy_vocab.size)
                   if matcher.allowed(t) and t not in toy_vocab.eos_token_ids]
        if not allowed:
            break
        assert matcher.advance(rng.choice(allowed))
        states.append(matcher.state)
        masks.append(matcher.mask().copy())
    snapshot = matcher.copy()
    while len(states) > 1:
        n = rng.randint(1, len(states) - 1)
        matcher.rollback(n)
        del states[-n:], masks[-n:]
        assert matcher.state == states[-1]
        assert np.array_equal(matcher.mask(), masks[-1])
    assert snapshot.state != matcher.state or len(masks) == 1
    with pytest.raises(ValueError):
        matcher.rollback(1)


def test_rejected_tokens_leave_the_state_unchanged(toy_vocab):
    matcher = sg.compile(sg.regex(r"\d+"), toy_vocab).matcher()
    before = matcher.state
    letter = next(i for i, t in enumerate(toy_vocab.tokens) if t == b"a")
    assert not matcher.allowed(letter)
    assert not matcher.advance(letter)
    assert matcher.state == before
    assert not matcher.advance(toy_vocab.eos_token_ids[0])


def test_eos_ends_the_sequence(toy_vocab):
    matcher = sg.compile(sg.regex(r"\d"), toy_vocab).matcher()
    digit = next(i for i, t in enumerate(toy_vocab.tokens) if t == b"7")
    assert matcher.advance(digit)
    assert matcher.is_accepting() and matcher.is_finished()
    assert matcher.advance(toy_vocab.eos_token_ids[0])
    assert not matcher.mask().any()
    assert not matcher.allowed(digit)
    matcher.rollback(1)
    assert matcher.is_accepting()


@pytest.mark.parametrize(
    "pattern,expected",
    [(r"abc\d", b"abc"), (r"(hello|help)!", b"hel"), (r"x{3}y?", b"xxx"), (r"é\d", "é".encode())],
)
def test_forced_bytes_are_the_common_prefix_of_all_matches(pattern, expected, toy_vocab):
    # ``expected`` is the longest common prefix of the language, derived by hand from the pattern.
    matcher = sg.compile(sg.regex(pattern), toy_vocab).matcher()
    assert matcher.forced_bytes() == expected


def test_tokens_may_split_a_character(toy_vocab):
    compiled = sg.compile(sg.regex("é{2}"), toy_vocab)
    lead, trail = toy_vocab.tokens.index(b"\xc3"), toy_vocab.tokens.index(b"\xa9")
    matcher = compiled.matcher()
    assert matcher.allowed(lead) and not matcher.allowed(trail)
    assert matcher.advance(lead) and matcher.advance(trail) and matcher.advance(lead)
    assert not matcher.is_accepting()
    assert matcher.advance(trail) and matcher.is_accepting()


def test_large_counters_are_not_unrolled(toy_vocab):
    compiled = sg.compile(sg.regex(r"[ab]{0,100000}c"), toy_vocab)
    matcher = compiled.matcher()
    a = toy_vocab.tokens.index(b"a")
    for _ in range(500):
        assert matcher.advance(a)
    assert compiled.num_states < 5000


def test_vocabulary_that_cannot_start_the_language():
    vocab = sg.Vocabulary([b"a", b"b", None], eos_token_ids=[2])
    with pytest.raises(sg.VocabularyError):
        sg.compile(sg.regex(r"\d+"), vocab)


def test_state_limit_is_a_named_error(toy_vocab):
    matcher = sg.compile(sg.regex(r"[a-z]{50}\d"), toy_vocab, Limits(max_states=30)).matcher()
    a = toy_vocab.tokens.index(b"a")
    with pytest.raises(sg.LimitExceeded, match="max_states"):
        for _ in range(50):
            matcher.advance(a)


@pytest.mark.parametrize("kind", ["regex", "grammar"])
def test_limits_bound_each_sequence_not_the_constraints_whole_life(kind, toy_vocab):
    """A compiled constraint keeps the states it built for every sequence that used it; its
    limits bound the work of one sequence (and of the compile). So sequences that are each
    easy, over branches that share no state, go on being accepted long after their states
    together passed ``max_states`` (a server reusing one compiled grammar), while a single
    sequence that needs more still stops at ``LimitExceeded``."""
    words = ["".join(chr(97 + (7 * k + j) % 26) for j in range(6)) for k in range(10)]
    constraint = (sg.regex("|".join(f"{word}[0-9]" for word in words)) if kind == "regex" else
                  sg.grammar("start: " + " | ".join(f'"{word}" /[0-9]/' for word in words)))
    limits = Limits(max_states=40)
    compiled = sg.compile(constraint, toy_vocab, limits)
    for word in words:
        matcher = compiled.matcher()
        for char in word + "7":
            assert matcher.advance(toy_vocab.tokens.index(char.encode()))
            assert matcher.mask().any() or matcher.is_accepting()
        assert matcher.is_accepting()
    assert compiled.num_states > limits.max_states
    fresh = sg.TokenConstraint(sg.regex("[a-z]{60}").language(), toy_vocab, limits)
    one_long_sequence = fresh.matcher()  # (not from the compile cache: built states stay)
    with pytest.raises(sg.LimitExceeded, match="max_states=40"):
        for _ in range(60):
            one_long_sequence.advance(toy_vocab.tokens.index(b"a"))


def test_mask_marks_padding_and_special_ids_never_allowed():
    vocab = sg.Vocabulary([b"1", None, b"2"], eos_token_ids=[1], size=70)
    matcher = sg.compile(sg.regex(r"\d*"), vocab).matcher()
    bits = np.unpackbits(matcher.mask().view(np.uint8), bitorder="little")
    assert bits.tolist()[:70] == [1, 1, 1] + [0] * 67
    assert len(matcher.mask()) == 3


@pytest.mark.parametrize("pattern", [
    r"(a|b)*a(a|b){25}",  # an exponential DFA, built lazily
    r"((a*)*)*b",
    r"(?:a{1,1000}){1,1000}",  # nested counters
    r"(x+x+)+y",
    r"[^a]{0,1000000}",
    r"(.*a){20}",
    r"(?=(a|b)*a(a|b){15})[ab]+",  # a lookahead whose witness is deep
    r"(?=.*a)(?!.*a)b",  # contradictory lookarounds: empty
])
def test_hostile_patterns_end_in_a_bounded_compile_or_a_clear_error(pattern, toy_vocab):
    limits = Limits(max_states=20000, max_compile_seconds=10)
    try:
        matcher = sg.compile(sg.regex(pattern), toy_vocab, limits).matcher()
    except (sg.EmptyLanguage, sg.LimitExceeded):
        return
    a = toy_vocab.tokens.index(b"a")
    for _ in range(40):
        if not matcher.advance(a):
            break
        assert matcher.mask().any()


@pytest.mark.parametrize("pattern", [
    r"if\b", r"[a-z]+(?=;)", r"a(?!b;)", r"[+;]|a(?![a-z])", r"a+$", r"a(?=b)b(?!a)",
    r"(?:a|b)+?(?=;|$)"])
def test_lexeme_guards_read_the_text_after_the_lexeme(pattern):
    """As a grammar's terminal, a term's lookaheads read past its lexeme: the lexeme ``u`` may
    end before ``w`` exactly when the term matches ``u`` inside ``u + w`` (the reference reads
    lookarounds in the whole text; a lazy quantifier stops at the first match of what follows
    it), its guard state then accepting ``w``."""
    term = parse_regex(pattern, first_match=True)
    dfa = LazyByteDFA(term, lexeme=True)
    texts = ["".join(t) for n in range(5) for t in itertools.product("ab;i f", repeat=n)]
    for lexeme in texts[1:200]:
        state = dfa.walk(dfa.start, lexeme.encode())
        for after in texts[:300]:
            expected = len(lexeme) in reference._Matcher(lexeme + after).ends(term, 0)
            got = state >= 0 and bool(dfa.accepting[state])
            if got:
                guard = dfa.end_classes[dfa.end_class[state]][0]
                if guard >= 0:
                    end = dfa.walk(guard, after.encode())
                    got = end >= 0 and (dfa.guard_discharged(end) or bool(dfa.accepting[end]))
            assert got == expected, (lexeme, after)


@pytest.mark.parametrize("pattern", [
    r"(a?b?)*c", r"(?:(?:a|)*b)*", r"((a*)*|b)+c?", r"(?=a*)(?:a?)*b", r"(?!(?:b?)*c)[abc]*",
    r"(a|b?)*(?<=a)c|d*",
])
def test_first_sets_memoized_per_subterm_equal_those_computed_afresh(pattern):
    """The first sets of every state reached are the same whether the algebra has memoized
    them for the subterms met before (cycles through nullable repetitions cut on the way) or
    computes them in a fresh algebra, reached by the same characters."""
    dfa = LazyByteDFA(parse_regex(pattern))
    paths = {dfa.start_key: []}
    todo = [dfa.start_key]
    checked = 0
    while todo and checked < 60:
        key = todo.pop(0)
        shared = set(dfa.algebra.first_sets(key[0], dfa._behind(key[1])))
        fresh = LazyByteDFA(parse_regex(pattern))
        term, trackers = fresh.start_key
        for cp in paths[key]:
            term = fresh.algebra.derivative(term, cp, fresh._behind(trackers))
            trackers = tuple(fresh.algebra.derivative(x, cp, frozenset()) for x in trackers)
        assert set(fresh.algebra.first_sets(term, fresh._behind(trackers))) == shared, paths[key]
        checked += 1
        for charset, nxt in dfa.char_transitions(key):
            if nxt not in paths:
                paths[nxt] = paths[key] + [charset.ranges[0][0]]
                todo.append(nxt)
    assert checked >= 2
