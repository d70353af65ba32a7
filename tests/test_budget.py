"""Finishing within ``max_tokens``: shortest completions (``Matcher.completion_bytes``) and the
decode loop's token budget (``finish_within_max_tokens``).

Properties: the shortest completion read off a state equals a breadth-first search over the
bytes that are tokens by themselves (regexes of the corpus, every ready grammar, JSON Schemas;
vocabularies with and without every single byte); budgeted decoding is exact (sampling
frequencies match the enumerated distribution of the masked sampler conditioned on fitting, with
and without drafts; greedy takes the best token that fits); and every budgeted output is a
complete match whenever the shortest one fits in ``max_tokens``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import jsonschema
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.testing import ToyModel
from tests.corpus import PATTERNS
from tests.test_decoding import _chi_square_fits
from tests.test_grammar_ir import EDGE_LOOKAROUNDS, GRAMMARS

ALL_BYTES = [bytes([b]) for b in range(256)]
MERGES = [b"ab", b"se", b"lect", b"{\"", b"\":", b"\", \"", b"\"}", b"\"]", b"[\"", b"\"2",
          b"\"x", b"\"a", b"\"b", b"true", b"11", b"10", b"aa", b"bb", b"b1"]
FULL_VOCAB = sg.Vocabulary([*ALL_BYTES, *MERGES, None], eos_token_ids=[256 + len(MERGES)],
                           name="budget-full")
# No single-byte tokens for b, 1 and ": completions must go through merges or around them.
MISSING = {ord(c) for c in 'b1"'}
GAPPY_VOCAB = sg.Vocabulary(
    [None if b in MISSING else bytes([b]) for b in range(256)] + [*MERGES, None],
    eos_token_ids=[256 + len(MERGES)], name="budget-gappy")

SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "minLength": 3},
                                      "tags": {"type": "array", "items": {"type": "integer"},
                                               "minItems": 2}},
     "required": ["name", "tags"]},
    {"type": "array", "items": {"enum": ["alpha", "beta", 7]}, "minItems": 3, "maxItems": 5},
    {"type": "object", "properties": {"a": {"$ref": "#"}, "b": {"type": "boolean"}},
     "required": ["b"]},
    {"type": "string", "format": "date"},
    {"anyOf": [{"type": "number", "minimum": 10}, {"type": "string", "pattern": "^x{4}$"}]},
]


TOO_FAR = "too far"


def _reference_completion(compiled, state: int, usable: set[int],
                          max_states: int = 4000) -> int | None | str:
    """Breadth-first search over the automaton's bytes that are tokens by themselves
    (``TOO_FAR`` when it would visit more than ``max_states`` states)."""
    frontier, seen = [state], {state}
    for depth in range(max_states):
        if any(compiled.is_accepting(s) for s in frontier):
            return depth
        following = []
        for s in frontier:
            for byte in compiled.next_bytes(s):
                if byte in usable:
                    t = compiled.byte_target(s, byte)
                    if t not in seen:
                        seen.add(t)
                        following.append(t)
        if not following:
            return None
        if len(seen) > max_states:
            return TOO_FAR
        frontier = following
    return TOO_FAR


def _usable(vocab: sg.Vocabulary) -> set[int]:
    return {t[0] for t in vocab.tokens if t is not None and len(t) == 1}


def _check_random_walks(compiled, vocab: sg.Vocabulary, seed: int, walks: int = 6,
                        length: int = 24) -> int:
    """Compare ``completion_bytes`` with the reference at every state of random byte walks
    where the reference search stays small; returns the number of states compared."""
    rng = random.Random(seed)
    usable = _usable(vocab)
    compared = 0
    for _ in range(walks):
        state = compiled.matcher().state
        for _ in range(length):
            expected = _reference_completion(compiled, state, usable)
            if expected != TOO_FAR:
                got = compiled.completion_bytes(state)
                assert got == expected, (state, got, expected)
                compared += 1
            options = compiled.next_bytes(state)
            if not options:
                break
            state = compiled.byte_target(state, rng.choice(options))
    return compared


@pytest.mark.parametrize("vocab", [FULL_VOCAB, GAPPY_VOCAB], ids=["full", "gappy"])
@pytest.mark.parametrize(("pattern", "flags"), PATTERNS)
def test_shortest_completion_of_regex_states_equals_a_search(pattern, flags, vocab):
    try:
        compiled = sg.compile(sg.regex(pattern, flags=flags), vocab)
    except sg.VocabularyError:
        return  # the gappy vocabulary cannot start this pattern: nothing to complete
    assert _check_random_walks(compiled, vocab, seed=len(pattern)) >= 6


@pytest.mark.parametrize(("name", "vocab"), [
    *((name, FULL_VOCAB) for name in ("json", "arithmetic", "csv", "cron", "chess_san",
                                      "python_expr", "sql")),
    *((name, GAPPY_VOCAB) for name in ("json", "arithmetic", "csv", "cron")),
])
def test_shortest_completion_of_grammar_states_equals_a_search(name, vocab):
    compiled = sg.compile(sg.grammar(name), vocab)
    assert _check_random_walks(compiled, vocab, seed=7, walks=3, length=16) >= 10


@pytest.mark.parametrize(("index", "vocab"), [
    *((i, FULL_VOCAB) for i in range(len(SCHEMAS))),
    *((i, GAPPY_VOCAB) for i in (0, 1, 2, 4)),  # a lone date string must end with a lone "
])
def test_shortest_completion_of_json_schema_states_equals_a_search(index, vocab):
    compiled = sg.compile(sg.json_schema(SCHEMAS[index]), vocab)
    assert _check_random_walks(compiled, vocab, seed=index, walks=4, length=30) >= 20


@pytest.mark.parametrize("name", EDGE_LOOKAROUNDS)
def test_shortest_completion_of_grammars_with_lookarounds_is_a_lower_bound(name):
    """Where a lookahead reads past a lexeme, what it asks of the next lexemes is not counted
    (a search instead costs seconds per token on ``sql``): the length is never more than the
    search's, never None where the search finds one, and mostly equal."""
    compiled = sg.compile(sg.grammar(GRAMMARS[name][0]), FULL_VOCAB)
    usable = _usable(FULL_VOCAB)
    rng = random.Random(3)
    compared = equal = 0
    for _ in range(4):
        state = compiled.matcher().state
        for _ in range(16):
            expected = _reference_completion(compiled, state, usable)
            if expected != TOO_FAR:
                got = compiled.completion_bytes(state)
                assert (got is None) == (expected is None), (state, got, expected)
                assert expected is None or got <= expected, (state, got, expected)
                compared += 1
                equal += got == expected
            options = compiled.next_bytes(state)
            if not options:
                break
            state = compiled.byte_target(state, rng.choice(options))
    assert compared >= 10 and equal >= compared // 2, (compared, equal)


def test_completion_bytes_is_zero_when_accepting_and_after_eos():
    compiled = sg.compile(sg.regex(r"a{3}(b{2})?"), FULL_VOCAB)
    matcher = compiled.matcher()
    assert matcher.completion_bytes() == 3
    for expected in (2, 1, 0):
        assert matcher.advance(ord("a"))
        assert matcher.completion_bytes() == expected
    assert matcher.advance(FULL_VOCAB.eos_token_ids[0])
    assert matcher.completion_bytes() == 0


# ------------------------------------------------------------------------ budgeted decoding
TOKENS = [b"a", b"b", b"ab", b"1", b"11"]


def _long_winded(context: tuple[int, ...]) -> list[float]:
    """Prefers to go on (a, b, ab), rarely writes 1s, and puts little weight on EOS."""
    rng = np.random.default_rng(hash(context) % 2**32)
    weights = np.array([4.0, 3.0, 2.0, 0.4, 0.3, 0.1]) * (rng.random(6) + 0.5)
    return (weights / weights.sum()).tolist()


@pytest.fixture
def long_winded() -> ToyModel:
    return ToyModel(TOKENS, _long_winded)


def _fits(matcher, token: int, room: int, eos: int) -> bool:
    if token == eos:
        return True
    child = matcher.copy()
    assert child.advance(token)
    return child.completion_bytes() <= room


def _budgeted_distribution(model: ToyModel, constraint, max_tokens: int,
                           temperature: float = 1.0) -> dict[tuple, float]:
    """Every output with its probability under masked sampling restricted, at each step, to
    the tokens after which the constraint still finishes within ``max_tokens``."""
    sample = sg.Sample(temperature=temperature)
    compiled = sg.compile(constraint, model.vocab)
    eos = model.eos_token_id
    out: dict[tuple, float] = {}

    def expand(matcher, context: tuple, prob: float) -> None:
        room = max_tokens - len(context) - 1
        logprobs = torch.log(torch.tensor(model.next_probs(context), dtype=torch.float64))
        allowed = [t for t in range(model.vocab.size)
                   if matcher.allowed(t) and _fits(matcher, t, room, eos)]
        masked = torch.full_like(logprobs, float("-inf"))
        masked[allowed] = logprobs[allowed]
        q = sample.distribution(masked.unsqueeze(0))[0].tolist()
        for t in allowed:
            p = prob * q[t]
            if t == eos:
                out[context] = out.get(context, 0.0) + p
                continue
            child = matcher.copy()
            assert child.advance(t)
            if child.is_finished() or len(context) + 1 == max_tokens:
                assert child.is_accepting()
                out[context + (t,)] = out.get(context + (t,), 0.0) + p
            else:
                expand(child, context + (t,), p)

    expand(compiled.matcher(), (), 1.0)
    return out


BUDGET_PATTERN = r"(a|b)+1{2,3}"


@pytest.mark.parametrize("draft", [None, "forced", "lookup"])
@pytest.mark.parametrize("sampler", [sg.Sample(), sg.AWRS(), sg.Sample(temperature=0.7)],
                         ids=["sample", "awrs", "sample-t0.7"])
def test_budgeted_sampling_matches_the_conditioned_distribution(long_winded, sampler, draft):
    constraint = sg.regex(BUDGET_PATTERN)
    max_tokens = 5
    exact = _budgeted_distribution(long_winded, constraint, max_tokens, sampler.temperature)
    assert abs(sum(exact.values()) - 1) < 1e-9
    drafts = {None: None, "forced": sg.ForcedDraft(), "lookup": sg.PromptLookup(n=1)}
    n = 3000
    results = sg.generate(long_winded, [""] * n, constraint, max_tokens=max_tokens,
                          sampler=sampler, seed=5, return_result=True, draft=drafts[draft])
    assert all(r.complete and re.fullmatch(BUDGET_PATTERN, r.text) for r in results)
    chi2, critical = _chi_square_fits(Counter(tuple(r.token_ids) for r in results), exact, n)
    assert chi2 < critical, (chi2, critical)
    assert sum(r.statistics.get("budget_exclusions", 0) for r in results) > 0


@pytest.mark.parametrize("draft", [None, "forced"])
def test_budgeted_greedy_takes_the_best_token_that_fits(long_winded, draft):
    constraint = sg.regex(BUDGET_PATTERN)
    compiled = sg.compile(constraint, long_winded.vocab)
    eos = long_winded.eos_token_id
    for max_tokens in range(3, 9):
        result = sg.generate(long_winded, "", constraint, max_tokens=max_tokens,
                             return_result=True,
                             draft=sg.ForcedDraft() if draft else None)
        assert result.complete and re.fullmatch(BUDGET_PATTERN, result.text)
        unbudgeted = sg.generate(long_winded, "", constraint, max_tokens=max_tokens,
                                 return_result=True, finish_within_max_tokens=False)
        assert not unbudgeted.complete  # the model alone runs past max_tokens
        matcher = compiled.matcher()
        context: tuple[int, ...] = ()
        ended = result.token_ids + ([eos] if result.finish_reason == "eos" else [])
        for token in ended:
            probs = long_winded.next_probs(context)
            room = max_tokens - len(context) - 1
            fitting = [t for t in range(long_winded.vocab.size)
                       if matcher.allowed(t) and _fits(matcher, t, room, eos)]
            assert token == max(fitting, key=lambda t: (probs[t], -t))
            matcher.advance(token)
            context += (token,)


def test_max_tokens_below_the_shortest_match_still_cuts(long_winded):
    result = sg.generate(long_winded, "", sg.regex(r"a{6}"), max_tokens=4, return_result=True)
    assert result.finish_reason == "length" and result.text == "a" * 4


def test_ignored_text_taken_by_its_longest_match_counts_the_byte_that_ends_it():
    """After ``#x`` the comment must end with a newline (ignored too) before ``a``: two
    bytes, not the one the next terminal alone would take; inside or after the newline, as
    a search finds."""
    grammar = sg.grammar('start: "a"\n%ignore /#[^\\n]*/\n%ignore "\\n"\n')
    compiled = sg.compile(grammar, FULL_VOCAB)
    usable = _usable(FULL_VOCAB)
    matcher = compiled.matcher()
    for byte in b"#x\n":
        assert matcher.advance(byte)
        expected = _reference_completion(compiled, matcher.state, usable)
        assert matcher.completion_bytes() == expected


def test_a_row_in_which_no_token_fits_goes_on_unbudgeted(monkeypatch):
    """Where a shortest completion errs low (a grammar's lookaheads reading past a lexeme),
    a row may come to where every allowed token is excluded: it goes on with the sampler's
    own choice, to be cut by the budget (the loop used to spin, or take a disallowed
    token). Forced here by completions that no token after the first can meet."""
    def commenting(context: tuple[int, ...]) -> list[float]:
        return [0.05, 0.6, 0.3, 0.04, 0.01]  # a, #, x, newline, EOS

    model = ToyModel([b"a", b"#", b"x", b"\n"], commenting)
    grammar = sg.grammar('start: "a"\n%ignore /#[^\\n]*/\n%ignore "\\n"\n')
    calls = []  # the first call is the row's own budget check, at the start

    def erring(self, state: int) -> int:
        calls.append(state)
        return 0 if len(calls) == 1 else 10**6

    monkeypatch.setattr(sg.TokenConstraint, "completion_bytes", erring)
    result = sg.generate(model, "", grammar, max_tokens=3, return_result=True)
    assert result.finish_reason == "length" and len(result.token_ids) == 3
    assert result.text == "###"  # the greedy choice, "#", at every step


# A model over printable ASCII that rambles: it never prefers to close anything.
ASCII_TOKENS = [bytes([b]) for b in range(32, 127)] + [b"aa", b"  ", b"\":"]


def _rambling(context: tuple[int, ...]) -> list[float]:
    rng = np.random.default_rng((hash(context) + 17) % 2**32)
    weights = rng.random(len(ASCII_TOKENS) + 1) + 0.01
    weights[-1] = 1e-4  # EOS
    return (weights / weights.sum()).tolist()


@settings(max_examples=25, deadline=None)
@given(index=st.integers(0, len(PATTERNS) - 1), extra=st.integers(0, 6),
       seed=st.integers(0, 2**16), greedy=st.booleans())
def test_budgeted_outputs_of_regexes_are_complete_matches(index, extra, seed, greedy):
    pattern, flags = PATTERNS[index]
    model = ToyModel(ASCII_TOKENS, _rambling)
    constraint = sg.regex(pattern, flags=flags)
    try:
        compiled = sg.compile(constraint, model.vocab)
    except sg.VocabularyError:
        return  # not spellable in ASCII
    need = compiled.matcher().completion_bytes()
    max_tokens = need + extra
    if max_tokens == 0:
        return
    result = sg.generate(model, "", constraint, max_tokens=max_tokens, seed=seed,
                         sampler=sg.Greedy() if greedy else sg.Sample(), return_result=True)
    assert result.complete, result
    assert len(result.token_ids) <= max_tokens
    assert re.compile(pattern, flags).fullmatch(result.text), result.text


@settings(max_examples=10, deadline=None)
@given(index=st.integers(0, len(SCHEMAS) - 1), extra=st.integers(0, 12),
       seed=st.integers(0, 2**16))
def test_budgeted_json_documents_validate(index, extra, seed):
    model = ToyModel(ASCII_TOKENS, _rambling)
    schema = SCHEMAS[index]
    constraint = sg.json_schema(schema)
    need = sg.compile(constraint, model.vocab).matcher().completion_bytes()
    value = sg.generate_json(model, "", constraint, max_tokens=need + extra, seed=seed,
                             sampler=sg.Sample())
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_generate_json_closes_the_document_in_time_instead_of_raising():
    model = ToyModel(ASCII_TOKENS, _rambling)
    schema = SCHEMAS[0]
    constraint = sg.json_schema(schema)
    max_tokens = sg.compile(constraint, model.vocab).matcher().completion_bytes() + 10
    with pytest.raises(sg.IncompleteOutput):
        sg.generate_json(model, "", constraint, max_tokens=max_tokens, seed=0,
                         sampler=sg.Sample(), finish_within_max_tokens=False)
    result = sg.generate_json(model, "", constraint, max_tokens=max_tokens, seed=0,
                              sampler=sg.Sample(), return_result=True)
    assert result.finish_reason == "constraint" and len(result.token_ids) <= max_tokens
    assert json.loads(result.text) == result.value
    jsonschema.validate(result.value, schema)
