"""Speculative decoding under constraints: drafts change the number of forward passes, never the
output. Greedy decoding returns the same tokens with and without drafts; sampling (masked, with
temperature and truncation, and AWRS) keeps the enumerated masked distribution exactly
(chi-square), with deterministic drafts and with a draft model; the matcher and the KV cache
roll back so that every recorded log-probability is the one a fresh replay of the row gives.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import jsonschema
import numpy as np
import pytest
import torch

import structgen as sg
from structgen import cli
from structgen.decoding.drafts import Draft, DraftContext
from structgen.testing import ToyModel
from tests.test_decoding import (  # noqa: F401
    TOKENS,
    _chi_square_fits,
    _masked_distribution,
    _toy_probs,
    tiny_llama,
)
from tests.test_json_api import ORDER_SCHEMA, PromptRecordingToy

# Forced text ("abab" after "11", or a choice after one "1"), a choice at both ends.
CONSTRAINT = r"(a|b)1{1,2}abab(a|é)"


def _other_probs(context: tuple[int, ...]) -> list[float]:
    """A second toy distribution, unrelated to ``_toy_probs``: the draft model's."""
    rng = np.random.default_rng((hash(context) + 12345) % 2**32)
    weights = rng.random(len(TOKENS) + 1) + 0.05
    return (weights / weights.sum()).tolist()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The toy and tiny models gain nothing from threads, and lose much when the CPU is
    shared (as in tests/test_model_sessions.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy() -> ToyModel:
    return ToyModel(TOKENS, _toy_probs)


@pytest.fixture(scope="module")
def draft_toy() -> ToyModel:
    return ToyModel(TOKENS, _other_probs)


def _drafts(draft_toy: ToyModel) -> dict[str, object]:
    return {
        "forced": sg.ForcedDraft(),
        "lookup": sg.PromptLookup(n=2),
        "chain": [sg.ForcedDraft(), sg.PromptLookup(n=2)],
        "model": sg.DraftModel(draft_toy, k=3),
    }


# ------------------------------------------------------------------ exact distributions
@pytest.mark.parametrize("sampler", [sg.Sample(), sg.Sample(temperature=0.7), sg.AWRS()],
                         ids=["sample", "sample-t0.7", "awrs"])
@pytest.mark.parametrize("name", ["forced", "lookup", "chain", "model"])
def test_sampling_with_drafts_keeps_the_masked_distribution(toy, draft_toy, name, sampler):
    constraint = sg.regex(CONSTRAINT)
    exact = _masked_distribution(toy, constraint, max_len=12, sampler=sampler)
    assert abs(sum(exact.values()) - 1) < 1e-9
    n = 1500 if name == "model" else 2500
    results = sg.generate(toy, [""] * n, constraint, max_tokens=12, sampler=sampler, seed=5,
                          draft=_drafts(draft_toy)[name], return_result=True)
    chi2, critical = _chi_square_fits(Counter(tuple(r.token_ids) for r in results), exact, n)
    assert chi2 < critical, (chi2, critical)
    drafted = sum(r.statistics["drafted"] for r in results)
    accepted = sum(r.statistics["accepted"] for r in results)
    assert 0 < accepted < drafted  # the drafts were used, and some were rejected


def test_a_draft_model_under_truncated_sampling_keeps_the_distribution(toy, draft_toy):
    """Top-p and top-k zero out tokens the draft model may propose: the residual covers them."""
    constraint = sg.regex(CONSTRAINT)
    sampler = sg.Sample(temperature=1.3, top_p=0.8, top_k=3)
    exact = _masked_distribution(toy, constraint, max_len=12, sampler=sampler)
    n = 1500
    results = sg.generate(toy, [""] * n, constraint, max_tokens=12, sampler=sampler, seed=9,
                          draft=sg.DraftModel(draft_toy, k=3), return_result=True)
    chi2, critical = _chi_square_fits(Counter(tuple(r.token_ids) for r in results), exact, n)
    assert chi2 < critical, (chi2, critical)


# ------------------------------------------------------------------ greedy: the same tokens
GREEDY_BATCH = [sg.regex(CONSTRAINT), sg.regex(r"(ab|1)+é"), None, sg.choice(["abab11", "ab1"]),
                sg.regex(r"a{3}b{2}(1|é)")]


@pytest.mark.parametrize("max_tokens", [1, 2, 5, 16])
@pytest.mark.parametrize("name", ["forced", "lookup", "chain", "model", "self"])
def test_greedy_with_drafts_returns_the_tokens_of_greedy_without(toy, draft_toy, name,
                                                                 max_tokens):
    drafts = {**_drafts(draft_toy), "self": sg.DraftModel(toy)}
    prompts = [""] * len(GREEDY_BATCH)
    plain = sg.generate(toy, prompts, GREEDY_BATCH, max_tokens=max_tokens, return_result=True)
    drafted = sg.generate(toy, prompts, GREEDY_BATCH, max_tokens=max_tokens, draft=drafts[name],
                          draft_tokens=3, return_result=True)
    for alone, fast in zip(plain, drafted):
        assert fast.token_ids == alone.token_ids
        assert fast.finish_reason == alone.finish_reason
        assert fast.logprobs == alone.logprobs  # the toy's sessions are exact
        assert fast.statistics["near_ties"] == 0
        assert fast.statistics["accepted"] <= fast.statistics["drafted"]
        assert len(fast.token_ids) <= max_tokens
    assert drafted[0].statistics["forward_passes"] <= plain[0].statistics["forward_passes"]


def test_the_target_model_drafting_for_itself_is_always_accepted(toy):
    results = sg.generate(toy, [""] * 3, sg.regex(CONSTRAINT), sampler=sg.Sample(), seed=1,
                          draft=sg.DraftModel(toy), return_result=True)
    for result in results:
        assert result.statistics["accepted"] == result.statistics["drafted"] > 0


def test_long_forced_text_takes_fewer_forward_passes(toy):
    constraint = sg.regex(r"(a|b)(abab1){4}(a|é)")
    plain = sg.generate(toy, "", constraint, return_result=True)
    fast = sg.generate(toy, "", constraint, draft=sg.ForcedDraft(), return_result=True)
    assert fast.token_ids == plain.token_ids
    assert fast.statistics["forward_passes"] < plain.statistics["forward_passes"] / 2
    assert fast.statistics["tokens_per_forward_pass"] > 2
    assert plain.statistics["tokens_per_forward_pass"] <= 1


def test_rows_of_a_batch_accept_different_lengths_and_stay_consistent(toy, draft_toy):
    """Sampled rows keep different numbers of drafted tokens at each step; each row's recorded
    log-probabilities are those of its own context, so the cache rolled back row by row."""
    constraints = [sg.regex(CONSTRAINT), sg.regex(r"(ab|1){2,6}é"), None]
    results = sg.generate(toy, [""] * 3 * 20, constraints * 20, max_tokens=10,
                          sampler=sg.Sample(), seed=3, return_result=True,
                          draft=[sg.ForcedDraft(), sg.DraftModel(draft_toy, k=2)])
    assert len({r.statistics["accepted"] for r in results}) > 1
    for result in results:
        context: tuple[int, ...] = ()
        for token, logprob in zip(result.token_ids, result.logprobs):
            assert logprob == pytest.approx(np.log(_toy_probs(context)[token]), abs=1e-6)
            context += (token,)


def test_stream_with_a_draft_yields_the_generated_text(toy):
    kwargs = {"max_tokens": 12, "sampler": sg.Sample(), "seed": 4, "draft": sg.ForcedDraft()}
    constraint = sg.regex(CONSTRAINT)
    pieces = list(sg.stream(toy, "", constraint, **kwargs))
    assert "".join(pieces) == sg.generate(toy, "", constraint, **kwargs)


def test_generate_json_and_the_decorator_take_drafts():
    writer = PromptRecordingToy()
    draft = [sg.ForcedDraft(), sg.PromptLookup()]
    values = sg.generate_json(writer, [""] * 6, ORDER_SCHEMA, sampler=sg.Sample(), seed=2,
                              draft=draft)
    for value in values:
        jsonschema.validate(value, ORDER_SCHEMA)
    assert sg.generate_json(writer, "", ORDER_SCHEMA, draft=draft) == sg.generate_json(
        writer, "", ORDER_SCHEMA)

    @sg.function(writer, draft=draft, sampler=sg.AWRS(), seed=1)
    def order(text: str) -> dict:
        """Read the order in: {text}"""

    assert isinstance(order("one teapot"), dict)


# ------------------------------------------------------------------ refusals and misuse
class _Liar(Draft):
    """Proposes "é"'s first byte wherever it is asked."""

    def propose(self, matcher, context: DraftContext, k: int) -> list[int]:
        return [5]


def test_drafts_are_refused_with_smc_and_checked_by_the_loop(toy):
    with pytest.raises(ValueError, match="SMC"):
        sg.generate(toy, "", sg.regex("ab"), sampler=sg.SMC(particles=2),
                    draft=sg.ForcedDraft())
    with pytest.raises(ValueError, match="draft_tokens"):
        sg.generate(toy, "", sg.regex("ab"), draft=sg.ForcedDraft(), draft_tokens=0)
    with pytest.raises(ValueError, match="does not allow"):
        sg.generate(toy, "", sg.regex("abab1"), draft=_Liar())


def test_a_draft_model_needs_the_same_vocabulary(toy):
    other = ToyModel([b"x", b"y"], lambda context: [0.4, 0.4, 0.2])
    with pytest.raises(sg.VocabularyError, match="vocabulary"):
        sg.generate(toy, "", sg.regex("abab1"), draft=sg.DraftModel(other))


# ------------------------------------------------------------------ a small transformer
LLAMA_PROMPTS = ["Name: Ada Lovelace, age 36. As JSON:", "Hi", "Answer yes or no, then why:"]
LLAMA_CONSTRAINTS = [sg.regex(r'\{"name": "[A-Za-z ]{2,12}", "age": [1-9][0-9]?\}'),
                     sg.regex(r"(yes|no), because [a-z ]{3,12}\."), None]


@pytest.fixture(scope="module")
def llama_draft(tiny_llama):  # noqa: F811
    return sg.DraftModel.truncated(tiny_llama, layers=1)


def _same_or_near_tie(plain, fast) -> None:
    """Greedy outputs agree, unless a near-tie decided differently in the last bits."""
    if fast.statistics["near_ties"] == 0:
        assert fast.token_ids == plain.token_ids
        assert fast.finish_reason == plain.finish_reason
        np.testing.assert_allclose(fast.logprobs, plain.logprobs, atol=1e-4)


@pytest.mark.parametrize("name", ["chain", "model"])
def test_greedy_transformer_with_drafts_returns_the_same_tokens(tiny_llama, llama_draft,  # noqa: F811
                                                                name):
    draft = llama_draft if name == "model" else [sg.ForcedDraft(), sg.PromptLookup()]
    plain = sg.generate(tiny_llama, LLAMA_PROMPTS, LLAMA_CONSTRAINTS, max_tokens=24,
                        chat=False, return_result=True)
    fast = sg.generate(tiny_llama, LLAMA_PROMPTS, LLAMA_CONSTRAINTS, max_tokens=24, chat=False,
                       draft=draft, return_result=True)
    for alone, batched in zip(plain, fast):
        _same_or_near_tie(alone, batched)
    assert len({r.statistics["accepted"] for r in fast}) > 1  # uneven acceptance
    # The free row decides the batch's passes; the JSON row alone shows the saving.
    assert fast[0].statistics["forward_passes"] <= plain[0].statistics["forward_passes"]
    json_row = sg.generate(tiny_llama, LLAMA_PROMPTS[0], LLAMA_CONSTRAINTS[0], max_tokens=24,
                           chat=False, draft=draft, return_result=True)
    _same_or_near_tie(plain[0], json_row)
    assert json_row.statistics["forward_passes"] < len(json_row.token_ids) / 2


def test_sampled_transformer_rows_replay_exactly(tiny_llama, llama_draft):  # noqa: F811
    """Every recorded log-probability equals a fresh session's on the row's own context: the
    KV cache kept exactly the accepted tokens of each row, however many each accepted."""
    results = sg.generate(tiny_llama, LLAMA_PROMPTS, LLAMA_CONSTRAINTS, max_tokens=16,
                          chat=False, sampler=sg.Sample(temperature=0.8), seed=2,
                          draft=[sg.ForcedDraft(), sg.PromptLookup(), llama_draft],
                          return_result=True)
    assert re.fullmatch(r'\{"name": "[A-Za-z ]{2,12}", "age": [1-9][0-9]?\}',
                        results[0].text) or results[0].finish_reason == "length"
    for prompt, result in zip(LLAMA_PROMPTS, results):
        assert result.statistics["accepted"] <= result.statistics["drafted"]
        session = tiny_llama.start([tiny_llama.encode_prompt(prompt, chat=False)])
        for token, logprob in zip(result.token_ids, result.logprobs):
            assert session.logprobs()[0, token].item() == pytest.approx(logprob, abs=1e-4)
            session.append(torch.tensor([token]))


def test_a_truncated_draft_shares_the_targets_weights(tiny_llama, llama_draft):  # noqa: F811
    short, full = llama_draft.model.model, tiny_llama.model
    assert len(short.model.layers) == 1 and len(full.model.layers) == 2
    assert full.config.num_hidden_layers == 2
    assert short.model.layers[0] is full.model.layers[0]
    assert short.lm_head.weight.data_ptr() == full.lm_head.weight.data_ptr()
    with pytest.raises(ValueError, match="layers"):
        sg.DraftModel.truncated(tiny_llama, layers=2)


# ------------------------------------------------------------------ the default model
@pytest.fixture(scope="module")
def default_model():
    return sg.load_model()


PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "birth_year": {"type": "integer"},
                                           "city": {"type": "string"}},
          "required": ["name", "birth_year", "city"]}


@pytest.mark.parametrize("whitespace", ["pretty", "flexible"])
def test_default_model_extracts_the_same_json_in_fewer_forward_passes(default_model,
                                                                      whitespace):
    prompts = ["Extract the person as JSON: Ada Lovelace was born in 1815 in London.",
               "Extract the person as JSON: Marie Curie was born in 1867 in Warsaw."]
    for prompt in prompts:
        plain = sg.generate_json(default_model, prompt, PERSON, whitespace=whitespace,
                                 max_tokens=80, return_result=True)
        fast = sg.generate_json(default_model, prompt, PERSON, whitespace=whitespace,
                                max_tokens=80, return_result=True,
                                draft=[sg.ForcedDraft(), sg.PromptLookup()])
        assert fast.statistics["near_ties"] == 0, "no choice this close in these outputs"
        assert fast.value == plain.value and fast.token_ids == plain.token_ids
        assert fast.statistics["forward_passes"] < plain.statistics["forward_passes"]


def test_cli_drafts_by_default_when_decoding_greedily(capsys, monkeypatch, default_model):
    monkeypatch.setattr(sg, "load_model", lambda name=None: default_model)
    schema = json.dumps(PERSON)
    prompt = "Extract the person as JSON: Ada Lovelace was born in 1815 in London."
    outputs = {}
    for draft in ("none", "auto", "forced,lookup"):
        assert cli.main(["generate", "--schema", schema, "--json", "--draft", draft,
                         "--draft-tokens", "4", prompt]) == 0
        outputs[draft] = json.loads(capsys.readouterr().out)
    assert outputs["none"]["json"] == outputs["auto"]["json"] == outputs["forced,lookup"]["json"]
    assert "drafted" not in outputs["none"]["statistics"]
    assert outputs["auto"]["statistics"] == outputs["forced,lookup"]["statistics"]
    assert 0 < outputs["auto"]["statistics"]["accepted"] <= outputs["auto"]["statistics"][
        "drafted"]
    assert cli.main(["generate", "--regex", "(yes|no)", "--sampler", "smc", "--particles", "2",
                     "--json", prompt]) == 0  # auto: no drafts with SMC
    capsys.readouterr()
    with pytest.raises(SystemExit, match="--draft"):
        cli.main(["generate", "--regex", "a", "--draft", "model", prompt])
    with pytest.raises(SystemExit, match="--draft"):
        cli.main(["generate", "--regex", "a", "--draft", "forced", "--sampler", "smc", prompt])
