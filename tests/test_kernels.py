"""The numba kernels agree with their pure-Python twins, and masks apply to logits exactly."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structgen.automata.byte_dfa import DEAD, UNKNOWN
from structgen.automata.kernels import (
    children_by_byte,
    children_by_byte_python,
    children_of,
    children_of_python,
    group_by_byte,
    group_by_byte_python,
    walk_trie,
    walk_trie_by_byte,
    walk_trie_by_byte_python,
    walk_trie_from_children,
    walk_trie_from_children_python,
    walk_trie_python,
)
from structgen.automata.token_trie import build_token_trie
from structgen.kernels.torch_masks import apply_token_bitmask

tokens_strategy = st.lists(
    st.one_of(st.none(), st.binary(min_size=0, max_size=6)), min_size=1, max_size=80
)


def _random_dfa(rng: np.random.Generator, n_states: int, alphabet: list[int], unknown_rate: float):
    trans = np.full((n_states, 256), DEAD, dtype=np.int32)
    known = np.ones(n_states, dtype=np.uint8)
    for s in range(n_states):
        if rng.random() < unknown_rate and s != 0:
            trans[s, :] = UNKNOWN
            known[s] = 0
            continue
        for b in alphabet:
            if rng.random() < 0.7:
                trans[s, b] = rng.integers(0, n_states)
    return trans, known


def _random_case(tokens, seed: int, unknown_rate: float):
    """A random DFA over the tokens' bytes (some rows unknown), their trie, the number of
    mask words, and random accepting states; with the generator, for more draws."""
    rng = np.random.default_rng(seed)
    alphabet = sorted({b for t in tokens if t for b in t} | {0})
    trans, known = _random_dfa(rng, int(rng.integers(1, 8)), alphabet, unknown_rate)
    accepting = rng.random(len(known)) < 0.4
    return rng, trans, known, build_token_trie(tokens), (len(tokens) + 31) // 32, accepting


def _run(kernel, trans, known, trie, words, accepting):
    out = np.zeros(words + 1, dtype=np.uint32)
    pending_nodes = np.zeros(trie.num_nodes, dtype=np.int32)
    pending_states = np.zeros(trie.num_nodes, dtype=np.int32)
    end_nodes = np.zeros(trie.num_nodes, dtype=np.int32)
    end_states = np.zeros(trie.num_nodes, dtype=np.int32)
    n, n_ends = kernel(trans, known, accepting, np.zeros(1, dtype=np.int32),
                       np.zeros(1, dtype=np.int32), trie.max_depth, trie.node_byte,
                       trie.node_depth, trie.subtree_end, trie.node_token, out, pending_nodes,
                       pending_states, end_nodes, end_states)
    return (out[:words], pending_nodes[:n].tolist(), pending_states[:n].tolist(),
            end_nodes[:n_ends].tolist(), end_states[:n_ends].tolist())


@pytest.mark.parametrize("kernel", [walk_trie, walk_trie_python])
def test_walk_trie_counts_entries_past_full_buffers_without_writing_them(kernel):
    """Roots below one another meet nodes once per root above: with a chain of tokens
    ``a, aa, ..., a*12`` and a root at every depth, the end nodes outnumber the trie's nodes.
    The kernel must count them all, write none past a buffer's end, and write the same
    entries as with room to spare (the caller grows its buffers and walks again)."""
    trie = build_token_trie([b"a" * n for n in range(1, 13)])
    trans = np.full((1, 256), DEAD, dtype=np.int32)
    trans[0, ord("a")] = 0
    known, accepting = np.ones(1, dtype=np.uint8), np.ones(1, dtype=np.bool_)
    roots = np.arange(trie.num_nodes - 1, dtype=np.int32)  # every node with a child
    results = {}
    for room in (4, 200):
        guarded = np.full(room + 8, -7, dtype=np.int32)  # 8 sentinels past the buffer's end
        out = np.zeros(2, dtype=np.uint32)
        pending = np.zeros(room, dtype=np.int32)
        counts = kernel(trans, known, accepting, roots, np.zeros_like(roots), trie.max_depth,
                        trie.node_byte, trie.node_depth, trie.subtree_end, trie.node_token, out,
                        pending, pending.copy(), guarded[:room], np.zeros(room, dtype=np.int32))
        assert (guarded[room:] == -7).all()
        results[room] = counts, guarded[:min(room, counts[1])].tolist(), out.tolist()
    (_, n_ends), _, _ = results[200]
    assert n_ends > trie.num_nodes and results[4][0] == results[200][0]
    assert results[4][1] == results[200][1][:4] and results[4][2] == results[200][2]


@settings(max_examples=150, deadline=None)
@given(tokens=tokens_strategy, seed=st.integers(0, 2**32 - 1),
       unknown_rate=st.sampled_from([0, 0.3]))
def test_walk_trie_matches_python_twin(tokens, seed, unknown_rate):
    _, trans, known, trie, words, accepting = _random_case(tokens, seed, unknown_rate)
    fast = _run(walk_trie, trans, known, trie, words, accepting)
    slow = _run(walk_trie_python, trans, known, trie, words, accepting)
    assert np.array_equal(fast[0], slow[0])
    assert fast[1:] == slow[1:]
    if unknown_rate == 0:
        # With every row known, the mask is exactly the tokens the DFA can read from state 0
        # (duplicated byte strings stand for one node; the matcher adds their twins afterwards).
        represented = {int(t) for t in trie.node_token if t < len(tokens)}
        for token_id, data in enumerate(tokens):
            state = 0
            for byte in data or b"":
                state = trans[state, byte] if state >= 0 else DEAD
            expected = bool(data) and state >= 0 and token_id in represented
            assert bool(fast[0][token_id >> 5] >> (token_id & 31) & 1) == expected
        # End nodes: reached nodes with children whose state accepts, exactly.
        for node in fast[3]:
            assert trie.subtree_end[node] > node + 1


def _paths(trie) -> dict[int, bytes]:
    """Each trie node's bytes from the root (nodes are in preorder)."""
    paths = {0: b""}
    for node in range(1, trie.num_nodes):
        parent = max(n for n in paths if n < node and trie.subtree_end[n] > node)
        paths[node] = paths[parent] + bytes([trie.node_byte[node]])
    return paths


@settings(max_examples=100, deadline=None)
@given(tokens=tokens_strategy, seed=st.integers(0, 2**32 - 1))
def test_children_by_byte_are_the_children_of_the_roots_grouped_by_byte(tokens, seed):
    """``children_by_byte`` (and its twin) lists exactly the nodes one byte below a root, each
    in the group of the byte on its edge, in the order of their roots."""
    trie = build_token_trie(tokens)
    rng = np.random.default_rng(seed)
    roots = np.flatnonzero(rng.random(trie.num_nodes) < 0.3).astype(np.int32)
    fast = children_by_byte(roots, trie.node_byte, trie.subtree_end)
    slow = children_by_byte_python(roots, trie.node_byte, trie.subtree_end)
    assert all(np.array_equal(a, b) for a, b in zip(fast, slow))
    children, offsets = fast
    paths = _paths(trie)
    for byte in range(256):
        expected = [node for root in roots.tolist() for node in paths
                    if paths[node] == paths[root] + bytes([byte])]
        assert children[offsets[byte]:offsets[byte + 1]].tolist() == expected


@settings(max_examples=100, deadline=None)
@given(tokens=tokens_strategy, seed=st.integers(0, 2**32 - 1))
def test_children_of_lists_each_child_with_its_root(tokens, seed):
    """``children_of`` (and its twin) lists the nodes one byte below each root, root by root,
    each with the index of its root; ``group_by_byte`` (and its twin) orders any nodes by
    the byte on their edge, keeping their order within a byte."""
    trie = build_token_trie(tokens)
    rng = np.random.default_rng(seed)
    roots = rng.permutation(np.flatnonzero(rng.random(trie.num_nodes) < 0.4)).astype(np.int32)
    children, parents = children_of(roots, trie.subtree_end)
    twin = children_of_python(roots, trie.subtree_end)
    assert np.array_equal(children, twin[0]) and np.array_equal(parents, twin[1])
    paths = _paths(trie)
    expected = [(node, k) for k, root in enumerate(roots.tolist()) for node in sorted(paths)
                if len(paths[node]) == len(paths[root]) + 1 and paths[node][:-1] == paths[root]]
    assert list(zip(children.tolist(), parents.tolist())) == expected
    order, offsets = group_by_byte(children, trie.node_byte)
    twin = group_by_byte_python(children, trie.node_byte)
    assert np.array_equal(order, twin[0]) and np.array_equal(offsets, twin[1])
    for byte in range(256):
        assert order[offsets[byte]:offsets[byte + 1]].tolist() == [
            k for k, node in enumerate(children.tolist()) if trie.node_byte[node] == byte]


def _one_node_grouped(node: int, trie) -> tuple[np.ndarray, np.ndarray]:
    """Trie node ``node`` alone as ``walk_trie_by_byte``'s nodes grouped by byte."""
    offsets = (np.arange(257) > trie.node_byte[node]).astype(np.int32)
    return np.array([node], dtype=np.int32), offsets


def _walk_results(kernel, where, trans, known, accepting, trie, words) -> tuple:
    """A kernel's marked tokens and its pending and end entries (sorted), buffers ample."""
    size = trie.num_nodes * trie.num_nodes  # roots below one another meet nodes repeatedly
    out = np.zeros(words + 1, dtype=np.uint32)
    buffers = [np.zeros(size, dtype=np.int32) for _ in range(4)]
    n, n_ends = kernel(trans, known, accepting, *where, trie.max_depth, trie.node_byte,
                       trie.node_depth, trie.subtree_end, trie.node_token, out, *buffers)
    return (out.tolist(), sorted(zip(buffers[0][:n].tolist(), buffers[1][:n].tolist())),
            sorted(zip(buffers[2][:n_ends].tolist(), buffers[3][:n_ends].tolist())))


@settings(max_examples=150, deadline=None)
@given(tokens=tokens_strategy, seed=st.integers(0, 2**32 - 1),
       unknown_rate=st.sampled_from([0, 0.3]))
def test_walk_from_children_reads_each_child_from_its_own_state(tokens, seed, unknown_rate):
    """``walk_trie_from_children`` (and its twin) from nodes each in its own state finds what
    walks from each node alone find together: for a node, the walk below its parent from
    its state, less what the parent's other children hold."""
    rng, trans, known, trie, words, accepting = _random_case(tokens, seed, unknown_rate)
    nodes = np.flatnonzero(rng.random(trie.num_nodes) < 0.3).astype(np.int32)
    nodes = nodes[nodes > 0]
    starts = rng.integers(0, len(known), len(nodes)).astype(np.int32)
    starts = np.where(known[starts] == 1, starts, 0).astype(np.int32)  # rows built
    found = _walk_results(walk_trie_from_children, (nodes, starts), trans, known, accepting,
                          trie, words)
    assert found == _walk_results(walk_trie_from_children_python, (nodes, starts), trans,
                                  known, accepting, trie, words)
    alone = [_walk_results(walk_trie_by_byte, (*_one_node_grouped(node, trie), start),
                           trans, known, accepting, trie, words)
             for node, start in zip(nodes.tolist(), starts.tolist())]
    marked = np.zeros(words + 1, dtype=np.uint32)
    for out, _, _ in alone:
        marked |= np.array(out, dtype=np.uint32)
    assert found[0] == marked.tolist()
    assert found[1] == sorted(entry for _, pending, _ in alone for entry in pending)
    assert found[2] == sorted(entry for _, _, ends in alone for entry in ends)


@settings(max_examples=150, deadline=None)
@given(tokens=tokens_strategy, seed=st.integers(0, 2**32 - 1),
       unknown_rate=st.sampled_from([0, 0.3]))
def test_walk_by_byte_finds_what_the_walk_below_the_same_roots_finds(tokens, seed, unknown_rate):
    """From roots all in one state, ``walk_trie_by_byte`` (and its twin) over the roots'
    children grouped by byte marks the same tokens, and records the same pending and end
    nodes, as ``walk_trie`` below the roots: it only skips children the state rejects."""
    rng, trans, known, trie, words, accepting = _random_case(tokens, seed, unknown_rate)
    roots = np.flatnonzero(rng.random(trie.num_nodes) < 0.3).astype(np.int32)
    children, offsets = children_by_byte(roots, trie.node_byte, trie.subtree_end)
    results = [_walk_results(kernel, where, trans, known, accepting, trie, words)
               for kernel, where in ((walk_trie, (roots, np.zeros_like(roots))),
                                     (walk_trie_by_byte, (children, offsets, 0)),
                                     (walk_trie_by_byte_python, (children, offsets, 0)))]
    assert results[0] == results[1] == results[2]


@given(tokens=tokens_strategy)
@settings(max_examples=100, deadline=None)
def test_trie_holds_every_text_token_once(tokens):
    trie = build_token_trie(tokens)
    found = {}
    path: list[int] = []
    for node in range(1, trie.num_nodes):
        del path[trie.node_depth[node] - 1 :]
        path.append(int(trie.node_byte[node]))
        assert trie.subtree_end[node] > node
        if trie.node_token[node] != trie.dummy_token:
            found[int(trie.node_token[node])] = bytes(path)
    for duplicate, primary in zip(trie.duplicate_ids, trie.duplicate_of):
        found[int(duplicate)] = found[int(primary)]
    assert found == {i: t for i, t in enumerate(tokens) if t}
    assert trie.dummy_token >= len(tokens) and trie.dummy_token % 32 == 0


# Paths through apply_token_bitmask: the numba kernel (numpy words, contiguous float32/float64
# CPU logits) and torch's unpacking (torch words, other dtypes, strided logits).
LOGIT_LAYOUTS = ["float32", "float64", "torch-words", "bfloat16", "strided"]


@pytest.mark.parametrize("vocab_width", [5, 32, 33, 100])
@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
@pytest.mark.parametrize("layout", LOGIT_LAYOUTS)
@pytest.mark.parametrize("extra_columns", [7, -3])
def test_apply_token_bitmask_blocks_exactly_the_clear_bits(vocab_width, dtype, layout,
                                                           extra_columns):
    rng = np.random.default_rng(vocab_width)
    batch, words = 3, (vocab_width + 31) // 32
    allowed = rng.random((batch, words * 32)) < 0.5
    allowed[0, : 32 * (words - 1)] = True  # whole words allowed: the kernel's shortcut
    packed = np.zeros((batch, words), dtype=np.uint64)
    for bit in range(32):
        packed |= allowed[:, bit::32].astype(np.uint64) << np.uint64(bit)
    bitmask = packed.astype(np.uint32).view(dtype)
    columns = max(1, vocab_width + extra_columns)  # wider (padding) or narrower than the words
    torch_dtype = {"float64": torch.float64, "bfloat16": torch.bfloat16}.get(layout,
                                                                            torch.float32)
    logits = torch.randn(batch, columns).to(torch_dtype)
    if layout == "strided":
        logits = torch.randn(columns, batch).t()
    if layout == "torch-words":
        bitmask = torch.from_numpy(bitmask.copy())
    original = logits.clone()
    apply_token_bitmask(logits, bitmask)
    expected_allowed = np.zeros((batch, columns), dtype=bool)
    width = min(columns, words * 32)
    expected_allowed[:, :width] = allowed[:, :width]
    expected = torch.where(torch.from_numpy(expected_allowed), original,
                           torch.tensor(float("-inf")))
    assert torch.equal(logits, expected)
    one_row = original[0].clone()
    apply_token_bitmask(one_row, bitmask[0])
    assert torch.equal(one_row, expected[0])
