"""Samplers beyond masking on the default model and on toy problems: AWRS against full masks,
SMC against masking.

Three parts, all in one run:

* ``awrs``: JSON extraction (the first ``--cases`` texts of ``bench_extraction.py``, field-list
  prompts, ``sg.generate_json``) with masked sampling ``Sample()`` against ``AWRS()`` (both at
  temperature 1, same seeds) and ``Greedy()`` against ``AWRS(temperature=0)``. Per sampler:
  constraint checks per token (AWRS's ``allowed`` calls; a full mask is one vocabulary-wide
  pass), rejections and fallbacks per token, constraint work per token (the loop's ``mask_s``:
  masks, or checks), tokens/s over the calls (an output cut at 512 tokens counts its tokens
  and time) and the valid rate. A warm-up call per sampler runs first, so that compile and
  first-visit work are not counted.
* ``arithmetic``: a task where masking's local choices go wrong: "write the equation" prompts
  under ``A + B = C``; greedy, masked sampling, SMC with 8 particles, and SMC with 8 particles
  and a potential that rules out a partial equation as soon as its result's digits cannot be
  the sum (evaluated at every token). Accuracy (the equation holds and uses the prompt's
  numbers) and wall time per prompt.
* ``toys``: the two toy problems of ``tests/test_awrs_smc.py`` where masking is far from the
  global constrained distribution; total variation of SMC's outputs to the global distribution
  (enumerated) as the number of particles grows, for the AWRS and Sample proposals.

* ``vocab``: constraint work per token against vocabulary size, SmolLM2 (49,152) and Qwen
  (151,646). No offline model has the Qwen vocabulary, so the next-token distributions are
  synthetic: 0.9 on the canonical next token of a gold extraction document (pretty JSON) and
  0.1 spread over 64 random tokens. Along that document (teacher forced), per token: AWRS's
  checks and the wall time of its ``select`` on one row against ``Sample().select`` (the full
  mask, applied, then a draw) and against the mask alone (``mask()`` plus applying it), on the
  first pass (states visited for the first time) and a second pass (warm caches).

Run: ``python benchmarks/bench_samplers.py [--cases 12] [--toy-runs 2000] [--parts ...]``.
Writes
``benchmarks/results/bench_samplers.json`` and ``samplers.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import time
from pathlib import Path

import bench_extraction as extraction
import jsonschema

import structgen as sg
from structgen.testing import ToyModel

RESULTS = Path(__file__).resolve().parent / "results"
MAX_TOKENS = 512
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# ------------------------------------------------------------------------------------ AWRS
def run_awrs(model, cases: int) -> list[dict]:
    samplers = [("Sample()", sg.Sample()), ("AWRS()", sg.AWRS()),
                ("Greedy()", sg.Greedy()), ("AWRS(temperature=0)", sg.AWRS(temperature=0))]
    chosen = extraction.CASES[:cases]
    rows = []
    for name, sampler in samplers:
        totals = {"tokens": 0, "checks": 0, "rejections": 0, "fallbacks": 0, "mask_s": 0.0,
                  "seconds": 0.0, "valid": 0, "incomplete": 0}
        for index, case in enumerate(chosen):
            schema = extraction.json_schema_of(case.schema)
            prompt = extraction.prompt_for(case, "fields", schema)
            if index == 0:  # warm-up: compile and first-visit masks of this schema
                sg.generate_json(model, prompt, case.schema, sampler=sampler, seed=index)
            started = time.perf_counter()
            try:
                result = sg.generate_json(model, prompt, case.schema, sampler=sampler,
                                          seed=index, max_tokens=MAX_TOKENS, return_result=True)
            except sg.IncompleteOutput:  # cut at max_tokens: those tokens were generated
                totals["seconds"] += time.perf_counter() - started
                totals["tokens"] += MAX_TOKENS
                totals["incomplete"] += 1
                continue
            totals["seconds"] += time.perf_counter() - started
            stats = result.statistics
            totals["tokens"] += stats["tokens"] + (result.finish_reason == "eos")
            for key in ("checks", "rejections", "fallbacks"):
                totals[key] += stats.get(key, 0)
            totals["mask_s"] += result.timings["mask_s"]
            totals["valid"] += jsonschema.Draft202012Validator(schema).is_valid(
                json.loads(result.text))
        steps = max(totals["tokens"], 1)
        rows.append({
            "sampler": name, "cases": len(chosen), "valid": totals["valid"],
            "incomplete": totals["incomplete"],
            "checks_per_token": totals["checks"] / steps if "AWRS" in name else None,
            "rejections_per_token": totals["rejections"] / steps if "AWRS" in name else None,
            "fallbacks_per_token": totals["fallbacks"] / steps if "AWRS" in name else None,
            "constraint_ms_per_token": 1e3 * totals["mask_s"] / steps,
            "tokens_per_s": totals["tokens"] / totals["seconds"],
        })
        print(_row(rows[-1]), flush=True)
    return rows


def _row(row: dict) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)
    return (f"{row['sampler']:<22} valid {row['valid']:>2}/{row['cases']:<3} cut "
            f"{row['incomplete']}  checks/tok "
            f"{fmt(row['checks_per_token'], '5.2f')}  rejections/tok "
            f"{fmt(row['rejections_per_token'], '5.2f')}  fallbacks/tok "
            f"{fmt(row['fallbacks_per_token'], '5.3f')}  constraint "
            f"{row['constraint_ms_per_token']:6.3f} ms/tok  {row['tokens_per_s']:5.1f} tok/s")


# ------------------------------------------------------------------------------ arithmetic
EQUATION = r"[1-9][0-9]? \+ [1-9][0-9]? = [0-9]{1,3}"
PAIRS = [(27, 15), (48, 37), (13, 9), (56, 29), (34, 58), (19, 23), (65, 18), (41, 39),
         (72, 19), (25, 47), (38, 44), (59, 33)]


def sum_is_possible(text: str) -> float:
    """A potential: 0 while the equation can still be right, -inf once the result's digits
    cannot be the sum of the two numbers."""
    match = re.fullmatch(r"(\d+) \+ (\d+) = (\d*)", text)
    if match is None or not match.group(3):
        return 0.0
    total = str(int(match.group(1)) + int(match.group(2)))
    return 0.0 if total.startswith(match.group(3)) else -math.inf


def run_arithmetic(model) -> list[dict]:
    samplers = [("Greedy()", sg.Greedy()), ("Sample()", sg.Sample()),
                ("SMC(8)", sg.SMC(particles=8)),
                ("SMC(8, potential)", sg.SMC(particles=8, potential=sum_is_possible))]
    rows = []
    for name, sampler in samplers:
        right, incomplete, seconds = 0, 0, 0.0
        sg.generate(model, "What is 1 + 1?", sg.regex(EQUATION), sampler=sampler, seed=0,
                    max_tokens=16)  # warm-up
        for index, (a, b) in enumerate(PAIRS):
            prompt = f"What is {a} + {b}? Write the sum as an equation."
            started = time.perf_counter()
            try:
                text = sg.generate(model, prompt, sg.regex(EQUATION), sampler=sampler,
                                   seed=index, max_tokens=16)
            except sg.IncompleteOutput:  # every particle ruled out: no answer
                incomplete += 1
                continue
            finally:
                seconds += time.perf_counter() - started
            left, result = text.split(" = ")
            numbers = sorted(int(n) for n in left.split(" + "))
            right += numbers == sorted((a, b)) and int(result) == a + b
        rows.append({"sampler": name, "prompts": len(PAIRS), "right": right,
                     "no_output": incomplete, "seconds_per_prompt": seconds / len(PAIRS)})
        print(f"{name:<20} right {right:>2}/{len(PAIRS)}  no output {incomplete:>2}  "
              f"{seconds / len(PAIRS):5.2f} s/prompt", flush=True)
    return rows


# ------------------------------------------------------------------------------------ toys
def run_toys(runs: int) -> list[dict]:
    from tests.test_awrs_smc import TOYS, _output_distance

    rows = []
    for name, (next_probs, pattern, max_tokens) in TOYS.items():
        model = ToyModel([b"a", b"b"], functools.lru_cache(maxsize=None)(next_probs))
        masked, _ = _output_distance(model, pattern, max_tokens, sg.Sample(), runs, seed=0)
        for proposal_name, proposal in (("AWRS", sg.AWRS()), ("Sample", sg.Sample())):
            for particles in (1, 4, 8, 32):
                distance, noise = _output_distance(
                    model, pattern, max_tokens, sg.SMC(particles=particles, proposal=proposal),
                    runs, seed=0)
                rows.append({"toy": name, "proposal": proposal_name, "particles": particles,
                             "tv": distance, "noise": noise, "masking_tv": masked})
                print(f"{name:<18} {proposal_name:<7} N={particles:<3} TV {distance:.3f} "
                      f"(noise {noise:.3f}; masking {masked:.3f})", flush=True)
    return rows


# ------------------------------------------------------------------- vocabulary size
def run_vocab(cases: int) -> list[dict]:
    import numpy as np
    import torch

    from structgen.decoding.loop import RowConstraints, text_mask
    from structgen.kernels.torch_masks import apply_token_bitmask
    from structgen.testing import tokenizers

    rows = []
    for name, load in (("smollm2", tokenizers.smollm2_tokenizer),
                       ("qwen", tokenizers.qwen_tokenizer)):
        tokenizer = load()
        vocab = sg.Vocabulary.from_tokenizer(tokenizer)
        rng = np.random.default_rng(0)
        free = text_mask(vocab)
        totals = {"first": [0, 0.0, 0.0, 0.0, 0], "warm": [0, 0.0, 0.0, 0.0, 0]}
        for case in extraction.CASES[:cases]:
            document = json.dumps(case.gold, indent=2, ensure_ascii=False)
            ids = tokenizer.encode(document, add_special_tokens=False)
            compiled = sg.compile(sg.json_schema(extraction.json_schema_of(case.schema),
                                                 whitespace="pretty"), vocab)
            for phase in ("first", "warm"):
                matcher = compiled.matcher()
                for token in ids + [vocab.eos_token_ids[0]]:
                    probs = np.zeros(vocab.size)
                    probs[rng.choice(vocab.size, 64)] = 0.1 / 64
                    probs[token] += 0.9
                    logprobs = torch.from_numpy(np.log(probs + 1e-12)).float().view(1, -1)
                    started = time.perf_counter()
                    selection = sg.AWRS().select(logprobs, RowConstraints([matcher], free),
                                                 torch.Generator().manual_seed(0))
                    awrs_s = time.perf_counter() - started
                    started = time.perf_counter()
                    sg.Sample().select(logprobs, RowConstraints([matcher], free),
                                       torch.Generator().manual_seed(0))
                    sample_s = time.perf_counter() - started
                    started = time.perf_counter()
                    apply_token_bitmask(logprobs.clone(), matcher.mask()[None, :])
                    mask_s = time.perf_counter() - started
                    total = totals[phase]
                    total[0] += selection.counts["checks"][0]
                    total[1] += awrs_s
                    total[2] += sample_s
                    total[3] += mask_s
                    total[4] += 1
                    if not matcher.advance(token):
                        break
        for phase, (checks, awrs_s, sample_s, mask_s, steps) in totals.items():
            rows.append({"vocabulary": name, "size": vocab.size, "pass": phase,
                         "checks_per_token": checks / steps,
                         "awrs_us_per_token": 1e6 * awrs_s / steps,
                         "sample_us_per_token": 1e6 * sample_s / steps,
                         "mask_us_per_token": 1e6 * mask_s / steps})
            print(f"{name:<8} {vocab.size:>7} {phase:<5} checks/tok {checks / steps:5.2f}  "
                  f"AWRS {1e6 * awrs_s / steps:7.1f} us/tok  Sample (full mask) "
                  f"{1e6 * sample_s / steps:7.1f} us/tok  of which mask "
                  f"{1e6 * mask_s / steps:7.1f} us/tok", flush=True)
    return rows


def plot(toys: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in sorted({(r["toy"], r["proposal"]) for r in toys}):
        points = [r for r in toys if (r["toy"], r["proposal"]) == key]
        ax.plot([r["particles"] for r in points], [r["tv"] for r in points], marker="o",
                label=f"{key[0]}, {key[1]}")
    for toy in sorted({r["toy"] for r in toys}):
        masked = next(r["masking_tv"] for r in toys if r["toy"] == toy)
        ax.axhline(masked, linestyle=":", color="grey")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("SMC particles")
    ax.set_ylabel("total variation to the global distribution")
    ax.set_title("SMC approaches the global constrained distribution\n(dotted: masking)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--toy-runs", type=int, default=2000)
    parser.add_argument("--parts", default="awrs,arithmetic,toys",
                        help="comma-separated parts to run (the JSON keeps the others')")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    path = RESULTS / "bench_samplers.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    model = sg.load_model() if parts & {"awrs", "arithmetic"} else None
    if "awrs" in parts:
        out["awrs"] = run_awrs(model, args.cases)
    if "arithmetic" in parts:
        out["arithmetic"] = run_arithmetic(model)
    if "toys" in parts:
        out["toys"] = run_toys(args.toy_runs)
    if "vocab" in parts:
        out["vocab"] = run_vocab(args.cases)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    if "toys" in out:
        plot(out["toys"], RESULTS / "samplers.png")


if __name__ == "__main__":
    main()
