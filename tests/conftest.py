"""Shared fixtures: the three test tokenizers and their vocabularies, built once per session.

* ``smollm2_tokenizer`` / ``smollm2_vocab``: the embedded model's byte-level BPE (49,152 ids);
* ``qwen_tokenizer`` / ``qwen_vocab``: Qwen's byte-level BPE (151,646 ids);
* ``sentencepiece_tokenizer`` / ``sp_vocab``: a small SentencePiece BPE with byte fallback
  (600 ids), as a fast ``transformers`` tokenizer.

The first run converts the two real tokenizers into ``structgen.vocab.cache_dir()`` (about
10 s each); later runs load them from there.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings

from structgen.testing import tokenizers as loaders
from structgen.vocab import Vocabulary

# Hypothesis's "explain" phase reruns a failing example under a line tracer, which takes many
# minutes on automaton code; the shrunk example and its error are reported without it. Examples
# are derived from each test's name, so every run (CI's too) checks the same cases.
settings.register_profile("structgen", phases=[p for p in Phase if p != Phase.explain],
                          derandomize=True)
settings.load_profile("structgen")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    return loaders.smollm2_tokenizer()


@pytest.fixture(scope="session")
def qwen_tokenizer():
    return loaders.qwen_tokenizer()


@pytest.fixture(scope="session")
def sentencepiece_workdir(tmp_path_factory):
    """Where the SentencePiece model is trained; load it again here for the slow tokenizer."""
    return tmp_path_factory.mktemp("sentencepiece")


@pytest.fixture(scope="session")
def sentencepiece_tokenizer(sentencepiece_workdir):
    return loaders.sentencepiece_tokenizer(sentencepiece_workdir)


@pytest.fixture(scope="session")
def smollm2_vocab(smollm2_tokenizer) -> Vocabulary:
    return Vocabulary.from_tokenizer(smollm2_tokenizer)


@pytest.fixture(scope="session")
def qwen_vocab(qwen_tokenizer) -> Vocabulary:
    return Vocabulary.from_tokenizer(qwen_tokenizer)


@pytest.fixture(scope="session")
def sp_vocab(sentencepiece_tokenizer) -> Vocabulary:
    return Vocabulary.from_tokenizer(sentencepiece_tokenizer)
