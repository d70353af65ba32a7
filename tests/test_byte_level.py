"""The character-to-byte bridge: UTF-8 range sequences, alphabet partitions, vocabulary alphabets."""

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from structgen.automata.byte_dfa import _interval_blocks, _interval_blocks_numpy, _minterms
from structgen.automata.utf8 import encodable_chars, utf8_sequences
from structgen.grammar.charset import ANY_CHAR, MAX_CODE_POINT, CharSet
from structgen.grammar.regular import NOTHING, restrict_alphabet
from structgen.sources.regex import parse_regex
from structgen.testing import reference

code_point = st.integers(0, MAX_CODE_POINT).filter(lambda cp: not 0xD800 <= cp <= 0xDFFF)
charsets = st.lists(st.tuples(code_point, st.integers(0, 3000)), max_size=5).map(
    lambda pairs: CharSet.of((lo, min(lo + n, MAX_CODE_POINT)) for lo, n in pairs)
)


def _sequence_matches(sequences, data: bytes) -> bool:
    return any(
        len(seq) == len(data) and all(lo <= b <= hi for (lo, hi), b in zip(seq, data))
        for seq in sequences
    )


@settings(max_examples=200, deadline=None)
@given(charset=charsets, probes=st.lists(code_point, min_size=20, max_size=20))
def test_utf8_sequences_match_exactly_the_encodings(charset, probes):
    sequences = utf8_sequences(charset)
    near = [cp for lo, hi in charset.ranges for cp in (lo - 1, lo, hi, hi + 1)]
    for cp in probes + near:
        if 0 <= cp <= MAX_CODE_POINT and not 0xD800 <= cp <= 0xDFFF:
            assert _sequence_matches(sequences, chr(cp).encode()) == (cp in charset)


@settings(max_examples=200, deadline=None)
@given(sets=st.lists(charsets, max_size=6))
def test_minterms_are_the_coarsest_refining_partition(sets):
    blocks = _minterms(sets)
    union = CharSet(())
    for block in blocks:
        assert block and not (union & block)
        union = union | block
        for s in sets:
            assert (block & s) in (block, CharSet(()))
    assert union == ANY_CHAR
    signatures = [tuple(bool(block & s) for s in sets) for block in blocks]
    assert len(set(signatures)) == len(signatures)


@settings(max_examples=200, deadline=None)
@given(sets=st.lists(charsets, min_size=1, max_size=6))
def test_minterm_sweeps_in_python_and_numpy_agree(sets):
    """``_minterms`` sweeps few ranges in plain Python and many with numpy: the same blocks."""
    sets = list(dict.fromkeys(sets))
    python = sorted(sorted(block) for block in _interval_blocks(sets))
    vectorised = sorted(sorted(block) for block in _interval_blocks_numpy(sets))
    assert python == vectorised


def test_encodable_chars_follow_the_bytes_a_vocabulary_has():
    rng = random.Random(0)
    for missing in ([0x04, 0xF1, 0xF2], [0x85], [0x41, 0xE3]):
        allowed = np.ones(256, dtype=bool)
        allowed[missing] = False
        chars = encodable_chars(allowed)
        for _ in range(3000):
            cp = rng.choice([rng.randrange(0x80), rng.randrange(0x800), rng.randrange(0x110000)])
            if not 0xD800 <= cp <= 0xDFFF:
                assert (cp in chars) == all(allowed[b] for b in chr(cp).encode())


def test_restricting_the_alphabet_keeps_exactly_the_spellable_strings():
    alphabet = CharSet.chars("abc0123 ")
    for pattern in [r"[a-z]+\d?", r"(x|ab)*c", r"(?=a)\w+", r"(?!x)[ax]b", r"\d{2}(q|r)?"]:
        term = parse_regex(pattern)
        restricted = restrict_alphabet(term, alphabet)
        for text in ["", "ab", "abc", "a1", "xab", "12", "12q", "abab c", "ab", "aab"]:
            spellable = all(ord(c) in alphabet for c in text)
            expected = spellable and reference.fullmatch(term, text)
            assert reference.fullmatch(restricted, text) == expected, (pattern, text)
    assert restrict_alphabet(parse_regex(r"x+"), alphabet) == NOTHING
