"""Drafts for speculative decoding: cheap guesses of the next few tokens of one row.

A draft proposes up to ``k`` tokens that the row's constraint allows in sequence; the target
model then scores them all in one forward pass (``ModelSession.extend``) and the accept/reject
rule keeps what it agrees with, so a draft decides only the speed, never the output. Drafts here
are deterministic and model-free:

* :class:`ForcedDraft`: the text the constraint forces (JSON keys, punctuation), spelled with the
  longest tokens; accepted whenever the model spells it the same way.
* :class:`PromptLookup`: n-gram lookup in the prompt and the output so far; it copies spans, the
  common case of extraction tasks.
* :class:`DraftChain`: several drafts one after another, each continuing where the last stopped.

Drafts never propose EOS: ending a row is the target model's decision alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from structgen.automata.matcher import Matcher
from structgen.vocab import Vocabulary


@dataclass(frozen=True)
class DraftContext:
    """What a draft may read about one row: its prompt and output ids, and the vocabulary."""

    prompt: Sequence[int]
    generated: Sequence[int]
    vocab: Vocabulary

    def after(self, tokens: Sequence[int]) -> DraftContext:
        """The context once ``tokens`` are generated too."""
        return replace(self, generated=[*self.generated, *tokens])


class Draft(ABC):
    """Proposes the next tokens of a row; the verification keeps the output exact."""

    @abstractmethod
    def propose(self, matcher: Matcher | None, context: DraftContext, k: int) -> list[int]:
        """Up to ``k`` token ids to try next, never EOS.

        Args:
            matcher: the row's constraint state, or None for an unconstrained row. It is left
                unchanged (drafts walk a copy).
            context: the row's prompt and generated ids.
            k: the most tokens to propose.

        Returns:
            Token ids that ``matcher`` allows one after the other; ``[]`` for no guess.
        """


def allowed_prefix(matcher: Matcher | None, tokens: Sequence[int],
                   vocab: Vocabulary) -> list[int]:
    """The longest prefix of ``tokens`` without EOS that ``matcher`` allows in sequence."""
    eos = vocab.eos_token_ids
    walker = None if matcher is None else matcher.copy()
    out: list[int] = []
    for token in tokens:
        if token in eos or (walker is not None and not walker.advance(token)):
            break
        out.append(token)
    return out


@dataclass(frozen=True)
class _TokenLookup:
    """Text tokens by their bytes (the lowest id among duplicates) and the longest length."""

    by_bytes: dict[bytes, int]
    max_length: int


@lru_cache(maxsize=8)
def _token_lookup(vocab: Vocabulary) -> _TokenLookup:
    by_bytes: dict[bytes, int] = {}
    for token_id, data in enumerate(vocab.tokens):
        if data is not None:
            by_bytes.setdefault(data, token_id)
    return _TokenLookup(by_bytes, max(map(len, by_bytes), default=0))


class ForcedDraft(Draft):
    """The text the constraint forces (``Matcher.forced_bytes``), as tokens.

    Each step takes the longest allowed token whose bytes begin the remaining forced text, the
    choice a BPE tokenizer makes most often; once the forced text is used up the matcher is asked
    again (``forced_bytes`` answers at most a few kilobytes at a time). It stops at ``k`` tokens,
    at a choice, or where no allowed token fits inside the forced text (a token reaching past it
    would be a guess, not forced).
    """

    def propose(self, matcher: Matcher | None, context: DraftContext, k: int) -> list[int]:
        if matcher is None:
            return []
        lookup = _token_lookup(context.vocab)
        walker = matcher.copy()
        tokens: list[int] = []
        forced = b""
        while len(tokens) < k:
            forced = forced or walker.forced_bytes()
            token = self._advance_longest(walker, forced, lookup)
            if token is None:
                break
            tokens.append(token)
            forced = forced[len(context.vocab.token_bytes(token)):]
        return tokens

    @staticmethod
    def _advance_longest(walker: Matcher, forced: bytes, lookup: _TokenLookup) -> int | None:
        """Advance ``walker`` by the longest allowed token that begins ``forced``; its id."""
        for length in range(min(lookup.max_length, len(forced)), 0, -1):
            token = lookup.by_bytes.get(forced[:length])
            if token is not None and walker.advance(token):
                return token
        return None

    def __repr__(self) -> str:
        return "ForcedDraft()"


class PromptLookup(Draft):
    """n-gram prompt lookup: copy what followed the last occurrence of the context's tail.

    The context is prompt + generated, so at the first step the prompt's own tail is matched. For
    ``m`` from ``n`` down to 1, the last ``m`` tokens are looked for earlier in the context, most
    recent occurrence first; the tokens that followed it are proposed, cut where the constraint
    stops allowing them. The first occurrence whose continuation keeps at least one token wins,
    so a longer match beats a more recent one.

    Args:
        n: the longest n-gram to match.
        k: at most this many tokens per proposal (None: as many as the caller asks).
    """

    def __init__(self, n: int = 3, k: int | None = None):
        if n < 1:
            raise ValueError(f"PromptLookup needs n >= 1, got {n}")
        if k is not None and k < 1:
            raise ValueError(f"PromptLookup needs k >= 1 or None, got {k}")
        self.n = n
        self.k = k

    def propose(self, matcher: Matcher | None, context: DraftContext, k: int) -> list[int]:
        k = k if self.k is None else min(k, self.k)
        if k < 1:
            return []
        ids = np.asarray([*context.prompt, *context.generated], dtype=np.int64)
        for m in range(min(self.n, len(ids) - 1), 0, -1):
            # Windows of ids[:-1] start early enough to be followed by a token, and exclude
            # the tail itself.
            windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], m)
            for start in np.flatnonzero((windows == ids[-m:]).all(axis=1))[::-1]:
                follow = ids[start + m: start + m + k].tolist()
                proposal = allowed_prefix(matcher, follow, context.vocab)
                if proposal:
                    return proposal
        return []

    def __repr__(self) -> str:
        return f"PromptLookup(n={self.n}, k={self.k})"


class DraftChain(Draft):
    """Drafts in order, each continuing the proposal of the ones before.

    Every draft sees the matcher advanced along, and the context extended by, the tokens
    proposed so far, and is asked for the rest of the budget. The drafts take turns, round and
    round, until the budget is spent or all of them in a row add nothing, so forced text after a
    copied span (or the reverse) is drafted too.
    """

    def __init__(self, drafts: Sequence[Draft]):
        self.drafts = tuple(drafts)

    def propose(self, matcher: Matcher | None, context: DraftContext, k: int) -> list[int]:
        walker = None if matcher is None else matcher.copy()
        tokens: list[int] = []
        idle = turn = 0  # idle: drafts in a row that added nothing since the last token
        while len(tokens) < k and idle < len(self.drafts):
            draft = self.drafts[turn % len(self.drafts)]
            turn += 1
            budget = k - len(tokens)
            more = draft.propose(walker, context.after(tokens), budget)
            if len(more) > budget:
                raise ValueError(f"{draft!r} proposed {len(more)} tokens, more than {budget}")
            for token in more:
                if token in context.vocab.eos_token_ids or (
                        walker is not None and not walker.advance(token)):
                    raise ValueError(f"{draft!r} proposed token {token}, which the "
                                     "constraint does not allow there")
            tokens.extend(more)
            idle = 0 if more else idle + 1
        return tokens

    def __repr__(self) -> str:
        return f"DraftChain({list(self.drafts)!r})"


def as_draft(draft: Draft | Sequence[Draft] | None) -> Draft | None:
    """The ``draft=`` argument of the front door as one draft: a list becomes a
    :class:`DraftChain`, None stays None (no speculation)."""
    if draft is None or isinstance(draft, Draft):
        return draft
    return DraftChain(draft)
