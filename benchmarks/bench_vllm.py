"""structgen inside vLLM against vLLM's own structured-output backends, on one batch.

The first ``--requests`` extraction texts of ``bench_extraction.py`` (field-list prompts, chat
template, greedy, at most ``--max-tokens`` tokens) are sent to vLLM's CPU build as one batch:

* ``free``: no constraint;
* ``structgen``: :class:`structgen.integrations.vllm.StructgenLogitsProcessor`, each request's
  schema in its ``extra_args`` (undeclared properties forbidden, flexible whitespace), outputs
  finishing within ``max_tokens``;
* ``structgen-cut``: the same with ``finish_within_max_tokens=False`` (outputs cut by
  ``max_tokens``, as vLLM's backends cut them);
* ``xgrammar`` and ``guidance``: vLLM's ``structured_outputs`` with that backend, given the
  same schema with ``additionalProperties: false`` on every object, so that all three enforce
  the same language.

One engine per backend (the backend is an engine setting; each engine also loads the structgen
processor, which leaves requests without a structgen constraint alone); the first engine also
runs ``free``, ``structgen`` and ``structgen-cut``. Per variant: wall time
of the batch, generated tokens per second, mean latency per request (the batch's wall time, as
vLLM returns all outputs together), valid outputs (``jsonschema``), and the share of outputs cut
by ``max_tokens``; for structgen also its grammar work per engine step (state updates, masks
and budget checks, from the processor's ``STRUCTGEN_VLLM_TIMINGS`` file; vLLM does not report
its backends' share). Each engine runs the batch once to warm up (compiling constraints), then
``--repeats`` timed times.

Run in the vLLM environment: ``.venv-vllm/bin/python benchmarks/bench_vllm.py`` (``./setup.sh
vllm`` first; the default model comes from ``.venv/bin/structgen model-path``). Writes
``benchmarks/results/bench_vllm.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import jsonschema

RESULTS = Path(__file__).resolve().parent / "results"


def closed(schema):
    """``schema`` with ``additionalProperties: false`` on every object that does not set it."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def _grammar_work():
    path = os.environ["STRUCTGEN_VLLM_TIMINGS"]
    return json.loads(Path(path).read_text()) if os.path.exists(path) else {}


def run_variant(llm, name, conversations, params, schemas, repeats):
    llm.chat(conversations, params, use_tqdm=False)  # warm-up: compiles every constraint
    walls, outputs = [], None
    before = _grammar_work()
    for _ in range(repeats):
        started = time.perf_counter()
        outputs = llm.chat(conversations, params, use_tqdm=False)
        walls.append(time.perf_counter() - started)
    after = _grammar_work()
    steps = after.get("steps", 0) - before.get("steps", 0)
    work = sum(after.get(k, 0.0) - before.get(k, 0.0) for k in ("update_s", "mask_s", "budget_s"))
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    valid = cut = 0
    for output, schema in zip(outputs, schemas):
        completion = output.outputs[0]
        cut += completion.finish_reason == "length"
        if schema is None:
            continue
        try:
            value = json.loads(completion.text)
            valid += jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            ).is_valid(value)
        except ValueError:
            pass
    wall = statistics.median(walls)
    return {"variant": name, "wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall,
            "grammar_ms_per_step": 1000 * work / steps if steps else None,
            "valid": valid, "requests": len(outputs), "cut": cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backends", default="xgrammar,guidance")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    RESULTS.mkdir(parents=True, exist_ok=True)
    os.environ["STRUCTGEN_VLLM_TIMINGS"] = str(RESULTS / "bench_vllm_grammar_work.json")
    Path(os.environ["STRUCTGEN_VLLM_TIMINGS"]).unlink(missing_ok=True)

    import bench_extraction as extraction
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from structgen.embedded import default_model_dir
    from structgen.integrations.vllm import StructgenLogitsProcessor, sampling_params

    cases = (extraction.CASES * 2)[: args.requests]
    schemas = [extraction.json_schema_of(case.schema) for case in cases]
    conversations = [[{"role": "user", "content": extraction.prompt_for(case, "fields", schema)}]
                     for case, schema in zip(cases, schemas)]
    rows = []
    for index, backend in enumerate(b for b in args.backends.split(",") if b):
        llm = LLM(model=str(default_model_dir()), max_model_len=2048, enforce_eager=True,
                  seed=0, logits_processors=[StructgenLogitsProcessor],
                  structured_outputs_config={"backend": backend})
        if index == 0:
            free = [SamplingParams(max_tokens=args.max_tokens, temperature=0.0)] * len(cases)
            rows.append(run_variant(llm, "free", conversations, free, [None] * len(cases),
                                    args.repeats))
            ours = [sampling_params(json_schema=schema, max_tokens=args.max_tokens,
                                    temperature=0.0) for schema in schemas]
            rows.append(run_variant(llm, "structgen", conversations, ours, schemas,
                                    args.repeats))
            cut = [sampling_params(json_schema=schema, max_tokens=args.max_tokens,
                                   temperature=0.0, finish_within_max_tokens=False)
                   for schema in schemas]
            rows.append(run_variant(llm, "structgen-cut", conversations, cut, schemas,
                                    args.repeats))
        theirs = [SamplingParams(max_tokens=args.max_tokens, temperature=0.0,
                                 structured_outputs=StructuredOutputsParams(json=closed(schema)))
                  for schema in schemas]
        rows.append(run_variant(llm, backend, conversations, theirs, schemas, args.repeats))
        del llm
        for row in rows:
            print(json.dumps(row), flush=True)
    print()
    print(f"{'variant':<14}{'wall s':>9}{'tokens':>8}{'tok/s':>8}{'valid':>8}{'cut':>6}"
          f"{'grammar ms/step':>17}")
    for row in rows:
        valid = "-" if row["variant"] == "free" else f"{row['valid']}/{row['requests']}"
        work = row["grammar_ms_per_step"]
        print(f"{row['variant']:<14}{row['wall_s']:>9.2f}{row['tokens']:>8}"
              f"{row['tokens_per_s']:>8.1f}{valid:>8}{row['cut']:>6}"
              f"{'-' if work is None else f'{work:.3f}':>17}")
    (RESULTS / "bench_vllm.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
