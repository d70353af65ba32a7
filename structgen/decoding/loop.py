"""The decode loop: one forward pass per step for a whole batch; the sampler chooses every row's
token through the rows' matchers (masking samplers fill the batch's masks and apply them on the
logits' device; AWRS checks single tokens).

The loop is a generator of steps so that ``generate`` (run it out) and ``stream`` (yield text as
it comes) share it. A row stops at EOS, when its constraint allows nothing but EOS (no forward
pass is spent on it), or at ``max_tokens``.
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
from structgen.decoding.models import LanguageModel, Prompt
from structgen.decoding.samplers import Greedy, Sampler
from structgen.vocab import Vocabulary


@dataclass
class GenerationResult:
    """One generated sequence and how it came about.

    ``logprobs[i]`` is the model's (unconstrained) log-probability of ``token_ids[i]``;
    ``finish_reason`` is ``"eos"``, ``"constraint"`` (nothing but EOS was allowed; EOS is not
    part of ``token_ids``) or ``"length"`` (cut by ``max_tokens``).
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


@dataclass(frozen=True)
class StepEvent:
    """Tokens chosen at one step: ``(row index, token id)`` pairs for the rows still running."""

    tokens: list[tuple[int, int]]


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
    ``None`` for a free row (any text token or EOS, never a special token). Times the work."""

    def __init__(self, matchers: Sequence[Matcher | None], unconstrained: np.ndarray):
        self.matchers = matchers
        self.unconstrained = unconstrained
        self.seconds = 0.0

    def allowed(self, row: int, token_id: int) -> bool:
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
        if matcher is None:
            return self.unconstrained
        started = time.perf_counter()
        mask = matcher.mask()
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
        self.seconds += time.perf_counter() - started
        return out


class DecodeRun:
    """A batch decode in progress; iterate :meth:`steps`, then read :meth:`results`."""

    def __init__(self, model: LanguageModel, prompts: Sequence[Prompt],
                 constraints: Sequence[Constraint | None], sampler: Sampler | None = None,
                 max_tokens: int = 256, seed: int | None = None, chat: bool | None = None):
        if len(prompts) != len(constraints):
            raise ValueError("one constraint (or None) per prompt")
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        started = time.perf_counter()
        self.model = model
        self.sampler = sampler or Greedy()
        self.max_tokens = max_tokens
        vocab = model.vocab
        self.rows = [
            _Row(None if c is None else compile_constraint(c, vocab).matcher())
            for c in constraints
        ]
        self.contexts = [model.encode_prompt(p, chat) for p in prompts]
        self._unconstrained = text_mask(vocab)
        self._eos = frozenset(vocab.eos_token_ids)
        self.generator = torch.Generator(device=model.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
        self.timings = {"setup_s": time.perf_counter() - started, "prefill_s": 0.0,
                        "decode_s": 0.0, "mask_s": 0.0}
        self.forward_passes = 0

    def steps(self) -> Iterator[StepEvent]:
        """Run the loop, yielding the tokens chosen at each step."""
        started = time.perf_counter()
        active = [i for i, row in enumerate(self.rows) if not self._finished_before_start(row)]
        if not active or self.max_tokens == 0:
            self._cut(active)
            return
        session = self.model.start([self.contexts[i] for i in active])
        self.forward_passes += 1
        self.timings["prefill_s"] = time.perf_counter() - started
        decode_started = time.perf_counter()
        for step in range(self.max_tokens):
            logprobs = session.logprobs()
            rows = RowConstraints([self.rows[i].matcher for i in active], self._unconstrained)
            selection = self.sampler.select(logprobs, rows, self.generator)
            self.timings["mask_s"] += rows.seconds
            chosen = selection.tokens
            chosen_list = chosen.tolist()
            chosen_logprobs = logprobs.gather(1, chosen.view(-1, 1)).view(-1).tolist()
            keep = []
            for position, (index, token) in enumerate(zip(active, chosen_list)):
                row = self.rows[index]
                for name, values in selection.counts.items():
                    row.counts[name] = row.counts.get(name, 0) + values[position]
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
        if row.matcher is not None and row.matcher.is_finished():
            row.finish_reason = "constraint"
            return True
        return False

    def _cut(self, active: list[int]) -> None:
        for index in active:
            self.rows[index].finish_reason = "length"

    def results(self) -> list[GenerationResult]:
        vocab = self.model.vocab
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
                            "tokens": len(row.token_ids), **row.counts},
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
