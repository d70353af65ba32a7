"""Lark grammars: compile time and per-step token-mask time, structgen against its peers.

The grammar counterpart of ``bench_masks.py`` (whose engine adapters, timing walk, agreement
check and table helpers it reuses). For each vocabulary and each ready grammar of
``grammars/*.lark``, every importable engine (structgen, and when installed xgrammar and
llguidance) gets the same grammar text:

* structgen: ``compile(grammar(text), vocab)``, its compile cache cleared before each timing;
* xgrammar: ``GrammarCompiler.compile_lark(text)`` (its compile cache disabled);
* llguidance: ``LLMatcher(tokenizer, LLMatcher.grammar_from_lark(text))``.

Each grammar is compiled to a ready matcher 3 times (p50 reported); two example sentences
(checked with ``lark``'s Earley parser at start-up) are walked along their canonical
tokenization, timing the mask after every token: right after a fresh compile (*first visit*)
and again (*warm*). The warm walk's allowed-token sets are compared with structgen's. An
engine that refuses a grammar is reported with its reason.

    python benchmarks/bench_grammars.py [--vocab smollm2,qwen] [--quick] [--grammars a,b]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_masks as bm  # the regex benchmark's helpers

import structgen
from structgen.errors import StructgenError
from structgen.vocab import Vocabulary

GRAMMARS_DIR = Path(__file__).resolve().parent.parent / "grammars"
ENGINES = ("structgen", "xgrammar", "llguidance")
REPEATS = 3


# --------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class GrammarWorkload:
    """A ready grammar (its text is the ``pattern`` that ``bm.measure`` compiles) and example
    sentences of it."""

    name: str
    examples: tuple[str, ...]
    quick: bool = False
    make_text: Callable[[], str] | None = None  # for a generated grammar, not a ready one

    @property
    def pattern(self) -> str:
        if self.make_text is not None:
            return self.make_text()
        return (GRAMMARS_DIR / f"{self.name}.lark").read_text()

    def check_examples(self) -> None:
        """Raise ``ValueError`` unless lark's Earley parser accepts every example."""
        import lark

        parser = lark.Lark(self.pattern, parser="earley", lexer="dynamic_complete")
        for example in self.examples:
            try:
                parser.parse(example)
            except lark.exceptions.LarkError as error:
                raise ValueError(f"grammar {self.name}: {example!r} is not a sentence: "
                                 f"{error}") from None


def large_sql_grammar() -> str:
    """``sql.lark`` grown to about 31,000 characters the way database-specific grammars grow:
    450 case-insensitive function names, 350 type names (for ``CAST``) and seven literal forms
    (hex, dollar-quoted, escape strings, typed dates and intervals, UUIDs, JSON paths). The
    names are made up, deterministically: only their number and shape matter here."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def word(i: int, length: int) -> str:
        return "".join(letters[(i * 7 + j * 13 + i // 26 + j * j) % 26] for j in range(length))

    names = sorted({f"{word(i, 4 + i % 9)}_{i}" for i in range(800)})
    functions = "\n".join(f'      | "{n}"i' for n in names[:450])
    types = "\n".join(f'      | "{n}"i' for n in names[450:])
    base = (GRAMMARS_DIR / "sql.lark").read_text()
    hooked = base.replace("literal: NUMBER |", "literal: extra_literal | ext_call | ext_cast | "
                          "NUMBER |", 1)
    return hooked + f"""
// ---------------------------------------------------------------- generated extensions
extra_literal: HEX_LIT | DOLLAR_STR | ESTRING | DATE_LIT | INTERVAL_LIT | UUID_LIT | JSON_PATH
HEX_LIT: /[xX]'([0-9a-fA-F]{{2}})*'/
DOLLAR_STR: /\\$\\$([^$]|\\$[^$])*\\$\\$/
ESTRING: /[eE]'([^'\\\\]|\\\\.)*'/
DATE_LIT: /DATE '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'/i
INTERVAL_LIT: /INTERVAL '[0-9]+ (day|hour|minute|second|month|year)s?'/i
UUID_LIT: /'[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}'::uuid/
JSON_PATH: /'\\$(\\.[a-zA-Z_][a-zA-Z0-9_]*|\\[[0-9]+\\])*'/
ext_call: EXT_FUNCTION "(" _ws (expr (_ws "," _ws expr)*)? _ws ")"
EXT_FUNCTION: "EXT_FUNCTION"i
{functions}
ext_cast: "CAST"i _ws "(" _ws expr _WS "AS"i _WS EXT_TYPE _ws ")"
EXT_TYPE: "EXT_TYPE"i
{types}
"""


WORKLOADS = (
    GrammarWorkload(
        "json",
        ('{"name": "Ada", "tags": ["x", 1.5e3, true, null], "nested": {"a": []}}',
         '[1, -2.5, "caf\\u00e9 \\"q\\"", {}]'),
        quick=True,
    ),
    GrammarWorkload("arithmetic", ("3 * (4.5 + -2)^2 / 7", "-2^-1 - (10 - 3) * 8"), quick=True),
    GrammarWorkload(
        "csv",
        ('name,age,city\nAda,36,"London, UK"\nBob,,"He said ""hi"""\n', "a,b\r\n1,2"),
        quick=True,
    ),
    GrammarWorkload("cron", ("*/15 0-6,22 1 JAN-MAR mon-fri", "30 4 1,15 * 5")),
    GrammarWorkload("chess_san", ("Nbxd7+", "exd8=Q#")),
    GrammarWorkload(
        "sql",
        (("SELECT name, COUNT(*) AS n FROM users u LEFT JOIN orders o ON u.id = o.user_id "
          "WHERE u.age >= 18 GROUP BY name ORDER BY n DESC LIMIT 10;"),
         "WITH t AS (SELECT 1 AS x) SELECT x FROM t WHERE x IN (1, 2, 3)"),
    ),
    GrammarWorkload(
        "sql_large",
        ("SELECT EXT_FUNCTION(x'ab', DATE '2020-01-01') FROM t WHERE a = $$it's$$",
         "SELECT CAST(a AS ext_type) FROM t"),
        make_text=large_sql_grammar,
    ),
    GrammarWorkload(
        "python_expr",
        ("sorted(items, key=lambda x: x[1], reverse=True)[:10]",
         "{'a': 1, 'b': [2, 3]} if not done else None"),
    ),
)


# --------------------------------------------------------------------------- engines
class StructgenGrammarEngine(bm.StructgenEngine):
    """structgen: ``compile(grammar(text), vocab)``."""

    def compile(self, text: str) -> bm.Run:
        try:
            return bm.StructgenRun(structgen.compile(structgen.grammar(text), self.vocab))
        except StructgenError as error:
            raise bm.Refused(f"{type(error).__name__}: {error}") from None


class XGrammarGrammarEngine(bm.XGrammarEngine):
    """xgrammar: ``GrammarCompiler.compile_lark`` (xgrammar 0.2.x reads Lark directly)."""

    def compile(self, text: str) -> bm.Run:
        try:
            compiled = self.compiler.compile_lark(text)
        except RuntimeError as error:
            raise bm.Refused(bm._reason(error)) from None
        return bm.XGrammarRun(self.xgr, compiled, self.info.vocab_size)


class LLGuidanceGrammarEngine(bm.LLGuidanceEngine):
    """llguidance: ``LLMatcher`` over ``LLMatcher.grammar_from_lark``; errors via ``is_error``."""

    def compile(self, text: str) -> bm.Run:
        grammar = self.llg.LLMatcher.grammar_from_lark(text)
        matcher = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise bm.Refused(bm._reason(matcher.get_error()))
        return bm.LLGuidanceRun(self.llg, matcher, self.tokenizer.vocab_size)


PEER_ENGINES = {"xgrammar": XGrammarGrammarEngine, "llguidance": LLGuidanceGrammarEngine}
WARM_UP_GRAMMAR = 'start: WORD ("," WORD)*\nWORD: /[a-z]+/\n'


# --------------------------------------------------------------------------- one vocabulary
def bench_vocabulary(vocab_name: str, workloads, repeats: int) -> bm.VocabularyReport:
    tokenizer = bm.load_tokenizer(vocab_name)
    vocab = Vocabulary.from_tokenizer(tokenizer)
    engines: list = [StructgenGrammarEngine(vocab)]
    missing: dict[str, str] = {}
    for name, factory in PEER_ENGINES.items():
        try:
            engines.append(factory(tokenizer))
        except ImportError as error:
            missing[name] = f"not importable: {error}"
    report = bm.VocabularyReport(vocab_name, vocab.size, [], missing)
    for engine in engines:  # JIT, lazy imports, static tables: nothing of this is timed
        bm.walk(engine.compile(WARM_UP_GRAMMAR), [], record=False)
    label = bm.token_labeler(vocab, tokenizer)
    for workload in workloads:
        token_lists = [tokenizer.encode(text, add_special_tokens=False)
                       for text in workload.examples]
        per_engine = report.results[workload.name] = {}
        for engine in engines:
            print(f"  {vocab_name:8} {workload.name:12} {engine.name}", flush=True)
            per_engine[engine.name] = bm.measure(engine, workload, token_lists, repeats)
        report.disagreements += bm.check_agreement(vocab_name, vocab, label, engines, workload,
                                                   per_engine, token_lists)
    return report


# --------------------------------------------------------------------------- reporting
HEADERS = ("grammar", "engine", "compile p50 ms", "first-visit mask us med/p99/max",
           "warm mask us med/p99", "request ms", "states", "mask cache KiB", "vs structgen")


def _warm(values_ns: list[int]) -> str:
    if not values_ns:
        return ""
    median, p99, _ = bm._percentiles(values_ns)
    return " / ".join(f"{v:.1f}" if v < 100 else f"{v:.0f}" for v in (median, p99))


def _request_ms(m: bm.Measurement) -> str:
    """A whole request's grammar work: the median compile, then every first-visit mask along
    the example that costs most."""
    if not m.cold_walk_s:
        return ""
    return f"{(np.median(m.compile_s) + max(m.cold_walk_s)) * 1e3:.1f}"


def result_rows(report: bm.VocabularyReport) -> list[list[str]]:
    rows = []
    for workload, per_engine in report.results.items():
        for engine, m in per_engine.items():
            if m.status != "ok":
                rows.append([workload, engine, m.status, "", "", "", "", "", m.reason[:70]])
                continue
            rows.append([
                workload, engine, f"{np.median(m.compile_s) * 1e3:.2f}", bm._micros(m.cold_ns),
                _warm(m.warm_ns), _request_ms(m),
                "" if m.num_states is None else str(m.num_states),
                "" if m.cache_bytes is None else f"{m.cache_bytes / 1024:.0f}",
                bm._agreement_cell(report, workload, engine),
            ])
    return rows


def print_report(reports: list[bm.VocabularyReport]) -> None:
    for r in reports:
        missing = "".join(f"; {name} {why}" for name, why in r.missing_engines.items())
        print(f"\n{r.name}: {r.size} token ids{missing}")
        print(bm.format_table(HEADERS, result_rows(r), right=(2, 3, 4, 5, 6)))
    disagreements = [d for r in reports for d in r.disagreements]
    print("\nAgreement with structgen: steps (example:step) where the allowed sets differ")
    if not disagreements:
        print("none")
        return
    print(bm.format_table(("vocab", "grammar", "peer", "steps", "first at text",
                           "only structgen allows", "only peer allows", "note"),
                          bm.disagreement_rows(disagreements)))


def plot(reports: list[bm.VocabularyReport], path: Path) -> None:
    """First-visit mask times per grammar and engine (box plots, log scale), one row per
    vocabulary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(reports), 1, figsize=(14, 4.5 * len(reports)), squeeze=False)
    width = 0.8 / len(ENGINES)
    for ax, report in zip(axes[:, 0], reports):
        grammars = list(report.results)
        for i, engine in enumerate(ENGINES):
            data, positions = [], []
            for g, grammar in enumerate(grammars):
                m = report.results[grammar].get(engine)
                if m is not None and m.status == "ok" and m.cold_ns:
                    data.append(np.asarray(m.cold_ns) / 1e3)
                    positions.append(g + i * width)
            if data:
                boxes = ax.boxplot(data, positions=positions, widths=width * 0.9,
                                   whis=(1, 99), patch_artist=True, manage_ticks=False)
                for box in boxes["boxes"]:
                    box.set_facecolor(f"C{i}")
                ax.plot([], [], color=f"C{i}", linewidth=8, label=engine)
        ax.set_xticks(np.arange(len(grammars)) + width * (len(ENGINES) - 1) / 2, grammars)
        ax.set_yscale("log")
        ax.set_ylabel("us per mask (whiskers: p1-p99)")
        ax.set_title(f"first-visit mask time per step ({report.name}); "
                     "missing box: engine refused the grammar")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", default=None,
                        help="comma-separated vocabularies: smollm2, qwen "
                             "(default: both, or smollm2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: json, arithmetic and csv on smollm2")
    parser.add_argument("--grammars", default="",
                        help="comma-separated grammar names (default: all, or the quick set)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.grammars:
        wanted = args.grammars.split(",")
        unknown = set(wanted) - {w.name for w in WORKLOADS}
        if unknown:
            raise SystemExit(f"unknown grammars: {', '.join(sorted(unknown))}")
        workloads = [w for w in WORKLOADS if w.name in wanted]
    else:
        workloads = [w for w in WORKLOADS if w.quick or not args.quick]
    vocabs = (args.vocab or ("smollm2" if args.quick else "smollm2,qwen")).split(",")
    for workload in workloads:
        workload.check_examples()
    reports = [bench_vocabulary(name, workloads, REPEATS) for name in vocabs]
    print_report(reports)
    bm.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    settings = {"repeats": REPEATS, "quick": args.quick,
                "grammars": {w.name: list(w.examples) for w in workloads}}
    bm.write_json(reports, settings, bm.RESULTS_DIR / "bench_grammars.json")
    plot(reports, bm.RESULTS_DIR / "grammar_mask_times.png")
    print(f"\nwrote {bm.RESULTS_DIR}/: bench_grammars.json, grammar_mask_times.png")


if __name__ == "__main__":
    main()
