"""AWRS and SMC: exact samples, unbiased weights, and convergence to the global constrained
distribution, checked against enumeration on toy models."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.decoding.awrs import rejection_walk
from structgen.decoding.smc import SMCRun, effective_sample_size, log_mean_exp, resample
from structgen.testing import ToyModel
from tests.test_decoding import (  # noqa: F401
    TOKENS,
    _chi_square_fits,
    _masked_distribution,
    _toy_probs,
    tiny_llama,
)

CONSTRAINT = r"(a|b|é){1,2}1?"


@pytest.fixture
def toy() -> ToyModel:
    return ToyModel(TOKENS, _toy_probs)


def _global_target(model: ToyModel, constraint, max_tokens: int, potential=None) -> dict:
    """Every output of at most ``max_tokens`` tokens in the language, with its unnormalised
    target mass p(x EOS) * exp(potential(x))."""
    compiled = sg.compile(constraint, model.vocab)
    target: dict[tuple, float] = defaultdict(float)

    def expand(matcher, context: tuple, prob: float) -> None:
        probs = np.asarray(model.next_probs(context))
        if matcher.is_accepting():
            text = b"".join(model.tokens[t] for t in context).decode("utf-8", "replace")
            factor = 1.0 if potential is None else math.exp(potential(text))
            target[context] += prob * probs[model.eos_token_id] * factor
        if len(context) == max_tokens:
            return
        for token in range(len(model.tokens)):
            if matcher.allowed(token):
                child = matcher.copy()
                child.advance(token)
                expand(child, context + (token,), prob * probs[token])

    expand(compiled.matcher(), (), 1.0)
    return dict(target)


# ------------------------------------------------------------------------------ AWRS
def _orders(probs: list[float], length: int):
    """Every prefix of ``length`` tokens of a draw without replacement, with its probability."""
    def extend(prefix: tuple, prob: float, remaining: float):
        if len(prefix) == length:
            yield prefix, prob
            return
        for token, q in enumerate(probs):
            if token not in prefix and q > 0:
                yield from extend(prefix + (token,), prob * q / remaining, remaining - q)
    yield from extend((), 1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.integers(1, 20), min_size=1, max_size=6),
       allowed_bits=st.integers(1, 2**6 - 1), max_rejections=st.integers(1, 6))
def test_rejection_walk_samples_exactly_and_estimates_the_allowed_mass_without_bias(
        weights, allowed_bits, max_rejections):
    probs = [w / sum(weights) for w in weights]
    allowed = {t for t in range(len(probs)) if allowed_bits >> t & 1} or {0}
    z = sum(probs[t] for t in allowed)
    sample = defaultdict(float)  # P(X = t)
    weighted = defaultdict(float)  # E[Z_estimate * 1{X = t}]
    for order, prob in _orders(probs, min(len(probs), max_rejections + 2)):
        outcome = rejection_walk(order, [probs[t] for t in order], allowed.__contains__,
                                 max_rejections, estimate=True)
        if outcome.token is None:  # fallback: the masked distribution, exact mass
            assert outcome.rejections == max_rejections
            for t in allowed:
                sample[t] += prob * probs[t] / z
                weighted[t] += prob * probs[t] / z * z
        else:
            assert outcome.token in allowed and outcome.rejections < max_rejections
            sample[outcome.token] += prob
            # No token left for the tail check: the caller computes the mass exactly.
            mass = z if outcome.allowed_mass is None else outcome.allowed_mass
            weighted[outcome.token] += prob * mass
    assert set(sample) == set(weighted) == allowed
    for t in allowed:
        assert sample[t] == pytest.approx(probs[t] / z, abs=1e-12)
        # Properly weighted: the weight times the indicator of t has mean q(t), so the weight's
        # mean is Z.
        assert weighted[t] == pytest.approx(probs[t], abs=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.6, 2.0])
def test_awrs_selection_is_properly_weighted_for_every_token(toy, temperature):
    """E[W 1{X = x}] = p(x) 1{x allowed}, with W = p(X) / q_T(X) * Z_T-estimate."""
    from structgen.decoding.loop import RowConstraints, text_mask

    matcher = sg.compile(sg.regex(r"(b|é|1)a*"), toy.vocab).matcher()
    p = np.asarray(_toy_probs(()))
    rows = 20000
    logprobs = torch.log(torch.tensor(p, dtype=torch.float32)).expand(rows, -1)
    constraints = RowConstraints([matcher] * rows, text_mask(toy.vocab))
    generator = torch.Generator().manual_seed(0)
    selection = sg.AWRS(temperature=temperature).select(logprobs, constraints, generator,
                                                         weighted=True)
    weights = np.exp(selection.log_weights)
    tokens = selection.tokens.numpy()
    for token in range(toy.vocab.size):
        contributions = weights * (tokens == token)
        truth = p[token] if matcher.allowed(token) else 0.0
        _assert_unbiased(contributions, truth, sigmas=5)
    assert np.mean(selection.counts["checks"]) < 4


@pytest.mark.parametrize("awrs", [sg.AWRS(), sg.AWRS(max_rejections=1),
                                  sg.AWRS(temperature=1.7)])
def test_awrs_samples_the_masked_distribution(toy, awrs):
    constraint = sg.regex(CONSTRAINT)
    exact = _masked_distribution(toy, constraint, max_len=8, sampler=awrs)
    n = 3000
    results = sg.generate(toy, [""] * n, constraint, max_tokens=8, sampler=awrs, seed=5,
                          return_result=True)
    chi2, critical = _chi_square_fits(Counter(tuple(r.token_ids) for r in results), exact, n)
    assert chi2 < critical, (chi2, critical)
    fallbacks = sum(r.statistics["fallbacks"] for r in results)
    checks = sum(r.statistics["checks"] for r in results)
    steps = sum(len(r.token_ids) + (r.finish_reason == "eos") for r in results)
    assert checks >= steps  # at least one check per token chosen
    if awrs.max_rejections == 1:
        assert fallbacks > 0
    assert all(r.statistics["rejections"] <= awrs.max_rejections * 8 for r in results)


def test_awrs_at_temperature_zero_is_greedy(toy):
    for pattern in (CONSTRAINT, r"(ab|b)+1{1,3}", r"[ab1]{2,5}"):
        constraint = sg.regex(pattern)
        assert sg.generate(toy, "", constraint, max_tokens=10, sampler=sg.AWRS(temperature=0)) \
            == sg.generate(toy, "", constraint, max_tokens=10)


def test_awrs_checks_one_token_when_the_model_agrees_with_the_constraint():
    # The model puts almost all its mass on "a", which the constraint allows at every step.
    model = ToyModel([b"a", b"b"], lambda c: [0.998, 0.001, 0.001] if len(c) < 5 else
                     [0.001, 0.001, 0.998])
    result = sg.generate(model, "", sg.regex("a+"), max_tokens=8, sampler=sg.AWRS(), seed=0,
                         return_result=True)
    assert result.text == "aaaaa" and result.finish_reason == "eos"
    assert result.statistics["checks"] == 6 and result.statistics["rejections"] == 0


# ------------------------------------------------------------------------------- SMC
def test_weight_arithmetic():
    log_w = np.array([0.0, math.log(3.0), -math.inf, math.log(4.0)])
    assert log_mean_exp(log_w) == pytest.approx(math.log(2.0))
    assert effective_sample_size(log_w) == pytest.approx(64 / 26)
    assert effective_sample_size(np.zeros(5)) == pytest.approx(5)
    assert effective_sample_size(np.full(3, -math.inf)) == 0
    rng = np.random.default_rng(0)
    for scheme in ("systematic", "multinomial"):
        counts = np.zeros(4)
        for _ in range(2000):
            ancestors = resample(log_w, scheme, rng)
            assert len(ancestors) == 4 and 2 not in ancestors
            counts += np.bincount(ancestors, minlength=4)
        assert counts / counts.sum() == pytest.approx([0.125, 0.375, 0, 0.5], abs=0.02)
    # Systematic resampling gives each particle floor or ceil of N * w copies.
    for _ in range(50):
        copies = np.bincount(resample(log_w, "systematic", rng), minlength=4)
        assert all(math.floor(4 * w) <= c <= math.ceil(4 * w)
                   for c, w in zip(copies, [0.125, 0.375, 0, 0.5]))


def _smc_estimates(toy, constraint, smc, runs, max_tokens, seed=0):
    """Per run: the estimate of the target's total mass, and of each output's mass (runs whose
    particles all die estimate zero, so they are counted, not raised as by ``generate``)."""
    results = SMCRun(toy, [""] * runs, [constraint] * runs, smc, max_tokens, seed).run()
    totals = np.array([math.exp(r.log_marginal_likelihood) for r in results])
    per_output = defaultdict(lambda: np.zeros(runs))
    for run, result in enumerate(results):
        for particle in result.particles:
            if particle.log_weight > -math.inf:
                per_output[tuple(particle.token_ids)][run] += (
                    math.exp(particle.log_weight) / len(result.particles))
    return results, totals, per_output


def _assert_unbiased(estimates: np.ndarray, truth: float, sigmas: float = 4.5) -> None:
    error = estimates.std(ddof=1) / math.sqrt(len(estimates)) + 1e-12
    assert abs(estimates.mean() - truth) < sigmas * error, (estimates.mean(), truth, error)


@pytest.mark.parametrize("smc", [
    sg.SMC(particles=4, ess_threshold=1.0),  # resample every step
    sg.SMC(particles=4, proposal=sg.Sample(), resampling="multinomial"),
    sg.SMC(particles=3, proposal=sg.AWRS(temperature=1.5)),
    sg.SMC(particles=3, proposal=sg.Sample(temperature=0.8), ess_threshold=0.9),
])
def test_smc_weights_estimate_the_global_target_without_bias(toy, smc):
    constraint = sg.regex(CONSTRAINT)
    target = _global_target(toy, constraint, max_tokens=5)
    results, totals, per_output = _smc_estimates(toy, constraint, smc, runs=700, max_tokens=5)
    _assert_unbiased(totals, sum(target.values()))
    assert set(per_output) <= set(target)
    # Each output's mass (rare ones pooled into one cell), with a margin for ~20 tests.
    total = sum(target.values())
    rare = np.zeros(len(totals))
    rare_mass = 0.0
    for output, mass in target.items():
        estimates = per_output.get(output, np.zeros(len(totals)))
        if mass < 0.02 * total:
            rare += estimates
            rare_mass += mass
        else:
            _assert_unbiased(estimates, mass, sigmas=5)
    _assert_unbiased(rare, rare_mass, sigmas=5)
    for result in results:
        assert result.log_marginal_likelihood > -math.inf
        assert re.fullmatch(CONSTRAINT, result.text)
        assert result.statistics["particles"] == smc.particles


def _prefers_to_stop_early(context: tuple[int, ...]) -> list[float]:
    """Tokens a, b, EOS. "a" is likely first, but then the model wants to stop, which the
    constraint below forbids: masking commits to "aa" (0.7), the global distribution prefers "b"
    (0.75) where stopping is allowed."""
    if not context:
        return [0.7, 0.3, 0.0]
    if context == (0,):
        return [0.02, 0.0, 0.98]
    if context == (1,):
        return [0.4, 0.1, 0.5]
    return [0.0, 0.0, 1.0] if len(context) == 3 else [0.3, 0.3, 0.4]


def _runs_long(context: tuple[int, ...]) -> list[float]:
    """After "a" the model keeps writing "a" (0.9) far beyond ``max_tokens``; "b" is complete."""
    if not context:
        return [0.8, 0.2, 0.0]
    return [0.9, 0.0, 0.1] if context[0] == 0 else [0.0, 0.0, 1.0]


TOYS = {
    "eos-differs": (_prefers_to_stop_early, r"aa|b(ab)?", 4),
    "max-tokens-binds": (_runs_long, r"a+|b", 3),
}


def _output_distance(model, pattern, max_tokens, sampler, runs, seed) -> tuple[float, float]:
    """Total variation between the outputs' frequencies (cut outputs included) and the global
    target p(x EOS | x in L, len(x) <= max_tokens), and the size of its sampling noise (half the
    sum of the frequencies' standard errors). Masking runs without the token budget: plain
    masking is the distortion SMC corrects."""
    target = _global_target(model, sg.regex(pattern), max_tokens)
    total = sum(target.values())
    results = SMCRun(model, [""] * runs, [sg.regex(pattern)] * runs, sampler, max_tokens,
                     seed).run() if isinstance(sampler, sg.SMC) else sg.generate(
        model, [""] * runs, sg.regex(pattern), max_tokens=max_tokens, sampler=sampler,
        seed=seed, return_result=True, finish_within_max_tokens=False)
    counts = Counter(tuple(r.token_ids) if r.complete else "cut" for r in results)
    shares = {c: target.get(c, 0.0) / total for c in set(counts) | set(target)}
    distance = 0.5 * sum(abs(counts.get(c, 0) / runs - share) for c, share in shares.items())
    noise = 0.5 * sum(math.sqrt(share * (1 - share) / runs) for share in shares.values())
    return distance, noise


@pytest.mark.parametrize("proposal", [sg.AWRS(), sg.Sample()], ids=["AWRS", "Sample"])
@pytest.mark.parametrize("toy_name", list(TOYS))
def test_smc_outputs_approach_the_global_distribution_where_masking_distorts_it(toy_name,
                                                                                proposal):
    next_probs, pattern, max_tokens = TOYS[toy_name]
    model = ToyModel([b"a", b"b"], functools.lru_cache(maxsize=None)(next_probs))
    masked, _ = _output_distance(model, pattern, max_tokens, sg.Sample(), 600, seed=1)
    distances = [_output_distance(model, pattern, max_tokens,
                                  sg.SMC(particles=n, proposal=proposal), runs, seed=1)
                 for n, runs in ((1, 600), (4, 600), (32, 1000))]
    assert masked >= 0.5
    assert distances[0][0] > distances[1][0] > distances[2][0]
    distance, noise = distances[2]
    assert distance <= 0.05 + noise, distances


@pytest.mark.parametrize("two_arguments", [False, True])
@pytest.mark.parametrize("boundary", ["token", "word", "end"])
def test_smc_potentials_multiply_the_target_and_telescope(toy, boundary, two_arguments):
    def score(text: str) -> float:
        return -0.7 * text.count("b") + (-math.inf if "1" in text[:1] else 0.0)

    potential = (lambda text, complete: score(text)) if two_arguments else score
    constraint = sg.regex(r"[ab1]{1,3}")
    target = _global_target(toy, constraint, max_tokens=4, potential=score)
    smc = sg.SMC(particles=4, potential=potential, boundary=boundary)
    _, totals, per_output = _smc_estimates(toy, constraint, smc, runs=500, max_tokens=4)
    _assert_unbiased(totals, sum(target.values()))
    assert all(not (b"".join(TOKENS[t] for t in out)).startswith(b"1") for out in per_output)


def test_smc_potential_sees_whether_the_output_is_complete(toy):
    seen = []

    def potential(text: str, complete: bool) -> float:
        seen.append((text, complete))
        return 0.0 if complete or len(text) < 3 else -math.inf

    smc = sg.SMC(particles=4, potential=potential)
    results = SMCRun(toy, [""] * 20, [sg.regex(r"[ab]{1,6}")] * 20, smc, max_tokens=6).run()
    for result in results:
        for particle in result.particles:
            if particle.log_weight > -math.inf:
                assert 1 <= len(particle.text) <= 3 and particle.finish_reason == "eos"
    assert any(r.log_marginal_likelihood > -math.inf for r in results)
    assert any(complete for _, complete in seen) and any(not c for _, c in seen)


def test_smc_particles_cut_by_max_tokens_weigh_nothing_and_all_cut_raise(toy):
    constraint = sg.regex(r"[ab]{2}|a{9}")
    result = sg.generate(toy, "", constraint, max_tokens=4, sampler=sg.SMC(particles=8),
                         seed=3, return_particles=True)
    for particle in result.particles:
        if particle.finish_reason == "length":
            assert particle.log_weight == -math.inf
        else:
            assert len(particle.text) == 2 and particle.log_weight > -math.inf
    with pytest.raises(sg.IncompleteOutput):
        sg.generate(toy, "", sg.regex(r"a{9}"), max_tokens=4, sampler=sg.SMC(particles=4))


def test_smc_refuses_proposals_it_cannot_weigh():
    for proposal in (sg.Greedy(), sg.Sample(top_p=0.9), sg.Sample(top_k=5),
                     sg.Sample(temperature=0), sg.AWRS(temperature=0)):
        with pytest.raises(ValueError, match="proposal|top-p"):
            sg.SMC(proposal=proposal)
    with pytest.raises(ValueError):
        sg.SMC(particles=0)
    with pytest.raises(ValueError, match="resampling"):
        sg.SMC(resampling="residual-ish")


def test_smc_reorders_the_kv_cache_with_its_particles(tiny_llama):  # noqa: F811
    prompts = ["Hi", "A longer prompt, padded on the left"]
    constraint = sg.regex(r"[a-z ]{1,12}")
    results = sg.generate(tiny_llama, prompts, constraint, max_tokens=6, chat=False,
                          sampler=sg.SMC(particles=4, ess_threshold=1.0), seed=0,
                          return_particles=True)
    for prompt, result in zip(prompts, results):
        assert result.statistics["resamples"] > 0
        assert re.fullmatch(r"[a-z ]{1,12}", result.text)
        # The recorded log-probabilities are those of the particle's own context: replay it.
        context = tiny_llama.encode_prompt(prompt, chat=False)
        session = tiny_llama.start([context])
        for token, logprob in zip(result.token_ids, result.logprobs):
            assert session.logprobs()[0, token].item() == pytest.approx(logprob, abs=1e-4)
            session.append(torch.tensor([token]))
