"""Regex constraints: compile time and per-step token-mask time, structgen against its peers.

For each vocabulary (SmolLM2's 49k tokens, Qwen's 151k) and each regex workload, every engine
that is importable (structgen, and when installed xgrammar, llguidance and outlines-core):

* compiles the regex to a *ready matcher* (compiled, matcher created, start mask computed),
  fresh each time, several times: the p50 is reported;
* walks the canonical tokenization of each example string, timing only the mask call after
  every token: once right after a fresh compile (*cold*: states are mostly visited for the
  first time) and once more over the same steps (*warm*: every state seen before);
* on the warm walk, records the allowed-token set of every step, which is compared with
  structgen's as a correctness cross-check.

The one-time vocabulary preprocessing of each engine is measured apart. Results are printed as
tables and written to ``benchmarks/results/`` (JSON and PNG plots). See ``benchmarks/README.md``.

    python benchmarks/bench_masks.py [--vocab smollm2,qwen] [--quick] [--workloads a,b]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from structgen import compiler, constraints
from structgen.automata import token_trie
from structgen.constraints import regex
from structgen.errors import StructgenError
from structgen.testing import tokenizers
from structgen.vocab import Vocabulary

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENGINES = ("structgen", "xgrammar", "llguidance", "outlines-core")
# outlines-core builds its index eagerly (every DFA state times every token): a counter this
# large takes minutes and gigabytes, so it is skipped rather than run.
OUTLINES_MAX_COUNTER = 1000
MAX_TOKENS_SHOWN = 3


# --------------------------------------------------------------------------- workloads
def _is_capitalised_words(text: str) -> bool:
    """Python's check for ``\\p{Lu}\\p{Ll}+( \\p{Lu}\\p{Ll}+)*`` (``re`` has no ``\\p``)."""
    return all(
        len(word) > 1
        and unicodedata.category(word[0]) == "Lu"
        and all(unicodedata.category(char) == "Ll" for char in word[1:])
        for word in text.split(" ")
    )


@dataclass(frozen=True)
class Workload:
    """A regex, example strings it matches in full, and how to check that independently."""

    name: str
    pattern: str
    examples: tuple[str, ...]
    quick: bool = False
    reference: Callable[[str], bool] | None = None  # for syntax Python's ``re`` lacks

    def check_examples(self) -> None:
        """Raise ``ValueError`` if an example does not match the pattern."""
        for example in self.examples:
            if self.reference is not None:
                matches = self.reference(example)
            else:
                matches = re.fullmatch(self.pattern, example) is not None
            if not matches:
                raise ValueError(f"workload {self.name}: {example!r} does not match")


_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"

WORKLOADS = (
    Workload(
        "phone",
        r"\+?1?[ -]?\(?[0-9]{3}\)?[ -]?[0-9]{3}[ -]?[0-9]{4}",
        ("(555) 123-4567", "+1 555-867-5309", "5551234567"),
        quick=True,
    ),
    Workload("iso_date", _DATE, ("2024-05-17", "1999-12-31", "2000-02-29")),
    Workload(
        "iso_datetime_tz",
        _DATE + r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
        r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        ("2024-05-17T12:30:00+02:00", "1999-12-31T23:59:59.123456Z"),
        quick=True,
    ),
    Workload(
        "email",
        r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}",
        ("ada.lovelace@example.com", "j.doe+news@mail.co.uk", "root@localhost.dev"),
    ),
    Workload(
        "uuid",
        r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        ("123e4567-e89b-42d3-a456-426614174000", "550e8400-e29b-41d4-a716-446655440000"),
    ),
    Workload(
        "ipv4",
        rf"({_OCTET}\.){{3}}{_OCTET}",
        ("192.168.0.1", "10.0.255.254", "8.8.4.4"),
    ),
    Workload(
        "decimal",
        r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
        ("-273.15", "3.14159", "6.022e23"),
    ),
    Workload(
        "identifier",
        r"[A-Za-z_][A-Za-z0-9_]{0,31}",
        ("user_name", "_private", "HTTPServer2"),
    ),
    Workload(
        "url_lite",
        r"https?://[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]{1,5})?(/[A-Za-z0-9._~%-]*)*"
        r"(\?[A-Za-z0-9._~%=&-]*)?",
        ("https://example.com/path/to/page?id=42&lang=en", "http://localhost.dev:8080/"),
    ),
    Workload(
        "semver",
        r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
        r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?",
        ("1.2.3", "10.0.0-rc.1+build.5", "0.17.42"),
    ),
    Workload(
        "sentence",
        r"[A-Z][a-z]+( [a-z]+){2,12}[.!?]",
        ("The cat sat on the mat.", "Structured generation keeps every output valid!"),
    ),
    Workload(
        "json_object",
        r'\{"name": "[^"]{1,40}", "age": \d{1,3}, "tags": \[("[a-z]{1,10}"(, )?){0,5}\]\}',
        (
            '{"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry"]}',
            '{"name": "Zoë Ångström", "age": 7, "tags": []}',
            '{"name": "R2-D2", "age": 142, "tags": ["droid", "astromech"]}',
        ),
        quick=True,
    ),
    Workload(
        "unicode_name",
        r"\p{Lu}\p{Ll}+( \p{Lu}\p{Ll}+)*",
        ("Ada Lovelace", "José María Ñúñez", "Łukasz Żółkiewski"),
        quick=True,
        reference=_is_capitalised_words,
    ),
    Workload(
        "password_lookahead",
        r"(?=.*[A-Z])(?=.*[a-z])(?=.*[0-9])[A-Za-z0-9!@#$%^&*]{8,20}",
        ("Passw0rd!", "xK9#mQ2$vL", "correctHorse9"),
        quick=True,
    ),
    Workload(
        "large_counter",
        r"[^\n]{0,5000}",
        (
            "The quick brown fox jumps over the lazy dog, again and again, while the "
            "benchmark counts every step it takes. " * 2,
            "Ünïcödé text — with dashes, «quotes», 日本語 and an emoji 🚀 too.",
        ),
    ),
)


# --------------------------------------------------------------------------- engines
class Refused(Exception):
    """The engine does not support the regex (reported, not a benchmark failure)."""


class Skipped(Exception):
    """The benchmark does not run the engine on this regex (too costly; the reason says why)."""


def _set_bits(words: np.ndarray) -> np.ndarray:
    """Token ids whose bit is set in a packed little-endian 32-bit mask."""
    return np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))


class Run:
    """One compiled regex with a matcher: the interface every engine adapter implements."""

    num_states: int | None = None
    cache_bytes: int | None = None  # memory the engine's mask caches hold (where it says)

    def restart(self) -> None:
        """Back to the start state, keeping whatever the engine has cached."""
        raise NotImplementedError

    def fill_mask(self) -> None:
        """Compute the mask of the current state (the only call that is timed)."""
        raise NotImplementedError

    def allowed(self) -> np.ndarray:
        """Ids allowed by the last computed mask, end-of-sequence ids included."""
        raise NotImplementedError

    def advance(self, token_id: int) -> bool:
        raise NotImplementedError


class StructgenEngine:
    """structgen: ``compile(regex(pattern), vocab)``; ``forget`` clears its compile cache.

    Every engine has a ``name``, its end-of-sequence ids ``eos_ids`` and ``compile(pattern)``,
    which returns a :class:`Run` or raises :class:`Refused` or :class:`Skipped`; an engine with
    caches has ``forget()``, which :func:`timed_compile` calls before the clock starts.
    """

    name = "structgen"

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.eos_ids = frozenset(vocab.eos_token_ids)

    def forget(self) -> None:
        compiler._cache.clear()
        constraints._grammar_language.cache_clear()  # a grammar's text is read again too

    def compile(self, pattern: str) -> Run:
        try:
            return StructgenRun(compiler.compile(regex(pattern), self.vocab))
        except StructgenError as error:
            raise Refused(f"{type(error).__name__}: {error}") from None


class StructgenRun(Run):
    def __init__(self, constraint) -> None:
        self.constraint = constraint
        self.restart()

    @property
    def num_states(self) -> int:
        return self.constraint.num_states

    @property
    def cache_bytes(self) -> int:
        return self.constraint.cache_bytes

    def restart(self) -> None:
        self.matcher = self.constraint.matcher()
        self.mask = self.matcher.mask()

    def fill_mask(self) -> None:
        self.mask = self.matcher.mask()

    def allowed(self) -> np.ndarray:
        return _set_bits(self.mask)

    def advance(self, token_id: int) -> bool:
        return self.matcher.advance(token_id)


class XGrammarEngine:
    """xgrammar: ``GrammarCompiler.compile_regex`` and a ``GrammarMatcher``."""

    name = "xgrammar"

    def __init__(self, tokenizer) -> None:
        import xgrammar

        self.xgr = xgrammar
        self.info = xgrammar.TokenizerInfo.from_huggingface(tokenizer)
        # Its own compile cache would turn every repeat after the first into a lookup.
        self.compiler = xgrammar.GrammarCompiler(
            self.info, max_threads=os.cpu_count() or 1, cache_enabled=False
        )
        self.eos_ids = frozenset(self.info.stop_token_ids)

    def compile(self, pattern: str) -> Run:
        try:
            compiled = self.compiler.compile_regex(pattern)
        except RuntimeError as error:
            raise Refused(_reason(error)) from None
        return XGrammarRun(self.xgr, compiled, self.info.vocab_size)


class XGrammarRun(Run):
    def __init__(self, xgr, compiled, vocab_size: int) -> None:
        self.matcher = xgr.GrammarMatcher(compiled)
        self.bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        self.fill_mask()

    def restart(self) -> None:
        self.matcher.reset()
        self.fill_mask()

    def fill_mask(self) -> None:
        self.matcher.fill_next_token_bitmask(self.bitmask)

    def allowed(self) -> np.ndarray:
        return _set_bits(self.bitmask.numpy()[0])

    def advance(self, token_id: int) -> bool:
        return self.matcher.accept_token(token_id)


class LLGuidanceEngine:
    """llguidance: an ``LLMatcher`` over ``LLMatcher.grammar_from_regex``; it reports a bad
    regex through ``is_error()``, not by raising."""

    name = "llguidance"

    def __init__(self, tokenizer) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.numpy

        self.llg = llguidance
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer)
        self.eos_ids = frozenset([self.tokenizer.eos_token])

    def compile(self, pattern: str) -> Run:
        grammar = self.llg.LLMatcher.grammar_from_regex(pattern)
        matcher = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise Refused(_reason(matcher.get_error()))
        return LLGuidanceRun(self.llg, matcher, self.tokenizer.vocab_size)


class LLGuidanceRun(Run):
    def __init__(self, llg, matcher, vocab_size: int) -> None:
        self.fill = llg.numpy.fill_next_token_bitmask
        self.matcher = matcher
        self.bitmask = llg.numpy.allocate_token_bitmask(1, vocab_size)
        self.fill_mask()

    def restart(self) -> None:
        self.matcher.reset()
        self.fill_mask()

    def fill_mask(self) -> None:
        self.fill(self.matcher, self.bitmask)

    def allowed(self) -> np.ndarray:
        return _set_bits(self.bitmask[0])

    def advance(self, token_id: int) -> bool:
        return self.matcher.consume_token(token_id)


class OutlinesEngine:
    """outlines-core: an ``Index`` (built eagerly) and a ``Guide``, over a ``Vocabulary`` made
    from the tokenizer's token map (``Vocabulary.from_pretrained`` would need the Hub)."""

    name = "outlines-core"

    def __init__(self, tokenizer) -> None:
        import outlines_core

        self.oc = outlines_core
        eos = tokenizer.eos_token_id
        self.vocabulary = outlines_core.Vocabulary(eos, _byte_level_token_map(tokenizer))
        self.num_words = (len(tokenizer) + 31) // 32
        self.eos_ids = frozenset([eos])

    def compile(self, pattern: str) -> Run:
        largest = max((int(n) for n in re.findall(r"\{(?:\d*,)?(\d+)\}", pattern)), default=0)
        if largest > OUTLINES_MAX_COUNTER:
            raise Skipped(f"eager index over a counter of {largest}: minutes and gigabytes")
        try:
            index = self.oc.Index(pattern, self.vocabulary)
        except ValueError as error:
            raise Refused(_reason(error)) from None
        return OutlinesRun(self.oc.Guide(index), self.num_words)


class OutlinesRun(Run):
    def __init__(self, guide, num_words: int) -> None:
        self.guide = guide
        self.bitmask = np.zeros((1, num_words), dtype=np.int32)
        self.fill_mask()

    def restart(self) -> None:
        self.guide.reset()
        self.fill_mask()

    def fill_mask(self) -> None:
        self.guide.write_mask_into(self.bitmask.ctypes.data, self.bitmask.size, 4)

    def allowed(self) -> np.ndarray:
        return _set_bits(self.bitmask[0])

    def advance(self, token_id: int) -> bool:
        try:
            self.guide.advance(token_id, return_tokens=False)
        except ValueError:
            return False
        return True


def _byte_level_token_map(tokenizer) -> dict[bytes, list[int]]:
    """Token bytes -> ids for a byte-level BPE tokenizer, special and added tokens left out.

    Decoded with transformers' own GPT-2 byte table, independently of structgen's vocabulary,
    so the agreement check also covers structgen's conversion.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    skipped = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    token_map: dict[bytes, list[int]] = {}
    for piece, token_id in tokenizer.get_vocab().items():
        if token_id not in skipped:
            token_map.setdefault(bytes(byte_of[char] for char in piece), []).append(token_id)
    return token_map


def _reason(error: object) -> str:
    """The informative line of an engine's error message, without log prefixes."""
    lines = [re.sub(r"^\[[\d:]+\] \S+: ", "", line.strip())
             for line in str(error).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith("error:")]
    return (detail or lines or ["(no message)"])[-1 if detail else 0]


PEER_ENGINES = {
    "xgrammar": XGrammarEngine,
    "llguidance": LLGuidanceEngine,
    "outlines-core": OutlinesEngine,
}


# --------------------------------------------------------------------------- measuring
@contextmanager
def _no_gc() -> Iterator[None]:
    """Keep the garbage collector out of timed regions."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _timed(action: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``action`` takes, and its result (freed by the caller, outside the timing)."""
    with _no_gc():
        start = time.perf_counter()
        value = action()
        return time.perf_counter() - start, value


def timed_compile(engine, source: Any) -> tuple[float, Run]:
    """Seconds ``engine.compile(source)`` takes from cold, and its run. The engine's caches are
    dropped first, outside the timing: freeing what an earlier compile built (for structgen,
    every automaton state its walks reached) is not this compile's work."""
    forget = getattr(engine, "forget", None)
    if forget is not None:
        forget()
    return _timed(lambda: engine.compile(source))


@dataclass
class Walk:
    """One pass along a tokenized example."""

    mask_ns: list[int] = field(default_factory=list)  # the mask time after each token
    allowed: list[np.ndarray] = field(default_factory=list)  # per step, start included
    rejected_at: int | None = None  # the step whose token the engine would not advance by


def walk(run: Run, token_ids: Sequence[int], record: bool) -> Walk:
    """Advance along ``token_ids`` from the start, timing the mask after every token.

    The start state's mask is part of the compile (a ready matcher), so it is not timed here.
    """
    result = Walk()
    run.restart()
    if record:
        result.allowed.append(run.allowed())
    with _no_gc():
        for step, token_id in enumerate(token_ids):
            if not run.advance(token_id):
                result.rejected_at = step
                return result
            start = time.perf_counter_ns()
            run.fill_mask()
            result.mask_ns.append(time.perf_counter_ns() - start)
            if record:
                result.allowed.append(run.allowed())
    return result


@dataclass
class Measurement:
    """What one engine did on one workload and vocabulary."""

    status: str = "ok"  # ok | refused | skipped
    reason: str = ""
    compile_s: list[float] = field(default_factory=list)
    cold_ns: list[int] = field(default_factory=list)
    warm_ns: list[int] = field(default_factory=list)
    cold_walk_s: list[float] = field(default_factory=list)  # each example's cold masks, summed
    num_states: int | None = None
    cache_bytes: int | None = None  # the most, after an example's cold and warm walks
    walks: list[Walk] = field(default_factory=list)


def measure(engine, workload: Workload, token_lists: list[list[int]], repeats: int
            ) -> Measurement:
    """Compile afresh at least ``repeats`` times; after the first compiles, walk one example
    each, cold and then warm."""
    result = Measurement()
    states, cached = [], []
    for attempt in range(max(repeats, len(token_lists))):
        try:
            seconds, run = timed_compile(engine, workload.pattern)
        except (Refused, Skipped) as error:
            result.status = "refused" if isinstance(error, Refused) else "skipped"
            result.reason = str(error)
            return result
        result.compile_s.append(seconds)
        if attempt < len(token_lists):
            cold = walk(run, token_lists[attempt], record=False).mask_ns
            result.cold_ns += cold
            result.cold_walk_s.append(sum(cold) / 1e9)
            warm = walk(run, token_lists[attempt], record=True)
            result.warm_ns += warm.mask_ns
            result.walks.append(warm)
            states.append(run.num_states)
            cached.append(run.cache_bytes)
    result.num_states = None if None in states else max(states)
    result.cache_bytes = None if None in cached else max(cached)
    return result


# --------------------------------------------------------------------------- agreement
EOS = -1  # each engine's end-of-sequence ids, folded into this one marker for comparison


@dataclass
class Disagreement:
    """A step where a peer allows other tokens than structgen, or where an engine cannot
    advance by the next canonical token of a matching example (``note`` says so)."""

    vocab: str
    workload: str
    engine: str
    example: int
    step: int
    text: str  # the example's text before this step
    only_structgen: list[str]
    only_peer: list[str]
    note: str = ""


def _comparable(allowed: np.ndarray, eos_ids: frozenset[int], width: int) -> set[int]:
    """Allowed ids below ``width`` (the last mask word's padding bits are not tokens), the
    end-of-sequence ids replaced by the one ``EOS`` marker."""
    ids = set(allowed[allowed < width].tolist())
    return (ids - eos_ids) | ({EOS} if ids & eos_ids else set())


def differing_steps(reference: Measurement, reference_eos: frozenset[int], peer: Measurement,
                    peer_eos: frozenset[int], width: int
                    ) -> Iterator[tuple[int, int, set, set, bool]]:
    """(example, step, ids only structgen allows, ids only the peer allows, whether the peer
    cannot advance by the step's token) for every step where the two differ; structgen's own
    failures to advance are not reported here."""
    for example, (ours, theirs) in enumerate(zip(reference.walks, peer.walks)):
        for step, (a, b) in enumerate(zip(ours.allowed, theirs.allowed)):
            mine = _comparable(a, reference_eos, width)
            other = _comparable(b, peer_eos, width)
            if mine != other:
                yield example, step, mine - other, other - mine, False
        step = theirs.rejected_at
        if step is not None and (ours.rejected_at is None or step < ours.rejected_at):
            yield example, step, set(), set(), True


def token_labeler(vocab, tokenizer) -> Callable[[int], str]:
    """``id:bytes`` for text tokens, ``id:name`` for special ones, ``EOS`` for the marker."""

    def label(token_id: int) -> str:
        if token_id == EOS:
            return "EOS"
        data = vocab.token_bytes(token_id) if token_id < vocab.size else b""
        if data:
            return f"{token_id}:{data!r}"
        return f"{token_id}:{tokenizer.convert_ids_to_tokens(token_id)}"

    return label


def _labels(ids: set[int], label: Callable[[int], str]) -> list[str]:
    shown = [label(token_id) for token_id in sorted(ids)[:MAX_TOKENS_SHOWN]]
    if len(ids) > MAX_TOKENS_SHOWN:
        shown.append(f"({len(ids)} in all)")
    return shown


def _text(vocab, token_ids: Sequence[int]) -> str:
    text = b"".join(vocab.token_bytes(token_id) for token_id in token_ids)
    return text.decode("utf-8", errors="backslashreplace")


def check_agreement(vocab_name: str, vocab, label: Callable[[int], str], engines: list,
                    workload: Workload, per_engine: dict[str, Measurement],
                    token_lists: list[list[int]]) -> list[Disagreement]:
    """Every peer against structgen on one workload, plus structgen against the examples."""
    reference = per_engine["structgen"]
    found = []
    for example, walked in enumerate(reference.walks):
        step, token_ids = walked.rejected_at, token_lists[example]
        if step is not None:
            found.append(Disagreement(
                vocab_name, workload.name, "structgen", example, step,
                _text(vocab, token_ids[:step]), [], [],
                f"structgen cannot advance by {label(token_ids[step])}",
            ))
    for engine in engines[1:]:
        peer = per_engine[engine.name]
        if reference.status != "ok" or peer.status != "ok":
            continue
        for example, step, mine, theirs, stuck in differing_steps(
                reference, engines[0].eos_ids, peer, engine.eos_ids, vocab.size):
            token_ids = token_lists[example]
            note = f"peer cannot advance by {label(token_ids[step])}" if stuck else ""
            found.append(Disagreement(
                vocab_name, workload.name, engine.name, example, step,
                _text(vocab, token_ids[:step]), _labels(mine, label), _labels(theirs, label), note,
            ))
    return found


# --------------------------------------------------------------------------- setup
def load_tokenizer(name: str):
    return {"smollm2": tokenizers.smollm2_tokenizer, "qwen": tokenizers.qwen_tokenizer}[name]()


def structgen_preprocessing(tokenizer) -> tuple[object, dict[str, float]]:
    """The structgen vocabulary and the one-time costs behind it: conversion, trie build
    (cold, what the first use of a vocabulary pays) and trie load from the disk cache."""
    timings = {}
    timings["vocabulary from tokenizer"], vocab = _timed(
        lambda: Vocabulary.from_tokenizer(tokenizer))
    timings["token trie build (cold)"], _ = _timed(
        lambda: token_trie.build_token_trie(vocab.tokens))
    token_trie.token_trie(vocab)  # makes sure the disk cache exists
    token_trie.token_trie.cache_clear()
    timings["token trie load (disk cache)"], _ = _timed(lambda: token_trie.token_trie(vocab))
    return vocab, timings


def make_engines(tokenizer, vocab) -> tuple[list, dict[str, float], dict[str, str]]:
    """structgen plus every importable peer; the peers' setup times; why any is missing."""
    engines: list = [StructgenEngine(vocab)]
    setup: dict[str, float] = {}
    missing: dict[str, str] = {}
    for name, factory in PEER_ENGINES.items():
        try:
            setup[name], engine = _timed(lambda factory=factory: factory(tokenizer))
        except ImportError as error:
            missing[name] = f"not importable: {error}"
            continue
        engines.append(engine)
    return engines, setup, missing


def warm_up(engines) -> None:
    """JIT-compile and fault in each engine's code paths before anything is timed."""
    for engine in engines:
        walk(engine.compile(r"[a-z]{1,8}[0-9]"), [], record=False)


# --------------------------------------------------------------------------- one vocabulary
@dataclass
class VocabularyReport:
    """Everything measured for one vocabulary."""

    name: str
    size: int
    preprocessing: list[tuple[str, str, float]]  # (engine, what, seconds)
    missing_engines: dict[str, str]
    results: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    disagreements: list[Disagreement] = field(default_factory=list)


def bench_vocabulary(vocab_name: str, workloads: Sequence[Workload], repeats: int
                     ) -> VocabularyReport:
    """Every engine on every workload for one vocabulary."""
    tokenizer = load_tokenizer(vocab_name)
    vocab, structgen_setup = structgen_preprocessing(tokenizer)
    engines, peer_setup, missing = make_engines(tokenizer, vocab)
    report = VocabularyReport(
        vocab_name,
        vocab.size,
        [("structgen", what, seconds) for what, seconds in structgen_setup.items()]
        + [(name, "tokenizer/vocabulary setup", seconds) for name, seconds in peer_setup.items()],
        missing,
    )
    warm_up(engines)
    label = token_labeler(vocab, tokenizer)
    for workload in workloads:
        token_lists = [tokenizer.encode(text, add_special_tokens=False)
                       for text in workload.examples]
        per_engine = report.results[workload.name] = {}
        for engine in engines:
            print(f"  {vocab_name:8} {workload.name:20} {engine.name}", flush=True)
            per_engine[engine.name] = measure(engine, workload, token_lists, repeats)
        report.disagreements += check_agreement(vocab_name, vocab, label, engines, workload,
                                                per_engine, token_lists)
    return report


# --------------------------------------------------------------------------- reporting
RESULT_HEADERS = ("regex", "engine", "compile p50 ms", "cold mask us med/p99/max",
                  "warm mask us med/p99/max", "states", "vs structgen")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Sequence[int] = ()) -> str:
    """A plain-text table; the columns numbered in ``right`` are right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, rows)])


def _percentiles(values_ns: list[int]) -> tuple[float, float, float]:
    """Median, p99 and max, in microseconds."""
    values = np.asarray(values_ns, dtype=np.float64) / 1e3
    return float(np.median(values)), float(np.percentile(values, 99)), float(values.max())


def _micros(values_ns: list[int]) -> str:
    if not values_ns:
        return ""
    return " / ".join(f"{v:.1f}" if v < 100 else f"{v:.0f}" for v in _percentiles(values_ns))


def _agreement_cell(report: VocabularyReport, workload: str, engine: str) -> str:
    if engine == "structgen" or report.results[workload]["structgen"].status != "ok":
        return "-"
    steps = sum(len(walked.allowed) for walked in report.results[workload][engine].walks)
    differ = sum(d.workload == workload and d.engine == engine for d in report.disagreements)
    return "same" if not differ else f"{differ}/{steps} steps differ"


def result_rows(report: VocabularyReport) -> list[list[str]]:
    rows = []
    for workload, per_engine in report.results.items():
        for engine, m in per_engine.items():
            if m.status != "ok":
                rows.append([workload, engine, m.status, "", "", "", m.reason[:60]])
                continue
            rows.append([
                workload,
                engine,
                f"{np.median(m.compile_s) * 1e3:.2f}",
                _micros(m.cold_ns),
                _micros(m.warm_ns),
                "" if m.num_states is None else str(m.num_states),
                _agreement_cell(report, workload, engine),
            ])
    return rows


def disagreement_rows(disagreements: list[Disagreement]) -> list[list[str]]:
    """One row per distinct difference, with the steps (``example:step``) showing it."""
    groups: dict[tuple, list[Disagreement]] = {}
    for d in disagreements:
        key = (d.vocab, d.workload, d.engine, tuple(d.only_structgen), tuple(d.only_peer), d.note)
        groups.setdefault(key, []).append(d)
    rows = []
    for (vocab, workload, engine, mine, theirs, note), members in groups.items():
        steps = [f"{d.example}:{d.step}" for d in members]
        shown = " ".join(steps[:4]) + (f" +{len(steps) - 4}" if len(steps) > 4 else "")
        text = members[0].text if len(members[0].text) <= 32 else "..." + members[0].text[-29:]
        rows.append([vocab, workload, engine, shown, repr(text),
                     " ".join(mine) or "-", " ".join(theirs) or "-", note])
    return rows


def print_report(reports: list[VocabularyReport]) -> None:
    rows = [[r.name, engine, what, f"{seconds * 1e3:.1f}"]
            for r in reports for engine, what, seconds in r.preprocessing]
    print("\nOne-time vocabulary preprocessing")
    print(format_table(("vocab", "engine", "step", "ms"), rows, right=(3,)))
    for r in reports:
        missing = "".join(f"; {name} {why}" for name, why in r.missing_engines.items())
        print(f"\n{r.name}: {r.size} token ids{missing}")
        print(format_table(RESULT_HEADERS, result_rows(r), right=(2, 3, 4, 5)))
    disagreements = [d for r in reports for d in r.disagreements]
    print("\nAgreement with structgen: steps (example:step) where the allowed sets differ")
    if not disagreements:
        print("none")
        return
    print(format_table(("vocab", "regex", "peer", "steps", "first at text",
                        "only structgen allows", "only peer allows", "note"),
                       disagreement_rows(disagreements)))


def plot(reports: list[VocabularyReport], folder: Path) -> list[Path]:
    """Compile-time bars (log scale) and mask-time box plots, one PNG each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = [folder / "compile_times.png", folder / "mask_times.png"]
    fig, axes = plt.subplots(len(reports), 1, figsize=(14, 4.5 * len(reports)), squeeze=False)
    for ax, report in zip(axes[:, 0], reports):
        _compile_bars(ax, report.results)
        ax.set_title(f"compile to a ready matcher, p50 ({report.name})")
    fig.tight_layout()
    fig.savefig(written[0], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(len(reports), 2, figsize=(12, 4.5 * len(reports)), squeeze=False)
    for row, report in enumerate(reports):
        for col, kind in enumerate(("cold", "warm")):
            _mask_boxes(axes[row, col], report.results, kind)
            axes[row, col].set_title(f"mask time per step, {kind} ({report.name}, all regexes)")
    fig.tight_layout()
    fig.savefig(written[1], dpi=110)
    plt.close(fig)
    return written


def _compile_bars(ax, results: dict[str, dict[str, Measurement]]) -> None:
    workloads = list(results)
    width = 0.8 / len(ENGINES)
    for i, engine in enumerate(ENGINES):
        measured = [results[w].get(engine) for w in workloads]
        heights = [np.median(m.compile_s) * 1e3 if m and m.status == "ok" else np.nan
                   for m in measured]
        x = np.arange(len(workloads)) + i * width
        ax.bar(x, heights, width, label=engine)
        for position, m in zip(x, measured):
            if m and m.status != "ok":
                ax.annotate(m.status, (position, 0.03), xycoords=("data", "axes fraction"),
                            rotation=90, ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(workloads)) + width * (len(ENGINES) - 1) / 2, workloads,
                  rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.legend()


def _mask_boxes(ax, results: dict[str, dict[str, Measurement]], kind: str) -> None:
    data, labels = [], []
    for engine in ENGINES:
        values = [ns / 1e3 for per_engine in results.values() if engine in per_engine
                  for ns in getattr(per_engine[engine], f"{kind}_ns")]
        if values:
            data.append(values)
            labels.append(engine)
    ax.boxplot(data, tick_labels=labels, whis=(1, 99))
    ax.set_yscale("log")
    ax.set_ylabel("us per mask (whiskers: p1-p99)")


def _measurement_json(m: Measurement) -> dict:
    return {"status": m.status, "reason": m.reason, "compile_s": m.compile_s,
            "cold_mask_ns": m.cold_ns, "warm_mask_ns": m.warm_ns, "num_states": m.num_states,
            "cache_bytes": m.cache_bytes,
            "rejected_at": [walked.rejected_at for walked in m.walks]}


def write_json(reports: list[VocabularyReport], settings: dict, path: Path) -> None:
    path.write_text(json.dumps({
        "environment": environment(),
        "settings": settings,
        "vocabularies": {
            r.name: {
                "size": r.size,
                "preprocessing_s": [list(entry) for entry in r.preprocessing],
                "missing_engines": r.missing_engines,
                "results": {w: {e: _measurement_json(m) for e, m in per_engine.items()}
                            for w, per_engine in r.results.items()},
            }
            for r in reports
        },
        "disagreements": [d.__dict__ for r in reports for d in r.disagreements],
    }, indent=1))


def environment() -> dict:
    versions = {}
    for package in ("structgen", "xgrammar", "llguidance", "outlines_core", "numpy", "numba",
                    "torch", "transformers"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "versions": versions}


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", default="smollm2,qwen",
                        help="comma-separated vocabularies: smollm2, qwen")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: fewer regexes and repeats")
    parser.add_argument("--workloads", default="",
                        help="comma-separated workload names (default: all, or the quick set)")
    return parser.parse_args()


def select_workloads(names: str, quick: bool) -> list[Workload]:
    if names:
        wanted = names.split(",")
        unknown = set(wanted) - {w.name for w in WORKLOADS}
        if unknown:
            raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
        return [w for w in WORKLOADS if w.name in wanted]
    return [w for w in WORKLOADS if w.quick or not quick]


def main() -> None:
    args = parse_args()
    workloads = select_workloads(args.workloads, args.quick)
    for workload in workloads:
        workload.check_examples()
    repeats = 2 if args.quick else 7
    if args.quick:
        workloads = [replace(w, examples=w.examples[:2]) for w in workloads]
    reports = [bench_vocabulary(name, workloads, repeats) for name in args.vocab.split(",")]
    print_report(reports)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    settings = {"repeats": repeats, "quick": args.quick, "workloads": [w.name for w in workloads]}
    write_json(reports, settings, RESULTS_DIR / "bench_masks.json")
    written = plot(reports, RESULTS_DIR)
    print(f"\nwrote {RESULTS_DIR}/: bench_masks.json, " + ", ".join(p.name for p in written))


if __name__ == "__main__":
    main()
