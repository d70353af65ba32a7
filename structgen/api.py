"""The front door: ``generate`` and ``stream`` over any ``LanguageModel``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from structgen.constraints import Constraint
from structgen.decoding.loop import DecodeRun, GenerationResult, stream_text
from structgen.decoding.models import LanguageModel, Prompt
from structgen.decoding.samplers import Sampler


def _is_batch(prompt) -> bool:
    """A batch is a list of strings or a list of conversations; a conversation is a list of
    messages (dicts)."""
    return isinstance(prompt, list) and bool(prompt) and not isinstance(prompt[0], dict)


def generate(model: LanguageModel, prompt: Prompt | Sequence[Prompt],
             constraint: Constraint | Sequence[Constraint | None] | None = None, *,
             max_tokens: int = 256, sampler: Sampler | None = None, seed: int | None = None,
             chat: bool | None = None, return_result: bool = False):
    """Generate text from ``model``, every output inside ``constraint``.

    Args:
        prompt: a string, a conversation (``[{"role": ..., "content": ...}, ...]``), or a list
            of either (a batch). Conversations, and strings for models with a chat template,
            are rendered with the chat template (``chat=False`` sends strings as they are).
        constraint: a constraint (``sg.regex(...)`` and friends), ``None`` for free text, or a
            list with one per prompt of a batch.
        max_tokens: the most tokens generated per output (EOS not counted).
        sampler: ``sg.Greedy()`` (default) or ``sg.Sample(temperature=..., top_p=..., top_k=...)``.
            The model's own generation config is never applied.
        seed: makes sampling reproducible.
        return_result: return :class:`GenerationResult` objects (text, token ids,
            log-probabilities, finish reason, timings, statistics) instead of strings.

    Returns:
        The text (a list for a batch), or result objects with ``return_result=True``. An output
        cut by ``max_tokens`` is returned as it stands (``finish_reason == "length"``).
    """
    batch = _is_batch(prompt)
    prompts = list(prompt) if batch else [prompt]
    if isinstance(constraint, (list, tuple)):
        if not batch or len(constraint) != len(prompts):
            raise ValueError("a list of constraints needs a batch of prompts of the same length")
        constraints = list(constraint)
    else:
        constraints = [constraint] * len(prompts)
    run = DecodeRun(model, prompts, constraints, sampler, max_tokens, seed, chat)
    for _ in run.steps():
        pass
    results = run.results()
    out: list = results if return_result else [r.text for r in results]
    return out if batch else out[0]


def stream(model: LanguageModel, prompt: Prompt, constraint: Constraint | None = None, *,
           max_tokens: int = 256, sampler: Sampler | None = None, seed: int | None = None,
           chat: bool | None = None) -> Iterator[str]:
    """Like :func:`generate` for one prompt, yielding the text piece by piece as it comes."""
    if _is_batch(prompt):
        raise ValueError("stream() takes one prompt; use generate() for a batch")
    run = DecodeRun(model, [prompt], [constraint], sampler, max_tokens, seed, chat)
    yield from stream_text(run)


__all__ = ["GenerationResult", "generate", "stream"]
