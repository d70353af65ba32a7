"""Sequential Monte Carlo (SMC): sampling from the *global* constrained distribution.

Masking and AWRS sample each token from the model renormalised over the allowed tokens. That is
the right distribution for one step but not for the whole output: the model is pushed down paths
it would rarely take, because the renormalisation hides how little mass the constraint left.
SMC decodes N particles as one batch and corrects this with importance weights. At each step a
particle's weight is multiplied by p(x)/q(x) for the token x it drew from the proposal q; for
the masked proposal at temperature 1 that ratio is the allowed mass Z, which AWRS estimates
without bias. When the weights grow uneven (effective sample size below ``ess_threshold * N``)
the particles are resampled in proportion to them (KV-cache rows reordered), and all restart at
the average weight, which keeps the weights' mean an unbiased estimate of the target's mass.

The target, with p the model, L the constraint's language, phi the optional potential and T the
``max_tokens`` bound: ``p(x EOS) * exp(phi(x))`` for x in L with at most T tokens. Particles cut
by ``max_tokens`` get weight zero. As N grows, the output (one particle drawn by final weight)
approaches the target normalised, and ``log_marginal_likelihood`` (the log of the average final
weight) is an unbiased estimate's log of the target's total mass, e.g. the probability that the
model's unconstrained output would have been in L.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from structgen.automata.matcher import Matcher
from structgen.compiler import compile as compile_constraint
from structgen.constraints import Constraint
from structgen.decoding.awrs import AWRS
from structgen.decoding.loop import GenerationResult, RowConstraints, text_mask
from structgen.decoding.models import LanguageModel, Prompt
from structgen.decoding.samplers import Greedy, Sample, Sampler

Potential = Callable[[str], float]

_WORD_END = frozenset(" \t\n\r.,;:!?)]}\"'")


@dataclass(frozen=True)
class SMC:
    """Sequential Monte Carlo over ``particles`` sequences decoded as one batch.

    Args:
        particles: N, the number of particles per prompt.
        ess_threshold: resample when the effective sample size falls below this fraction of N
            (1 resamples every step, 0 never).
        resampling: ``"systematic"`` (low variance) or ``"multinomial"``.
        proposal: how each particle draws its next token: ``sg.AWRS()`` (default; weights from
            its unbiased allowed-mass estimate) or ``sg.Sample(temperature=...)`` (full masks;
            exact weights). A tempered proposal is corrected by p/q; top-p and top-k are refused
            (a truncated proposal cannot reach every output, so no weight can correct it).
        potential: ``potential(text) -> float`` or ``potential(text, complete) -> float``, a
            log-weight on a partial (``complete=False``) or complete output (``-inf`` rules it
            out), e.g. "this SQL runs" or "this sum is right". It enters the weights as
            telescoping increments (the new score minus the particle's last score) at each
            ``boundary`` and always at the end, so the target is multiplied by
            ``exp(potential(output, True))``.
        boundary: when to evaluate the potential on a partial output: ``"token"`` (after every
            token), ``"word"`` (after a token ending in whitespace or punctuation), ``"end"``
            (only on complete outputs), or a predicate on the text so far.
    """

    particles: int = 8
    ess_threshold: float = 0.5
    resampling: str = "systematic"
    proposal: Sampler = field(default_factory=AWRS)
    potential: Potential | None = None
    boundary: str | Callable[[str], bool] = "token"
    _takes_complete: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        if self.potential is not None:
            if not callable(self.potential):
                raise TypeError("potential must be a callable: potential(text[, complete])")
            object.__setattr__(self, "_takes_complete", _takes_two_arguments(self.potential))
        if self.particles < 1:
            raise ValueError("SMC needs at least one particle")
        if not 0 <= self.ess_threshold <= 1:
            raise ValueError("ess_threshold must be in [0, 1]")
        if self.resampling not in ("systematic", "multinomial"):
            raise ValueError(f"unknown resampling {self.resampling!r}: use 'systematic' or "
                             "'multinomial'")
        if isinstance(self.proposal, Greedy) or (
                isinstance(self.proposal, (Sample, AWRS)) and self.proposal.temperature == 0):
            raise ValueError("an SMC proposal must sample: use sg.AWRS() or sg.Sample()")
        if isinstance(self.proposal, Sample) and (self.proposal.top_p < 1
                                                  or self.proposal.top_k is not None):
            raise ValueError("top-p and top-k truncate the proposal, and SMC cannot weight what "
                             "the proposal never reaches: use temperature only")
        if not isinstance(self.proposal, (Sample, AWRS)):
            raise TypeError(f"unsupported SMC proposal {self.proposal!r}: use sg.AWRS() or "
                            "sg.Sample()")
        if not callable(self.boundary) and self.boundary not in ("token", "word", "end"):
            raise ValueError(f"unknown boundary {self.boundary!r}: use 'token', 'word', 'end' "
                             "or a predicate on the text")

    def score(self, text: str, complete: bool) -> float:
        """The potential's log-weight of ``text``."""
        if self._takes_complete:
            return float(self.potential(text, complete))
        return float(self.potential(text))

    def at_boundary(self, text: str) -> bool:
        """Whether the potential is evaluated on this partial output."""
        if callable(self.boundary):
            return bool(self.boundary(text))
        if self.boundary == "token":
            return True
        return self.boundary == "word" and bool(text) and text[-1] in _WORD_END


def _takes_two_arguments(function: Callable) -> bool:
    """Whether ``function`` can be called with two positional arguments."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind("", True)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class Particle:
    """One particle at the end of a run: its output and final log-weight (``-inf``: ruled out,
    by ``max_tokens`` (``finish_reason == "length"``) or by the potential)."""

    text: str
    token_ids: list[int]
    log_weight: float
    finish_reason: str


@dataclass
class SMCResult(GenerationResult):
    """A :class:`GenerationResult` for the particle drawn by final weight, with the weighted
    particle set and the log of the unbiased estimate of the target's total mass."""

    particles: list[Particle] = field(default_factory=list)
    log_marginal_likelihood: float = -math.inf


# ---------------------------------------------------------------------- weights arithmetic
def log_mean_exp(log_weights: np.ndarray) -> float:
    """log(mean(exp(w))), stable, ``-inf`` when every weight is zero."""
    top = float(np.max(log_weights))
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.mean(np.exp(log_weights - top))))


def normalized_weights(log_weights: np.ndarray) -> np.ndarray:
    """The weights divided by their sum (all zero weights are an error of the caller)."""
    shifted = np.exp(log_weights - np.max(log_weights))
    return shifted / shifted.sum()


def effective_sample_size(log_weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: N for equal weights, 1 when one particle holds all the weight,
    0 when every weight is zero."""
    if np.max(log_weights) == -math.inf:
        return 0.0
    w = normalized_weights(log_weights)
    return float(1.0 / np.sum(w * w))


def resample(log_weights: np.ndarray, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """Ancestor indices of a new population of the same size, drawn in proportion to the
    weights: ``"multinomial"`` independently, ``"systematic"`` with one uniform offset for
    evenly spaced points (each particle i gets floor or ceil of N w_i copies)."""
    n = len(log_weights)
    cumulative = np.cumsum(normalized_weights(log_weights))
    cumulative[-1] = 1.0
    points = (rng.random() + np.arange(n)) / n if scheme == "systematic" else rng.random(n)
    return np.searchsorted(cumulative, points, side="right").clip(0, n - 1)


# ------------------------------------------------------------------------------- the run
@dataclass
class _Particle:
    group: int
    matcher: Matcher | None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    log_weight: float = 0.0
    score: float = 0.0  # the potential's last value
    finish_reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def copy(self) -> _Particle:
        return _Particle(self.group, None if self.matcher is None else self.matcher.copy(),
                         list(self.token_ids), list(self.logprobs), bytearray(self.data),
                         self.log_weight, self.score, self.finish_reason, dict(self.counts))

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class SMCRun:
    """SMC for a batch of prompts: ``smc.particles`` particles per prompt, all decoded in one
    model session; resampling happens within each prompt's particles."""

    def __init__(self, model: LanguageModel, prompts: Sequence[Prompt],
                 constraints: Sequence[Constraint | None], smc: SMC, max_tokens: int = 256,
                 seed: int | None = None, chat: bool | None = None):
        if len(prompts) != len(constraints):
            raise ValueError("one constraint (or None) per prompt")
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        started = time.perf_counter()
        self.model = model
        self.smc = smc
        self.max_tokens = max_tokens
        vocab = model.vocab
        compiled = [None if c is None else compile_constraint(c, vocab) for c in constraints]
        self.particles = [
            _Particle(group, None if compiled[group] is None else compiled[group].matcher())
            for group in range(len(prompts)) for _ in range(smc.particles)
        ]
        self.contexts = [model.encode_prompt(p, chat) for p in prompts]
        self._unconstrained = text_mask(vocab)
        self._eos = torch.tensor(list(vocab.eos_token_ids), dtype=torch.long)
        self._eos_set = frozenset(vocab.eos_token_ids)
        self.generator = torch.Generator(device=model.device)
        torch_seed = seed if seed is not None else int(torch.seed() % 2**63)
        self.generator.manual_seed(torch_seed)
        self.rng = np.random.default_rng(torch_seed)
        self.timings = {"setup_s": time.perf_counter() - started, "prefill_s": 0.0,
                        "decode_s": 0.0, "mask_s": 0.0}
        self.forward_passes = 0
        self.resamples = [0] * len(prompts)

    # A particle "closes" when only EOS can follow: its constraint is finished, or it holds
    # max_tokens tokens (then EOS only if the text is complete, else it is cut).
    def _closing(self, particle: _Particle) -> bool:
        matcher = particle.matcher
        return len(particle.token_ids) >= self.max_tokens or (
            matcher is not None and matcher.is_finished())

    def run(self) -> list[SMCResult]:
        started = time.perf_counter()
        active = [i for i, _ in enumerate(self.particles)]
        # Read each prompt once, then copy its cache rows to its particles.
        session = self.model.start(self.contexts)
        session.select(torch.tensor([p.group for p in self.particles], dtype=torch.long))
        self.forward_passes += 1
        self.timings["prefill_s"] = time.perf_counter() - started
        decode_started = time.perf_counter()
        while active:
            logprobs = session.logprobs()
            tokens = self._step(active, logprobs)
            self._reweight_by_potential(active)
            self._resample_groups()
            # Resampling replaced particles by copies of ancestors that were active this step
            # (finished ancestors give finished copies): map each running particle to the
            # session row of its ancestor.
            running = [i for i, p in enumerate(self.particles) if p.finish_reason is None]
            if not running:
                break
            rows = [self._ancestor_row[i] for i in running]
            session.select(torch.tensor(rows, dtype=torch.long))
            session.append(tokens[torch.tensor(rows, dtype=torch.long).to(tokens.device)])
            self.forward_passes += 1
            active = running
        self.timings["decode_s"] = time.perf_counter() - decode_started
        return self._results()

    def _step(self, active: list[int], logprobs: torch.Tensor) -> torch.Tensor:
        """Choose and weigh every active particle's next token; returns the tokens by session
        row, and records which session row each particle now descends from."""
        self._ancestor_row = {index: row for row, index in enumerate(active)}
        tokens = torch.empty(len(active), dtype=torch.long, device=logprobs.device)
        closes = [self._closing(self.particles[i]) for i in active]
        closing = [row for row, close in enumerate(closes) if close]
        choosing = [row for row, close in enumerate(closes) if not close]
        if closing:
            eos = self._eos.to(logprobs.device)
            closing_rows = torch.tensor(closing, dtype=torch.long, device=logprobs.device)
            eos_mass = torch.log_softmax(logprobs[closing_rows].double(), -1)[:, eos]
            eos_log_mass = eos_mass.logsumexp(-1).tolist()
            for row, log_mass in zip(closing, eos_log_mass):
                particle = self.particles[active[row]]
                tokens[row] = int(eos[0])
                if particle.matcher is None or particle.matcher.is_accepting():
                    particle.log_weight += log_mass
                    particle.finish_reason = (
                        "eos" if particle.matcher is None or not particle.matcher.is_finished()
                        else "constraint")
                else:
                    particle.log_weight = -math.inf
                    particle.finish_reason = "length"
        if choosing:
            index = torch.tensor(choosing, dtype=torch.long, device=logprobs.device)
            sub = logprobs[index]
            matchers = [self.particles[active[row]].matcher for row in choosing]
            constraints = RowConstraints(matchers, self._unconstrained)
            selection = self.smc.proposal.select(sub, constraints, self.generator,
                                                 weighted=True)
            self.timings["mask_s"] += constraints.seconds
            tokens[index] = selection.tokens.to(logprobs.device)
            chosen = selection.tokens.tolist()
            chosen_logprobs = sub.gather(1, selection.tokens.view(-1, 1).to(sub.device))
            chosen_logprobs = chosen_logprobs.view(-1).tolist()
            for k, row in enumerate(choosing):
                particle = self.particles[active[row]]
                for name, values in selection.counts.items():
                    particle.counts[name] = particle.counts.get(name, 0) + values[k]
                particle.log_weight += float(selection.log_weights[k])
                token = chosen[k]
                if token in self._eos_set:
                    particle.finish_reason = "eos"
                    continue
                if particle.matcher is not None and not particle.matcher.advance(token):
                    raise AssertionError(f"the proposal chose disallowed token {token}")
                particle.token_ids.append(token)
                particle.logprobs.append(chosen_logprobs[k])
                particle.data += self.model.vocab.token_bytes(token)
        return tokens

    def _reweight_by_potential(self, active: list[int]) -> None:
        if self.smc.potential is None:
            return
        for i in active:
            particle = self.particles[i]
            if particle.log_weight == -math.inf:
                continue
            text = particle.text
            if particle.finish_reason is None and not self.smc.at_boundary(text):
                continue
            score = self.smc.score(text, complete=particle.finish_reason is not None)
            particle.log_weight += score - particle.score
            particle.score = score
            if particle.log_weight == -math.inf and particle.finish_reason is None:
                particle.finish_reason = "potential"

    def _resample_groups(self) -> None:
        n = self.smc.particles
        for group in range(len(self.contexts)):
            members = self.particles[group * n:(group + 1) * n]
            if all(p.finish_reason is not None for p in members):
                continue
            log_weights = np.array([p.log_weight for p in members])
            if np.max(log_weights) == -math.inf:
                for p in members:  # every particle ruled out: nothing left to decode
                    if p.finish_reason is None:
                        p.finish_reason = "potential"
                continue
            if effective_sample_size(log_weights) >= self.smc.ess_threshold * n:
                continue
            ancestors = resample(log_weights, self.smc.resampling, self.rng)
            average = log_mean_exp(log_weights)
            rows = dict(self._ancestor_row)
            offspring = []
            for a in ancestors:
                child = members[a].copy()
                child.log_weight = average
                offspring.append(child)
            for k, child in enumerate(offspring):
                index = group * n + k
                ancestor_index = group * n + int(ancestors[k])
                if ancestor_index in rows:
                    self._ancestor_row[index] = rows[ancestor_index]
                self.particles[index] = child
            self.resamples[group] += 1

    def _results(self) -> list[SMCResult]:
        n = self.smc.particles
        out = []
        for group in range(len(self.contexts)):
            members = self.particles[group * n:(group + 1) * n]
            log_weights = np.array([p.log_weight for p in members])
            particles = [Particle(p.text, list(p.token_ids), p.log_weight,
                                  p.finish_reason or "length") for p in members]
            log_z = log_mean_exp(log_weights)
            if log_z == -math.inf:
                chosen = members[0]
            else:
                chosen = members[int(self.rng.choice(n, p=normalized_weights(log_weights)))]
            counts: dict[str, int] = {}
            for p in members:
                for name, value in p.counts.items():
                    counts[name] = counts.get(name, 0) + value
            out.append(SMCResult(
                text=chosen.text, token_ids=list(chosen.token_ids),
                logprobs=list(chosen.logprobs), finish_reason=chosen.finish_reason or "length",
                timings=dict(self.timings),
                statistics={"forward_passes": self.forward_passes,
                            "tokens": len(chosen.token_ids), "particles": n,
                            "resamples": self.resamples[group], **counts},
                particles=particles, log_marginal_likelihood=log_z))
        return out
