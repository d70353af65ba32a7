"""Drafts for speculative decoding, on a toy vocabulary: every proposal is a sequence the
constraint allows (never EOS), forced text is spelled with the longest tokens, prompt lookup
copies spans up to the constraint's boundary, and chains continue where the last draft stopped.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.automata.matcher import Matcher
from structgen.decoding.drafts import (
    Draft,
    DraftChain,
    DraftContext,
    ForcedDraft,
    PromptLookup,
    allowed_prefix,
    as_draft,
    canonical_spelling,
    whitespace_guess,
)

TOKENS = [b"a", b"b", b"c", b"d", b"e", b"x", b'"', b":", b"1", b"{", b"}",
          b"ab", b"abc", b"bc", b"cd", b"aa", b'":', b":1", b'{"']
EOS = len(TOKENS)
VOCAB = sg.Vocabulary([*TOKENS, None], eos_token_ids=[EOS], name="drafts-toy")
ID = {token: token_id for token_id, token in enumerate(TOKENS)}
TEXT_IDS = list(range(len(TOKENS)))
# Every byte these use is a token by itself, so any forced text can be spelled.
PATTERNS = [r"abc(d|e)", r"abc[a-e]{1,4}", r'"(a|b)+":1', r'\{"(ab|cd)+":1{1,3}\}',
            r"(ab|cd)+e", r"a{2,5}b?c", r"x[a-e]*x", r"[a-d]+"]


def _ids(*tokens: bytes) -> list[int]:
    return [ID[t] for t in tokens]


def _matcher(pattern: str) -> Matcher:
    return sg.compile(sg.regex(pattern), VOCAB).matcher()


def _spell(tokens: list[int]) -> bytes:
    return b"".join(VOCAB.token_bytes(t) for t in tokens)


@st.composite
def rows(draw, constrained: bool | None = None) -> tuple[Matcher | None, DraftContext]:
    """A row part-way through decoding: a random constraint (or none), a random walk of allowed
    tokens as its output, and a prompt over every id, EOS included (chat prompts hold it)."""
    constrained = draw(st.booleans()) if constrained is None else constrained
    matcher = _matcher(draw(st.sampled_from(PATTERNS))) if constrained else None
    generated: list[int] = []
    for _ in range(draw(st.integers(0, 8))):
        options = [t for t in TEXT_IDS if matcher is None or matcher.allowed(t)]
        if not options:
            break
        generated.append(draw(st.sampled_from(options)))
        if matcher is not None:
            matcher.advance(generated[-1])
    prompt = draw(st.lists(st.sampled_from([*TEXT_IDS, EOS]), max_size=12))
    return matcher, DraftContext(prompt, generated, VOCAB)


SINGLE_DRAFTS = st.one_of(
    st.just(ForcedDraft()),
    st.builds(PromptLookup, n=st.integers(1, 3), k=st.none() | st.integers(1, 4)),
)
DRAFTS = SINGLE_DRAFTS | st.lists(SINGLE_DRAFTS, min_size=1, max_size=3).map(DraftChain)


@settings(max_examples=300, deadline=None)
@given(row=rows(), draft=DRAFTS, k=st.integers(0, 6))
def test_proposals_are_allowed_sequences_without_eos(row, draft, k):
    matcher, context = row
    state = None if matcher is None else matcher.state
    proposal = draft.propose(matcher, context, k)
    assert len(proposal) <= k
    assert EOS not in proposal
    if matcher is not None:
        assert matcher.state == state, "the caller's matcher must not move"
        walker = matcher.copy()
        assert all(walker.advance(t) for t in proposal)


@settings(max_examples=200, deadline=None)
@given(row=rows(), draft=DRAFTS, k=st.integers(0, 6))
def test_a_smaller_budget_proposes_a_prefix_of_a_larger_one(row, draft, k):
    """Drafts are deterministic and greedy, so the verification may shrink k freely."""
    matcher, context = row
    assert draft.propose(matcher, context, k) == draft.propose(matcher, context, 12)[:k]


@settings(max_examples=200, deadline=None)
@given(row=rows(constrained=True))
def test_forced_draft_spells_the_forced_text_with_the_longest_allowed_tokens(row):
    matcher, context = row
    forced = matcher.forced_bytes()
    proposal = ForcedDraft().propose(matcher, context, 64)
    assert _spell(proposal) == forced
    walker, rest = matcher.copy(), forced
    for token in proposal:
        longer = [t for t in TEXT_IDS
                  if len(TOKENS[t]) > len(TOKENS[token]) and rest.startswith(TOKENS[t])
                  and walker.allowed(t)]
        assert not longer, f"{TOKENS[token]!r} taken where {TOKENS[longer[0]]!r} fits"
        walker.advance(token)
        rest = rest[len(TOKENS[token]):]


def test_forced_draft_stops_where_the_constraint_has_a_choice():
    matcher = _matcher(r"abc(d|e)")
    proposal = ForcedDraft().propose(matcher, DraftContext([], [], VOCAB), 8)
    assert proposal == _ids(b"abc")
    walker = matcher.copy()
    walker.advance(proposal[0])
    assert walker.forced_bytes() == b""
    assert walker.allowed(ID[b"d"]) and walker.allowed(ID[b"e"])


def test_forced_draft_proposes_nothing_without_a_constraint():
    assert ForcedDraft().propose(None, DraftContext(_ids(b"a"), [], VOCAB), 4) == []


def _reference_lookup(ids: list[int], n: int, k: int) -> list[int]:
    """Prompt lookup by plain scanning, the most recent occurrence of the longest tail."""
    for m in range(n, 0, -1):
        for start in range(len(ids) - m - 1, -1, -1):
            if len(ids) > m and ids[start:start + m] == ids[-m:]:
                return ids[start + m:start + m + k]
    return []


@settings(max_examples=300, deadline=None)
@given(prompt=st.lists(st.sampled_from(TEXT_IDS[:4]), max_size=10),
       generated=st.lists(st.sampled_from(TEXT_IDS[:4]), max_size=6),
       n=st.integers(1, 4), k=st.integers(1, 5))
def test_prompt_lookup_without_constraint_agrees_with_scanning(prompt, generated, n, k):
    context = DraftContext(prompt, generated, VOCAB)
    assert PromptLookup(n).propose(None, context, k) == _reference_lookup(
        prompt + generated, n, k)


def test_prompt_lookup_copies_a_span_up_to_the_constraints_boundary():
    prompt = _ids(b"x", b"a", b"b", b"c", b"d", b"e", b"a", b"x")
    matcher = _matcher(r"[a-d]+")
    generated = _ids(b"a", b"b")
    matcher.advance(generated[0])
    matcher.advance(generated[1])
    context = DraftContext(prompt, generated, VOCAB)
    assert PromptLookup().propose(matcher, context, 8) == _ids(b"c", b"d")  # "e" is outside
    assert PromptLookup(k=1).propose(matcher, context, 8) == _ids(b"c")
    # Unconstrained, the copy runs to the end of the context, into the generated tokens.
    assert PromptLookup().propose(None, context, 8) == (prompt + generated)[3:]


def test_prompt_lookup_skips_occurrences_whose_continuation_is_not_allowed():
    """The most recent ``b`` is followed by ``x``, which the constraint forbids; the earlier one
    by ``c``."""
    prompt = _ids(b"b", b"c", b"d", b"b", b"x")
    matcher = _matcher(r"[a-d]+")
    matcher.advance(ID[b"b"])
    context = DraftContext(prompt, _ids(b"b"), VOCAB)
    assert PromptLookup(n=1).propose(matcher, context, 3) == _ids(b"c", b"d", b"b")


def test_prompt_lookup_stops_at_eos_and_finds_nothing_in_an_empty_context():
    prompt = [ID[b"a"], EOS, ID[b"b"], ID[b"a"]]
    assert PromptLookup().propose(None, DraftContext(prompt, [], VOCAB), 4) == []
    assert PromptLookup().propose(None, DraftContext([], [], VOCAB), 4) == []


@pytest.mark.parametrize("arguments", [{"n": 0}, {"k": 0}])
def test_prompt_lookup_rejects_empty_ngrams_and_budgets(arguments):
    with pytest.raises(ValueError, match="PromptLookup"):
        PromptLookup(**arguments)


class _Recorder(Draft):
    """Proposes nothing; remembers what it was asked."""

    def __init__(self):
        self.calls: list[tuple[int, list[int], int]] = []

    def propose(self, matcher, context, k):
        self.calls.append((matcher.state, list(context.generated), k))
        return []


def test_a_chain_continues_from_the_tokens_proposed_before():
    matcher = _matcher(r"abc(d|e)")
    recorder = _Recorder()
    generated = _ids(b"x")
    proposal = DraftChain([ForcedDraft(), recorder]).propose(
        matcher, DraftContext([], generated, VOCAB), 5)
    after = matcher.copy()
    after.advance(ID[b"abc"])
    assert proposal == _ids(b"abc")
    assert recorder.calls == [(after.state, generated + _ids(b"abc"), 4)]


def test_chain_order_decides_who_drafts_first():
    prompt = _ids(b"x", b"a", b"b", b"c", b"d", b"x")
    context = DraftContext(prompt, [], VOCAB)
    matcher = _matcher(r"abc(d|e)")
    assert DraftChain([ForcedDraft(), PromptLookup()]).propose(matcher, context, 8) == _ids(b"abc")
    assert DraftChain([PromptLookup(), ForcedDraft()]).propose(matcher, context, 8) == _ids(
        b"a", b"b", b"c", b"d")


def test_a_chain_alternates_forced_text_and_copied_spans():
    """Forced ``"``, then the key copied from the prompt, then the forced ``":1``."""
    prompt = _ids(b'"', b"a", b"b", b'"', b"x")
    chain = as_draft([ForcedDraft(), PromptLookup()])
    proposal = chain.propose(_matcher(r'"(a|b)+":1'), DraftContext(prompt, [], VOCAB), 10)
    assert _spell(proposal) == b'"ab":1'
    assert chain.propose(_matcher(r'"(a|b)+":1'), DraftContext(prompt, [], VOCAB), 3) == (
        proposal[:3])


class _Liar(Draft):
    def propose(self, matcher, context, k):
        return [ID[b"e"]]


def test_a_chain_refuses_a_draft_that_breaks_the_constraint():
    with pytest.raises(ValueError, match="does not allow"):
        DraftChain([_Liar()]).propose(_matcher(r"abc"), DraftContext([], [], VOCAB), 2)


def test_allowed_prefix_cuts_at_the_first_refused_token_or_eos():
    tokens = _ids(b"a", b"b", b"c", b"d")
    assert allowed_prefix(_matcher(r"ab+c?"), tokens, VOCAB) == _ids(b"a", b"b", b"c")
    assert allowed_prefix(None, [ID[b"a"], EOS, ID[b"b"]], VOCAB) == _ids(b"a")


def test_as_draft_turns_lists_into_chains():
    forced = ForcedDraft()
    assert as_draft(None) is None
    assert as_draft(forced) is forced
    chain = as_draft([forced, PromptLookup()])
    assert isinstance(chain, DraftChain) and chain.drafts[0] is forced


def test_forced_draft_leaves_the_space_before_a_word_to_the_word():
    """Pre-tokenizers give the last space of a run to the next word: ``\\n  "`` is spelled
    ``\\n `` + `` "``, not ``\\n  `` + ``"``, although ``\\n  `` is longer."""
    tokens = [b"\n", b" ", b"\n ", b"\n  ", b'"', b' "', b"a", b'a"']
    vocab = sg.Vocabulary([*tokens, None], eos_token_ids=[len(tokens)])
    matcher = sg.compile(sg.regex(r'\n  "a"'), vocab).matcher()
    proposal = ForcedDraft().propose(matcher, DraftContext([], [], vocab), 8)
    assert [tokens[t] for t in proposal] == [b"\n ", b' "', b'a"']


def test_forced_draft_spells_json_keys_that_escapes_keep_from_being_forced():
    """A JSON key may be written with escapes, so only its plain spelling is proposed, token by
    token, where the allowed tokens other than escapes are prefixes of one another."""
    tokens = [bytes([c]) for c in range(0x20, 0x7F)] + [b'{"', b'": ', b"birth", b"_year"]
    vocab = sg.Vocabulary([*tokens, None], eos_token_ids=[len(tokens)])
    schema = sg.json_schema({"type": "object", "properties": {"birth_year": {"type": "integer"}},
                             "required": ["birth_year"]}, whitespace="compact")
    matcher = sg.compile(schema, vocab).matcher()
    assert matcher.forced_bytes() == b'{"'  # the key itself is not forced: "\u0062irth..."
    proposal = ForcedDraft().propose(matcher, DraftContext([], [], vocab), 8)
    assert [tokens[t] for t in proposal] == [b'{"', b"birth", b"_year", b'"', b":"]


# ------------------------------------------------------------- layouts, spellings, byte looks
BYTES = [bytes([c]) for c in range(0x20, 0x7F)] + [b"\n", b"\n ", b'{"', b'":', b' "', b'",',
                                                  b"att", b"end", b"ees", b"atten", b"de",
                                                  b"\xc3"]
BYTE_VOCAB = sg.Vocabulary([*BYTES, None], eos_token_ids=[len(BYTES)], name="drafts-bytes")
BYTE_ID = {token: token_id for token_id, token in enumerate(BYTES)}
FLEXIBLE = sg.json_schema({"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}},
    "required": ["name", "age", "city"]}, extra_properties="forbid")


def _byte_ids(text: bytes) -> list[int]:
    return [BYTE_ID[bytes([b])] for b in text]


def _after(constraint, text: bytes) -> tuple[Matcher, list[int]]:
    matcher = sg.compile(constraint, BYTE_VOCAB).matcher()
    ids = _byte_ids(text)
    assert all(matcher.advance(t) for t in ids)
    return matcher, ids


@pytest.mark.parametrize(("written", "expected"), [
    (b'{"name": "Ada",', b' "age": '),             # the spaces of the first field
    (b'{"name": "Ada", "age": 36,', b' "city": "'),
    (b'{\n  "name": "Ada",\n  "age": 36,', b'\n  "city": "'),  # pretty, with indentation
    (b'{\n  "name": "Ada",\n ', b' "age": '),      # the rest of a run the model began
    (b'{"name":"Ada",', b'"age":'),                # compact
])
def test_forced_draft_writes_the_layout_the_output_uses(written, expected):
    matcher, generated = _after(FLEXIBLE, written)
    assert matcher.forced_bytes() == b""  # flexible whitespace: nothing is strictly forced
    proposal = ForcedDraft().propose(matcher, DraftContext([], generated, BYTE_VOCAB), 16)
    assert _spell_bytes(proposal) == expected


def test_forced_draft_guesses_whitespace_from_the_prompt_before_the_output_shows_any():
    prompt = _byte_ids(b"fields: name, age")
    matcher, generated = _after(FLEXIBLE, b'{"name')
    proposal = ForcedDraft().propose(matcher, DraftContext(prompt, generated, BYTE_VOCAB), 16)
    assert _spell_bytes(proposal) == b'": "'


def test_forced_draft_treats_only_optional_whitespace_as_layout():
    """In the pretty layout a line break after a list item decides between ``,`` and ``]``:
    a real choice, where the draft stops."""
    schema = sg.json_schema({"type": "array", "items": {"type": "boolean"}}, whitespace="pretty")
    matcher, generated = _after(schema, b"[\n  true")
    assert sorted(matcher.text_cursor().next_bytes()) == sorted(b",\n")
    assert ForcedDraft().propose(matcher, DraftContext([], generated, BYTE_VOCAB), 8) == []


def _spell_bytes(tokens: list[int]) -> bytes:
    return b"".join(BYTE_VOCAB.token_bytes(t) for t in tokens)


def _segmenting_encoder(pieces: list[bytes]):
    """A tokenizer stand-in: greedy segmentation by ``pieces`` (then single bytes)."""
    def encode(text: str) -> list[int]:
        data, out = text.encode(), []
        while data:
            piece = next((p for p in pieces if data.startswith(p)), data[:1])
            out.append(BYTE_ID[piece])
            data = data[len(piece):]
        return out
    return encode


def test_forced_draft_spells_keys_as_the_tokenizer_does():
    """Longest-match would give ``atten`` + ``de`` + ...; the tokenizer says ``att`` + ``end``
    + ``ees``, also when the model has already written ``att``."""
    schema = sg.json_schema({"type": "object", "properties": {"attendees": {"type": "integer"}},
                             "required": ["attendees"]}, whitespace="compact")
    encode = _segmenting_encoder([b'{"', b"att", b"end", b"ees", b'":'])
    matcher = sg.compile(schema, BYTE_VOCAB).matcher()
    plain = ForcedDraft().propose(matcher, DraftContext([], [], BYTE_VOCAB), 8)
    assert [BYTES[t] for t in plain][:3] == [b'{"', b"atten", b"de"]
    spelled = ForcedDraft().propose(matcher, DraftContext([], [], BYTE_VOCAB, encode=encode), 8)
    assert [BYTES[t] for t in spelled] == [b'{"', b"att", b"end", b"ees", b'":']
    assert matcher.advance(spelled[0]) and matcher.advance(spelled[1])
    context = DraftContext([], spelled[:2], BYTE_VOCAB, encode=encode)
    assert [BYTES[t] for t in ForcedDraft().propose(matcher, context, 8)] == [
        b"end", b"ees", b'":']


def test_canonical_spelling_keeps_the_boundary_after_the_last_token():
    """Where the tokenizer would merge the last token with the text (``a`` + ``"`` as ``a"``
    does not exist here, but ``"`` + ``:`` does as ``":``), the text is spelled alone."""
    encode = _segmenting_encoder([b'":'])
    context = DraftContext([], [], BYTE_VOCAB, encode=encode)
    assert canonical_spelling(b":1", context, BYTE_ID[b'"']) == _byte_ids(b":1")
    assert canonical_spelling(b'x":', context, BYTE_ID[b"a"]) == [BYTE_ID[b"x"], BYTE_ID[b'":']]
    assert canonical_spelling(b"\xc3", context, None) is None  # not whole UTF-8
    # After a token that ends inside a character the text is spelled alone.
    assert canonical_spelling(b"x", context, BYTE_ID[b"\xc3"]) == [BYTE_ID[b"x"]]
    assert canonical_spelling(b"x", DraftContext([], [], BYTE_VOCAB), None) is None


@pytest.mark.parametrize(("written", "following", "prompt", "guess"), [
    (b'{"a":1,', ord('"'), b"", b""),                  # no run after "," nor a space before a quote
    (b'{"a": 1, "b": 2,', ord('"'), b"", b" "),        # the same two bytes before
    (b'{"a": 1,', ord('"'), b"x, y", b" "),            # after "," in the prompt
    (b'{\n  "a": 1,\n', ord('"'), b"x, y", b"  "),     # the run begun: "\n" then two spaces
    (b'{"a": "b",', ord('"'), b"", b" "),              # the last run before a quote that is one
    (b'{\n  "a": 1,', None, b"", b""),                 # no run after "," anywhere
    (b"", ord("{"), b"a {", b""),                      # nothing before the output's first byte
])
def test_whitespace_guess(written, following, prompt, guess):
    assert whitespace_guess(written, following, prompt) == guess


@settings(max_examples=200, deadline=None)
@given(row=rows(constrained=True), data=st.data())
def test_a_text_cursor_steps_exactly_where_the_matcher_allows(row, data):
    """Byte by byte, the cursor follows the same language as the matcher's tokens."""
    matcher, _ = row
    cursor = matcher.text_cursor()
    for token in TEXT_IDS:
        probe = cursor.copy()
        assert probe.step(TOKENS[token]) == matcher.allowed(token)
    choices = cursor.next_bytes()
    assert all(cursor.copy().step(bytes([b])) for b in choices)
    assert not any(cursor.copy().step(bytes([b])) for b in set(range(256)) - set(choices))
    if choices:
        before = matcher.state
        cursor.step(bytes([data.draw(st.sampled_from(list(choices)))]))
        assert matcher.state == before


@settings(max_examples=150, deadline=None)
@given(data=st.data(), k=st.integers(1, 12))
def test_forced_draft_proposals_under_flexible_whitespace_are_allowed(data, k):
    """Random outputs of the flexible schema so far; whatever the layout guess, the proposal is
    a sequence the constraint allows."""
    matcher = sg.compile(FLEXIBLE, BYTE_VOCAB).matcher()
    generated = []
    for _ in range(data.draw(st.integers(0, 30))):
        options = [t for t in range(len(BYTES)) if matcher.allowed(t)]
        if not options:
            break
        generated.append(data.draw(st.sampled_from(options)))
        matcher.advance(generated[-1])
    prompt = data.draw(st.lists(st.sampled_from(range(len(BYTES))), max_size=10))
    proposal = ForcedDraft().propose(matcher, DraftContext(prompt, generated, BYTE_VOCAB), k)
    walker = matcher.copy()
    assert len(proposal) <= k and all(walker.advance(t) for t in proposal)
