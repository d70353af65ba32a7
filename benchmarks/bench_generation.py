"""End-to-end decoding speed on the embedded default model: constrained against unconstrained.

Same prompts (a row of ``OWN_PROMPTS`` aside), same run, greedy decoding with a fixed token
budget: tokens per second of the decode phase, the share of time spent on masks, and
`model.generate` as the baseline loop.
Run: `python benchmarks/bench_generation.py [--tokens 64] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import structgen as sg

PROMPTS = [
    "Write a short paragraph about the history of Paris.",
    "Describe a cat in two sentences.",
    "Explain what a compiler does.",
]

CONSTRAINTS = {
    "unconstrained": None,
    "regex (prose)": sg.regex(r"[A-Za-z0-9 ,.;:'()\n-]{1,2000}"),
    "grammar (json)": sg.grammar("json"),
    "grammar (sql)": sg.grammar("sql"),  # keyword exclusions: lookaheads past a lexeme
}
# Prompts a row runs on instead of PROMPTS: asked for SQL, the model writes long identifiers,
# where the budget check's shortest completions meet the keyword exclusions.
OWN_PROMPTS = {"grammar (sql)": ["Write a sql example.", "Write a SQL query over a users table.",
                                 "Give an SQL statement that joins two tables."]}


def _hf_generate_rate(model, prompt: str, tokens: int) -> float:
    ids = torch.tensor([model.encode_prompt(prompt)])
    started = time.perf_counter()
    model.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = sg.load_model()
    sg.generate(model, PROMPTS[0], max_tokens=4)  # warm up
    rows = []
    for name, constraint in CONSTRAINTS.items():
        rates, mask_shares, counts = [], [], []
        for _ in range(args.repeats):
            for prompt in OWN_PROMPTS.get(name, PROMPTS):
                if constraint is not None:
                    sg.compile(constraint, model.vocab)  # compile outside the timing
                result = sg.generate(model, prompt, constraint, max_tokens=args.tokens,
                                     return_result=True)
                n = len(result.token_ids)
                total = result.timings["prefill_s"] + result.timings["decode_s"]
                rates.append(n / total)
                mask_shares.append(result.timings["mask_s"] / total)
                counts.append(n)
        rows.append((name, statistics.median(rates), statistics.median(mask_shares),
                     statistics.median(counts)))
    baseline = statistics.median(
        _hf_generate_rate(model, p, args.tokens) for p in PROMPTS for _ in range(args.repeats))
    unconstrained = rows[0][1]
    print(f"{'loop':<26}{'tokens/s':>10}{'vs unconstrained':>18}{'mask share':>12}{'tokens':>8}")
    print(f"{'model.generate':<26}{baseline:>10.1f}{baseline / unconstrained:>18.3f}{'-':>12}"
          f"{args.tokens:>8}")
    for name, rate, share, count in rows:
        print(f"{'structgen ' + name:<26}{rate:>10.1f}{rate / unconstrained:>18.3f}"
              f"{share:>11.1%}{count:>8.0f}")


if __name__ == "__main__":
    main()
