"""Token-level constraints: a byte automaton read through a vocabulary trie, and per-sequence
matchers.

``TokenConstraint`` is the compiled object (one per constraint and vocabulary): it owns the lazy
byte automaton (a regular term's DFA or a grammar's Earley automaton), the vocabulary trie and the cache of packed token masks, one per DFA state, computed on
first visit by the numba trie walk. ``Matcher`` is the small per-sequence state: a DFA state and
an undo history, copyable in O(1).
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from structgen.automata.byte_dfa import (
    DEAD,
    LEXER_START,
    LazyAutomaton,
    LazyByteDFA,
    Limits,
    start_budget,
)
from structgen.automata.completion import INFINITE, GrammarCompletion, RegularCompletion
from structgen.automata.grammar_automaton import PLAIN_END, GrammarAutomaton
from structgen.automata.kernels import (
    children_by_byte,
    children_of,
    group_by_byte,
    walk_trie,
    walk_trie_by_byte,
    walk_trie_from_children,
)
from structgen.automata.token_trie import TokenTrie, token_trie
from structgen.automata.utf8 import encodable_chars
from structgen.errors import EmptyLanguage, LimitExceeded, VocabularyError
from structgen.grammar.cfg import Grammar, trim
from structgen.grammar.cfg import Terminal as GrammarTerminal
from structgen.grammar.charset import CharSet
from structgen.grammar.regular import NOTHING, Term, restrict_alphabet
from structgen.vocab import Vocabulary

_ENDED = -3  # the matcher consumed EOS: nothing more is allowed
# Bytes that occur in valid UTF-8 (0xC0, 0xC1 and 0xF5..0xFF never do).
_UTF8_BYTES = np.array([b for b in range(256) if b not in (0xC0, 0xC1) and b < 0xF5])
_MAX_FORCED_BYTES = 4096
_MAX_COMPLETION_SEARCH = 20_000  # states one shortest-completion search may visit


def _automaton(language: Term | Grammar, limits: Limits) -> LazyAutomaton:
    """A regular term's DFA, or a grammar's Earley automaton."""
    if isinstance(language, Grammar):
        return GrammarAutomaton(language, limits)
    return LazyByteDFA(language, limits)


def _restrict(language: Term | Grammar, alphabet: CharSet | None) -> Term | Grammar:
    """``language`` without the characters outside ``alphabet`` (None: keep everything).

    For a grammar, each terminal is restricted; terminals left empty and the rules that need
    them disappear (``EmptyLanguage`` if the start symbol goes too).
    """
    if alphabet is None:
        return language
    if not isinstance(language, Grammar):
        return restrict_alphabet(language, alphabet)
    terminals = {name: restrict_alphabet(term, alphabet)
                 for name, term in language.terminals.items()}
    gone = {name for name, term in terminals.items() if term == NOTHING}
    rules = {
        lhs: tuple(alt for alt in alts
                   if not any(isinstance(s, GrammarTerminal) and s.name in gone for s in alt))
        for lhs, alts in language.rules.items()
    }
    kept = {name: term for name, term in terminals.items() if name not in gone}
    return trim(Grammar(rules, kept, language.start, language.ignore - gone))


@lru_cache(maxsize=8)
def _producible_chars(producible_bytes: bytes) -> CharSet | None:
    """Code points a vocabulary can spell, or None when it can spell every UTF-8 text."""
    allowed = np.frombuffer(producible_bytes, dtype=np.bool_)
    if allowed[_UTF8_BYTES].all():
        return None
    return encodable_chars(allowed)


def _missing_bytes(trie: TokenTrie) -> str:
    missing = np.flatnonzero(~trie.producible_bytes[_UTF8_BYTES])
    return ", ".join(f"{int(_UTF8_BYTES[i]):#04x}" for i in missing[:16])


def _set_bits(mask: np.ndarray) -> np.ndarray:
    """Indices of the set bits of a packed uint32 mask."""
    return np.flatnonzero(np.unpackbits(mask.view(np.uint8), bitorder="little"))


@contextmanager
def _collector_paused():
    """Pause Python's cyclic garbage collector while an automaton or a mask is built.

    A compile or a first visit allocates tens of thousands of small tuples and sets (Earley
    items, automaton rows, derivative terms) that live on in caches, which sets off full
    collections over everything the process holds (a tokenizer, a model): up to a few hundred
    ms per step, about a third of first-visit time on a grammar. The work creates no
    reference cycles, so nothing waits for the collector; it runs again afterwards, as the
    caller had it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class TrieNodes:
    """A set of trie nodes a walk reads from, each from the byte on its own edge on (the
    children of the nodes where a lexeme ended: the next lexeme starts there), grouped by that
    byte: a walk visits only the groups on bytes its automaton reads first (see
    ``walk_trie_by_byte``), and is skipped when it reads none of them (``next_bytes``, a bit
    set). ``digest`` keys the walks from them. The nodes where a lexeme ends reach tens of
    thousands (an identifier ends below every word-like token), so all of this is computed
    once, when the set is made, not at every walk that starts from it."""

    nodes: np.ndarray  # the nodes on byte b: nodes[offsets[b]:offsets[b + 1]], each group sorted
    offsets: np.ndarray
    digest: bytes
    next_bytes: int

    @property
    def nbytes(self) -> int:
        """Memory held, as the mask cache counts it."""
        return self.nodes.nbytes + self.offsets.nbytes + len(self.digest)

    @staticmethod
    def of(nodes: np.ndarray, trie: TokenTrie) -> TrieNodes:
        """The set of ``nodes`` (in any order, repeats allowed)."""
        if len(nodes) > 1 and not (nodes[1:] > nodes[:-1]).all():
            nodes = _sorted_unique(nodes)
        order, offsets = group_by_byte(nodes, trie.node_byte)
        return TrieNodes._grouped(nodes[order], offsets)

    @staticmethod
    def below(roots: np.ndarray, trie: TokenTrie) -> TrieNodes:
        """The children of the trie nodes ``roots`` (sorted, without repeats)."""
        return TrieNodes._grouped(*children_by_byte(roots, trie.node_byte, trie.subtree_end))

    @staticmethod
    def union(parts: list[TrieNodes], trie: TokenTrie) -> TrieNodes:
        """The nodes of all ``parts``."""
        return TrieNodes.of(np.concatenate([p.nodes for p in parts]), trie)

    @staticmethod
    def _grouped(nodes: np.ndarray, offsets: np.ndarray) -> TrieNodes:
        nodes.flags.writeable = False
        return TrieNodes(nodes, offsets, _digest(nodes), _next_bytes(offsets))


@dataclass(frozen=True, slots=True)
class GuardedNodes:
    """Trie nodes a walk reads from (as in ``TrieNodes``), each under the end context of the
    lexeme that ended above it, whose guards read the byte on its edge: where an identifier
    that excludes keywords ended at a keyword's prefix, the nodes below on the rest of that
    keyword. ``contexts[k]`` is the end context of ``nodes[k]`` (a node may come once per
    context); grouped by byte as in ``TrieNodes``."""

    nodes: np.ndarray
    contexts: np.ndarray
    offsets: np.ndarray
    digest: bytes
    next_bytes: int

    @property
    def nbytes(self) -> int:
        """Memory held, as the mask cache counts it."""
        return self.nodes.nbytes + self.contexts.nbytes + self.offsets.nbytes + len(self.digest)

    @staticmethod
    def of(nodes: np.ndarray, contexts: np.ndarray, trie: TokenTrie) -> GuardedNodes:
        """The set of pairs ``(nodes[k], contexts[k])`` (in any order, repeats allowed)."""
        nodes, contexts = _unpaired(_sorted_unique(_paired(nodes, contexts)))
        order, offsets = group_by_byte(nodes, trie.node_byte)
        nodes, contexts = nodes[order], contexts[order]
        nodes.flags.writeable = contexts.flags.writeable = False
        return GuardedNodes(nodes, contexts, offsets, _digest(nodes, contexts),
                            _next_bytes(offsets))

    @staticmethod
    def union(parts: list[GuardedNodes], trie: TokenTrie) -> GuardedNodes:
        """The pairs of all ``parts``."""
        return GuardedNodes.of(np.concatenate([p.nodes for p in parts]),
                               np.concatenate([p.contexts for p in parts]), trie)

    @property
    def keys(self) -> np.ndarray:
        """Each pair ``(node, context)`` as one int64 (:func:`_paired`)."""
        return _paired(self.nodes, self.contexts)

    def on_bytes(self, wanted: int) -> np.ndarray:
        """The indices of the nodes on the bytes of bit set ``wanted``."""
        wanted &= self.next_bytes
        if wanted == self.next_bytes:
            return np.arange(len(self.nodes))
        spans = []
        while wanted:
            byte = (wanted & -wanted).bit_length() - 1
            wanted &= wanted - 1
            spans.append(np.arange(self.offsets[byte], self.offsets[byte + 1]))
        return np.concatenate(spans) if spans else np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class LexemeEnds:
    """Where the lexemes of a walk ended, as the trie nodes the lexemes after them read from.

    ``plain``: ``((end context, TrieNodes), ...)`` in context order, for end contexts without
    guards; ``guarded``: the nodes on a byte that a guard left pending reads
    (``GuardedNodes``, None for none). A node below an end whose guards read none of its
    byte is read as after the guardless base of that end's context
    (``GrammarAutomaton.context_split``): a keyword's prefix left pending by an identifier
    holds before a space. So the few nodes that need the guards are walked together, under
    one lexer per terminal (``GuardedLexer``), and the many others share the plain walks."""

    plain: tuple
    guarded: GuardedNodes | None

    def __bool__(self) -> bool:
        return bool(self.plain) or self.guarded is not None

    @property
    def key(self) -> tuple:
        """The part of a cache key that stands for these ends."""
        return (tuple((context, nodes.digest) for context, nodes in self.plain),
                None if self.guarded is None else self.guarded.digest)

    @property
    def nbytes(self) -> int:
        """Memory held, as the mask cache counts it."""
        return (sum(nodes.nbytes for _, nodes in self.plain)
                + (0 if self.guarded is None else self.guarded.nbytes))


NO_ENDS = LexemeEnds((), None)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``values`` sorted, without repeats: several times faster than ``np.unique``'s hashing
    on the tens of thousands of trie nodes a lexeme may end at."""
    if len(values) < 2:
        return values
    values = np.sort(values)
    keep = np.empty(len(values), dtype=np.bool_)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _paired(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pairs of non-negative int32 values as int64 keys, ordered as the pairs are."""
    return (first.astype(np.int64) << 32) | second.astype(np.int64)


def _unpaired(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two int32 arrays of :func:`_paired` keys."""
    return (pairs >> 32).astype(np.int32), (pairs & 0xFFFFFFFF).astype(np.int32)


def _digest(*arrays: np.ndarray) -> bytes:
    """The key a node set's walks are cached under."""
    return hashlib.blake2b(b"".join(a.tobytes() for a in arrays), digest_size=16).digest()


def _next_bytes(offsets: np.ndarray) -> int:
    """The bytes that nodes grouped by byte (``offsets``) hang on, as a bit set."""
    return _bit_set(offsets[1:] > offsets[:-1])


def _bit_set(flags: np.ndarray) -> int:
    """256 booleans as an int whose bit ``b`` is ``flags[b]``."""
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


@dataclass(frozen=True, slots=True)
class ShapeWalk:
    """What a grammar walk below trie nodes finds from a relative Earley set (see
    ``TokenConstraint._walk_after``): lexeme ``terminal`` ended at ``ends``
    (``LexemeEnds``).

    ``tokens``: the tokens found (walk output words; None for none), valid in every context of
    the shape. ``escaped``: reading ``terminal`` completes something older than the relative
    set keeps, so what follows needs the real set. ``below``: ``(scanned, part)`` for the parts
    of the walk (one per lexeme that follows) that escape somewhere; ``scanned`` is False where
    the part follows an ignored ``terminal`` that left the parser where it was.
    """

    terminal: int
    ends: LexemeEnds
    tokens: np.ndarray | None
    escaped: bool
    below: tuple

    @property
    def escapes(self) -> bool:
        """Whether the real set is needed somewhere in the walk."""
        return self.escaped or bool(self.below)

    @property
    def nbytes(self) -> int:
        """Memory held, as the mask cache counts it (the parts below count themselves)."""
        return 0 if self.tokens is None else self.tokens.nbytes


def _walk_nbytes(walk: tuple) -> int:
    """Memory held by a walk's result ``(tokens or None, LexemeEnds)``."""
    tokens, ends = walk
    return (0 if tokens is None else tokens.nbytes) + ends.nbytes


def _shape_key(shape: int, terminal: int, ends: LexemeEnds) -> tuple:
    """The mask cache key of the shape walk from ``shape`` after ``terminal`` ended at
    ``ends``."""
    return ("shape", shape, terminal, ends.key)


@dataclass(slots=True)
class _ShapeFrame:
    """A shape walk in progress: its own lexemes' tokens, and the parts below them."""

    terminal: int
    ends: LexemeEnds
    escaped: bool
    tokens: list = field(default_factory=list)
    parts: list = field(default_factory=list)  # (scanned, shape, terminal, ends)
    next_part: int = 0

    def result(self, made: dict) -> ShapeWalk:
        """The walk, once every part below is in ``made``."""
        below = []
        tokens = self.tokens
        for scanned, *key in self.parts:
            part = made[_shape_key(*key)]
            if part.tokens is not None:
                tokens.append(part.tokens)
            if part.escapes:
                below.append((scanned, part))
        union = None
        if tokens:
            distinct = list({id(t): t for t in tokens}.values())
            union = distinct[0]
            if len(distinct) > 1:  # parts often find the same tokens: share their array
                union = distinct[0] | distinct[1]
                for more in distinct[2:]:
                    union |= more
                union.flags.writeable = False
        return ShapeWalk(self.terminal, self.ends, union, self.escaped, tuple(below))


class _MaskCache:
    """An LRU of arrays (or tuples of arrays) bounded in bytes: every mask cache of a compiled
    constraint lives in one, so ``Limits.max_mask_cache_bytes`` bounds them together."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()

    def get(self, key: tuple):
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple, value, size: int | None = None) -> None:
        """Cache ``value``: an array, a tuple of arrays, or anything that holds ``size`` bytes."""
        if size is None:
            arrays = value if isinstance(value, tuple) else (value,)
            size = sum(a.nbytes for a in arrays if a is not None)
        if size > self.max_bytes:
            raise LimitExceeded(
                f"max_mask_cache_bytes={self.max_bytes} is smaller than one mask ({size} bytes)"
            )
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        self._entries[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.nbytes -= evicted


class TokenConstraint:
    """A constraint compiled against one vocabulary; create matchers with :meth:`matcher`.

    Masks are packed ``uint32`` words, ``ceil(vocab.size / 32)`` of them: bit ``i % 32`` of word
    ``i // 32`` is set when token ``i`` is allowed. EOS bits are set exactly in accepting states.
    """

    def __init__(self, language: Term | Grammar, vocab: Vocabulary,
                 limits: Limits | None = None):
        started = time.perf_counter()
        start_budget()
        self.vocab = vocab
        self.limits = limits = limits or Limits()
        self.num_words = (vocab.size + 31) // 32
        self._trie: TokenTrie = token_trie(vocab)
        self._byte_complete = self._trie.byte_complete
        self._eos_ids = frozenset(vocab.eos_token_ids)
        producible = _producible_chars(self._trie.producible_bytes.tobytes())
        reason = "the constraint accepts no string at all"
        try:
            with _collector_paused():  # as for masks: many small objects, no cycles
                self._dfa = _automaton(_restrict(language, producible), limits)
            empty = self._dfa.language_is_empty()
        except EmptyLanguage as error:
            empty, reason = True, str(error)
        if empty:
            if producible is not None and not _automaton(language, limits).language_is_empty():
                raise VocabularyError(
                    "the vocabulary cannot produce any string of the constraint's language: "
                    f"no token contains the bytes {_missing_bytes(self._trie)}"
                )
            raise EmptyLanguage(reason)
        self._eos_words = np.zeros(self.num_words, dtype=np.uint32)
        for eos in vocab.eos_token_ids:
            self._eos_words[eos >> 5] |= np.uint32(1 << (eos & 31))
        self._cache = _MaskCache(limits.max_mask_cache_bytes)
        self._live_states: dict[int, bool] = {}
        self._first_bytes_memo: dict[tuple[int, int], int] = {}
        self._starting_lexemes_memo: dict[tuple[int, int], tuple] = {}
        self._relative_memo: dict[tuple[int, int, int], tuple] = {}
        self._end_class_tables: dict[int, tuple] = {}
        self._completion: GrammarCompletion | RegularCompletion | None = None
        self._empty_mask = np.zeros(self.num_words, dtype=np.uint32)
        self._empty_mask.flags.writeable = False
        n = self._trie.num_nodes
        self._pending_buffers = [
            (np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)) for _ in range(2)
        ]
        self._end_buffers = (np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32))
        self._no_ends = np.empty(0, dtype=np.int32)
        self._trie_root = TrieNodes.below(np.zeros(1, dtype=np.int32), self._trie)
        start_mask = self.state_mask(self._dfa.start)
        if not (start_mask & ~self._eos_words).any() and not self._dfa.accepting[self._dfa.start]:
            raise VocabularyError(
                "no token of the vocabulary can begin a string of the constraint's language "
                f"(which starts with one of the bytes {self._first_bytes()})"
            )
        self.compile_seconds = time.perf_counter() - started

    def _first_bytes(self) -> str:
        live = self.next_bytes(self._dfa.start)
        shown = ", ".join(f"{b:#04x}" for b in live[:8])
        return shown + (", ..." if len(live) > 8 else "")

    # ---------------------------------------------------------------- introspection
    @property
    def num_states(self) -> int:
        """DFA states built so far (the automaton grows lazily as states are visited)."""
        return self._dfa.num_states

    def matcher(self) -> Matcher:
        """A fresh per-sequence matcher at the start of the constraint; the limits bound the
        work of each sequence anew (``start_budget``)."""
        start_budget()
        return Matcher(self, self._dfa.start)

    # ---------------------------------------------------------------- masks
    def state_mask(self, state: int) -> np.ndarray:
        """The read-only packed mask of tokens allowed in DFA ``state`` (cached)."""
        if state == _ENDED:
            return self._empty_mask
        mask = self._cache.get(("state", state))
        if mask is not None:
            return mask
        # Clamping counters keeps prefixes up to the longest token, which is all a mask reads;
        # dead-end pruning looks further, so it gets the state itself.
        representative = (
            self._dfa.mask_representative(state, self._trie.max_depth)
            if self._byte_complete else state
        )
        mask = self._cache.get(("state", representative))
        if mask is None:
            with _collector_paused():
                mask = self._compute_mask(representative)
            mask.flags.writeable = False
            self._cache.put(("state", representative), mask)
        self._cache.put(("state", state), mask)
        return mask

    @property
    def cache_bytes(self) -> int:
        """Memory held by cached masks (counted per entry; bounded by the limits)."""
        return self._cache.nbytes

    def _compute_mask(self, state: int) -> np.ndarray:
        """The mask of ``state``: the trie walk, less dead ends, plus EOS when accepting."""
        if isinstance(self._dfa, GrammarAutomaton):
            mask = np.zeros(self.num_words, dtype=np.uint32)
            for thread in self._dfa.threads(state):
                mask |= self._thread_mask(thread)
        else:
            mask = self._walk(state)
        if not self._byte_complete:
            self._drop_dead_end_tokens(state, mask)
        if self._dfa.accepting[state]:
            mask |= self._eos_words
        return mask

    def _thread_mask(self, thread: tuple) -> np.ndarray:
        """Tokens one lexer thread of a grammar state can read (cached per thread).

        A grammar state allows a token exactly when one of its threads does, since threads
        evolve independently. A thread's tokens are those that stay inside its terminal, which
        depend on the terminal's DFA state alone and are cached per (lexer, DFA state) across
        all parser contexts, plus those that end the terminal part-way. For those, the parser
        says which terminals may follow, and their lexers walk the trie below the nodes where
        the terminal ended, recursively: the walks only ever use terminal DFAs (read with the
        guards of lookaheads that read on past a lexeme's end, see ``GuardedLexer``).
        """
        mask = self._cache.get(("thread", thread))
        if mask is not None:
            return mask
        set_id, lexer_id, lexer_state = thread
        inside, ends = self._terminal_mask(lexer_id, lexer_state)
        if not ends:
            mask = inside
        else:
            out = np.zeros(self.num_words + 1, dtype=np.uint32)
            out[: self.num_words] = inside
            self._walk_after(set_id, self._dfa.lexer_terminal(lexer_id), ends, out)
            mask = self._finish(out)
        mask.flags.writeable = False
        self._cache.put(("thread", thread), mask)
        return mask

    def _walk_after(self, set_id: int, terminal: int, ends: LexemeEnds,
                    out: np.ndarray) -> None:
        """Mark the tokens that continue, below the trie nodes of ``ends``, with the lexemes
        that may follow ``terminal`` ending in Earley set ``set_id``; and so on for lexemes
        ending inside.

        The walk runs on relative sets (``EarleyTables.relative``), so each part of it is done
        once for every context of that shape (:meth:`_shape_walk`); where a lexeme completes
        something begun further back than a relative set keeps, the walk goes on from the real
        set after that lexeme.
        """
        grammar = self._dfa
        tables = grammar.tables
        names = grammar.terminal_names
        work = [(set_id, terminal, ends)]
        walked: dict[tuple, object] = {}  # per (set, end context): nodes walked (_not_walked)
        visited = {}  # parts are shared (a DAG): each is resolved once per real set (the
        # parts are kept here too, so that no id is reused while the walk runs)
        while work:
            set_id, terminal, ends = work.pop()
            walk = self._shape_walk(tables.relative(set_id), terminal, ends)
            if walk.tokens is not None:
                out |= walk.tokens
            escaping = [(set_id, walk)] if walk.escapes else []
            while escaping:
                real, walk = escaping.pop()
                if (real, id(walk)) in visited:
                    continue
                visited[real, id(walk)] = walk
                after = (tables.scan(real, names[walk.terminal])  # memoized
                         if walk.escaped or any(scanned for scanned, _ in walk.below) else -1)
                if walk.escaped and after >= 0:
                    tokens, parts = self._lexemes_in_set(after, walk.ends, walked)
                    for found in tokens:
                        out |= found
                    work.extend((after, *part) for part in parts)
                for scanned, child in walk.below:
                    escaping.append((after if scanned else real, child))

    def _lexemes_in_set(self, set_id: int, ends: LexemeEnds,
                        walked: dict) -> tuple[list, list]:
        """The lexemes that start in real Earley set ``set_id`` below ``ends`` where not yet
        walked from it (``walked``, see :meth:`_not_walked`): the tokens they find (walk
        outputs) and the parts to go on with, ``(terminal, LexemeEnds)`` per terminal of a
        lexeme that ends inside. The lexemes that start alike after several end contexts are
        walked once, below the nodes of all."""
        starts: dict[tuple, list] = {}  # per (lexer, start): the nodes below
        for context, roots in ends.plain:
            roots = self._not_walked(walked, (set_id, context), roots)
            if roots is None:
                continue
            for lexer_id, start, first_bytes in self._starting_lexemes(set_id, context):
                if roots.next_bytes & first_bytes:
                    starts.setdefault((lexer_id, start), []).append(roots)
        walks = [(lexer_id, self._lexeme_walk(lexer_id, start, self._union(roots)))
                 for (lexer_id, start), roots in starts.items()]
        guarded = (None if ends.guarded is None
                   else self._guarded_not_walked(walked, set_id, ends.guarded))
        if guarded is not None:
            walks.extend((terminal, self._guarded_walk(terminal, guarded))
                         for terminal, _, _ in self._starting_lexemes(set_id, PLAIN_END))
        tokens = []
        parts: dict[int, list] = {}  # per next terminal: the ends of its lexemes
        for lexer_id, (found, lexeme_ends) in walks:
            if found is not None:
                tokens.append(found)
            if lexeme_ends:
                parts.setdefault(self._dfa.lexer_terminal(lexer_id), []).append(lexeme_ends)
        return tokens, [(terminal, self._merged_ends(found)) for terminal, found in parts.items()]

    def _union(self, parts: list):
        """The nodes of all ``parts`` (``TrieNodes`` or ``GuardedNodes``, all of one kind).
        Cached: the lexemes after the ends of one walk, walked together, are walked together
        again in every context of its shape."""
        distinct = {part.digest: part for part in parts}
        if len(distinct) == 1:
            return parts[0]
        kind = type(parts[0])
        key = ("union", kind.__name__, *sorted(distinct))
        found = self._cache.get(key)
        if found is None:
            found = kind.union(list(distinct.values()), self._trie)
            self._cache.put(key, found, found.nbytes)
        return found

    def _merged_ends(self, ends: list[LexemeEnds]) -> LexemeEnds:
        """The lexeme ends of several walks of one terminal as one ``LexemeEnds``."""
        if len(ends) == 1:
            return ends[0]
        by_context: dict[int, list] = {}
        for found in ends:
            for context, nodes in found.plain:
                by_context.setdefault(context, []).append(nodes)
        plain = tuple((context, self._union(nodes)) for context, nodes in sorted(by_context.items()))
        guarded = [found.guarded for found in ends if found.guarded is not None]
        return LexemeEnds(plain, self._union(guarded) if guarded else None)

    def _starting_lexemes(self, set_id: int, context: int) -> tuple:
        """The lexemes that start in real Earley set ``set_id`` after a lexeme end that left
        end context ``context`` (without guards): ``(lexer, start state, the bytes it reads
        first)``."""
        key = (set_id, context)
        found = self._starting_lexemes_memo.get(key)
        if found is None:
            found = self._starting_lexemes_memo[key] = tuple(
                (lexer_id, start, self._lexer_first_bytes(lexer_id, start))
                for _, lexer_id, start in self._dfa.spawned_threads(set_id, context))
        return found

    def _relative_threads(self, shape: int, terminal: int, context: int) -> tuple[bool, tuple]:
        """``GrammarAutomaton.relative_threads_after`` (memoized), each thread as ``(next
        shape, scanned, lexer, start state, the bytes it reads first)``."""
        key = (shape, terminal, context)
        found = self._relative_memo.get(key)
        if found is None:
            threads, escaped = self._dfa.relative_threads_after(shape, terminal, context)
            found = self._relative_memo[key] = escaped, tuple(
                (next_shape, scanned, lexer_id, start, self._lexer_first_bytes(lexer_id, start))
                for next_shape, lexer_id, start, scanned in threads)
        return found

    def _not_walked(self, walked: dict, start: tuple, roots: TrieNodes) -> TrieNodes | None:
        """``roots`` less the trie nodes the lexemes that ``start`` (a real set and the end
        context of the lexeme before) starts were already walked from in this walk, which are
        recorded; None when nothing is left. Ignored text and lexemes that can end anywhere
        inside a word reach one set by many paths, each with other trie nodes: walking each
        node once per set keeps the walk linear."""
        seen = walked.get(start)
        if seen is None:
            walked[start] = roots.nodes  # most sets come once: no flags yet
            return roots
        if seen.dtype != np.bool_:
            nodes = seen
            seen = walked[start] = np.zeros(self._trie.num_nodes, dtype=np.bool_)
            seen[nodes] = True
        fresh = roots.nodes[~seen[roots.nodes]]
        if not len(fresh):
            return None
        seen[fresh] = True
        return roots if len(fresh) == len(roots.nodes) else TrieNodes.of(fresh, self._trie)

    def _guarded_not_walked(self, walked: dict, set_id: int,
                            guarded: GuardedNodes) -> GuardedNodes | None:
        """:meth:`_not_walked` for guarded nodes, each walked once per end context."""
        keys = guarded.keys
        seen = walked.get((set_id, "guarded"))
        if seen is None:
            walked[set_id, "guarded"] = keys
            return guarded
        fresh = ~np.isin(keys, seen, assume_unique=True)
        if not fresh.any():
            return None
        walked[set_id, "guarded"] = np.union1d(seen, keys)
        return guarded if fresh.all() else GuardedNodes.of(guarded.nodes[fresh],
                                                           guarded.contexts[fresh], self._trie)

    def _shape_walk(self, shape: int, terminal: int, ends: LexemeEnds) -> ShapeWalk:
        """:meth:`_walk_after` from relative Earley set ``shape``, as far as the relative sets
        tell (see :class:`ShapeWalk`). Every part is cached: the walk below a lexeme recurs in
        every context of the same shape (the inside of a parenthesis at each depth)."""
        key = _shape_key(shape, terminal, ends)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        made: dict[tuple, ShapeWalk] = {}
        frames = {key: self._shape_frame(shape, terminal, ends)}
        stack = [key]
        while stack:  # depth first, each part after the parts below it (lexemes are not empty,
            frame = frames[stack[-1]]  # so a part's trie nodes are deeper: there is no cycle)
            if frame.next_part < len(frame.parts):
                _, *part = frame.parts[frame.next_part]
                part_key = _shape_key(*part)
                frame.next_part += 1
                if part_key not in made and part_key not in frames:
                    found = self._cache.get(part_key)
                    if found is not None:
                        made[part_key] = found
                    else:
                        frames[part_key] = self._shape_frame(*part)
                        stack.append(part_key)
                continue
            done_key = stack.pop()
            made[done_key] = walk = frame.result(made)
            self._cache.put(done_key, walk, walk.nbytes)
        return made[key]

    def _shape_frame(self, shape: int, terminal: int, ends: LexemeEnds) -> _ShapeFrame:
        """The first step of a shape walk: the lexemes after ``terminal`` walked below
        ``ends``; the parts below the trie nodes where they end are left to the caller. The
        lexemes that start alike after several end contexts are walked once, below the nodes
        of all of them; the guarded nodes, once per lexeme."""
        starts: dict[tuple, list] = {}  # per (next shape, scanned, lexer, start): the nodes
        escaped = False  # whether the scan escapes depends on the shape alone
        for context, roots in ends.plain:
            escaped, threads = self._relative_threads(shape, terminal, context)
            for next_shape, scanned, lexer_id, start, first_bytes in threads:
                if roots.next_bytes & first_bytes:
                    starts.setdefault((next_shape, scanned, lexer_id, start), []).append(roots)
        walks = [((scanned, next_shape), lexer_id,
                  self._lexeme_walk(lexer_id, start, self._union(roots)))
                 for (next_shape, scanned, lexer_id, start), roots in starts.items()]
        if ends.guarded is not None:
            escaped, threads = self._relative_threads(shape, terminal, PLAIN_END)
            walks.extend(((scanned, next_shape), lexer_id,
                          self._guarded_walk(lexer_id, ends.guarded))
                         for next_shape, scanned, lexer_id, _, _ in threads)
        frame = _ShapeFrame(terminal, ends, escaped)
        parts: dict[tuple, list] = {}  # per (scanned, next shape, next terminal): lexeme ends
        for (scanned, next_shape), lexer_id, (tokens, lexeme_ends) in walks:
            if tokens is not None:
                frame.tokens.append(tokens)
            if lexeme_ends:
                parts.setdefault((scanned, next_shape, self._dfa.lexer_terminal(lexer_id)),
                                 []).append(lexeme_ends)
        frame.parts = [(*key, self._merged_ends(found)) for key, found in parts.items()]
        return frame

    def _lexer_first_bytes(self, lexer_id: int, lexer_state: int) -> int:
        """The bytes lexer ``lexer_id`` can read from ``lexer_state``, as a bit set."""
        key = (lexer_id, lexer_state)
        found = self._first_bytes_memo.get(key)
        if found is None:
            lexer = self._dfa.lexer(lexer_id)
            lexer.materialize(lexer_state)
            found = self._first_bytes_memo[key] = _bit_set(lexer.trans[lexer_state] >= 0)
        return found

    def _lexeme_walk(self, lexer_id: int, start: int,
                     roots: TrieNodes) -> tuple[np.ndarray | None, LexemeEnds]:
        """The tokens below trie nodes ``roots`` that lexer ``lexer_id`` reads from its state
        ``start`` (as walk output words; None for none, the usual case), and where the lexeme
        may end (see :meth:`_walk_ends`). Cached: it depends on the lexer alone, not on the
        parser context, and the same lexeme after the same token prefixes recurs in many
        contexts (an operator after a number, in every parser state that allows one)."""
        key = ("lexeme", lexer_id, start, roots.digest)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._walk_lexer(lexer_id,
                                      (walk_trie_by_byte, (roots.nodes, roots.offsets, start)))
            self._cache.put(key, cached, _walk_nbytes(cached))
        return cached

    def _guarded_walk(self, terminal: int,
                      guarded: GuardedNodes) -> tuple[np.ndarray | None, LexemeEnds]:
        """:meth:`_lexeme_walk` for a lexeme of ``terminal`` below the guarded nodes, each
        read under the guards of its own end context by the terminal's guarded lexer
        (``GrammarAutomaton.guarded_start``), all in one walk. Cached per terminal and
        nodes."""
        key = ("guarded", terminal, guarded.digest)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        grammar = self._dfa
        # Without lookbehinds, every lexeme of ``terminal`` starts in its lexer's first state:
        # only the nodes on a byte it reads from there may start one.
        at = (guarded.on_bytes(self._lexer_first_bytes(terminal, LEXER_START))
              if not grammar.context else np.arange(len(guarded.nodes)))
        cached = (None, NO_ENDS)
        if len(at):
            contexts, inverse = np.unique(guarded.contexts[at], return_inverse=True)
            starts = np.array([grammar.guarded_start(terminal, context)
                               for context in contexts.tolist()], dtype=np.int32)
            cached = self._walk_lexer(
                grammar.guarded_lexer_id(terminal),
                (walk_trie_from_children, (guarded.nodes[at], starts[inverse])))
        self._cache.put(key, cached, _walk_nbytes(cached))
        return cached

    def _walk_lexer(self, lexer_id: int,
                    first_round: tuple) -> tuple[np.ndarray | None, LexemeEnds]:
        """The walk of lexer ``lexer_id`` whose first round is ``first_round`` (see
        :meth:`_walk_automaton`; its start states' rows are built where they are chosen:
        ``_lexer_first_bytes``, ``GrammarAutomaton.guarded_start``): the tokens found (None
        for none) and where its lexemes end."""
        out = np.zeros(self.num_words + 1, dtype=np.uint32)
        ends: list[tuple[np.ndarray, np.ndarray]] = []
        self._walk_automaton(self._dfa.lexer(lexer_id), first_round, out, ends)
        out.flags.writeable = False
        found = out[:-1].any()  # the last word holds the dummy token of tokenless nodes only
        return (out if found else None), self._walk_ends(lexer_id, ends)

    def _walk_ends(self, lexer_id: int, ends: list) -> LexemeEnds:
        """The trie nodes where a walk's lexeme ended (``[(nodes, lexer states), ...]``), as
        the nodes below them that the next lexeme reads from, each under the end context it
        leaves there (``GrammarAutomaton.end_context``: guards, the last character's class).

        An end none of whose children hangs on a byte its context's guards read goes to the
        guardless base of that context (``GrammarAutomaton.context_split``): the guards hold
        whatever follows it. An identifier that excludes keywords ends at each keyword's
        prefixes with that keyword's rest pending; only the few ends below which that rest may
        go on keep the guards (``LexemeEnds.guarded``)."""
        if not ends:
            return NO_ENDS
        trie = self._trie
        contexts, bases, reads = self._end_class_table(lexer_id)
        nodes = np.concatenate([n for n, _ in ends])
        if len(contexts) == 1 and bases[0] == contexts[0]:  # the usual case: one plain end
            return LexemeEnds(((int(contexts[0]), TrieNodes.below(_sorted_unique(nodes), trie)),),
                              None)
        classes = self._dfa.lexer(lexer_id).end_class[np.concatenate([s for _, s in ends])]
        guarded_nodes = None
        guarded = bases[classes] != contexts[classes]
        if guarded.any():
            ended = _paired(nodes[guarded], classes[guarded])
            pairs = _sorted_unique(ended)
            pair_nodes, pair_classes = _unpaired(pairs)
            children, parents = children_of(pair_nodes, trie.subtree_end)
            under = reads[pair_classes[parents], trie.node_byte[children]]
            kept = np.bincount(parents[under], minlength=len(pairs)) > 0
            if kept.any():
                keep = kept[parents]
                guarded_nodes = GuardedNodes.of(children[keep],
                                                contexts[pair_classes[parents[keep]]], trie)
            guarded[guarded] = kept[np.searchsorted(pairs, ended)]
        plain_nodes, plain_bases = nodes[~guarded], bases[classes[~guarded]]
        plain = []
        if len(plain_nodes):
            if (plain_bases == plain_bases[0]).all():
                groups = [(int(plain_bases[0]), plain_nodes)]
            else:
                groups = [(context, plain_nodes[plain_bases == context])
                          for context in np.unique(plain_bases).tolist()]
            plain = [(context, TrieNodes.below(_sorted_unique(at), trie))
                     for context, at in groups]
        return LexemeEnds(tuple(plain), guarded_nodes)

    def _end_class_table(self, lexer_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per end class of lexer ``lexer_id``: the end context it leaves, that context's
        guardless base, and the bytes its guards read (rows of 256 booleans; see
        ``GrammarAutomaton.context_split``). Grown as the lexer's end classes are (a guarded
        lexer's grow with the guards it meets)."""
        grammar = self._dfa
        count = len(grammar.lexer(lexer_id).end_classes)
        table = self._end_class_tables.get(lexer_id)
        known = 0 if table is None else len(table[0])
        if known < count:
            contexts = [grammar.end_context(lexer_id, c) for c in range(known, count)]
            splits = [grammar.context_split(c) for c in contexts]
            new = (np.array(contexts, dtype=np.int64),
                   np.array([base for base, _ in splits], dtype=np.int64),
                   np.array([read for _, read in splits], dtype=np.bool_).reshape(-1, 256))
            table = self._end_class_tables[lexer_id] = new if table is None else tuple(
                np.concatenate((old, more)) for old, more in zip(table, new))
        return table

    def _terminal_mask(self, lexer_id: int, lexer_state: int) -> tuple[np.ndarray, LexemeEnds]:
        """Tokens that stay inside the lexeme of lexer ``lexer_id`` from ``lexer_state``, and
        where the lexeme may end (see :meth:`_walk_ends`)."""
        key = (lexer_id, lexer_state)
        cached = self._cache.get(("terminal", key))
        if cached is None:
            out = np.zeros(self.num_words + 1, dtype=np.uint32)
            ends: list[tuple[np.ndarray, np.ndarray]] = []
            lexer = self._dfa.lexer(lexer_id)
            lexer.materialize(lexer_state)
            self._walk_automaton(lexer, self._from_root(lexer_state), out, ends)
            inside = self._finish(out)
            inside.flags.writeable = False
            cached = (inside, self._walk_ends(lexer_id, ends))
            self._cache.put(("terminal", key), cached, _walk_nbytes(cached))
        return cached

    def _from_root(self, state: int) -> tuple:
        """The first round of a walk of the whole trie from automaton state ``state``."""
        return walk_trie_by_byte, (self._trie_root.nodes, self._trie_root.offsets, state)

    def _walk(self, state: int) -> np.ndarray:
        """The tokens the automaton can read from ``state``."""
        out = np.zeros(self.num_words + 1, dtype=np.uint32)  # + the dummy token's word
        self._dfa.materialize(state)
        self._walk_automaton(self._dfa, self._from_root(state), out)
        return self._finish(out)

    def _walk_automaton(self, automaton: LazyAutomaton, first_round: tuple, out: np.ndarray,
                        ends: list | None = None) -> None:
        """Set in ``out`` the tokens ``automaton`` can read from where ``first_round`` starts
        it: ``(walk_trie_by_byte, (nodes, offsets, start))`` for trie nodes grouped by byte
        (``TrieNodes``) all read from state ``start``, or ``(walk_trie_from_children, (nodes,
        starts))`` for nodes each read from its own state; those rows built. Rows met for the
        first time are built between rounds; each round resumes only the subtrees that waited
        for them. With ``ends``, the arrays of trie nodes where the automaton accepts, and of
        its states there, are appended to it."""
        trie = self._trie
        kernel, where = first_round
        while True:
            while True:
                pending_nodes, pending_states = self._pending_buffers[0]
                end_buffer, state_buffer = (self._end_buffers if ends is not None
                                            else (self._no_ends, self._no_ends))
                n_pending, n_ends = kernel(
                    automaton.trans, automaton.known, automaton.accepting, *where,
                    trie.max_depth, trie.node_byte, trie.node_depth, trie.subtree_end,
                    trie.node_token, out, pending_nodes, pending_states, end_buffer,
                    state_buffer,
                )
                if n_pending <= len(pending_nodes) and n_ends <= len(end_buffer):
                    break
                # Roots below one another met some nodes more than once: grow, walk again.
                size = 2 * max(n_pending, n_ends)
                if n_pending > len(pending_nodes):
                    self._pending_buffers[0] = (np.empty(size, dtype=np.int32),
                                                np.empty(size, dtype=np.int32))
                if n_ends > len(end_buffer):
                    self._end_buffers = (np.empty(size, dtype=np.int32),
                                         np.empty(size, dtype=np.int32))
            if n_ends:
                ends.append((end_buffer[:n_ends].copy(), state_buffer[:n_ends].copy()))
            if not n_pending:
                return
            # The next round reads this one's pending nodes: swap the buffers.
            self._pending_buffers.reverse()
            kernel, where = walk_trie, (pending_nodes[:n_pending], pending_states[:n_pending])
            for pending in set(where[1].tolist()):
                automaton.materialize(pending)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        """The mask words of a walk's output, with duplicate-bytes tokens added."""
        trie = self._trie
        mask = out[: self.num_words]
        if len(trie.duplicate_ids):
            primary = trie.duplicate_of
            on = (mask[primary >> 5] >> (primary & 31).astype(np.uint32)) & 1
            np.bitwise_or.at(mask, trie.duplicate_ids >> 5,
                             on.astype(np.uint32) << (trie.duplicate_ids & 31).astype(np.uint32))
        return mask

    def _drop_dead_end_tokens(self, state: int, mask: np.ndarray) -> None:
        """Clear tokens after which no sequence of tokens can complete the match.

        Only needed when some byte has no single-byte token: otherwise every live DFA state can
        be finished byte by byte, so DFA liveness is token liveness.
        """
        for token_id in _set_bits(mask):
            target = self._dfa.walk(state, self.vocab.token_bytes(int(token_id)))
            if not self._token_live(target):
                mask[token_id >> 5] &= ~np.uint32(1 << (int(token_id) & 31))

    def _token_live(self, state: int) -> bool:
        """Whether some token sequence leads from ``state`` to acceptance (searched, memoised)."""
        cached = self._live_states.get(state)
        if cached is not None:
            return cached
        dfa = self._dfa
        seen, frontier, found = {state}, [state], False
        while frontier and not found:
            nxt = []
            for s in frontier:
                if dfa.accepting[s] or self._live_states.get(s):
                    found = True
                    break
                for token_id in _set_bits(self._walk(s)):
                    t = dfa.walk(s, self.vocab.token_bytes(int(token_id)))
                    if t not in seen:
                        if len(seen) >= self.limits.max_states:
                            raise LimitExceeded("deciding which tokens can still finish")
                        seen.add(t)
                        nxt.append(t)
            frontier = nxt
        if not found:
            for s in seen:  # nothing reachable from here accepts: all of it is dead
                self._live_states[s] = False
        self._live_states[state] = found
        return found

    def token_target(self, state: int, token_id: int) -> int:
        """The DFA state after ``token_id`` from ``state``; ``DEAD`` when not allowed."""
        if state == _ENDED:
            return DEAD
        mask = self._cache.get(("state", state)) if self._byte_complete else self.state_mask(state)
        if mask is not None and not (mask[token_id >> 5] >> np.uint32(token_id & 31)) & 1:
            return DEAD
        data = self.vocab.token_bytes(token_id)
        if not data or not self.vocab.is_text(token_id):
            return DEAD
        with _collector_paused():  # a first visit builds states, as a mask does
            return self._dfa.walk(state, data)

    def is_eos(self, token_id: int) -> bool:
        return token_id in self._eos_ids

    def is_accepting(self, state: int) -> bool:
        return state >= 0 and bool(self._dfa.accepting[state])

    def forced_bytes(self, state: int) -> bytes:
        """Bytes every continuation from ``state`` must start with (stops where EOS is allowed)."""
        out = bytearray()
        while state >= 0 and not self._dfa.accepting[state] and len(out) < _MAX_FORCED_BYTES:
            live = self.next_bytes(state)
            if len(live) != 1:
                break
            out.append(live[0])
            state = self.byte_target(state, live[0])
        return bytes(out)

    def completion_bytes(self, state: int) -> int | None:
        """The fewest bytes that complete a match from ``state``, counting only bytes that are
        tokens by themselves: so also an upper bound on the tokens needed. 0 after EOS; None
        when no such completion exists or the search gave up (see ``structgen.automata.
        completion``: for a grammar whose lookaheads read past a lexeme, a lower bound)."""
        if state == _ENDED:
            return 0
        if state < 0:
            return None
        if self._completion is None:
            dfa = self._dfa
            if isinstance(dfa, GrammarAutomaton):
                self._completion = GrammarCompletion(dfa, self._trie.single_bytes,
                                                     self._byte_complete, _MAX_COMPLETION_SEARCH)
            else:
                self._completion = RegularCompletion(dfa, self._trie.single_bytes,
                                                     self._byte_complete, _MAX_COMPLETION_SEARCH)
        found = self._completion.state(state)
        return None if found == INFINITE else int(found)

    def has_text_continuation(self, state: int) -> bool:
        return bool((self.state_mask(state) & ~self._eos_words).any())

    def next_bytes(self, state: int) -> bytes:
        """The bytes the text may continue with from ``state``, in increasing order."""
        if state < 0:
            return b""
        dfa = self._dfa
        dfa.materialize(state)
        return bytes(np.flatnonzero(dfa.trans[state] >= 0).tolist())

    def byte_target(self, state: int, byte: int) -> int:
        """The DFA state after ``byte`` from ``state``; negative when not allowed."""
        if state < 0:
            return DEAD
        dfa = self._dfa
        dfa.materialize(state)
        return int(dfa.trans[state, byte])


class TextCursor:
    """A byte-by-byte look ahead in the constraint's language from a matcher's state (drafts
    use it to guess text); the matcher it came from does not move."""

    __slots__ = ("_constraint", "_state")

    def __init__(self, constraint: TokenConstraint, state: int):
        self._constraint = constraint
        self._state = state

    def next_bytes(self) -> bytes:
        """The bytes the text may continue with, in increasing order."""
        return self._constraint.next_bytes(self._state)

    def is_accepting(self) -> bool:
        """Whether the text so far is a complete match."""
        return self._constraint.is_accepting(self._state)

    def step(self, data: bytes) -> bool:
        """Move over ``data``; False (and no move) when the language does not allow it."""
        state = self._state
        for byte in data:
            state = self._constraint.byte_target(state, byte)
            if state < 0:
                return False
        self._state = state
        return True

    def copy(self) -> TextCursor:
        return TextCursor(self._constraint, self._state)


class Matcher:
    """The constraint's state for one sequence: advance by tokens, ask what is allowed, undo.

    Copying is O(1): the undo history is a persistent linked list shared between copies.
    """

    __slots__ = ("_constraint", "_history", "_state")

    def __init__(self, constraint: TokenConstraint, state: int, history: tuple | None = None):
        self._constraint = constraint
        self._state = state
        self._history = history  # (previous state, older history) or None

    def mask(self) -> np.ndarray:
        """Packed ``uint32`` mask of the allowed tokens (a cached, read-only array)."""
        return self._constraint.state_mask(self._state)

    def fill_mask(self, out: np.ndarray, row: int) -> None:
        """Write the mask into row ``row`` of a ``(batch, words)`` int32 or uint32 array."""
        mask = self.mask()
        out[row, :] = mask if out.dtype == np.uint32 else mask.view(out.dtype)

    def allowed(self, token_id: int) -> bool:
        """Whether ``token_id`` may come next, without building the full mask."""
        c = self._constraint
        if self._state == _ENDED or not 0 <= token_id < c.vocab.size:
            return False
        if c.is_eos(token_id):
            return c.is_accepting(self._state)
        return c.token_target(self._state, token_id) >= 0

    def advance(self, token_id: int) -> bool:
        """Consume ``token_id``; returns False (state unchanged) when it is not allowed."""
        c = self._constraint
        if self._state == _ENDED or not 0 <= token_id < c.vocab.size:
            return False
        if c.is_eos(token_id):
            if not c.is_accepting(self._state):
                return False
            target = _ENDED
        else:
            target = c.token_target(self._state, token_id)
            if target < 0:
                return False
        self._history = (self._state, self._history)
        self._state = target
        return True

    def rollback(self, n_tokens: int = 1) -> None:
        """Undo the last ``n_tokens`` successful advances."""
        for _ in range(n_tokens):
            if self._history is None:
                raise ValueError("cannot roll back past the start of the sequence")
            self._state, self._history = self._history

    def forced_bytes(self) -> bytes:
        """The text the constraint now forces (``b""`` when there is a choice or EOS is allowed)."""
        if self._state == _ENDED:
            return b""
        return self._constraint.forced_bytes(self._state)

    def is_accepting(self) -> bool:
        """Whether EOS is allowed now (the text so far is a complete match)."""
        return self._constraint.is_accepting(self._state)

    def is_finished(self) -> bool:
        """Whether nothing but EOS is allowed (or EOS was already consumed)."""
        if self._state == _ENDED:
            return True
        c = self._constraint
        return c.is_accepting(self._state) and not c.has_text_continuation(self._state)

    def copy(self) -> Matcher:
        return Matcher(self._constraint, self._state, self._history)

    def completion_bytes(self) -> int | None:
        """The fewest bytes that complete the match from here, each a token by itself (so at
        most that many tokens finish it); None when unknown."""
        return self._constraint.completion_bytes(self._state)

    def text_cursor(self) -> TextCursor:
        """A byte-level look ahead from here (see :class:`TextCursor`)."""
        return TextCursor(self._constraint, self._state)

    @property
    def state(self) -> int:
        """The DFA state id (``-3`` after EOS); equal ids mean identical futures."""
        return self._state

