"""``sg.compile``: a constraint and a vocabulary in, a cached ``TokenConstraint`` out."""

from __future__ import annotations

from collections import OrderedDict

from structgen.automata.byte_dfa import Limits
from structgen.automata.matcher import TokenConstraint
from structgen.constraints import Constraint
from structgen.vocab import Vocabulary

_CACHE_SIZE = 64
_cache: OrderedDict[tuple, TokenConstraint] = OrderedDict()


def compile(constraint: Constraint, vocab: Vocabulary, limits: Limits | None = None
            ) -> TokenConstraint:
    """Compile ``constraint`` against ``vocab``; the result is cached per (constraint, vocab).

    Raises ``EmptyLanguage`` when nothing matches the constraint, ``VocabularyError`` when no
    token can start a match, and ``LimitExceeded`` when ``limits`` are exceeded.
    """
    limits = limits or Limits()
    key = (constraint.cache_key, vocab.fingerprint, limits)
    compiled = _cache.get(key)
    if compiled is not None:
        _cache.move_to_end(key)
        return compiled
    compiled = TokenConstraint(constraint.language(), vocab, limits)
    _cache[key] = compiled
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return compiled
