"""JSON Schema constraints: coverage, soundness and speed, structgen against its peers.

Every importable engine (structgen, and when installed xgrammar and llguidance) compiles the
same schemas, with settings as close to structgen's defaults as each allows: any JSON
whitespace, declared properties in schema order, additional properties as the schema says.

* **JSON Schema Test Suite** (draft 2020-12 and draft 7, formats asserted): every labelled
  instance, written compactly with keys in schema order (``schema_suite.serialize``), is checked
  at the string level (no vocabulary). An instance check passes when the engine accepts exactly
  the valid instances; a refused schema passes none of its checks.
* **JSONSchemaBench** (dev split, 13 subsets): per subset, the share of schemas compiled, the
  labelled instances judged right, and random walks through the token masks over Qwen's
  151k-token vocabulary (same seed for every engine; at each step EOS with probability 0.2
  where it is allowed, else a random allowed token, half the time one that holds a quote or a
  closing bracket so that documents get finished; at most 256 tokens). Each finished document
  is validated with ``jsonschema`` (formats asserted): a constraint is sound when no walk ends
  in an invalid document. Compile time (the schema to a ready matcher, first mask computed)
  is measured once per schema, fresh: first of all the work on that schema, with the engine's
  caches dropped before the clock starts. Masks are timed at every walk step (mostly first
  visits), then again when the walk's tokens are replayed from the start (warm).

Each case runs under a time limit (SIGALRM; a native call is only stopped once it returns, and
then counts as over the limit). Tables go to stdout in Markdown; the raw results, the
environment and plots go to ``benchmarks/results/``. See ``benchmarks/README.md``.

    python benchmarks/bench_json_schema.py [--quick] [--subsets a,b] [--walks 3]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import itertools
import json
import re
import shlex
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from jsonschema import validators
from jsonschema.exceptions import best_match
from jsonschema_specifications import REGISTRY as META_SCHEMAS

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_masks as bm  # the regex benchmark's engine adapters and helpers

import structgen as sg
from structgen.testing.schema_suite import (
    Case,
    accepts,
    bench_cases,
    bench_subsets,
    serialize,
    suite_cases,
)

ENGINES = ("structgen", "xgrammar", "llguidance")
DRAFTS = ("draft2020-12", "draft7")
VOCABULARY = "qwen"
EOS_PROBABILITY = 0.2  # chance of ending a walk at each step where EOS is allowed
# Bytes that close a string, an array or an object. Among Qwen's 151k tokens only a few dozen
# may close an open string, so a walk picking uniformly among the allowed tokens almost never
# finishes a document with a free-text field: walks prefer the tokens that contain one.
CLOSING_BYTES = b'"]}'
# The peers' options closest to structgen's defaults (flexible whitespace, schema order,
# additional properties as the schema says): xgrammar's strict mode would forbid undeclared
# properties and items. llguidance's defaults already match (it refuses oneOf unless asked to
# read it as anyOf, which would be unsound).
XGRAMMAR_OPTIONS = {"any_whitespace": True, "strict_mode": False, "any_order": False}
UNSATISFIABLE = re.compile(r"unsatisfiable|cannot accept any value", re.IGNORECASE)
WARM_UP_SCHEMA = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 4}}}


# --------------------------------------------------------------------------- outcomes
class TimedOut(BaseException):
    """The case ran past its time limit (a BaseException, so no ``except Exception`` inside
    an engine swallows it)."""


class Unsatisfiable(Exception):
    """The engine proved that the schema accepts no value, which rejects every instance."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimedOut` in the block after ``seconds`` of wall time."""

    def expire(signum, frame):
        raise TimedOut(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Attempt:
    """How one engine action ended: ``ok`` (with its ``value``), ``unsatisfiable`` (the engine
    proved the schema empty), ``refused`` (unsupported, or a resource limit of the engine),
    ``timeout`` or ``crash`` (any other exception: a bug)."""

    status: str
    reason: str = ""
    value: Any = None


def attempt(action: Callable[[], Any], limit: float) -> Attempt:
    """Run ``action`` under the time limit and classify how it ended."""
    started = time.perf_counter()
    try:
        with time_limit(limit):
            return Attempt("ok", value=action())
    except (Unsatisfiable, sg.EmptyLanguage) as error:
        return Attempt("unsatisfiable", _message(error))
    except (bm.Refused, sg.StructgenError) as error:
        return Attempt("refused", _message(error))
    except TimedOut as error:  # a native call overruns until it returns: say by how much
        return Attempt("timeout", f"{error}, returned after {time.perf_counter() - started:.1f} s")
    except Exception as error:  # noqa: BLE001 - any other exception is the engine crashing
        return Attempt("crash", _message(error))


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:300]}"


# --------------------------------------------------------------------------- engines
# Every engine has ``name``, ``eos_ids``, ``checker(schema)`` (a string-level acceptance test,
# no vocabulary) and ``compile(schema)`` (a ``bm.Run`` over the benchmark vocabulary with its
# first mask computed). Refusals raise ``bm.Refused`` or ``Unsatisfiable``.
class StructgenSchemaEngine(bm.StructgenEngine):
    """structgen: ``json_schema(schema)`` with its defaults; strings are checked with
    ``schema_suite.accepts`` (a byte walk of the language), tokens with ``compile``."""

    def checker(self, schema: Any) -> Callable[[str], bool]:
        language = sg.json_schema(schema).language()
        return lambda text: accepts(language, text)

    def compile(self, schema: Any) -> bm.Run:
        return bm.StructgenRun(sg.compile(sg.json_schema(schema), self.vocab))


def _refusal(message: str) -> Exception:
    """A peer's compile error as :class:`Unsatisfiable` or :class:`bm.Refused`."""
    if UNSATISFIABLE.search(message):
        return Unsatisfiable(bm._reason(message))
    return bm.Refused(bm._reason(message))


class XGrammarSchemaEngine(bm.XGrammarEngine):
    """xgrammar: ``GrammarCompiler.compile_json_schema`` (compile cache off); strings are
    checked as ``xgrammar.testing._is_grammar_accept_string`` does, one matcher per schema."""

    def checker(self, schema: Any) -> Callable[[str], bool]:
        from xgrammar.testing import _get_matcher_from_grammar

        try:
            grammar = self.xgr.Grammar.from_json_schema(json.dumps(schema), **XGRAMMAR_OPTIONS)
        except RuntimeError as error:
            raise _refusal(str(error)) from None
        matcher = _get_matcher_from_grammar(grammar)

        def check(text: str) -> bool:
            matcher.reset()
            return matcher.accept_string(text) and matcher.is_terminated()

        return check

    def compile(self, schema: Any) -> bm.Run:
        try:
            compiled = self.compiler.compile_json_schema(json.dumps(schema), **XGRAMMAR_OPTIONS)
        except RuntimeError as error:
            raise _refusal(str(error)) from None
        return bm.XGrammarRun(self.xgr, compiled, self.info.vocab_size)


class _ByteTokenizer:
    """256 one-byte tokens and an EOS: lets llguidance check a string byte by byte."""

    eos_token_id = 256
    bos_token_id = None
    tokens: ClassVar[list[bytes]] = [bytes([byte]) for byte in range(256)] + [b"<eos>"]
    special_token_ids: ClassVar[list[int]] = [256]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


class LLGuidanceSchemaEngine(bm.LLGuidanceEngine):
    """llguidance: ``LLMatcher`` over ``LLMatcher.grammar_from_json_schema`` (default options);
    strings are fed byte by byte to a matcher over a one-byte-per-token tokenizer."""

    def __init__(self, tokenizer) -> None:
        super().__init__(tokenizer)
        self.byte_tokenizer = self.llg.LLTokenizer(self.llg.TokenizerWrapper(_ByteTokenizer()))

    def _matcher(self, schema: Any, tokenizer):
        try:
            grammar = self.llg.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        except ValueError as error:
            raise bm.Refused(bm._reason(error)) from None
        matcher = self.llg.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise _refusal(matcher.get_error())
        return matcher

    def checker(self, schema: Any) -> Callable[[str], bool]:
        start = self._matcher(schema, self.byte_tokenizer)

        def check(text: str) -> bool:
            matcher = start.deep_copy()  # a rejected byte leaves a matcher in its error state
            return matcher.consume_tokens(list(text.encode())) and matcher.is_accepting()

        return check

    def compile(self, schema: Any) -> bm.Run:
        matcher = self._matcher(schema, self.tokenizer)
        return bm.LLGuidanceRun(self.llg, matcher, self.tokenizer.vocab_size)


PEER_ENGINES = {"xgrammar": XGrammarSchemaEngine, "llguidance": LLGuidanceSchemaEngine}


def make_engines(names: Sequence[str], tokenizer, vocab) -> tuple[list, dict[str, str]]:
    """The engines asked for that are importable, and why any other is missing."""
    engines: list = []
    missing: dict[str, str] = {}
    for name in names:
        if name == "structgen":
            engines.append(StructgenSchemaEngine(vocab))
            continue
        try:
            engines.append(PEER_ENGINES[name](tokenizer))
        except ImportError as error:
            missing[name] = f"not importable: {error}"
    return engines, missing


# --------------------------------------------------------------------------- labelled instances
@dataclass
class Judgement:
    """An engine's verdicts on one schema's labelled instances, at the string level."""

    status: str  # an Attempt status; ``unsatisfiable`` rejects every instance
    reason: str
    right: int
    total: int
    false_accepts: list[str]


def judge(engine, schema: Any, labelled: Sequence[tuple[str, bool]], limit: float
          ) -> Judgement:
    """Check every instance text against ``valid``; instances of a refused schema (or one that
    timed out or crashed) are not judged right."""

    def verdicts() -> list[bool]:
        check = engine.checker(schema)
        return [check(text) for text, _ in labelled]

    outcome = attempt(verdicts, limit)
    if outcome.status == "ok":
        accepted = outcome.value
    elif outcome.status == "unsatisfiable":
        accepted = [False] * len(labelled)
    else:
        accepted = [None] * len(labelled)
    right = sum(verdict is not None and verdict == valid
                for verdict, (_, valid) in zip(accepted, labelled))
    false_accepts = [text for verdict, (text, valid) in zip(accepted, labelled)
                     if verdict and not valid]
    return Judgement(outcome.status, outcome.reason, right, len(labelled), false_accepts)


def labelled_texts(case: Case) -> list[tuple[str, bool]]:
    return [(serialize(instance, case.schema), valid) for instance, valid in case.instances]


# --------------------------------------------------------------------------- random walks
@dataclass
class Walk:
    """One random walk through an engine's token masks.

    ``outcome``: ``finished`` (EOS taken), ``unfinished`` (the token bound reached), ``stuck``
    (no token allowed, EOS included), ``rejected`` (the engine would not advance by a token its
    own mask allowed), or an Attempt status (``refused``, ``timeout``, ``crash``). A finished
    document's ``verdict`` is ``valid``, ``invalid`` or ``unchecked`` (``jsonschema`` could not
    decide); ``text`` is kept for the documents that are not valid and for stuck or rejected
    walks. ``mask_ns`` times the mask after each token of the walk, ``warm_mask_ns`` the same
    masks when the walk's tokens are replayed from the start (every state seen before).
    """

    outcome: str
    tokens: int = 0
    mask_ns: list[int] = field(default_factory=list)
    warm_mask_ns: list[int] = field(default_factory=list)
    verdict: str = ""
    reason: str = ""
    text: str = ""


def mask_words(run: bm.Run) -> np.ndarray:
    """The run's last computed mask as packed ``uint32`` words (bit ``i % 32`` of word
    ``i // 32`` is token ``i``), without a copy."""
    if isinstance(run, bm.StructgenRun):
        return run.mask
    if isinstance(run, bm.XGrammarRun):
        return run.bitmask.numpy()[0].view(np.uint32)
    return run.bitmask[0].view(np.uint32)


def pack(ids: Iterable[int], num_words: int) -> np.ndarray:
    """Packed ``uint32`` words with the bits of ``ids`` set."""
    bits = np.zeros(num_words * 32, dtype=bool)
    bits[list(ids)] = True
    return np.packbits(bits, bitorder="little").view(np.uint32)


def pick(words: np.ndarray, rng: np.random.Generator) -> int:
    """A uniformly random token among the set bits of ``words`` (at least one is set)."""
    cumulative = np.cumsum(np.bitwise_count(words))
    rank = int(rng.integers(cumulative[-1]))
    word = int(np.searchsorted(cumulative, rank, side="right"))
    rank -= int(cumulative[word - 1]) if word else 0
    bits = np.flatnonzero(np.unpackbits(words[word:word + 1].view(np.uint8), bitorder="little"))
    return word * 32 + int(bits[rank])


def random_walk(bench: Bench, run: bm.Run, eos_words: np.ndarray, rng: np.random.Generator,
                max_tokens: int) -> tuple[Walk, list[int]]:
    """From the start, at every step take EOS (with probability ``EOS_PROBABILITY`` where it is
    allowed, always where nothing else is) or a random allowed text token: with probability
    ``close_probability`` one of those containing a ``CLOSING_BYTES`` byte (when there is one),
    otherwise any, uniformly. Only the mask call after each token is timed. Returns the walk and
    its text tokens."""
    run.restart()
    tokens: list[int] = []
    mask_ns: list[int] = []
    with bm._no_gc():
        while len(tokens) < max_tokens:
            words = mask_words(run)
            ends = words & eos_words
            texts = words & bench.token_words & ~eos_words
            if ends.any() and (not texts.any() or rng.random() < EOS_PROBABILITY):
                outcome = "finished" if run.advance(pick(ends, rng)) else "rejected"
                return Walk(outcome, len(tokens), mask_ns), tokens
            if not texts.any():
                return Walk("stuck", len(tokens), mask_ns), tokens
            closers = texts & bench.closing_words
            if closers.any() and rng.random() < bench.settings.close_probability:
                texts = closers
            token = pick(texts, rng)
            if not run.advance(token):
                return Walk("rejected", len(tokens), mask_ns), tokens
            tokens.append(token)
            start = time.perf_counter_ns()
            run.fill_mask()
            mask_ns.append(time.perf_counter_ns() - start)
    return Walk("unfinished", len(tokens), mask_ns), tokens


def replay_masks(run: bm.Run, tokens: list[int]) -> list[int]:
    """The mask time after each of ``tokens``, fed again from the start: warm masks."""
    run.restart()
    mask_ns: list[int] = []
    with bm._no_gc():
        for token in tokens:
            if not run.advance(token):
                break
            start = time.perf_counter_ns()
            run.fill_mask()
            mask_ns.append(time.perf_counter_ns() - start)
    return mask_ns


class DocumentChecker:
    """``jsonschema`` validation of generated documents, formats asserted.

    References resolve against the bundled meta-schemas only (nothing is fetched). Duplicate
    keys make a document invalid: JSON Schema's data model has none.
    """

    def __init__(self, schema: Any) -> None:
        self.error = ""
        try:
            cls = validators.validator_for(schema)
            self.validator = cls(schema, registry=META_SCHEMAS, format_checker=cls.FORMAT_CHECKER)
        except Exception as error:  # noqa: BLE001 - a schema jsonschema cannot load
            self.error = _message(error)

    def check(self, document: bytes) -> tuple[str, str]:
        """(``valid`` | ``invalid`` | ``unchecked``, why)."""
        try:
            value = json.loads(document.decode("utf-8"), object_pairs_hook=_unique_keys)
        except (UnicodeDecodeError, ValueError) as error:
            return "invalid", f"not JSON: {error}"
        if self.error:
            return "unchecked", self.error
        try:
            error = best_match(self.validator.iter_errors(value))
        except Exception as failure:  # noqa: BLE001 - e.g. a pattern Python's re cannot read
            return "unchecked", _message(failure)
        if error is None:
            return "valid", ""
        return "invalid", f"{error.json_path}: {error.message[:200]}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ValueError(f"duplicate key in {keys[:8]}")
    return dict(pairs)


def token_texts(vocab, tokenizer) -> list[bytes]:
    """Each id's bytes as the detokenized output shows them: special tokens as their name
    (an engine that allows one as text, like xgrammar, is judged on that text)."""
    return [vocab.token_bytes(i) or tokenizer.convert_ids_to_tokens(i).encode()
            for i in range(vocab.size)]


# --------------------------------------------------------------------------- one schema
@dataclass
class SchemaResult:
    """One engine on one JSONSchemaBench schema; ``busy_s`` is the wall time of all of it
    (labels, compile, walks and their validation)."""

    labels: Judgement
    compile_status: str
    compile_reason: str = ""
    compile_s: float | None = None
    walks: list[Walk] = field(default_factory=list)
    busy_s: float = 0.0


@dataclass
class Settings:
    """The command line's knobs of the JSONSchemaBench part (see ``parse_args``)."""

    time_limit: float
    walks: int
    max_tokens: int
    close_probability: float
    seed: int


@dataclass
class Bench:
    """The engines, the settings, and what the walks need to know of the vocabulary: each
    id's text, and as packed masks the ids that are tokens (not the padding bits of the last
    word) and those that contain a closing byte."""

    engines: list
    settings: Settings
    texts: list[bytes]
    num_words: int = field(init=False)
    token_words: np.ndarray = field(init=False)
    closing_words: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.num_words = (len(self.texts) + 31) // 32
        self.token_words = pack(range(len(self.texts)), self.num_words)
        self.closing_words = pack((i for i, text in enumerate(self.texts)
                                   if any(byte in text for byte in CLOSING_BYTES)),
                                  self.num_words)

    def eos_words(self, engine) -> np.ndarray:
        """The engine's end-of-sequence ids, packed."""
        return pack(engine.eos_ids, self.num_words)


def bench_schema(bench: Bench, case: Case) -> dict[str, SchemaResult]:
    """Every engine on one schema: a timed compile (first, so that no cache holds anything of
    this schema yet), the labels, then the random walks."""
    settings = bench.settings
    labelled = labelled_texts(case)
    documents = DocumentChecker(case.schema)
    seed = [settings.seed, zlib.crc32(case.source.encode())]
    results = {}
    for engine in bench.engines:
        started = time.perf_counter()
        compiled = attempt(lambda engine=engine: bm.timed_compile(engine, case.schema),
                           settings.time_limit)
        labels = judge(engine, case.schema, labelled, settings.time_limit)
        if compiled.status != "ok":
            result = SchemaResult(labels, compiled.status, compiled.reason)
        else:
            seconds, run = compiled.value
            eos_words = bench.eos_words(engine)
            walks = [walk_once(bench, run, eos_words, documents,
                               np.random.default_rng(seed + [n]))
                     for n in range(settings.walks)]
            result = SchemaResult(labels, "ok", "", seconds, walks)
        result.busy_s = time.perf_counter() - started
        results[engine.name] = result
    return results


def walk_once(bench: Bench, run: bm.Run, eos_words: np.ndarray, documents: DocumentChecker,
              rng: np.random.Generator) -> Walk:
    """One random walk under the time limit, its document validated when it finished."""
    settings = bench.settings
    outcome = attempt(lambda: random_walk(bench, run, eos_words, rng, settings.max_tokens),
                      settings.time_limit)
    if outcome.status != "ok":
        return Walk(outcome.status, reason=outcome.reason)
    walk, tokens = outcome.value
    replay = attempt(lambda: replay_masks(run, tokens), settings.time_limit)
    if replay.status == "ok":
        walk.warm_mask_ns = replay.value
    document = b"".join(bench.texts[token] for token in tokens)
    if walk.outcome == "finished":
        walk.verdict, walk.reason = documents.check(document)
    if walk.outcome in ("stuck", "rejected") or walk.verdict in ("invalid", "unchecked"):
        walk.text = document.decode("utf-8", errors="backslashreplace")
    return walk


def warm_up(bench: Bench) -> None:
    """JIT-compile and fault in each engine's code paths before anything is timed."""
    for engine in bench.engines:
        engine.checker(WARM_UP_SCHEMA)('{"a":"x"}')
        run = engine.compile(WARM_UP_SCHEMA)
        random_walk(bench, run, bench.eos_words(engine), np.random.default_rng(0), 16)


# --------------------------------------------------------------------------- the two parts
@dataclass
class SuiteCase:
    source: str
    description: str
    judgements: dict[str, Judgement]


@dataclass
class BenchCase:
    id: str
    instances: int
    results: dict[str, SchemaResult]


@dataclass
class Report:
    """Everything measured; the parts fill in as cases finish (a run cut short keeps them)."""

    engines: list[str]
    missing_engines: dict[str, str]
    suite: dict[str, list[SuiteCase]] = field(default_factory=dict)
    bench: dict[str, list[BenchCase]] = field(default_factory=dict)
    interrupted: bool = False


def run_suite(report: Report, engines: list, drafts: Sequence[str], limit: float) -> None:
    for draft in drafts:
        started = time.perf_counter()
        cases = report.suite.setdefault(draft, [])
        for case in suite_cases(draft):
            labelled = labelled_texts(case)
            cases.append(SuiteCase(case.source, case.description, {
                engine.name: judge(engine, case.schema, labelled, limit) for engine in engines
            }))
        print(f"  suite {draft}: {len(cases)} schemas, {time.perf_counter() - started:.0f} s",
              flush=True)


def run_bench(report: Report, bench: Bench, subsets: Sequence[str], every: int) -> None:
    for subset in subsets:
        started = time.perf_counter()
        cases = report.bench.setdefault(subset, [])
        for case in itertools.islice(bench_cases(subset), 0, None, every):
            cases.append(BenchCase(case.source, len(case.instances), bench_schema(bench, case)))
        print(f"  bench {subset}: {len(cases)} schemas, {time.perf_counter() - started:.0f} s",
              flush=True)


# --------------------------------------------------------------------------- tables
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   right: Sequence[int] = ()) -> str:
    """A Markdown table, padded to line up; the columns numbered in ``right`` right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(headers, *cells)]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.rjust(width) if i in right else cell.ljust(width)
                                 for i, (cell, width) in enumerate(zip(row, widths))) + " |"

    rule = "|" + "|".join("-" * (width + 1) + ":" if i in right else "-" * (width + 2)
                          for i, width in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *map(line, cells)])


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.1f}%)" if total else "0/0"


def _count(items, predicate) -> int:
    return sum(1 for item in items if predicate(item))


def suite_rows(report: Report) -> list[list[str]]:
    rows = []
    for draft, cases in report.suite.items():
        for engine in report.engines:
            judged = [case.judgements[engine] for case in cases]
            rows.append([
                draft, engine,
                _share(sum(j.right for j in judged), sum(j.total for j in judged)),
                str(sum(len(j.false_accepts) for j in judged)),
                _share(_count(judged, lambda j: j.status in ("refused", "timeout")), len(judged)),
                str(_count(judged, lambda j: j.status == "timeout")),
                str(_count(judged, lambda j: j.status == "crash")),
            ])
    return rows


SUITE_HEADERS = ("draft", "engine", "instance checks passed", "false accepts",
                 "schemas refused", "timeouts", "crashes")
BENCH_HEADERS = ("subset", "engine", "compiled", "labels right", "false accepts",
                 "walks finished", "invalid walks", "timeouts", "crashes")


def bench_row(name: str, engine: str, cases: list[BenchCase]) -> list[str]:
    results = [case.results[engine] for case in cases]
    walks = [walk for r in results for walk in r.walks]
    statuses = [r.labels.status for r in results] + [r.compile_status for r in results] \
        + [walk.outcome for walk in walks]
    return [
        name, engine,
        _share(_count(results, lambda r: r.compile_status in ("ok", "unsatisfiable")),
               len(results)),
        _share(sum(r.labels.right for r in results), sum(r.labels.total for r in results)),
        str(sum(len(r.labels.false_accepts) for r in results)),
        _share(_count(walks, lambda w: w.outcome == "finished"), len(walks)),
        str(_count(walks, lambda w: w.verdict == "invalid")),
        str(statuses.count("timeout")),
        str(statuses.count("crash")),
    ]


def bench_rows(report: Report) -> list[list[str]]:
    rows = [bench_row(subset, engine, cases)
            for subset, cases in report.bench.items() for engine in report.engines]
    everything = [case for cases in report.bench.values() for case in cases]
    rows += [bench_row("**all**", engine, everything) for engine in report.engines]
    return rows


def walk_rows(report: Report) -> list[list[str]]:
    """Every walk outcome and document verdict, per engine, over all subsets."""
    rows = []
    for engine in report.engines:
        walks = [walk for cases in report.bench.values() for case in cases
                 for walk in case.results[engine].walks]
        outcomes = [walk.outcome for walk in walks]
        rows.append([engine, str(len(walks))]
                    + [str(outcomes.count(o)) for o in WALK_OUTCOMES[1:]]
                    + [str(_count(walks, lambda w, v=v: w.verdict == v)) for v in VERDICTS]
                    + [f"{np.mean([w.tokens for w in walks]):.0f}" if walks else ""])
    return rows


WALK_OUTCOMES = ("walks", "finished", "unfinished", "stuck", "rejected", "refused", "timeout",
                 "crash")
VERDICTS = ("valid", "invalid", "unchecked")


def _percentile_ms(values_s: list[float], q: float) -> str:
    return f"{np.percentile(values_s, q) * 1e3:.1f}" if values_s else ""


def speed_rows(report: Report) -> list[list[str]]:
    rows = []
    for engine in report.engines:
        results = [case.results[engine] for cases in report.bench.values() for case in cases]
        compile_s = [r.compile_s for r in results if r.compile_s is not None]
        mask_us = np.asarray([ns for r in results for walk in r.walks for ns in walk.mask_ns],
                             dtype=np.float64) / 1e3
        warm_us = np.asarray([ns for r in results for walk in r.walks
                              for ns in walk.warm_mask_ns], dtype=np.float64) / 1e3
        rows.append([engine, str(len(compile_s))]
                    + [_percentile_ms(compile_s, q) for q in (50, 90, 99, 100)]
                    + [f"{np.percentile(mask_us, q):.0f}" if len(mask_us) else ""
                       for q in (50, 99, 100)]
                    + [f"{np.percentile(warm_us, q):.1f}" if len(warm_us) else ""
                       for q in (50, 99, 100)]
                    + [str(len(mask_us)), f"{sum(r.busy_s for r in results):.0f}"])
    return rows


def print_report(report: Report, settings: Settings) -> None:
    missing = "".join(f"\n{name} skipped: {why}" for name, why in report.missing_engines.items())
    if missing:
        print(missing.lstrip("\n"))
    if report.interrupted:
        print("\n**Interrupted: the tables cover the cases finished before the signal.**")
    if report.suite:
        print("\n### JSON Schema Test Suite (string level, formats asserted)\n")
        print(markdown_table(SUITE_HEADERS, suite_rows(report), right=(2, 3, 4, 5, 6)))
    if not report.bench:
        return
    print(f"\n### JSONSchemaBench (dev): compile, labels, random walks over {VOCABULARY} "
          f"({settings.walks} walks per schema, at most {settings.max_tokens} tokens)\n")
    print(markdown_table(BENCH_HEADERS, bench_rows(report), right=range(2, 9)))
    print("\nWalk outcomes over all subsets\n")
    print(markdown_table(("engine",) + WALK_OUTCOMES + VERDICTS + ("mean tokens",),
                         walk_rows(report), right=range(1, 13)))
    print(f"\nSpeed over {VOCABULARY}: compile = schema to a ready matcher (first mask "
          "computed), per compiled schema; mask = each walk step's mask call (first visits "
          "mostly); warm = the same masks when the walk's tokens are replayed; busy = the "
          "engine's wall time over all of this part (labels, compiles, walks)\n")
    print(markdown_table(("engine", "compiled", "compile p50 ms", "p90 ms", "p99 ms", "max ms",
                          "mask p50 us", "p99 us", "max us", "warm p50 us", "p99 us", "max us",
                          "mask steps", "busy s"),
                         speed_rows(report), right=range(1, 14)))
    print_findings(report)


def print_findings(report: Report) -> None:
    """structgen's anomalies, one per line with the schema id; the peers' are in the JSON."""
    print("\n### structgen findings\n")
    lines = []
    for draft, cases in report.suite.items():
        for case in cases:
            j = case.judgements["structgen"]
            lines += [f"- suite false accept: {draft}/{case.source} | {case.description} | {t}"
                      for t in j.false_accepts]
            if j.status in ("timeout", "crash"):
                lines.append(f"- suite {j.status}: {draft}/{case.source} | {case.description} | "
                             f"{j.reason}")
    slowest = []
    for cases in report.bench.values():
        for case in cases:
            r = case.results["structgen"]
            lines += [f"- bench false accept: {case.id} | {t[:200]}"
                      for t in r.labels.false_accepts]
            if r.labels.status in ("timeout", "crash"):
                lines.append(f"- bench labels {r.labels.status}: {case.id} | {r.labels.reason}")
            if r.compile_status in ("timeout", "crash"):
                lines.append(f"- bench compile {r.compile_status}: {case.id} | "
                             f"{r.compile_reason}")
            for walk in r.walks:
                if walk.verdict == "invalid" or walk.outcome in (
                        "stuck", "rejected", "refused", "timeout", "crash"):
                    lines.append(f"- walk {walk.outcome} {walk.verdict}: {case.id} | "
                                 f"{walk.reason[:200]} | {walk.text[:200]!r}")
            if r.compile_s is not None:
                slowest.append((r.compile_s, case.id))
    print("\n".join(lines) if lines else "no false accept, crash, timeout or invalid walk")
    if slowest:
        print("\nslowest compiles: " + ", ".join(
            f"{case_id} {seconds * 1e3:.0f} ms" for seconds, case_id in sorted(slowest)[-8:][::-1]))


# --------------------------------------------------------------------------- plots
def plot(report: Report, folder: Path) -> list[Path]:
    """A compile-time CDF per engine and per-subset compile-rate bars, one PNG each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = [folder / "json_schema_compile_cdf.png", folder / "json_schema_compile_rates.png"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for engine in report.engines:
        results = [case.results[engine] for cases in report.bench.values() for case in cases]
        times = np.sort([r.compile_s * 1e3 for r in results if r.compile_s is not None])
        if len(times):
            ax.step(times, np.arange(1, len(times) + 1) / len(results), where="post",
                    label=engine)
    ax.set_xscale("log")
    ax.set_xlabel(f"ms from the schema to a ready matcher ({VOCABULARY})")
    ax.set_ylabel("share of all schemas (plateau: compile rate)")
    ax.set_title("JSONSchemaBench: compile time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(written[0], dpi=110)
    plt.close(fig)

    subsets = list(report.bench)
    fig, ax = plt.subplots(figsize=(14, 5))
    width = 0.8 / len(report.engines)
    for i, engine in enumerate(report.engines):
        rates = [100 * _count(cases, lambda c, e=engine: c.results[e].compile_status
                              in ("ok", "unsatisfiable")) / max(len(cases), 1)
                 for cases in report.bench.values()]
        ax.bar(np.arange(len(subsets)) + i * width, rates, width, label=engine)
    ax.set_xticks(np.arange(len(subsets)) + width * (len(report.engines) - 1) / 2, subsets,
                  rotation=30, ha="right")
    ax.set_ylabel("% of schemas compiled")
    ax.set_ylim(0, 100)
    ax.set_title("JSONSchemaBench: compile rate per subset")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(written[1], dpi=110)
    plt.close(fig)
    return written


# --------------------------------------------------------------------------- output
def environment() -> dict:
    """``bench_masks``'s, plus jsonschema's version and the checkout's commit (``dirty``: the
    working tree had uncommitted changes, which the run measured)."""
    env = bm.environment()
    env["versions"]["jsonschema"] = importlib.metadata.version("jsonschema")
    env["git"] = {"commit": _git("rev-parse", "HEAD"),
                  "dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))}
    return env


def _git(*arguments: str) -> str:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "-C", str(root), *arguments], check=False,
                          capture_output=True, text=True)
    return done.stdout.strip()


def write_json(report: Report, command: str, settings: dict, path: Path) -> None:
    path.write_text(json.dumps({
        "command": command,
        "environment": environment(),
        "settings": settings,
        "interrupted": report.interrupted,
        "missing_engines": report.missing_engines,
        "suite": {draft: [asdict(case) for case in cases]
                  for draft, cases in report.suite.items()},
        "bench": {subset: [asdict(case) for case in cases]
                  for subset, cases in report.bench.items()},
    }))


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: the suite's draft 2020-12 only, every 10th schema "
                             "of JSONSchemaBench")
    parser.add_argument("--subsets", default="",
                        help="comma-separated JSONSchemaBench subsets (default: all)")
    parser.add_argument("--parts", default="suite,bench", help="suite, bench or both")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated engines (default: all that are importable)")
    parser.add_argument("--walks", type=int, default=3, help="random walks per schema")
    parser.add_argument("--max-tokens", type=int, default=256, help="bound of a walk")
    parser.add_argument("--close-probability", type=float, default=0.5,
                        help="chance that a walk step picks among the allowed tokens that "
                             "contain a quote or a closing bracket (0: uniform over all)")
    parser.add_argument("--time-limit", type=float, default=20.0,
                        help="seconds per case: labels, compile and each walk apart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for option, known in (("engines", ENGINES), ("parts", ("suite", "bench")),
                          ("subsets", bench_subsets())):
        unknown = set(filter(None, getattr(args, option).split(","))) - set(known)
        if unknown:
            parser.error(f"unknown {option}: {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    command = shlex.join(sys.orig_argv)
    print(f"$ {command}\n", flush=True)
    started = time.perf_counter()
    tokenizer = bm.load_tokenizer(VOCABULARY)
    vocab = sg.Vocabulary.from_tokenizer(tokenizer)
    engines, missing = make_engines(args.engines.split(","), tokenizer, vocab)
    settings = Settings(args.time_limit, args.walks, args.max_tokens, args.close_probability,
                        args.seed)
    bench = Bench(engines, settings, token_texts(vocab, tokenizer))
    warm_up(bench)
    gc.freeze()  # the tokenizers and vocabularies: keeps every later collection short
    report = Report([engine.name for engine in engines], missing)
    parts = args.parts.split(",")
    drafts = DRAFTS[:1] if args.quick else DRAFTS
    subsets = args.subsets.split(",") if args.subsets else bench_subsets()
    every = 10 if args.quick else 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout` still gets a report
    try:
        if "suite" in parts:
            run_suite(report, engines, drafts, args.time_limit)
        if "bench" in parts:
            run_bench(report, bench, subsets, every)
    except KeyboardInterrupt:
        report.interrupted = True
    print_report(report, settings)
    bm.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    recorded = {**asdict(settings), "quick": args.quick, "drafts": list(drafts),
                "subsets": list(subsets), "every": every, "vocabulary": VOCABULARY,
                "eos_probability": EOS_PROBABILITY, "xgrammar_options": XGRAMMAR_OPTIONS,
                "wall_s": time.perf_counter() - started}
    write_json(report, command, recorded, bm.RESULTS_DIR / "bench_json_schema.json")
    written = [] if not report.bench else plot(report, bm.RESULTS_DIR)
    print(f"\nwrote {bm.RESULTS_DIR}/: bench_json_schema.json"
          + "".join(f", {p.name}" for p in written)
          + f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
