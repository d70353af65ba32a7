"""The decode loop on toy models (exact answers by enumeration) and on small transformers."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.decoding.samplers import draw_categorical
from structgen.testing import ToyModel

TOKENS = [b"a", b"b", b"ab", b"1", b"11", b"\xc3", b"\xa9"]


def _toy_probs(context: tuple[int, ...]) -> list[float]:
    """A context-dependent distribution: deterministic pseudo-random weights per context."""
    rng = np.random.default_rng(hash(context) % 2**32)
    weights = rng.random(len(TOKENS) + 1) + 0.05
    return (weights / weights.sum()).tolist()


@pytest.fixture
def toy() -> ToyModel:
    return ToyModel(TOKENS, _toy_probs)


def _masked_distribution(model: ToyModel, constraint, max_len: int,
                         sampler: sg.Sample | sg.AWRS | None = None) -> dict[tuple, float]:
    """Every complete token sequence with its probability under locally masked sampling, each
    token drawn from ``sampler``'s processed masked distribution (``Sample.distribution``;
    AWRS(T) samples Sample(T)'s; default: temperature 1)."""
    sample = sampler if isinstance(sampler, sg.Sample) else sg.Sample(
        temperature=1.0 if sampler is None else sampler.temperature)
    compiled = sg.compile(constraint, model.vocab)
    out: dict[tuple, float] = {}

    def expand(matcher, context: tuple, prob: float) -> None:
        logprobs = torch.log(torch.tensor(model.next_probs(context), dtype=torch.float64))
        allowed = [t for t in range(model.vocab.size) if matcher.allowed(t)]
        masked = torch.full_like(logprobs, float("-inf"))
        masked[allowed] = logprobs[allowed]
        q = sample.distribution(masked.unsqueeze(0))[0].tolist()
        for t in allowed:
            p = prob * q[t]
            if p == 0:
                continue
            if t == model.eos_token_id:
                out[context] = out.get(context, 0.0) + p
            elif len(context) < max_len:
                child = matcher.copy()
                assert child.advance(t)
                if child.is_finished():
                    out[context + (t,)] = out.get(context + (t,), 0.0) + p
                else:
                    expand(child, context + (t,), p)

    expand(compiled.matcher(), (), 1.0)
    return out


def _chi_square_fits(counts: Counter, exact: dict, n: int) -> tuple[float, float]:
    """Chi-square statistic of ``counts`` against ``n * exact`` (cells pooled to expectation 5)
    and a critical value near the 0.999 quantile (a correct sampler fails 1 run in 1000)."""
    assert set(counts) <= set(exact), set(counts) - set(exact)
    observed, expected, pool_o, pool_e = [], [], 0.0, 0.0
    for cell in sorted(exact, key=exact.get):
        pool_o += counts.get(cell, 0)
        pool_e += n * exact[cell]
        if pool_e >= 5:
            observed.append(pool_o)
            expected.append(pool_e)
            pool_o = pool_e = 0.0
    if pool_e:
        observed[-1] += pool_o
        expected[-1] += pool_e
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected))
    dof = len(expected) - 1
    return chi2, dof + 3.09 * math.sqrt(2 * dof) + 3  # Wilson-Hilferty-sized margin


def test_greedy_takes_the_most_likely_allowed_token_at_every_step(toy):
    constraint = sg.regex(r"(a|b)+1{1,3}")
    result = sg.generate(toy, "", constraint, max_tokens=12, return_result=True)
    matcher = sg.compile(constraint, toy.vocab).matcher()
    context: tuple[int, ...] = ()
    for token in result.token_ids + ([toy.eos_token_id] if result.finish_reason == "eos" else []):
        probs = np.asarray(_toy_probs(context))
        allowed = [t for t in range(toy.vocab.size) if matcher.allowed(t)]
        assert token == max(allowed, key=lambda t: (probs[t], -t))
        matcher.advance(token)
        context += (token,)
    assert result.complete
    assert re.fullmatch(r"(a|b)+1{1,3}", result.text)


def test_sampling_matches_the_masked_distribution(toy):
    constraint = sg.regex(r"(a|b|é){1,2}1?")
    exact = _masked_distribution(toy, constraint, max_len=8)
    assert abs(sum(exact.values()) - 1) < 1e-9
    n = 4000
    results = sg.generate(toy, [""] * n, constraint, max_tokens=8, sampler=sg.Sample(), seed=7,
                          return_result=True)
    chi2, critical = _chi_square_fits(Counter(tuple(r.token_ids) for r in results), exact, n)
    assert chi2 < critical, (chi2, critical)


@settings(max_examples=30, deadline=None)
@given(weights=st.lists(st.sampled_from([0.0, 0.0, 1e-3, 0.2, 1.0, 3.0]), min_size=1,
                        max_size=12).filter(lambda w: sum(w) > 0),
       rows=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_draw_categorical_draws_each_row_from_its_weights(weights, rows, seed):
    """Inverse-CDF draws: unnormalised weights, any leading shape, never a zero weight
    (trailing zeros included), frequencies as the weights say."""
    probs = torch.tensor([weights] * rows, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    n = 2000
    draws = torch.stack([draw_categorical(probs, generator) for _ in range(n)])
    assert draws.shape == (n, rows) and draws.dtype == torch.int64
    assert draw_categorical(probs[0], generator).shape == ()
    total = sum(weights)
    exact = {i: w / total for i, w in enumerate(weights) if w > 0}
    for row in range(rows):
        counts = Counter(draws[:, row].tolist())
        chi2, critical = _chi_square_fits(counts, exact, n)
        assert chi2 < critical, (chi2, critical)


def test_temperature_and_truncation_shape_the_masked_distribution():
    logprobs = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    masked = logprobs.clone()
    masked[0, 0] = float("-inf")  # token 0 disallowed
    top_p = sg.Sample(top_p=0.7).distribution(masked)[0]
    # Renormalised allowed mass: 0.6, 0.3, 0.1; top_p=0.7 keeps the first two.
    assert torch.allclose(top_p, torch.tensor([0.0, 2 / 3, 1 / 3, 0.0]))
    top_k = sg.Sample(top_k=1).distribution(masked)[0]
    assert torch.equal(top_k, torch.tensor([0.0, 1.0, 0.0, 0.0]))
    cold = sg.Sample(temperature=0.5).distribution(masked)[0]
    expected = torch.tensor([0.0, 0.09, 0.0225, 0.0025])
    assert torch.allclose(cold, expected / expected.sum())


def test_batch_rows_follow_their_own_constraints_and_stop_independently(toy):
    constraints = [sg.regex(r"a{3}"), sg.regex(r"1+"), None, sg.choice(["ab", "b"])]
    results = sg.generate(toy, [""] * 4, constraints, max_tokens=6, sampler=sg.Sample(),
                          seed=3, return_result=True)
    assert re.fullmatch(r"a{3}", results[0].text) and results[0].finish_reason == "constraint"
    assert re.fullmatch(r"1+", results[1].text)
    assert results[3].text in ("ab", "b")
    for result in results:
        assert all(toy.vocab.is_text(t) for t in result.token_ids)


def test_max_tokens_cuts_and_says_so(toy):
    result = sg.generate(toy, "", sg.regex(r"a{10}"), max_tokens=4, return_result=True)
    assert result.finish_reason == "length" and not result.complete
    assert result.text == "a" * 4


def test_stream_yields_the_generated_text(toy):
    kwargs = {"max_tokens": 10, "sampler": sg.Sample(), "seed": 11}
    constraint = sg.regex(r"(é|ab)+1")
    pieces = list(sg.stream(toy, "", constraint, **kwargs))
    assert "".join(pieces) == sg.generate(toy, "", constraint, **kwargs)
    assert all(pieces)


def test_after_lets_free_text_run_until_the_trigger(toy):
    constraint = sg.after("11", sg.regex(r"b{2}"))
    for seed in range(5):
        text = sg.generate(toy, "", constraint, max_tokens=40, sampler=sg.Sample(), seed=seed)
        if text.endswith("bb"):
            head = text[: text.index("11") + 2]
            assert text == head + "bb"


# ------------------------------------------------------------------ a small transformer
@pytest.fixture(scope="module")
def tiny_llama(smollm2_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(smollm2_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(config).eval()
    return sg.from_transformers(model, smollm2_tokenizer)


def test_batched_transformer_decoding_equals_row_by_row(tiny_llama):
    prompts = ["Hi", "A much longer prompt than the first one, padded on the left", "Zip code:"]
    constraints = [sg.regex(r"\d{3}-\d{2}"), sg.regex(r"(yes|no)"), None]
    batch = sg.generate(tiny_llama, prompts, constraints, max_tokens=8, chat=False,
                        return_result=True)
    for prompt, constraint, batched in zip(prompts, constraints, batch):
        alone = sg.generate(tiny_llama, prompt, constraint, max_tokens=8, chat=False,
                            return_result=True)
        assert alone.token_ids == batched.token_ids
        assert np.allclose(alone.logprobs, batched.logprobs, atol=1e-4)
    assert re.fullmatch(r"\d{3}-\d{2}", batch[0].text)
    assert batch[1].text in ("yes", "no")


def test_chat_prompts_use_the_template(tiny_llama, smollm2_tokenizer):
    conversation = [{"role": "user", "content": "Say yes."}]
    ids = tiny_llama.encode_prompt(conversation)
    expected = smollm2_tokenizer.apply_chat_template(conversation, add_generation_prompt=True,
                                                     tokenize=True)
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    assert ids == list(expected)
    assert tiny_llama.encode_prompt("Say yes.") == ids
    assert tiny_llama.encode_prompt("Say yes.", chat=False) == smollm2_tokenizer.encode(
        "Say yes.", add_special_tokens=False)


def test_the_default_model_answers_inside_the_constraint():
    model = sg.load_model()
    pattern = r"(19|20)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    texts = sg.generate(model, ["When did the Apollo 11 mission land on the Moon? Give the date.",
                                "Give today's date."], sg.regex(pattern), max_tokens=16)
    for text in texts:
        assert re.fullmatch(pattern, text)
    assert len(list(itertools.islice(sg.stream(model, "Count to three.", max_tokens=5), 10))) > 0
