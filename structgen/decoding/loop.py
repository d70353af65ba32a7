"""The decode loop: one forward pass per step for a whole batch; the sampler chooses every row's
token through the rows' matchers (masking samplers fill the batch's masks and apply them on the
logits' device; AWRS checks single tokens).

The loop is a generator of steps so that ``generate`` (run it out) and ``stream`` (yield text as
it comes) share it. A row stops at EOS, when its constraint allows nothing but EOS (no forward
pass is spent on it), or at ``max_tokens``.

With a draft (``structgen.decoding.drafts``) a step is speculative: each row proposes up to
``draft_tokens`` tokens its constraint allows, one forward pass scores them all
(``ModelSession.extend``), the verification (``structgen.decoding.speculative``) keeps a prefix
and adds the target's own next token, and the matchers and the KV cache roll back the rest
(``Matcher.rollback``, ``ModelSession.keep``). The outputs have exactly the distribution of the
loop without a draft (for greedy decoding, the same tokens): drafts change the number of forward
passes, never the result.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from structgen.automata.matcher import Matcher
from structgen.compiler import compile as compile_constraint
from structgen.constraints import Constraint
from structgen.decoding.drafts import Draft, DraftContext, DraftSampling, Proposal, as_draft
from structgen.decoding.models import LanguageModel, ModelSession, Prompt
from structgen.decoding.samplers import Greedy, Sampler
from structgen.decoding.speculative import Verdict, draft_sampling, verify
from structgen.vocab import Vocabulary


@dataclass
class GenerationResult:
    """One generated sequence and how it came about.

    ``logprobs[i]`` is the model's (unconstrained) log-probability of ``token_ids[i]``;
    ``finish_reason`` is ``"eos"``, ``"constraint"`` (nothing but EOS was allowed; EOS is not
    part of ``token_ids``) or ``"length"`` (cut by ``max_tokens``).

    ``statistics`` holds ``tokens`` (this output's), ``forward_passes`` (target model passes of
    the whole batch, prefill included) and ``tokens_per_forward_pass`` (the batch's tokens over
    them), the sampler's counts (AWRS: ``checks``, ``rejections``, ``fallbacks``), and with a
    draft this output's ``drafted`` and ``accepted`` tokens (and, for greedy decoding,
    ``near_ties``: choices made with a top-2 logit gap below 1e-4, the only ones that may differ
    from decoding without the draft).
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    timings: dict[str, float] = field(default_factory=dict)
    statistics: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether the output ended by the model or the constraint, not by ``max_tokens``."""
        return self.finish_reason != "length"


@dataclass
class _Row:
    matcher: Matcher | None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    memory: dict = field(default_factory=dict)  # the drafts' state for this row
    budgeted: bool = False  # every token must leave room to finish within max_tokens


@dataclass(frozen=True)
class StepEvent:
    """Tokens chosen at one step: ``(row index, token id)`` pairs for the rows still running."""

    tokens: list[tuple[int, int]]


_REDRAWS_BEFORE_FILTER = 16


def _allowed_tokens(matcher: Matcher) -> list[int]:
    """The text tokens ``matcher`` allows now (from its packed mask)."""
    bits = np.unpackbits(matcher.mask().view(np.uint8), bitorder="little")
    return np.flatnonzero(bits).tolist()


@lru_cache(maxsize=8)
def text_mask(vocab: Vocabulary) -> np.ndarray:
    """The mask of an unconstrained row: every text token and EOS, never special or padding."""
    allowed = np.zeros(((vocab.size + 31) // 32) * 32, dtype=np.uint8)
    allowed[[i for i, t in enumerate(vocab.tokens) if t is not None]] = 1
    allowed[list(vocab.eos_token_ids)] = 1
    words = np.packbits(allowed, bitorder="little").view(np.uint32)
    words.flags.writeable = False
    return words


class RowConstraints:
    """The :class:`~structgen.decoding.samplers.StepRows` of one step: each row's matcher, or
    ``None`` for a free row (any text token or EOS, never a special token), less the tokens in
    the row's ``excluded`` set (those that would not fit the token budget). Times the work."""

    def __init__(self, matchers: Sequence[Matcher | None], unconstrained: np.ndarray,
                 excluded: Sequence[set[int]] | None = None):
        self.matchers = matchers
        self.unconstrained = unconstrained
        self.excluded = excluded
        self.seconds = 0.0

    def allowed(self, row: int, token_id: int) -> bool:
        if self.excluded is not None and token_id in self.excluded[row]:
            return False
        started = time.perf_counter()
        matcher = self.matchers[row]
        if matcher is None:
            words = self.unconstrained
            ok = 0 <= token_id < 32 * len(words) and bool(
                (words[token_id >> 5] >> np.uint32(token_id & 31)) & 1)
        else:
            ok = matcher.allowed(token_id)
        self.seconds += time.perf_counter() - started
        return ok

    def row_mask(self, row: int) -> np.ndarray:
        matcher = self.matchers[row]
        started = time.perf_counter()
        mask = self.unconstrained if matcher is None else matcher.mask()
        if self.excluded is not None and self.excluded[row]:
            mask = mask.copy()
            _clear_bits(mask, self.excluded[row])
        self.seconds += time.perf_counter() - started
        return mask

    def bitmask(self) -> np.ndarray:
        started = time.perf_counter()
        out = np.empty((len(self.matchers), len(self.unconstrained)), dtype=np.uint32)
        for row, matcher in enumerate(self.matchers):
            if matcher is None:
                out[row] = self.unconstrained
            else:
                matcher.fill_mask(out, row)
            if self.excluded is not None and self.excluded[row]:
                _clear_bits(out[row], self.excluded[row])
        self.seconds += time.perf_counter() - started
        return out


def _clear_bits(mask: np.ndarray, token_ids: set[int]) -> None:
    for token_id in token_ids:
        mask[token_id >> 5] &= ~np.uint32(1 << (token_id & 31))


class DecodeRun:
    """A batch decode in progress; iterate :meth:`steps`, then read :meth:`results`.

    ``draft`` (a draft, a list of drafts tried in turn, or None) makes the steps speculative,
    each row drafting up to ``draft_tokens`` tokens per step (see the module docstring).

    ``finish_within_max_tokens``: a constrained row takes a token only when the constraint can
    still be completed within ``max_tokens`` after it (see :meth:`_fits`): the output is then a
    complete match whenever the constraint's shortest completion from the start fits at all.
    The sampler's distribution is conditioned on that (tokens that do not fit are excluded and
    the row's choice is made again), so the loop stays exact for it.
    """

    def __init__(self, model: LanguageModel, prompts: Sequence[Prompt],
                 constraints: Sequence[Constraint | None], sampler: Sampler | None = None,
                 max_tokens: int = 256, seed: int | None = None, chat: bool | None = None,
                 draft: Draft | Sequence[Draft] | None = None, draft_tokens: int = 8,
                 finish_within_max_tokens: bool = True):
        if len(prompts) != len(constraints):
            raise ValueError("one constraint (or None) per prompt")
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if draft_tokens < 1:
            raise ValueError("draft_tokens must be >= 1")
        started = time.perf_counter()
        self.model = model
        self.sampler = sampler or Greedy()
        self.max_tokens = max_tokens
        self.draft = as_draft(draft)
        self.draft_tokens = draft_tokens
        vocab = model.vocab
        counts = {} if self.draft is None else {"drafted": 0, "accepted": 0}
        self.rows = [
            _Row(None if c is None else compile_constraint(c, vocab).matcher(),
                 counts=dict(counts))
            for c in constraints
        ]
        if finish_within_max_tokens:
            for row in self.rows:
                need = None if row.matcher is None else row.matcher.completion_bytes()
                row.budgeted = need is not None and need <= max_tokens
        self.contexts = [model.encode_prompt(p, chat) for p in prompts]
        self._unconstrained = text_mask(vocab)
        self._eos = frozenset(vocab.eos_token_ids)
        self.generator = torch.Generator(device=model.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
        self.timings = {"setup_s": time.perf_counter() - started, "prefill_s": 0.0,
                        "decode_s": 0.0, "mask_s": 0.0}
        if self.draft is not None:
            self.timings["draft_s"] = 0.0
        self.forward_passes = 0

    def steps(self) -> Iterator[StepEvent]:
        """Run the loop, yielding the tokens chosen at each step (with a draft, a step may
        choose several tokens of a row)."""
        if self.draft is None:
            return self._token_steps()
        return self._speculative_steps()

    def _open(self) -> tuple[ModelSession, list[int]] | None:
        """Read the prompts of the rows that can still generate (timed as the prefill);
        ``None`` when there is nothing to generate."""
        started = time.perf_counter()
        active = [i for i, row in enumerate(self.rows) if not self._finished_before_start(row)]
        if not active or self.max_tokens == 0:
            self._cut(active)
            return None
        session = self.model.start([self.contexts[i] for i in active])
        self.forward_passes += 1
        self.timings["prefill_s"] = time.perf_counter() - started
        return session, active

    def _token_steps(self) -> Iterator[StepEvent]:
        """The loop without a draft: one token per row and one forward pass per step."""
        opened = self._open()
        if opened is None:
            return
        session, active = opened
        decode_started = time.perf_counter()
        for step in range(self.max_tokens):
            logprobs = session.logprobs()
            rows = RowConstraints([self.rows[i].matcher for i in active], self._unconstrained)
            selection = self.sampler.select(logprobs, rows, self.generator)
            self.timings["mask_s"] += rows.seconds
            chosen = selection.tokens
            chosen_list = chosen.tolist()
            for position, index in enumerate(active):
                row = self.rows[index]
                for name, values in selection.counts.items():
                    row.counts[name] = row.counts.get(name, 0) + values[position]
                token = self._fitting(row, row.matcher, chosen_list[position],
                                      logprobs[position], len(row.token_ids))
                if token != chosen_list[position]:
                    chosen_list[position] = token
                    chosen = torch.tensor(chosen_list, dtype=chosen.dtype, device=chosen.device)
            chosen_logprobs = logprobs.gather(1, chosen.view(-1, 1)).view(-1).tolist()
            keep = []
            for position, (index, token) in enumerate(zip(active, chosen_list)):
                row = self.rows[index]
                if not self._take(row, token, chosen_logprobs[position]):
                    keep.append(position)
            yield StepEvent([(index, token) for index, token in zip(active, chosen_list)])
            if len(keep) < len(active):
                active = [active[p] for p in keep]
                if not active:
                    break
                kept = torch.tensor(keep, dtype=torch.long)
                session.select(kept)
                chosen = chosen[kept.to(chosen.device)]
            if step + 1 < self.max_tokens:
                session.append(chosen)
                self.forward_passes += 1
        self.timings["decode_s"] = time.perf_counter() - decode_started
        self._cut(active)

    def _speculative_steps(self) -> Iterator[StepEvent]:
        """The loop with a draft. A row's token chosen at one step is read by the model at the
        next, in the same forward pass as the row's new drafted tokens, so every pass gives
        every row at least one token, and a decode never takes more passes than without a
        draft. The first step drafts nothing: the prefill already gives its distribution."""
        opened = self._open()
        if opened is None:
            return
        session, active = opened
        decode_started = time.perf_counter()
        sampling = draft_sampling(self.sampler, self.generator)
        unread: list[int] | None = None  # each row's last token: chosen, not yet read
        while active:
            drafting = time.perf_counter()
            proposals = [Proposal([], []) if unread is None else self._propose(index, sampling)
                         for index in active]
            self.timings["draft_s"] += time.perf_counter() - drafting
            positions, extended = self._score(session, unread, proposals)
            states = [self._walk(self.rows[i], p.tokens) for i, p in zip(active, proposals)]
            # A position per drafted token, and one more for the target's own token unless the
            # draft completed the constraint.
            decisions = [len(p.tokens) + int(s[-1] is None or not s[-1].is_finished())
                         for p, s in zip(proposals, states)]
            rows = RowConstraints([m for s, n in zip(states, decisions) for m in s[:n]],
                                  self._unconstrained)
            where = (torch.tensor([r for r, n in enumerate(decisions) for _ in range(n)]),
                     torch.tensor([j for n in decisions for j in range(n)]))
            verdicts = verify(self.sampler, sampling, positions[where], rows, proposals,
                              decisions, self.generator)
            self.timings["mask_s"] += rows.seconds
            for r, (index, proposal, verdict) in enumerate(zip(active, proposals, verdicts)):
                self._fit_verdict(self.rows[index], states[r], proposal, verdict, positions[r])
            if extended:  # keep each row's unread token and the drafted tokens it accepted
                session.keep(torch.tensor([1 + v.accepted for v in verdicts]))
            logprobs = self._logprobs_of_kept(positions, proposals, verdicts)
            events: list[tuple[int, int]] = []
            kept: list[int] = []
            for position, (index, proposal, verdict) in enumerate(
                    zip(active, proposals, verdicts)):
                row = self.rows[index]
                if self._record_step(row, proposal, verdict, logprobs[position]):
                    kept.append(position)
                tokens = proposal.tokens[:verdict.accepted]
                if verdict.token is not None:
                    tokens = [*tokens, verdict.token]
                events.extend((index, token) for token in tokens)
            yield StepEvent(events)
            if len(kept) < len(active):
                active = [active[p] for p in kept]
                if not active:
                    break
                session.select(torch.tensor(kept, dtype=torch.long))
            unread = [verdicts[p].token for p in kept]
        self.timings["decode_s"] = time.perf_counter() - decode_started

    def _propose(self, index: int, sampling: DraftSampling) -> Proposal:
        """Row ``index``'s draft, leaving room for the target's own token within
        ``max_tokens``."""
        row = self.rows[index]
        budget = min(self.draft_tokens, self.max_tokens - len(row.token_ids) - 1)
        if budget < 1:
            return Proposal([], [])
        context = DraftContext(self.contexts[index], row.token_ids, self.model.vocab,
                               memory=row.memory, encode=self.model.encode_text)
        proposal = self.draft.draw(row.matcher, context, budget, sampling)
        if len(proposal.tokens) > budget:
            raise ValueError(f"{self.draft!r} proposed {len(proposal.tokens)} tokens, more "
                             f"than {budget}")
        return proposal

    def _score(self, session: ModelSession, unread: list[int] | None,
               proposals: list[Proposal]) -> tuple[torch.Tensor, bool]:
        """The forward pass of a step: each row's unread token, then its drafted tokens.

        Returns the target's log-probabilities at every drafted position, ``(rows, width + 1,
        vocab)`` (position j: after a row's first j drafted tokens), and whether the pass was
        an ``extend`` that ``keep`` must settle (not when nothing was drafted: then it was an
        ``append``, or at the first step no pass at all).
        """
        if unread is None:  # the first step: the prefill has answered
            return session.logprobs().unsqueeze(1), False
        width = max(len(p.tokens) for p in proposals)
        self.forward_passes += 1
        if width == 0:
            session.append(torch.tensor(unread, dtype=torch.long))
            return session.logprobs().unsqueeze(1), False
        # Rows with shorter drafts are padded with id 0: read, then dropped by keep().
        tokens = torch.zeros((len(proposals), 1 + width), dtype=torch.long)
        tokens[:, 0] = torch.tensor(unread, dtype=torch.long)
        for row, proposal in enumerate(proposals):
            if proposal.tokens:
                tokens[row, 1:1 + len(proposal.tokens)] = torch.tensor(proposal.tokens,
                                                                       dtype=torch.long)
        return session.extend(tokens)[:, 1:], True

    def _walk(self, row: _Row, tokens: list[int]) -> list[Matcher | None]:
        """The row's constraint state at each drafted position (None for a free row); the
        row's own matcher is left advanced along the whole draft, for :meth:`_record_step` to
        roll back."""
        vocab = self.model.vocab
        matcher = row.matcher
        states: list[Matcher | None] = [None if matcher is None else matcher.copy()]
        for token in tokens:
            if not vocab.is_text(token) or (matcher is not None and not matcher.advance(token)):
                raise ValueError(f"{self.draft!r} proposed token {token}, which the "
                                 "constraint does not allow there")
            states.append(None if matcher is None else matcher.copy())
        return states

    @staticmethod
    def _logprobs_of_kept(positions: torch.Tensor, proposals: list[Proposal],
                          verdicts: list[Verdict]) -> list[list[float]]:
        """Each row's unconstrained log-probabilities of its kept drafted tokens and of the
        target's token after them, read from ``positions`` in one gather."""
        where: tuple[list[int], list[int], list[int]] = ([], [], [])
        for row, (proposal, verdict) in enumerate(zip(proposals, verdicts)):
            tokens = proposal.tokens[:verdict.accepted]
            if verdict.token is not None:
                tokens = [*tokens, verdict.token]
            for j, token in enumerate(tokens):
                where[0].append(row)
                where[1].append(j)
                where[2].append(token)
        flat = positions[tuple(torch.tensor(w, dtype=torch.long) for w in where)].tolist()
        out: list[list[float]] = [[] for _ in proposals]
        for row, value in zip(where[0], flat):
            out[row].append(value)
        return out

    def _record_step(self, row: _Row, proposal: Proposal, verdict: Verdict,
                     logprobs: list[float]) -> bool:
        """Record what the verification kept of ``row``'s step and roll its matcher back to
        it; True when the row goes on."""
        row.counts["drafted"] += len(proposal.tokens)
        row.counts["accepted"] += verdict.accepted
        for name, value in verdict.counts.items():
            row.counts[name] = row.counts.get(name, 0) + value
        if row.matcher is not None:
            row.matcher.rollback(len(proposal.tokens) - verdict.accepted)
        row.token_ids.extend(proposal.tokens[:verdict.accepted])
        row.logprobs.extend(logprobs[:verdict.accepted])
        if verdict.token is None:  # the draft completed the constraint
            row.finish_reason = "constraint"
        elif not self._take(row, verdict.token, logprobs[verdict.accepted]) and len(
                row.token_ids) >= self.max_tokens:
            row.finish_reason = "length"
        if row.finish_reason is None:
            return True
        row.memory.clear()
        return False

    def _fits(self, row: _Row, matcher: Matcher | None, token: int, generated: int) -> bool:
        """Whether ``token``, taken after ``generated`` tokens, leaves the constraint a way to
        finish within ``max_tokens``: its shortest completion after the token (in bytes, each a
        token by itself, so never more tokens than that) fits in the tokens left. Unbudgeted
        rows, EOS, and states whose completion is unknown always fit."""
        if not row.budgeted or matcher is None or token in self._eos:
            return True
        if not matcher.advance(token):
            return True  # not allowed at all: the sampler's mistake, reported by _take
        need = matcher.completion_bytes()
        matcher.rollback(1)
        return need is None or need <= self.max_tokens - generated - 1

    def _fitting(self, row: _Row, matcher: Matcher | None, token: int,
                 logprobs: torch.Tensor, generated: int) -> int:
        """``token`` if it fits (:meth:`_fits`); else the sampler's choice again, from the same
        log-probabilities without the tokens found not to fit: the sampler's distribution
        conditioned on fitting. After ``_REDRAWS_BEFORE_FILTER`` misses every allowed token is
        checked at once."""
        excluded: set[int] = set()
        allowed: list[int] | None = None
        chosen = token
        while not self._fits(row, matcher, token, generated):
            excluded.add(token)
            row.counts["budget_exclusions"] = row.counts.get("budget_exclusions", 0) + 1
            allowed = _allowed_tokens(matcher) if allowed is None else allowed
            if len(excluded) == _REDRAWS_BEFORE_FILTER:
                excluded.update(t for t in allowed if not self._fits(row, matcher, t, generated))
            if len(excluded) >= len(allowed) and excluded.issuperset(allowed):
                # No token fits, though the shortest completion said one would: a grammar's
                # is a lower bound where a lookahead reads past a lexeme. The row goes on
                # unbudgeted, with the sampler's own choice.
                row.budgeted = False
                return chosen
            started = time.perf_counter()
            rows = RowConstraints([matcher], self._unconstrained, [excluded])
            selection = self.sampler.select(logprobs.unsqueeze(0), rows, self.generator)
            self.timings["mask_s"] += time.perf_counter() - started
            for name, values in selection.counts.items():
                row.counts[name] = row.counts.get(name, 0) + values[0]
            token = int(selection.tokens[0])
        return token

    def _fit_verdict(self, row: _Row, states: list[Matcher | None], proposal: Proposal,
                     verdict: Verdict, logprobs: torch.Tensor) -> None:
        """Make the tokens a verification keeps fit the budget: at the first one that does not,
        cut the kept draft there and choose that position's token again (:meth:`_fitting`).
        Exact: each kept token was the sampler's draw at its position given the ones before
        (the verification's guarantee), so redrawing the first misfit is rejection sampling
        of the budgeted distribution there, and the positions after it are discarded."""
        if not row.budgeted:
            return
        tokens = proposal.tokens[:verdict.accepted]
        if verdict.token is not None:
            tokens = [*tokens, verdict.token]
        generated = len(row.token_ids)
        for j, token in enumerate(tokens):
            fitted = self._fitting(row, states[j], token, logprobs[j], generated + j)
            if fitted != token:
                verdict.accepted = min(verdict.accepted, j)
                verdict.token = fitted
                return

    def _finished_before_start(self, row: _Row) -> bool:
        if row.matcher is not None and row.matcher.is_finished():
            row.finish_reason = "constraint"
            return True
        return False

    def _take(self, row: _Row, token: int, logprob: float) -> bool:
        """Record ``token`` for ``row``; True when the row is now finished."""
        if token in self._eos:
            row.finish_reason = "eos"
            return True
        if row.matcher is not None and not row.matcher.advance(token):
            raise AssertionError(f"the sampler chose disallowed token {token}")
        row.token_ids.append(token)
        row.logprobs.append(logprob)
        if row.matcher is not None and (row.matcher.is_finished() or (
                row.budgeted and len(row.token_ids) >= self.max_tokens
                and row.matcher.is_accepting())):
            row.finish_reason = "constraint"  # under the budget, only EOS is left
            return True
        return False

    def _cut(self, active: list[int]) -> None:
        for index in active:
            self.rows[index].finish_reason = "length"

    def results(self) -> list[GenerationResult]:
        vocab = self.model.vocab
        tokens = sum(len(row.token_ids) for row in self.rows)
        per_pass = tokens / self.forward_passes if self.forward_passes else 0.0
        out = []
        for row in self.rows:
            data = b"".join(vocab.token_bytes(t) for t in row.token_ids)
            out.append(GenerationResult(
                text=data.decode("utf-8", errors="replace"),
                token_ids=list(row.token_ids),
                logprobs=list(row.logprobs),
                finish_reason=row.finish_reason or "length",
                timings=dict(self.timings),
                statistics={"forward_passes": self.forward_passes,
                            "tokens": len(row.token_ids), "tokens_per_forward_pass": per_pass,
                            **row.counts},
            ))
        return out


def stream_text(run: DecodeRun, row: int = 0) -> Iterator[str]:
    """Yield the text of ``row`` as it is generated (whole characters only)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    vocab = run.model.vocab
    for event in run.steps():
        for index, token in event.tokens:
            if index == row and vocab.is_text(token):
                piece = decoder.decode(vocab.token_bytes(token))
                if piece:
                    yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail
