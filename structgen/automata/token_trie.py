"""The vocabulary as a byte trie in flat arrays, the shape numba kernels walk.

Nodes are stored in preorder. Node ``i`` carries the byte on the edge into it, its depth, the
index one past its subtree (so a walk can skip a dead subtree in one step), and the token whose
bytes end there (``node_token``; nodes without one carry ``dummy_token``, an id past the
vocabulary). Token ids sharing their bytes with another (rare duplicates) are listed in
``duplicate_ids`` next to the id that stands for them (``duplicate_of``). Node 0 is the root.
Built once per vocabulary and cached on disk by fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from structgen.vocab import Vocabulary, cache_dir

_FORMAT_VERSION = 3


@dataclass(frozen=True, eq=False)
class TokenTrie:
    node_byte: np.ndarray  # uint8[n]
    node_depth: np.ndarray  # uint8[n], or uint16 for tokens longer than 255 bytes
    subtree_end: np.ndarray  # int32[n]
    node_token: np.ndarray  # int32[n]
    duplicate_ids: np.ndarray  # int32[d]
    duplicate_of: np.ndarray  # int32[d]
    producible_bytes: np.ndarray  # bool[256]: the byte occurs in some text token
    single_bytes: np.ndarray  # bool[256]: the byte is a text token by itself
    max_depth: int
    dummy_token: int

    @property
    def num_nodes(self) -> int:
        return len(self.node_byte)

    @property
    def byte_complete(self) -> bool:
        """Every byte any token can produce is also a token by itself.

        Then any text over producible bytes can be tokenized byte by byte, so a DFA state that
        can still reach acceptance can also do so token by token.
        """
        return bool(np.all(self.single_bytes[self.producible_bytes]))


def build_token_trie(tokens, size: int | None = None) -> TokenTrie:
    """Build the trie of ``tokens`` (bytes or None per id; None and b"" are skipped).

    ``size`` is the logits width (default ``len(tokens)``); the dummy token id is the first bit
    of the word after the last mask word.
    """
    size = len(tokens) if size is None else size
    dummy = ((size + 31) // 32) * 32
    entries = sorted((t, i) for i, t in enumerate(tokens) if t)
    node_byte, node_depth, subtree_end, node_token = [0], [0], [0], [dummy]
    duplicate_ids: list[int] = []
    duplicate_of: list[int] = []
    path = [0]  # node index at each depth along the current token
    previous = b""
    for data, token_id in entries:
        if data == previous:
            duplicate_ids.append(token_id)
            duplicate_of.append(node_token[path[-1]])
            continue
        common = 0
        limit = min(len(previous), len(data))
        while common < limit and previous[common] == data[common]:
            common += 1
        for node in path[common + 1 :]:
            subtree_end[node] = len(node_byte)
        del path[common + 1 :]
        for depth in range(common + 1, len(data) + 1):
            path.append(len(node_byte))
            node_byte.append(data[depth - 1])
            node_depth.append(depth)
            subtree_end.append(0)
            node_token.append(dummy)
        node_token[path[-1]] = token_id
        previous = data
    for node in path:
        subtree_end[node] = len(node_byte)
    max_depth = max(node_depth)
    producible = np.zeros(256, dtype=np.bool_)
    single = np.zeros(256, dtype=np.bool_)
    for data, _ in entries:
        producible[np.frombuffer(data, dtype=np.uint8)] = True
        if len(data) == 1:
            single[data[0]] = True
    return TokenTrie(
        node_byte=np.asarray(node_byte, dtype=np.uint8),
        node_depth=np.asarray(node_depth, dtype=np.uint8 if max_depth < 256 else np.uint16),
        subtree_end=np.asarray(subtree_end, dtype=np.int32),
        node_token=np.asarray(node_token, dtype=np.int32),
        duplicate_ids=np.asarray(duplicate_ids, dtype=np.int32),
        duplicate_of=np.asarray(duplicate_of, dtype=np.int32),
        producible_bytes=producible,
        single_bytes=single,
        max_depth=max_depth,
        dummy_token=dummy,
    )


def _cache_path(vocab: Vocabulary) -> Path:
    return cache_dir() / "tries" / f"{vocab.fingerprint}-v{_FORMAT_VERSION}.npz"


_SCALARS = ("max_depth", "dummy_token")


@lru_cache(maxsize=16)
def token_trie(vocab: Vocabulary) -> TokenTrie:
    """The trie of ``vocab``, from memory, the disk cache, or built (and then saved)."""
    path = _cache_path(vocab)
    if path.exists():
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
            scalars = {k: int(arrays.pop(k)) for k in _SCALARS}
            return TokenTrie(**arrays, **scalars)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a corrupt or stale cache file is rebuilt below
    trie = build_token_trie(vocab.tokens, vocab.size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{id(trie)}.tmp.npz")
        fields = {k: v for k, v in vars(trie).items() if k not in _SCALARS}
        np.savez(tmp, **fields, **{k: np.int64(getattr(trie, k)) for k in _SCALARS})
        tmp.replace(path)
    except OSError:
        pass  # caching is an optimisation; a read-only home must not break compilation
    return trie
