"""Model sessions for speculative decoding: ``extend`` scores several tokens in one pass and
``keep`` rolls each row back to the tokens it accepted.

Every property is checked against the plainest reference there is: a fresh session started on the
context a row is supposed to hold. It runs on the toy model (exact) and on a tiny random Llama
(no downloads) under both attention implementations, whose masks treat holes differently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structgen.decoding.models import ModelSession, TransformersModel
from structgen.testing import ToyModel

TOY_TOKENS = [b"a", b"b", b"c", b"ab", b"1"]
LLAMA_IDS = 1000  # draw Llama token ids below this: any id is valid, no need for all 49,152
PROPERTIES = settings(max_examples=25, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def _toy_probs(context: tuple[int, ...]) -> list[float]:
    """Deterministic pseudo-random weights per context, so every context has its own answer."""
    rng = np.random.default_rng(hash(context) % 2**32)
    weights = rng.random(len(TOY_TOKENS) + 1) + 0.05
    return (weights / weights.sum()).tolist()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Matrices this small gain nothing from threads, and lose much when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["toy", "sdpa", "eager"])
def model(request):
    """The toy model, or a tiny random Llama with the given attention implementation."""
    if request.param == "toy":
        return ToyModel(TOY_TOKENS, _toy_probs)
    return _tiny_llama(request, request.param)


def _tiny_llama(request, attention: str) -> TransformersModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = request.getfixturevalue("smollm2_tokenizer")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, eos_token_id=2, pad_token_id=2,
                         attn_implementation=attention)
    return TransformersModel(LlamaForCausalLM(config).eval(), tokenizer,
                             vocab=request.getfixturevalue("smollm2_vocab"))


def _ids(model) -> st.SearchStrategy[int]:
    top = model.vocab.size if isinstance(model, ToyModel) else LLAMA_IDS
    return st.integers(0, top - 1)


def _tolerance(model) -> float:
    """Toy sessions recompute the same float64 numbers; a transformer's batched kernels differ
    from a fresh session's in the last bits."""
    return 0.0 if isinstance(model, ToyModel) else 1e-4


def _assert_rows_match_fresh_sessions(model, session: ModelSession,
                                      contexts: list[list[int]]) -> None:
    """Each row's next-token distribution is that of a session started on its context alone."""
    got = session.logprobs()
    assert got.shape == (len(contexts), model.vocab.size)
    for row, context in enumerate(contexts):
        fresh = model.start([context]).logprobs()[0]
        torch.testing.assert_close(got[row], fresh, atol=_tolerance(model), rtol=0)


@PROPERTIES
@given(data=st.data())
def test_extend_equals_appending_one_token_at_a_time(model, data):
    ids = _ids(model)
    prompts = data.draw(st.lists(st.lists(ids, min_size=1, max_size=6), min_size=1, max_size=3))
    k = data.draw(st.integers(1, 4))
    draft = torch.tensor(data.draw(st.lists(st.lists(ids, min_size=k, max_size=k),
                                            min_size=len(prompts), max_size=len(prompts))))
    extended_session, stepped = model.start(prompts), model.start(prompts)
    before = extended_session.logprobs().clone()
    extended = extended_session.extend(draft)
    assert extended.shape == (len(prompts), k + 1, model.vocab.size)
    assert extended.dtype == torch.float32
    torch.testing.assert_close(extended[:, 0], before, atol=0, rtol=0)
    for j in range(k):
        stepped.append(draft[:, j])
        torch.testing.assert_close(extended[:, j + 1], stepped.logprobs(),
                                   atol=_tolerance(model), rtol=0)
    torch.testing.assert_close(extended_session.logprobs(), extended[:, k], atol=0, rtol=0)


@PROPERTIES
@given(data=st.data())
def test_any_mix_of_extend_keep_append_select_equals_fresh_sessions(model, data):
    """Random programs of extend + keep (uneven counts), append and select (drops, repeats,
    reorders): after every step, each row behaves as if it had only ever read its accepted
    context."""
    ids = _ids(model)
    contexts = data.draw(st.lists(st.lists(ids, min_size=1, max_size=6), min_size=1, max_size=3))
    session = model.start(contexts)
    for _ in range(data.draw(st.integers(1, 4))):
        rows = len(contexts)
        step = data.draw(st.sampled_from(["speculate", "speculate", "append", "select"]))
        if step == "speculate":
            k = data.draw(st.integers(1, 4))
            draft = data.draw(st.lists(st.lists(ids, min_size=k, max_size=k),
                                       min_size=rows, max_size=rows))
            counts = data.draw(st.lists(st.integers(0, k), min_size=rows, max_size=rows))
            extended = session.extend(torch.tensor(draft))
            session.keep(torch.tensor(counts))
            for row, n in enumerate(counts):
                torch.testing.assert_close(session.logprobs()[row], extended[row, n],
                                           atol=0, rtol=0)
            contexts = [c + d[:n] for c, d, n in zip(contexts, draft, counts)]
        elif step == "append":
            tokens = data.draw(st.lists(ids, min_size=rows, max_size=rows))
            session.append(torch.tensor(tokens))
            contexts = [c + [t] for c, t in zip(contexts, tokens)]
        else:
            picked = data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=4))
            session.select(torch.tensor(picked))
            contexts = [contexts[i] for i in picked]
        _assert_rows_match_fresh_sessions(model, session, contexts)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_rejecting_every_drafted_token_gives_the_cache_back(request, attention):
    """Where all rows discard a column, it leaves the KV cache instead of becoming a hole."""
    model = _tiny_llama(request, attention)
    session = model.start([[1, 2, 3], [4, 5]])
    length = session._cache.get_seq_length()
    session.extend(torch.tensor([[6, 7, 8], [9, 10, 11]]))
    session.keep(torch.tensor([0, 1]))
    assert session._cache.get_seq_length() == length + 1
    session.extend(torch.tensor([[6, 7], [9, 10]]))
    session.keep(torch.tensor([0, 0]))
    assert session._cache.get_seq_length() == length + 1


def test_keep_is_only_valid_right_after_extend(model):
    session = model.start([[1, 2], [3]])
    with pytest.raises(ValueError, match="right after extend"):
        session.keep(torch.tensor([0, 0]))
    session.extend(torch.tensor([[1, 2], [3, 4]]))
    session.append(torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="right after extend"):
        session.keep(torch.tensor([0, 0]))
    session.extend(torch.tensor([[1, 2], [3, 4]]))
    session.select(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="right after extend"):
        session.keep(torch.tensor([0, 0]))
    session.extend(torch.tensor([[1, 2], [3, 4]]))
    session.keep(torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="right after extend"):
        session.keep(torch.tensor([0, 0]))


@pytest.mark.parametrize("counts", [[0, 3], [-1, 0], [0], [[0, 0]]])
def test_keep_rejects_counts_of_the_wrong_shape_or_range(model, counts):
    session = model.start([[1, 2], [3]])
    session.extend(torch.tensor([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="keep"):
        session.keep(torch.tensor(counts))


@pytest.mark.parametrize("shape", [(2,), (2, 0)])
def test_extend_needs_at_least_one_token_per_row(model, shape):
    session = model.start([[1, 2], [3]])
    with pytest.raises(ValueError, match="k >= 1"):
        session.extend(torch.zeros(shape, dtype=torch.long))
