"""Verification for speculative decoding: which drafted tokens a step keeps, and the target's own
token after them, such that the output has exactly the distribution of decoding one token at a
time.

The decode loop (``structgen.decoding.loop``) scores a row's drafted tokens d_1..d_m with one
forward pass of the target, which gives its next-token log-probabilities at every *position*
j = 0..m (position j: after d_1..d_j). It advances the row's matcher along the draft, so position
j has its own constraint state, and lays all positions of all rows out as the rows of one flat
batch: row r's positions are consecutive, ``decisions[r]`` of them (m + 1, or m when the
constraint allows nothing but EOS after the whole draft: the row then ends there, as it would
without a draft, and no token follows). This module decides, per row, how many drafted tokens
to keep and which token the target adds after them (the *correction* where a drafted token is
rejected, the *bonus* where all are kept). Two rules:

* **Coupled draws**, when every drafted token came from a deterministic draft (a point mass):
  the sampler makes its own choice at every position, exactly as it would decoding one token
  at a time (``Sampler.select`` on the position's log-probabilities and constraint state), and
  the drafted tokens are kept while they equal those choices; the first choice that differs is
  the correction. Each kept or added token is the sampler's own choice given the tokens before
  it, so the output is the sampler's output, whatever the sampler: greedy (the same tokens),
  masked sampling (the same distribution; keeping d with probability q(d) and otherwise drawing
  from q without d is the standard speculative rule for a point-mass draft), AWRS (its own
  rejection walk at every position). Choices past the first difference are discarded unseen, which
  leaves the others independent.
* **The speculative rule** (Leviathan et al. 2023; Chen et al. 2023), when some token was drawn
  from a draft distribution q (:class:`~structgen.decoding.drafts.DraftModel`): with p the
  target's masked distribution as its sampler processes it, keep d with probability
  min(1, p(d) / q(d)); on rejection draw from max(0, p - q) normalised; after the last kept
  token draw from p. For each position, P(output x) = q(x) min(1, p(x)/q(x)) +
  (1 - sum_y min(p(y), q(y))) (p(x) - q(x))^+ / sum_y (p(y) - q(y))^+ = min(p(x), q(x)) +
  (p(x) - q(x))^+ = p(x): exact. A deterministic token is the point mass q = [d], for which the
  rule keeps d with probability p(d) and otherwise draws from p without d.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from structgen.decoding.awrs import AWRS
from structgen.decoding.drafts import DraftSampling, Proposal
from structgen.decoding.samplers import Greedy, Sample, Sampler, StepRows, draw_categorical
from structgen.kernels.torch_masks import apply_token_bitmask

NEAR_TIE = 1e-4
"""Greedy choices whose top-2 masked logit gap is below this may differ between a k-token and a
1-token forward pass (the kernels differ in the last bits); they are counted as ``near_ties``."""


@dataclass
class Verdict:
    """What one row keeps of a step: the first ``accepted`` drafted tokens, then ``token`` (the
    target's correction or bonus; None when the constraint is finished after the draft) and
    statistics of the step (the sampler's counts, ``near_ties``)."""

    accepted: int
    token: int | None
    counts: dict[str, int] = field(default_factory=dict)


def draft_sampling(sampler: Sampler, generator: torch.Generator) -> DraftSampling:
    """How drafts that sample should draw for ``sampler``: from the distribution it draws from
    (``Sample``: its temperature, top-p and top-k; ``AWRS``: masked sampling at its temperature),
    so that their tokens are accepted often; greedily where the sampler is greedy or its
    distribution is not known here (the coupled draws then verify any sampler)."""
    if isinstance(sampler, Sample) and sampler.temperature > 0:
        return DraftSampling(sampler.distribution, generator)
    if isinstance(sampler, AWRS) and sampler.temperature > 0:
        return DraftSampling(Sample(temperature=sampler.temperature).distribution, generator)
    return DraftSampling(None, generator)


def verify(sampler: Sampler, sampling: DraftSampling, logprobs: torch.Tensor, rows: StepRows,
           proposals: Sequence[Proposal], decisions: Sequence[int],
           generator: torch.Generator) -> list[Verdict]:
    """Decide every row of a step (see the module docstring for the layout and the rules).

    Args:
        sampler: the decode's sampler.
        sampling: what the drafts were told (``draft_sampling``); its ``distribution`` is p.
        logprobs: ``(sum(decisions), vocab)`` unconstrained target log-probabilities, one row per
            position.
        rows: the constraint state at each position, in the same layout.
        proposals: each row's drafted tokens, with their draft distributions.
        decisions: how many positions each row has.
        generator: the decode's random generator.

    Raises:
        TypeError: a draft sampled its tokens although the sampler has no known distribution.
    """
    if not any(p.sampled for p in proposals):
        return _coupled_draws(sampler, logprobs, rows, proposals, decisions, generator)
    if sampling.distribution is None:
        raise TypeError(f"a draft sampled its tokens, which needs the distribution of the "
                        f"target's sampler; {sampler!r} has none known (use sg.Sample or "
                        "sg.AWRS)")
    return _speculative_rule(sampling.distribution, logprobs, rows, proposals, decisions,
                             generator)


def _is_greedy(sampler: Sampler) -> bool:
    return isinstance(sampler, Greedy) or (isinstance(sampler, Sample) and sampler.temperature == 0)


def _coupled_draws(sampler: Sampler, logprobs: torch.Tensor, rows: StepRows,
                   proposals: Sequence[Proposal], decisions: Sequence[int],
                   generator: torch.Generator) -> list[Verdict]:
    """Keep drafted tokens while they equal the sampler's own choice at their position."""
    near: list[bool] | None = None
    counts: dict[str, list[int]] = {}
    if _is_greedy(sampler):
        masked = apply_token_bitmask(logprobs.clone(), rows.bitmask())
        draws = masked.argmax(dim=-1)  # Greedy's own choice: the lowest id among ties
        top = masked.topk(2, dim=-1).values
        near = ((top[:, 0] - top[:, 1]) < NEAR_TIE).tolist()
    else:
        selection = sampler.select(logprobs, rows, generator)
        draws, counts = selection.tokens, selection.counts
    chosen = draws.tolist()
    verdicts = []
    start = 0
    for proposal, n in zip(proposals, decisions):
        accepted = 0
        while accepted < len(proposal.tokens) and chosen[start + accepted] == proposal.tokens[
                accepted]:
            accepted += 1
        token = chosen[start + accepted] if accepted < n else None
        used = slice(start, start + n)
        verdict = Verdict(accepted, token, {name: sum(values[used])
                                            for name, values in counts.items()})
        if near is not None:  # the positions whose choice made the output
            verdict.counts["near_ties"] = sum(near[start: start + min(accepted + 1, n)])
        verdicts.append(verdict)
        start += n
    return verdicts


def _speculative_rule(distribution: Callable[[torch.Tensor], torch.Tensor],
                      logprobs: torch.Tensor, rows: StepRows, proposals: Sequence[Proposal],
                      decisions: Sequence[int], generator: torch.Generator) -> list[Verdict]:
    """Keep drafted token d with probability min(1, p(d) / q(d)); the residual on rejection."""
    masked = apply_token_bitmask(logprobs.to(torch.float64, copy=True), rows.bitmask())
    p = distribution(masked)
    uniforms = torch.rand(len(p), generator=generator, dtype=torch.float64,
                          device=p.device).tolist()
    verdicts = []
    start = 0
    for proposal, n in zip(proposals, decisions):
        accepted, token = 0, None
        for j, (drafted, q) in enumerate(zip(proposal.tokens, proposal.distributions)):
            target = p[start + j]
            if q is None:
                ratio = float(target[drafted])
            else:
                q = q.to(target)
                ratio = min(1.0, float(target[drafted] / q[drafted]))
            if uniforms[start + j] < ratio:
                accepted += 1
                continue
            if q is None:
                residual = target.clone()
                residual[drafted] = 0.0
            else:
                residual = (target - q).clamp(min=0.0)
            if not residual.sum() > 0:  # reachable only by rounding, when p(d) ~ q(d)
                residual = target
            token = int(draw_categorical(residual, generator))
            break
        else:
            if n > len(proposal.tokens):
                token = int(draw_categorical(p[start + n - 1], generator))
        verdicts.append(Verdict(accepted, token))
        start += n
    return verdicts
