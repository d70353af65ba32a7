"""numba kernels over flat automaton and trie arrays, each with a pure-Python twin.

The twins define the semantics in plain code; a test checks both agree on random automata.
Kernels never allocate per node and never call back into Python, so they run at array speed and
release the GIL (``nogil=True``) for callers that fill masks of a batch in threads.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _walk_range(i, end, stack, trans, known, accepting, node_byte, node_depth, subtree_end,
                node_token, out, pending_nodes, pending_states, end_nodes, end_states,
                n_pending, n_ends):
    """The walk of :func:`walk_trie` over trie nodes ``i`` up to ``end`` (a run of whole
    subtrees), the state above the first of them on ``stack``. Returns the new counts."""
    record_ends = end_nodes.shape[0] > 0
    while i < end:
        nxt = trans[stack[node_depth[i] - 1], node_byte[i]]
        if nxt < 0:
            i = subtree_end[i]
            continue
        t = node_token[i]
        out[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
        if record_ends and accepting[nxt] and subtree_end[i] > i + 1:
            if n_ends < end_nodes.shape[0]:
                end_nodes[n_ends] = i
                end_states[n_ends] = nxt
            n_ends += 1
        if not known[nxt] and subtree_end[i] > i + 1:
            if n_pending < pending_nodes.shape[0]:
                pending_nodes[n_pending] = i
                pending_states[n_pending] = nxt
            n_pending += 1
            i = subtree_end[i]
            continue
        stack[node_depth[i]] = nxt
        i += 1
    return n_pending, n_ends


@numba.njit(cache=True, nogil=True)
def walk_trie(trans, known, accepting, root_nodes, root_states, max_depth, node_byte, node_depth,
              subtree_end, node_token, out, pending_nodes, pending_states, end_nodes,
              end_states):
    """Mark in ``out`` (packed uint32 words) every token the DFA can read below the given roots.

    Walks the subtree of each trie node ``root_nodes[k]``, whose DFA state is ``root_states[k]``
    (its row must be built), and sets the bit of ``node_token[i]`` for every node ``i`` whose
    path stays out of DEAD (negative entries of ``trans``). Nodes without a token carry a dummy
    id whose bit lies in a spare last word of ``out``, which keeps the hot loop free of branches.
    A node whose state's row is not built yet (``known[state] == 0``) is not descended into: it
    is appended to ``pending_nodes``/``pending_states`` so the caller can build that row and
    resume there. When ``end_nodes`` is not empty, nodes with children where the DFA state is
    accepting are also appended to it (a grammar's terminal may end there and the rest of the
    token continue in the next terminal), and their states to ``end_states`` (which tell what
    the lexeme's end leaves to the next one). Returns the numbers of pending and of end nodes.
    Roots may lie below one another (a lexeme that can end at ``a`` and at ``ab``), so a node
    may be met once per root above it: entries beyond a buffer's end are counted, not written,
    and the caller grows the buffer and walks again (``out`` is only ever or-ed into).
    """
    stack = np.empty(max_depth + 1, dtype=np.int32)
    n_pending = 0
    n_ends = 0
    for k in range(root_nodes.shape[0]):
        root = root_nodes[k]
        stack[node_depth[root]] = root_states[k]
        n_pending, n_ends = _walk_range(
            root + 1, subtree_end[root], stack, trans, known, accepting, node_byte, node_depth,
            subtree_end, node_token, out, pending_nodes, pending_states, end_nodes, end_states,
            n_pending, n_ends)
    return n_pending, n_ends


@numba.njit(cache=True, nogil=True)
def walk_trie_by_byte(trans, known, accepting, children, offsets, start, max_depth, node_byte,
                      node_depth, subtree_end, node_token, out, pending_nodes, pending_states,
                      end_nodes, end_states):
    """:func:`walk_trie` below a set of roots all in DFA state ``start`` (its row built), given
    their children grouped by byte (:func:`children_by_byte`): the children on a byte the DFA
    rejects from ``start`` are never visited. A lexeme after another that may end below
    tens of thousands of trie nodes (an operator after an identifier) reads one or a few
    bytes first: this skips the rest of their children, which a plain walk visits for
    every such lexeme."""
    stack = np.empty(max_depth + 1, dtype=np.int32)
    n_pending = 0
    n_ends = 0
    for b in range(256):
        if trans[start, b] < 0:
            continue
        for k in range(offsets[b], offsets[b + 1]):
            child = children[k]
            stack[node_depth[child] - 1] = start
            n_pending, n_ends = _walk_range(
                child, subtree_end[child], stack, trans, known, accepting, node_byte,
                node_depth, subtree_end, node_token, out, pending_nodes, pending_states,
                end_nodes, end_states, n_pending, n_ends)
    return n_pending, n_ends


@numba.njit(cache=True, nogil=True)
def walk_trie_from_children(trans, known, accepting, children, starts, max_depth, node_byte,
                            node_depth, subtree_end, node_token, out, pending_nodes,
                            pending_states, end_nodes, end_states):
    """:func:`walk_trie` over the subtrees of trie nodes ``children``, each read from its own
    byte on, from DFA state ``starts[k]`` above it (its row built): lexemes that start where
    others ended, each under the guards its end left."""
    stack = np.empty(max_depth + 1, dtype=np.int32)
    n_pending = 0
    n_ends = 0
    for k in range(children.shape[0]):
        child = children[k]
        stack[node_depth[child] - 1] = starts[k]
        n_pending, n_ends = _walk_range(
            child, subtree_end[child], stack, trans, known, accepting, node_byte, node_depth,
            subtree_end, node_token, out, pending_nodes, pending_states, end_nodes, end_states,
            n_pending, n_ends)
    return n_pending, n_ends


def _walk_range_python(i, end, stack, trans, known, accepting, node_byte, node_depth,
                       subtree_end, node_token, out, pending_nodes, pending_states, end_nodes,
                       end_states, n_pending, n_ends):
    """Pure-Python twin of :func:`_walk_range`."""
    record_ends = len(end_nodes) > 0
    while i < end:
        nxt = int(trans[stack[node_depth[i] - 1], node_byte[i]])
        if nxt < 0:
            i = int(subtree_end[i])
            continue
        t = int(node_token[i])
        out[t >> 5] |= np.uint32(1 << (t & 31))
        if record_ends and accepting[nxt] and subtree_end[i] > i + 1:
            if n_ends < len(end_nodes):
                end_nodes[n_ends] = i
                end_states[n_ends] = nxt
            n_ends += 1
        if not known[nxt] and subtree_end[i] > i + 1:
            if n_pending < len(pending_nodes):
                pending_nodes[n_pending] = i
                pending_states[n_pending] = nxt
            n_pending += 1
            i = int(subtree_end[i])
            continue
        stack[node_depth[i]] = nxt
        i += 1
    return n_pending, n_ends


def walk_trie_python(trans, known, accepting, root_nodes, root_states, max_depth, node_byte,
                     node_depth, subtree_end, node_token, out, pending_nodes, pending_states,
                     end_nodes, end_states):
    """Pure-Python twin of :func:`walk_trie` (same arguments, same effects, same result)."""
    stack = [0] * (max_depth + 1)
    counts = (0, 0)
    for root, root_state in zip(root_nodes, root_states):
        stack[node_depth[root]] = int(root_state)
        counts = _walk_range_python(
            int(root) + 1, int(subtree_end[root]), stack, trans, known, accepting, node_byte,
            node_depth, subtree_end, node_token, out, pending_nodes, pending_states, end_nodes,
            end_states, *counts)
    return counts


def walk_trie_from_children_python(trans, known, accepting, children, starts, max_depth,
                                   node_byte, node_depth, subtree_end, node_token, out,
                                   pending_nodes, pending_states, end_nodes, end_states):
    """Pure-Python twin of :func:`walk_trie_from_children`."""
    stack = [0] * (max_depth + 1)
    counts = (0, 0)
    for child, start in zip(children, starts):
        stack[node_depth[child] - 1] = int(start)
        counts = _walk_range_python(
            int(child), int(subtree_end[child]), stack, trans, known, accepting, node_byte,
            node_depth, subtree_end, node_token, out, pending_nodes, pending_states, end_nodes,
            end_states, *counts)
    return counts


def walk_trie_by_byte_python(trans, known, accepting, children, offsets, start, max_depth,
                             node_byte, node_depth, subtree_end, node_token, out, pending_nodes,
                             pending_states, end_nodes, end_states):
    """Pure-Python twin of :func:`walk_trie_by_byte`."""
    stack = [0] * (max_depth + 1)
    counts = (0, 0)
    for b in range(256):
        if trans[start, b] < 0:
            continue
        for child in children[offsets[b]:offsets[b + 1]]:
            stack[node_depth[child] - 1] = int(start)
            counts = _walk_range_python(
                int(child), int(subtree_end[child]), stack, trans, known, accepting, node_byte,
                node_depth, subtree_end, node_token, out, pending_nodes, pending_states,
                end_nodes, end_states, *counts)
    return counts


@numba.njit(cache=True, nogil=True)
def children_of(root_nodes, subtree_end):
    """The trie nodes one byte below the nodes ``root_nodes``, in the order of their roots,
    and for each the index in ``root_nodes`` of its root: ``(children, parents)``. Counted
    first, so that a few roots do not allocate for the whole trie."""
    n = 0
    for k in range(root_nodes.shape[0]):
        root = root_nodes[k]
        i = root + 1
        while i < subtree_end[root]:
            n += 1
            i = subtree_end[i]
    children = np.empty(n, dtype=np.int32)
    parents = np.empty(n, dtype=np.int32)
    n = 0
    for k in range(root_nodes.shape[0]):
        root = root_nodes[k]
        i = root + 1
        while i < subtree_end[root]:
            children[n] = i
            parents[n] = k
            n += 1
            i = subtree_end[i]
    return children, parents


@numba.njit(cache=True, nogil=True)
def group_by_byte(nodes, node_byte):
    """The trie nodes ``nodes`` grouped by the byte on their edge, by a stable counting sort:
    ``(order, offsets)``, the nodes on byte ``b`` being ``nodes[order[offsets[b]:offsets[b +
    1]]]``."""
    offsets = np.zeros(257, dtype=np.int32)
    for k in range(nodes.shape[0]):
        offsets[node_byte[nodes[k]] + 1] += 1
    for b in range(256):
        offsets[b + 1] += offsets[b]
    order = np.empty(nodes.shape[0], dtype=np.int32)
    fill = offsets[:256].copy()
    for k in range(nodes.shape[0]):
        b = node_byte[nodes[k]]
        order[fill[b]] = k
        fill[b] += 1
    return order, offsets


@numba.njit(cache=True, nogil=True)
def children_by_byte(root_nodes, node_byte, subtree_end):
    """The children of the trie nodes ``root_nodes`` grouped by the byte on their edge:
    ``(children, offsets)``, the children on byte ``b`` being
    ``children[offsets[b]:offsets[b + 1]]`` (in the order of their roots)."""
    children, _ = children_of(root_nodes, subtree_end)
    order, offsets = group_by_byte(children, node_byte)
    return children[order], offsets


def children_by_byte_python(root_nodes, node_byte, subtree_end):
    """Pure-Python twin of :func:`children_by_byte`."""
    children, _ = children_of_python(root_nodes, subtree_end)
    order, offsets = group_by_byte_python(children, node_byte)
    return children[order], offsets


def children_of_python(root_nodes, subtree_end):
    """Pure-Python twin of :func:`children_of`."""
    children, parents = [], []
    for k, root in enumerate(root_nodes):
        i = int(root) + 1
        while i < subtree_end[root]:
            children.append(i)
            parents.append(k)
            i = int(subtree_end[i])
    return np.array(children, dtype=np.int32), np.array(parents, dtype=np.int32)


def group_by_byte_python(nodes, node_byte):
    """Pure-Python twin of :func:`group_by_byte`."""
    groups: list[list[int]] = [[] for _ in range(256)]
    for k, node in enumerate(nodes):
        groups[node_byte[node]].append(k)
    offsets = np.zeros(257, dtype=np.int32)
    offsets[1:] = np.cumsum([len(g) for g in groups])
    return np.array([k for g in groups for k in g], dtype=np.int32), offsets
