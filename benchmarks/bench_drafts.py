"""Speculative drafting on the default model: wall time and forward passes per extraction object.

The forty extraction texts of ``bench_extraction.py`` (field-list prompts), greedy, one text
per call, every variant on the same prompts in the same run:

* ``free``: unconstrained ``sg.generate`` (the model keeps talking after its JSON, up to
  ``--max-tokens``);
* ``masked``: ``sg.generate_json`` without drafts;
* ``masked + forced``, ``+ lookup``, ``+ forced, lookup``: with ``sg.ForcedDraft()``,
  ``sg.PromptLookup()`` and both chained;
* ``masked + early exit (L layers)``: ``sg.DraftModel.truncated(model, L)`` (``--draft-layers``;
  0 leaves it out), the target's own first layers as the draft model;
* ``xgrammar``: transformers' ``model.generate`` with xgrammar's logits processor
  (``xgrammar.contrib.hf.LogitsProcessor``) on the same prompt ids, when xgrammar is installed.

The JSON constraints are compiled before timing (xgrammar's too), so the times are per-object
generation: prefill, decode, masks and verification. ``passes/object`` counts target forward
passes (prefill included); ``tok/pass`` is generated tokens over passes. ``same`` counts
outputs identical to ``masked`` (the exactness claim of greedy drafting); ``near ties`` counts
greedy choices whose top-2 logit gap was under 1e-4, the only places a drafted run may differ.

Run: ``python benchmarks/bench_drafts.py [--limit N] [--whitespace flexible|compact|pretty]
[--draft-layers L]``. Writes ``benchmarks/results/bench_drafts.json`` and ``drafts.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bench_extraction as extraction

import structgen as sg

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass
class Outcome:
    text: str
    valid: bool  # set by the caller, which knows the schema
    tokens: int
    seconds: float
    passes: int | None = None
    drafted: int = 0
    accepted: int = 0
    near_ties: int = 0


@dataclass
class Run:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self, reference: Run | None) -> dict[str, float]:
        n = len(self.outcomes)
        tokens = sum(o.tokens for o in self.outcomes)
        seconds = sum(o.seconds for o in self.outcomes)
        passes = [o.passes for o in self.outcomes if o.passes is not None]
        same = (sum(a.text == b.text for a, b in zip(self.outcomes, reference.outcomes))
                if reference is not None else None)
        drafted = sum(o.drafted for o in self.outcomes)
        return {
            "s_per_object": seconds / n,
            "s_per_object_median": statistics.median(o.seconds for o in self.outcomes),
            "tokens_per_object": tokens / n,
            "tokens_per_s": tokens / seconds,
            "passes_per_object": sum(passes) / len(passes) if passes else float("nan"),
            "tokens_per_pass": tokens / sum(passes) if passes else float("nan"),
            "acceptance": sum(o.accepted for o in self.outcomes) / drafted if drafted else 0.0,
            "valid": sum(o.valid for o in self.outcomes) / n,
            "same_as_masked": same,
            "near_ties": sum(o.near_ties for o in self.outcomes),
        }


# ------------------------------------------------------------------------------------ variants
def structgen_call(model, constraint, draft, max_tokens: int):
    """A function of a prompt that runs ``sg.generate`` (JSON when ``constraint`` is given)."""
    def call(prompt: str) -> Outcome:
        started = time.perf_counter()
        result = sg.generate(model, prompt, constraint, max_tokens=max_tokens, draft=draft,
                             return_result=True)
        seconds = time.perf_counter() - started
        stats = result.statistics
        return Outcome(result.text, False, len(result.token_ids), seconds, int(stats["forward_passes"]),
                       int(stats.get("drafted", 0)), int(stats.get("accepted", 0)),
                       int(stats.get("near_ties", 0)))
    return call


def xgrammar_call(model, schema: dict, whitespace: str, max_tokens: int):
    """A function of a prompt that runs ``model.generate`` with xgrammar's logits processor
    (xgrammar must be installed)."""
    import torch
    import xgrammar
    from xgrammar.contrib.hf import LogitsProcessor

    hf = model.model
    info = xgrammar.TokenizerInfo.from_huggingface(model.tokenizer,
                                                   vocab_size=hf.config.vocab_size)
    compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)
    style = {"flexible": {}, "compact": {"any_whitespace": False, "separators": (",", ":")},
             "pretty": {"any_whitespace": False, "indent": 2}}[whitespace]
    compiled = compiler.compile_json_schema(json.dumps(schema), strict_mode=True, **style)
    eos = list(model.vocab.eos_token_ids)

    def call(prompt: str) -> Outcome:
        ids = torch.tensor([model.encode_prompt(prompt)])
        started = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids),
                              logits_processor=[LogitsProcessor(compiled)], do_sample=False,
                              max_new_tokens=max_tokens, eos_token_id=eos,
                              pad_token_id=model.pad_token_id)
        seconds = time.perf_counter() - started
        new = [t for t in out[0, ids.shape[1]:].tolist() if t not in eos]
        text = model.tokenizer.decode(new)
        return Outcome(text, False, len(new), seconds)
    return call


def variants(model, args) -> list[tuple[str, object]]:
    """(name, function of a case returning a call) for every variant of this run."""
    def json_constraint(case):
        return sg.json_schema(case.schema, whitespace=args.whitespace, extra_properties="forbid")

    drafts = [("masked", None), ("masked + forced", sg.ForcedDraft()),
              ("masked + lookup", sg.PromptLookup()),
              ("masked + forced, lookup", [sg.ForcedDraft(), sg.PromptLookup()])]
    if args.draft_layers:
        drafts.append((f"masked + early exit ({args.draft_layers} layers)",
                       sg.DraftModel.truncated(model, args.draft_layers)))
    out = [("free", lambda case: structgen_call(model, None, None, args.max_tokens))]
    for name, draft in drafts:
        out.append((name, lambda case, draft=draft: structgen_call(
            model, json_constraint(case), draft, args.max_tokens)))
    if importlib.util.find_spec("xgrammar") is not None:
        out.append(("xgrammar (model.generate)", lambda case: xgrammar_call(
            model, extraction.json_schema_of(case.schema), args.whitespace, args.max_tokens)))
    return out


# ------------------------------------------------------------------------------------ running
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="run only the first N texts")
    parser.add_argument("--whitespace", default="flexible",
                        choices=["flexible", "compact", "pretty"])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--draft-layers", type=int, default=0,
                        help="layers of the early-exit draft model (0: leave it out)")
    parser.add_argument("--output", default="drafts")
    args = parser.parse_args()
    cases = extraction.CASES[: args.limit]
    model = sg.load_model()
    sg.generate(model, "Hello", max_tokens=4)  # warm up
    calls = {name: [make(case) for case in cases] for name, make in variants(model, args)}
    prompts = [extraction.prompt_for(case, "fields", extraction.json_schema_of(case.schema))
               for case in cases]
    # One untimed masked pass first: compiles every constraint and visits the states the
    # outputs pass through, so no variant pays first-visit mask work the others do not.
    for prompt, call in zip(prompts, calls["masked"]):
        call(prompt)
    runs = {name: Run(name) for name in calls}
    # Interleaved (case by case, every variant) so that a slow spell of the machine hits all.
    for index, (case, prompt) in enumerate(zip(cases, prompts)):
        for name, case_calls in calls.items():
            outcome = case_calls[index](prompt)
            outcome.valid = _valid(case, outcome.text)
            runs[name].outcomes.append(outcome)
        print(f"[{index + 1}/{len(cases)}] {case.what}: " + ", ".join(
            f"{name} {runs[name].outcomes[-1].seconds:.2f} s" for name in calls), flush=True)
    reference = runs["masked"]
    summaries = {name: run.summary(reference) for name, run in runs.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"bench_{args.output}.json").write_text(json.dumps({
        "settings": vars(args), "cases": len(cases), "summaries": summaries,
        "outcomes": {name: [asdict(o) for o in run.outcomes] for name, run in runs.items()},
    }, indent=1))
    print()
    print(_table(summaries, len(cases)))
    _plot(summaries, RESULTS / f"{args.output}.png", len(cases), args.whitespace)


def _valid(case, text: str) -> bool:
    """Whether the first JSON object of ``text`` is valid (free text may hold more after it)."""
    import jsonschema

    value = extraction.first_json_object(text)
    if value is extraction._MISSING:
        return False
    schema = extraction.json_schema_of(case.schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).is_valid(value)


def _table(summaries: dict[str, dict], cases: int) -> str:
    masked = summaries["masked"]["s_per_object"]
    xgr = summaries.get("xgrammar (model.generate)", {}).get("s_per_object")
    header = (f"{'variant':<36}{'s/object':>9}{'vs masked':>10}{'vs xgr':>8}{'tok/object':>11}"
              f"{'passes':>8}{'tok/pass':>9}{'accept':>8}{'valid':>7}{'same':>7}{'ties':>6}")
    lines = [header, "-" * len(header)]
    for name, s in summaries.items():
        same = "-" if s["same_as_masked"] is None or name in ("free", "masked") else (
            f"{s['same_as_masked']}/{cases}")
        lines.append(
            f"{name:<36}{s['s_per_object']:>9.2f}{masked / s['s_per_object']:>9.2f}x"
            + (f"{xgr / s['s_per_object']:>7.2f}x" if xgr else f"{'-':>8}")
            + f"{s['tokens_per_object']:>11.1f}"
            + (f"{s['passes_per_object']:>8.1f}{s['tokens_per_pass']:>9.2f}"
               if s["passes_per_object"] == s["passes_per_object"] else f"{'-':>8}{'-':>9}")
            + f"{s['acceptance']:>8.0%}{s['valid']:>7.0%}{same:>7}{s['near_ties']:>6}")
    return "\n".join(lines)


def _plot(summaries: dict[str, dict], path: Path, cases: int, whitespace: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    names = list(summaries)
    fig, (wall, passes) = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 2))
    wall.barh(names, [summaries[n]["s_per_object"] for n in names], color="tab:blue")
    wall.set_xlabel("seconds per object (mean)")
    wall.invert_yaxis()
    passes.barh(names, [summaries[n]["passes_per_object"] for n in names], color="tab:gray")
    passes.set_yticks(range(len(names)), [""] * len(names))
    passes.invert_yaxis()
    passes.set_xlabel("target forward passes per object")
    fig.suptitle(f"Speculative drafting, SmolLM2-135M-Instruct, greedy, {cases} extraction "
                 f"texts, {whitespace} whitespace")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
