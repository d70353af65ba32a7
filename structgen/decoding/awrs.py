"""Adaptive weighted rejection sampling (AWRS): exact constrained sampling without full masks.

Instead of masking the whole vocabulary, draw tokens from the model's *unconstrained*
distribution q without replacement and return the first one the constraint allows. Visiting
tokens in the order of Gumbel-perturbed scores (``log q + G``, G standard Gumbel) is exactly a
sequence of draws without replacement, and the first allowed token in that order is the argmax of
the perturbed scores over the allowed set: an exact sample of q restricted to the allowed set and
renormalised (the Gumbel-max trick). Since the model usually puts most of its mass on allowed
tokens, this takes one or two ``Matcher.allowed`` checks instead of a vocabulary-wide mask.

The same walk estimates the allowed mass Z = sum of q over allowed tokens, the importance weight
sequential Monte Carlo needs (:func:`rejection_walk` states the estimator and why it is unbiased).
After ``max_rejections`` rejections the walk falls back to the full mask: the argmax of the same
perturbed scores over the allowed set, with Z computed exactly, so the fallback changes neither
the distribution nor the unbiasedness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from structgen.decoding.samplers import Sampler, Selection, StepRows
from structgen.kernels.torch_masks import apply_token_bitmask


@dataclass(frozen=True)
class WalkOutcome:
    """The end of one row's rejection walk.

    ``token`` is ``None`` when ``max_rejections`` tokens were rejected (the caller falls back to
    the full mask). ``allowed_mass`` is the estimate of Z when one was asked for and the walk
    accepted a token.
    """

    token: int | None
    allowed_mass: float | None
    checks: int
    rejections: int


def rejection_walk(order: Sequence[int], probs: Sequence[float], allowed: Callable[[int], bool],
                   max_rejections: int, estimate: bool) -> WalkOutcome:
    """Check the tokens of ``order`` (a draw without replacement from q; ``probs[i]`` is
    q(order[i])) until one is allowed.

    The estimate of the allowed mass Z, when ``estimate`` is set: with M the mass not yet
    rejected when token a is accepted, draw one more token b without replacement (the next in
    ``order``) and return ``q(a) + (M - q(a)) * [b allowed]``. It is unbiased whatever happened
    before: given the rejections so far, a is allowed token t with probability q(t) / Z, and b is
    allowed with probability (Z - q(a)) / (M - q(a)), so the expectation is
    sum_t q(t)/Z * (q(t) + Z - q(t)) = Z. Its error is at most M - q(a): small exactly when the
    walk is short, which is when one token holds most of the mass.

    ``order`` must hold at least ``max_rejections + 2`` tokens, or the whole vocabulary.
    """
    rejected = []
    for index, token in enumerate(order):
        if index == max_rejections:
            return WalkOutcome(None, None, index, index)
        if not allowed(token):
            rejected.append(probs[index])
            continue
        checks = index + 1
        if not estimate:
            return WalkOutcome(token, None, checks, index)
        accepted = probs[index]
        tail = max(0.0, 1.0 - math.fsum(rejected) - accepted)
        mass = accepted
        if tail > 0 and index + 1 < len(order):
            checks += 1
            if allowed(order[index + 1]):
                mass += tail
        return WalkOutcome(token, mass, checks, index)
    return WalkOutcome(None, None, len(order), len(order))


@dataclass(frozen=True)
class AWRS(Sampler):
    """Adaptive weighted rejection sampling: exact samples of the masked distribution, checking
    tokens one by one instead of building the full mask (see the module docstring).

    Args:
        temperature: divides the log-probabilities before sampling (the proposal q is the
            tempered model); 0 visits tokens by decreasing probability, i.e. greedy decoding.
        max_rejections: after this many rejected tokens in one step, fall back to the full
            mask (exactly: same sample, exact allowed mass).
    """

    temperature: float = 1.0
    max_rejections: int = 32

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.max_rejections < 1:
            raise ValueError("max_rejections must be >= 1")

    def select(self, logprobs: torch.Tensor, rows: StepRows, generator: torch.Generator,
               weighted: bool = False) -> Selection:
        if weighted and self.temperature == 0:
            raise ValueError("AWRS(temperature=0) is greedy: it has no importance weights")
        scores = logprobs.double()
        log_q = torch.log_softmax(scores / self.temperature, dim=-1) if self.temperature else \
            torch.log_softmax(scores, dim=-1)
        keys = log_q
        if self.temperature:
            exponential = torch.empty_like(log_q).exponential_(generator=generator)
            keys = log_q - exponential.log()  # + standard Gumbel noise
        width = min(keys.shape[-1], self.max_rejections + 2)
        order = keys.topk(width, dim=-1).indices
        order_probs = log_q.gather(1, order).exp().cpu().numpy()
        order = order.cpu().numpy()
        tokens = np.empty(len(order), dtype=np.int64)
        masses = np.empty(len(order))
        counts = {"checks": [0] * len(order), "rejections": [0] * len(order),
                  "fallbacks": [0] * len(order)}
        for row in range(len(order)):
            outcome = rejection_walk(order[row].tolist(), order_probs[row].tolist(),
                                     lambda token, row=row: rows.allowed(row, token),
                                     self.max_rejections, estimate=weighted)
            counts["checks"][row] = outcome.checks
            counts["rejections"][row] = outcome.rejections
            if outcome.token is None:
                counts["fallbacks"][row] = 1
                masked = apply_token_bitmask(keys[row].clone(), rows.row_mask(row))
                tokens[row] = int(masked.argmax())
                allowed_log_q = apply_token_bitmask(log_q[row].clone(), rows.row_mask(row))
                masses[row] = float(allowed_log_q.logsumexp(-1).exp())
            else:
                tokens[row] = outcome.token
                masses[row] = outcome.allowed_mass if weighted else math.nan
        chosen = torch.from_numpy(tokens).to(logprobs.device)
        log_weights = None
        if weighted:
            index = chosen.view(-1, 1)
            log_p = torch.log_softmax(scores, dim=-1).gather(1, index).view(-1)
            log_weights = (log_p - log_q.gather(1, index).view(-1)).cpu().numpy()
            log_weights += np.log(masses)
        return Selection(chosen, log_weights, counts)
