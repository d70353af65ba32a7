"""Drafts for speculative decoding: cheap guesses of the next few tokens of one row.

A draft proposes up to ``k`` tokens that the row's constraint allows in sequence; the target
model then scores them all in one forward pass (``ModelSession.extend``) and the accept/reject
rule (``structgen.decoding.speculative``) keeps what it agrees with, so a draft decides only the
speed, never the output.

* :class:`ForcedDraft`: the text the constraint forces (JSON keys, punctuation), with the
  whitespace the output uses where the layout is free, spelled by the model's tokenizer;
  accepted whenever the model writes and spells it the same way.
* :class:`PromptLookup`: n-gram lookup in the prompt and the output so far; it copies spans, the
  common case of extraction tasks.
* :class:`DraftModel`: a smaller language model with the same vocabulary, decoding under the same
  constraint; the only draft that samples (:meth:`Draft.draw` returns the distribution each of
  its tokens came from, which the verification needs).
* :class:`DraftChain`: several drafts one after another, each continuing where the last stopped.

Drafts never propose EOS or other non-text tokens: ending a row is the target model's decision
alone.
"""

from __future__ import annotations

import copy
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from structgen.automata.matcher import Matcher, TextCursor
from structgen.decoding.models import LanguageModel, ModelSession, TransformersModel
from structgen.decoding.samplers import draw_categorical
from structgen.errors import VocabularyError
from structgen.kernels.torch_masks import apply_token_bitmask
from structgen.vocab import Vocabulary


@dataclass(frozen=True)
class DraftContext:
    """What a draft may read about one row: its prompt and output ids, and the vocabulary.

    ``confirmed`` says how many ids of ``generated`` the target model has accepted; the rest
    were proposed earlier in the same proposal by the drafts of a chain (None: all of them are
    accepted). ``memory`` is the row's storage for drafts that keep state between the steps of
    one decode (a draft model's cache); the decode loop gives every row its own and drops it
    when the row finishes. ``encode`` spells text as the model's tokenizer does
    (``LanguageModel.encode_text``; None or returning None: no tokenizer).
    """

    prompt: Sequence[int]
    generated: Sequence[int]
    vocab: Vocabulary
    confirmed: int | None = None
    memory: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    encode: Callable[[str], list[int] | None] | None = field(default=None, compare=False,
                                                           repr=False)

    def after(self, tokens: Sequence[int]) -> DraftContext:
        """The context once ``tokens`` are proposed too (not yet accepted by the target)."""
        confirmed = len(self.generated) if self.confirmed is None else self.confirmed
        return replace(self, generated=[*self.generated, *tokens], confirmed=confirmed)


@dataclass(frozen=True)
class DraftSampling:
    """How drafts that sample should choose, given how the target chooses.

    ``distribution(masked_logprobs)`` maps ``(rows, vocab)`` masked log-probabilities to the
    probabilities the target draws from (its temperature, top-p, top-k); a draft that samples
    from the same processing of its own model is accepted most often. None means the target is
    greedy (or draws in a way only its own sampler knows), so drafts choose greedily and propose
    point masses. ``generator`` makes the drafts' draws reproducible with the decode's seed.
    """

    distribution: Callable[[torch.Tensor], torch.Tensor] | None = None
    generator: torch.Generator | None = None


GREEDY = DraftSampling()


@dataclass(frozen=True)
class Proposal:
    """Drafted tokens and, for each, the draft distribution q it was drawn from: a ``(vocab,)``
    probability tensor, or None for a token chosen deterministically (a point mass)."""

    tokens: list[int]
    distributions: list[torch.Tensor | None]

    @property
    def sampled(self) -> bool:
        """Whether any token was drawn at random (the verification then needs q)."""
        return any(q is not None for q in self.distributions)


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
            Text token ids that ``matcher`` allows one after the other; ``[]`` for no guess.
        """

    def draw(self, matcher: Matcher | None, context: DraftContext, k: int,
             sampling: DraftSampling = GREEDY) -> Proposal:
        """Like :meth:`propose`, with the distribution each token was drawn from.

        Deterministic drafts (the default) return their :meth:`propose` as point masses; a draft
        that samples (:class:`DraftModel`) overrides this, following ``sampling``.
        """
        tokens = self.propose(matcher, context, k)
        return Proposal(tokens, [None] * len(tokens))


def allowed_prefix(matcher: Matcher | None, tokens: Sequence[int],
                   vocab: Vocabulary) -> list[int]:
    """The longest prefix of ``tokens`` of text tokens (no EOS, no special token) that
    ``matcher`` allows in sequence (None: any text token)."""
    walker = None if matcher is None else matcher.copy()
    out: list[int] = []
    for token in tokens:
        if not vocab.is_text(token) or (walker is not None and not walker.advance(token)):
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


_MAX_SPELLINGS = 64  # more allowed tokens than this: a real choice, not one text spelled out


_WHITESPACE = b" \t\n\r"
_WHITESPACE_CLASS = b"[" + re.escape(_WHITESPACE) + b"]"
_ESCAPE = 0x5C  # backslash
_MAX_EXPECTED = 256  # bytes looked ahead at once


def _text(vocab: Vocabulary, ids: Sequence[int]) -> bytes:
    return b"".join(vocab.token_bytes(t) for t in ids if vocab.is_text(t))


def expected_text(matcher: Matcher, written: bytes, prompt: Callable[[], bytes]) -> bytes:
    """The text expected next from ``matcher``: what the constraint forces, continued through
    places where the only choice is optional whitespace (padding: the other choices stay
    allowed after it) or a ``\\`` escape. There the draft writes the padding
    :func:`whitespace_guess` expects from ``written`` (the output so far) and ``prompt()`` (its
    prompt's text), then the one other byte, if one; it stops at any other choice (after the
    padding, outside strings: where no escape may start) and where EOS is allowed."""
    cursor = matcher.text_cursor()
    out = bytearray()
    prompt_text: bytes | None = None
    while len(out) < _MAX_EXPECTED and not cursor.is_accepting():
        choices = cursor.next_bytes()
        if len(choices) == 1:
            following = choices[0]
        else:
            plain = [b for b in choices if b not in _WHITESPACE and b != _ESCAPE]
            spaces = [b for b in choices if b in _WHITESPACE]
            if spaces:
                # Where an escape may start, whitespace is a string's content, not layout.
                if (len(plain) > 1 and _ESCAPE in choices
                        or not _is_padding(cursor, spaces[0], plain)):
                    break
                if prompt_text is None:
                    prompt_text = prompt()
                gap = whitespace_guess(written + out, plain[0] if len(plain) == 1 else None,
                                       prompt_text)
                if gap and cursor.step(gap):
                    out += gap
                    continue
            if len(plain) != 1:
                break
            following = plain[0]
        if not cursor.step(bytes([following])):
            break
        out.append(following)
    return bytes(out)


def _is_padding(cursor: TextCursor, space: int, others: list[int]) -> bool:
    """Whether the whitespace byte ``space`` is optional here: after it, every one of
    ``others`` is still allowed (JSON's flexible layout; not a pretty layout's line break,
    which decides between closing and continuing a list)."""
    probe = cursor.copy()
    return probe.step(bytes([space])) and set(others) <= set(probe.next_bytes())


@lru_cache(maxsize=1024)
def _gap_pattern(before: int | None, after: int | None) -> re.Pattern[bytes]:
    """``before``, a whitespace run (group 1), ``after``; None: any non-whitespace byte."""
    def byte(value: int | None) -> bytes:
        return b"[^" + _WHITESPACE_CLASS[1:] if value is None else re.escape(bytes([value]))
    return re.compile(byte(before) + b"(" + _WHITESPACE_CLASS + b"*)" + byte(after))


def whitespace_guess(written: bytes, following: int | None, prompt: bytes) -> bytes:
    """The whitespace still to write before the byte ``following`` (None: before whatever
    non-whitespace byte comes next), after ``written``.

    The whole run between the last non-whitespace byte of ``written`` and the next one is
    guessed as the most recent run in the same place, looked for in this order: between the
    same two bytes in ``written``; after the same byte in ``written``; before the same byte in
    ``written`` (runs that are not empty: a string's closing quote says nothing about layout);
    then the first two in ``prompt``. Whitespace already at the end of ``written``
    is the run's beginning, so a run that does not begin with it is passed over. Nothing is
    guessed before the output's first byte.
    """
    body = written.rstrip(_WHITESPACE)
    if not body:
        return b""
    before, tail = body[-1], written[len(body):]
    places = [(written, before, following), (written, before, None),
              (written, None, following), (prompt, before, following), (prompt, before, None)]
    for text, left, right in dict.fromkeys(p for p in places if p[1:] != (None, None)):
        for match in reversed(list(_gap_pattern(left, right).finditer(text))):
            run = match.group(1)
            if run.startswith(tail) and (run or left is not None):
                return run[len(tail):]
    return b""


def canonical_spelling(text: bytes, context: DraftContext, last: int | None) -> list[int] | None:
    """``text`` as the model's tokenizer spells it right after the output's ``last`` token:
    the tokenizer reads the last token's text and ``text`` together, and when its spelling
    keeps the boundary between them, the tokens after it; else ``text`` alone. None without a
    tokenizer or for text that is not whole UTF-8."""
    if context.encode is None:
        return None
    try:
        string = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    vocab = context.vocab
    if last is not None and vocab.is_text(last):
        before = vocab.token_bytes(last)
        try:
            ids = context.encode(before.decode("utf-8") + string)
        except UnicodeDecodeError:  # the last token ends inside a character: spell text alone
            ids = None
        length = 0
        for index, token in enumerate(ids or ()):
            if length == len(before):
                return ids[index:]
            if length > len(before):
                break
            length += len(vocab.token_bytes(token))
    return context.encode(string)


class ForcedDraft(Draft):
    """The text the constraint forces (:func:`expected_text`), spelled as the model's
    tokenizer spells it, with the layout the output itself uses where the constraint leaves
    only whitespace or escapes open.

    Spelling: the expected text goes through the model's tokenizer (``DraftContext.encode``),
    together with the output's last token when that keeps the token boundary (so the rest of
    a word the model began, ``att`` + ``endees``, splits as in ``attendees``). Without a
    tokenizer, or where its spelling is not allowed, each step takes the longest allowed token
    that begins the remaining text, except that a token never ends with a space that the text
    follows with a non-space byte: the pre-tokenizers of byte-level BPE and SentencePiece give
    that space to the next word (``\\n  "`` is spelled ``\\n `` + `` "``).

    Flexible layouts: where JSON allows any whitespace almost nothing is forced (after a key,
    ``:`` or a space may come). So where the allowed next bytes are one byte plus optional
    whitespace (or plus ``\\``, which starts an escape: a JSON key's letters may all be
    escaped), the draft expects that one byte, after the whitespace this output (else the
    prompt) wrote in the same place (:func:`expected_text`, :func:`whitespace_guess`): a model
    that writes ``{"name": "Ada", "age": 36}`` gets ``, "age": `` proposed whole after its
    first field. The guess decides only how much the target accepts, never the output.

    Where nothing is expected, EOS is not allowed, and the allowed tokens other than those
    starting with ``\\`` are all prefixes of the longest of them, the draft proposes that longest
    one: the text written plainly.

    It stops at ``k`` tokens, at a choice, or where no allowed token fits inside the expected
    text (a token reaching past it would be a guess of another kind).
    """

    def propose(self, matcher: Matcher | None, context: DraftContext, k: int) -> list[int]:
        if matcher is None:
            return []
        vocab = context.vocab
        walker = matcher.copy()
        tokens: list[int] = []
        written = bytearray(_text(vocab, context.generated))

        def prompt() -> bytes:
            return _text(vocab, context.prompt[-512:])

        while len(tokens) < k:
            expected = expected_text(walker, bytes(written), prompt)
            last = (tokens or context.generated or [None])[-1]
            step = self._spell(walker, expected, context, last, k - len(tokens))
            if not step:
                token = self._advance_unescaped(walker, vocab)
                step = [] if token is None else [token]
            if not step:
                break
            tokens += step
            written += _text(vocab, step)
        return tokens

    @classmethod
    def _spell(cls, walker: Matcher, expected: bytes, context: DraftContext,
               last: int | None, limit: int) -> list[int]:
        """Advance ``walker`` along ``expected``, at most ``limit`` tokens, spelled canonically
        where it can be (else by longest allowed tokens); the tokens."""
        if not expected:
            return []
        out: list[int] = []
        for token in canonical_spelling(expected, context, last) or []:
            if len(out) == limit or not walker.advance(token):
                break
            out.append(token)
        if out:
            return out
        lookup = _token_lookup(context.vocab)
        while expected and len(out) < limit:
            token = cls._advance_longest(walker, expected, lookup)
            if token is None:
                break
            out.append(token)
            expected = expected[len(context.vocab.token_bytes(token)):]
        return out

    @staticmethod
    def _advance_unescaped(walker: Matcher, vocab: Vocabulary) -> int | None:
        """Advance ``walker`` by the longest allowed token when every allowed token that does
        not start an escape sequence is a prefix of it (see the class docstring); its id."""
        if walker.is_accepting():
            return None
        mask = walker.mask()
        if int(np.bitwise_count(mask).sum()) > _MAX_SPELLINGS:
            return None
        allowed = np.flatnonzero(np.unpackbits(mask.view(np.uint8), bitorder="little"))
        spellings = {vocab.token_bytes(int(t)): int(t) for t in allowed[::-1]
                     if vocab.is_text(int(t))}  # the lowest id among duplicates wins
        plain = [data for data in spellings if not data.startswith(b"\\")]
        if not plain:
            return None
        longest = max(plain, key=len)
        if not all(longest.startswith(data) for data in plain):
            return None
        token = spellings[longest]
        walker.advance(token)
        return token

    @staticmethod
    def _advance_longest(walker: Matcher, forced: bytes, lookup: _TokenLookup) -> int | None:
        """Advance ``walker`` by the longest allowed token that begins ``forced`` and does not
        take the space before a word; its id."""
        for length in range(min(lookup.max_length, len(forced)), 0, -1):
            if forced[length - 1] == 0x20 and length < len(forced) and not forced[
                    length: length + 1].isspace():
                continue
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
        return self.draw(matcher, context, k).tokens

    def draw(self, matcher: Matcher | None, context: DraftContext, k: int,
             sampling: DraftSampling = GREEDY) -> Proposal:
        walker = None if matcher is None else matcher.copy()
        tokens: list[int] = []
        distributions: list[torch.Tensor | None] = []
        idle = turn = 0  # idle: drafts in a row that added nothing since the last token
        while len(tokens) < k and idle < len(self.drafts):
            draft = self.drafts[turn % len(self.drafts)]
            turn += 1
            budget = k - len(tokens)
            more = draft.draw(walker, context.after(tokens), budget, sampling)
            if len(more.tokens) > budget:
                raise ValueError(f"{draft!r} proposed {len(more.tokens)} tokens, more than "
                                 f"{budget}")
            for token in more.tokens:
                if not context.vocab.is_text(token) or (
                        walker is not None and not walker.advance(token)):
                    raise ValueError(f"{draft!r} proposed token {token}, which the "
                                     "constraint does not allow there")
            tokens.extend(more.tokens)
            distributions.extend(more.distributions)
            idle = 0 if more.tokens else idle + 1
        return Proposal(tokens, distributions)

    def __repr__(self) -> str:
        return f"DraftChain({list(self.drafts)!r})"


@lru_cache(maxsize=8)
def _text_tokens(vocab: Vocabulary) -> np.ndarray:
    """The packed mask of the text tokens (no EOS, special or padding id): what a draft may
    propose where the constraint allows anything."""
    allowed = np.zeros(((vocab.size + 31) // 32) * 32, dtype=np.uint8)
    allowed[[i for i, data in enumerate(vocab.tokens) if data]] = 1
    words = np.packbits(allowed, bitorder="little").view(np.uint32)
    words.flags.writeable = False
    return words


@dataclass
class _DraftSession:
    """A draft model's session over one row; its cache holds the first ``read`` ids of the row
    (prompt, then output), all of them accepted by the target."""

    session: ModelSession
    read: int

    def logprobs_after(self, ids: Sequence[int], accepted: int) -> torch.Tensor:
        """The next-token log-probabilities after ``ids`` (the row's prompt and output, then
        tokens drafted but not yet verified): the first ``accepted`` of them are read into the
        cache for good, the rest only for this answer (``keep`` drops them again)."""
        new = list(ids[self.read:])
        if not new:
            return self.session.logprobs()[0]
        after = self.session.extend(torch.tensor([new], dtype=torch.long))
        self.session.keep(torch.tensor([accepted - self.read]))
        self.read = accepted
        return after[0, -1]


class DraftModel(Draft):
    """A smaller causal LM with the target's vocabulary, decoding under the same constraint.

    At each drafted position the draft model's next-token distribution is masked by the row's
    constraint (EOS excluded: ending is the target's call) and processed like the target's
    (``DraftSampling``: the same temperature, top-p and top-k); the draft samples its token from
    that distribution q, or takes its argmax when the target decodes greedily. The verification
    accepts a sampled token d with probability min(1, p(d) / q(d)), p being the target's masked
    distribution, and otherwise draws from the residual max(0, p - q), normalised: the standard
    speculative rule, exact for any q (see ``structgen.decoding.speculative``).

    Each row keeps its own session of the draft model (in ``DraftContext.memory``) whose cache
    holds only the row's accepted tokens: drafted tokens are read with ``extend`` and dropped
    again with ``keep``, so rejections cost no rollback. Drafting k tokens costs k forward passes
    of the draft model per row.

    Args:
        model: the draft model; its vocabulary must equal the target's.
        k: at most this many tokens per proposal (None: as many as the caller asks).
    """

    def __init__(self, model: LanguageModel, k: int | None = None):
        if k is not None and k < 1:
            raise ValueError(f"DraftModel needs k >= 1 or None, got {k}")
        self.model = model
        self.k = k

    @classmethod
    def truncated(cls, target: TransformersModel, layers: int,
                  k: int | None = None) -> DraftModel:
        """A draft made of the target's own first ``layers`` decoder layers, with its
        embeddings, final norm and output head (every weight shared, nothing copied): an
        "early exit" of the target, the draft model that needs no second checkpoint.

        Raises:
            TypeError: the model keeps its decoder layers elsewhere than
                ``base_model.layers`` (the Llama family's layout: Llama, Mistral, Qwen,
                SmolLM2, ...).
            ValueError: ``layers`` is not between 1 and the target's layer count minus one.
        """
        short = _first_layers(target.model, layers)
        return cls(TransformersModel(short, target.tokenizer, vocab=target.vocab), k=k)

    def propose(self, matcher: Matcher | None, context: DraftContext, k: int) -> list[int]:
        return self.draw(matcher, context, k).tokens

    def draw(self, matcher: Matcher | None, context: DraftContext, k: int,
             sampling: DraftSampling = GREEDY) -> Proposal:
        k = k if self.k is None else min(k, self.k)
        if k < 1 or (matcher is not None and matcher.is_finished()):
            return Proposal([], [])
        if self.model.vocab != context.vocab:
            raise VocabularyError("a DraftModel needs the vocabulary of the model it drafts for "
                                  f"({context.vocab.name or context.vocab.size} ids); its model "
                                  f"has {self.model.vocab.name or self.model.vocab.size}")
        ids = [*context.prompt, *context.generated]
        accepted = len(context.prompt) + (
            len(context.generated) if context.confirmed is None else context.confirmed)
        state = context.memory.get(self)
        if state is None:
            state = context.memory[self] = _DraftSession(
                self.model.start([ids[:accepted]]), accepted)
        text = _text_tokens(context.vocab)
        walker = None if matcher is None else matcher.copy()
        tokens: list[int] = []
        distributions: list[torch.Tensor | None] = []
        while len(tokens) < k:
            logprobs = state.logprobs_after([*ids, *tokens], accepted)
            mask = text if walker is None else walker.mask() & text
            masked = apply_token_bitmask(logprobs.clone(), mask)
            if not torch.isfinite(masked.max()):
                break  # the draft model gives no allowed text token any mass
            if sampling.distribution is None:
                token, q = int(masked.argmax()), None
            else:
                q = sampling.distribution(masked.double().unsqueeze(0))[0]
                token = int(draw_categorical(q, sampling.generator))
            tokens.append(token)
            distributions.append(q)
            if walker is not None:
                walker.advance(token)
                if walker.is_finished():
                    break
        return Proposal(tokens, distributions)

    def __repr__(self) -> str:
        return f"DraftModel({type(self.model).__name__}, k={self.k})"


def _first_layers(hf_model: Any, layers: int) -> Any:
    """A view of a transformers causal LM that runs only its first ``layers`` decoder layers,
    sharing every module and weight with ``hf_model``, which stays as it was."""
    base = hf_model.base_model
    blocks = getattr(base, "layers", None)
    if not isinstance(blocks, torch.nn.ModuleList):
        raise TypeError(f"DraftModel.truncated needs the decoder layers at base_model.layers; "
                        f"{type(hf_model).__name__} keeps them elsewhere")
    if not 1 <= layers < len(blocks):
        raise ValueError(f"DraftModel.truncated keeps 1 to {len(blocks) - 1} of the "
                         f"{len(blocks)} layers, not {layers}")
    config = copy.deepcopy(hf_model.config)
    config.num_hidden_layers = layers  # the decoder loop and the KV cache both read it
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types[:layers])
    short_base = _shallow_module_copy(base)
    short_base.layers = torch.nn.ModuleList(list(blocks)[:layers])
    short_base.config = config
    short = _shallow_module_copy(hf_model)
    setattr(short, hf_model.base_model_prefix, short_base)
    short.config = config
    return short


def _shallow_module_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A second module object over the same parameters, buffers and submodules, whose own
    submodules can be replaced without touching ``module`` (``copy.copy`` alone would share
    the dictionary that holds them)."""
    twin = copy.copy(module)
    twin._modules = dict(module._modules)
    return twin


def as_draft(draft: Draft | Sequence[Draft] | None) -> Draft | None:
    """The ``draft=`` argument of the front door as one draft: a list becomes a
    :class:`DraftChain`, None stays None (no speculation)."""
    if draft is None or isinstance(draft, Draft):
        return draft
    return DraftChain(draft)
