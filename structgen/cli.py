"""The ``structgen`` command.

``structgen generate (--regex R | --grammar FILE_OR_NAME | --schema FILE_OR_JSON) PROMPT``
generates with a model (the embedded default unless ``--model``) and prints the output (under
``--schema``, the JSON document indented); ``--json`` prints it with token counts and timings
(and, under ``--schema``, the parsed document as ``"json"``). Greedy decoding drafts tokens
for speculative decoding by default (``--draft forced,lookup``: the same output in fewer
forward passes); ``--draft none`` turns that off.

``structgen check (--regex R | --grammar G | --schema S) [--text SAMPLE]`` prints the automaton size, compile and mask times,
the tokens allowed at the start, and, given a sample text, the matcher's verdict token by token.

``structgen model-path`` prints the folder of the embedded default model converted to
transformers' format, for other engines (``vllm serve "$(structgen model-path)"``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from structgen.errors import StructgenError

_FLAG_NAMES = {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE, "x": re.VERBOSE,
               "a": re.ASCII}


def _load_vocabulary(tokenizer_name: str | None):
    from structgen.vocab import Vocabulary

    if tokenizer_name is None:
        from structgen.embedded import default_tokenizer

        tokenizer = default_tokenizer()
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    return tokenizer, Vocabulary.from_tokenizer(tokenizer)


def _allowed_ids(mask: np.ndarray, size: int) -> np.ndarray:
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[:size]
    return np.flatnonzero(bits)


def _show_tokens(vocab, ids: np.ndarray, limit: int) -> str:
    shown = []
    for token_id in ids[:limit]:
        token_id = int(token_id)
        text = "<eos>" if token_id in vocab.eos_token_ids else repr(vocab.token_bytes(token_id))[1:]
        shown.append(text)
    more = f" … (+{len(ids) - limit})" if len(ids) > limit else ""
    return " ".join(shown) + more


def check(args: argparse.Namespace) -> int:
    """Compile the constraint, print its statistics, and optionally trace a sample text."""
    import structgen as sg

    constraint = _constraint(args)
    tokenizer, vocab = _load_vocabulary(args.tokenizer)
    started = time.perf_counter()
    compiled = sg.compile(constraint, vocab)
    compile_ms = (time.perf_counter() - started) * 1e3
    matcher = compiled.matcher()
    allowed = _allowed_ids(matcher.mask(), vocab.size)
    if args.regex is not None:
        print(f"constraint   regex {args.regex!r}" + (f" flags={args.flags}" if args.flags else ""))
    elif args.schema is not None:
        print(f"constraint   schema {args.schema!r:.70} (whitespace {args.whitespace})")
    else:
        print(f"constraint   grammar {args.grammar!r}")
    print(f"vocabulary   {vocab.name or 'tokenizer'}: {vocab.size} ids")
    print(f"compiled     {compile_ms:.2f} ms (first mask included); "
          f"{compiled.num_states} DFA states built so far")
    print(f"start        {len(allowed)} tokens allowed: {_show_tokens(vocab, allowed, args.show)}")
    forced = matcher.forced_bytes()
    if forced:
        print(f"forced       {forced!r}")
    if args.text is not None:
        ids = tokenizer.encode(args.text, add_special_tokens=False)
        for step, token_id in enumerate(ids):
            started = time.perf_counter()
            ok = matcher.advance(token_id)
            if not ok:
                print(f"step {step:>3}  {vocab.token_bytes(token_id)!r} REJECTED")
                return 1
            mask_us = (time.perf_counter() - started) * 1e6
            allowed = _allowed_ids(matcher.mask(), vocab.size)
            print(f"step {step:>3}  {vocab.token_bytes(token_id)!r:<14} allowed={len(allowed):<6} "
                  f"accepting={matcher.is_accepting()!s:<5} ({mask_us:.0f} µs) "
                  f"{_show_tokens(vocab, allowed, args.show)}")
        print("sample text matches in full" if matcher.is_accepting()
              else "sample text is an incomplete prefix")
    return 0


def _sampler(args: argparse.Namespace):
    """The sampler the ``--sampler``, ``--temperature`` and ``--particles`` options ask for."""
    import structgen as sg

    name, temperature = args.sampler, args.temperature
    if name is None:
        name = "sample" if temperature else "greedy"
    if name == "greedy":
        if temperature:
            raise SystemExit("structgen: --sampler greedy takes no --temperature")
        return sg.Greedy()
    if name == "sample":
        return sg.Sample(temperature=1.0 if temperature is None else temperature)
    awrs = sg.AWRS(temperature=1.0 if temperature is None else temperature)
    if name == "awrs":
        return awrs
    return sg.SMC(particles=args.particles, proposal=awrs)


_DRAFTS = ("forced", "lookup")


def _drafts(value: str, sampler) -> list:
    """The drafts ``--draft`` names (comma-separated, in the order they take turns); ``auto``:
    forced text and prompt lookup for greedy decoding, where they give the same output in fewer
    forward passes, none otherwise."""
    import structgen as sg

    if value == "auto":
        value = "forced,lookup" if isinstance(sampler, sg.Greedy) else "none"
    names = [name.strip() for name in value.split(",") if name.strip()]
    if names == ["none"]:
        return []
    unknown = [name for name in names if name not in _DRAFTS]
    if unknown or not names:
        raise SystemExit(f"structgen: --draft takes some of {', '.join(_DRAFTS)} separated by "
                         f"commas, none or auto; got {value!r}")
    return [sg.ForcedDraft() if name == "forced" else sg.PromptLookup() for name in names]


def generate(args: argparse.Namespace) -> int:
    """Generate one output for the prompt under the constraint and print it."""
    import structgen as sg

    constraint = _constraint(args)
    sampler = _sampler(args)
    drafts = _drafts(args.draft, sampler)
    if drafts and isinstance(sampler, sg.SMC):
        raise SystemExit("structgen: --draft does not work with --sampler smc")
    model = sg.load_model(args.model)
    result = sg.generate(model, args.prompt, constraint, max_tokens=args.max_tokens,
                         sampler=sampler, seed=args.seed, return_result=True,
                         draft=drafts or None, draft_tokens=args.draft_tokens)
    document = args.schema is not None and result.complete
    value = constraint.parse(result.text) if document else None
    if args.json:
        print(json.dumps({
            "text": result.text,
            **({"json": value} if document else {}),
            "finish_reason": result.finish_reason,
            "tokens": len(result.token_ids),
            "timings": result.timings,
            "statistics": result.statistics,
            **({"log_marginal_likelihood": result.log_marginal_likelihood}
               if hasattr(result, "log_marginal_likelihood") else {}),
        }, indent=2, ensure_ascii=False))
    elif document:
        print(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        print(result.text)
    if not result.complete:
        print(f"warning: stopped at --max-tokens={args.max_tokens} before the constraint was "
              "satisfied", file=sys.stderr)
        return 1
    return 0


def _constraint(args: argparse.Namespace):
    import structgen as sg

    if args.regex is not None:
        return sg.regex(args.regex, _flags(args.flags))
    if args.schema is not None:
        # Objects hold only their declared properties unless the schema says otherwise, as in
        # sg.generate_json.
        return sg.json_schema(_schema_text(args.schema), whitespace=args.whitespace,
                              extra_properties="forbid")
    return sg.grammar(args.grammar)


def _schema_text(value: str) -> str:
    """The JSON Schema text of ``--schema``: the file it names, else the value itself."""
    path = Path(value)
    if not value.lstrip().startswith(("{", "[")) and value not in ("true", "false"):
        try:
            return path.read_text(encoding="utf-8")
        except OSError as error:
            raise StructgenError(f"--schema takes a JSON Schema file or JSON text; cannot read "
                                 f"{value!r}: {error.strerror}") from error
    return value


def _add_constraint_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--regex", help="a regular expression the whole output must match")
    which.add_argument("--grammar", help="a Lark grammar: a .lark file or a ready grammar's "
                       "name (json, sql, arithmetic, csv, python_expr, chess_san, cron)")
    which.add_argument("--schema", help="a JSON Schema: a .json file or JSON text; objects "
                       "hold only their declared properties unless it says otherwise")
    parser.add_argument("--flags", default="", help="regex flags among 'imsxa'")
    parser.add_argument("--whitespace", default="flexible",
                        choices=["flexible", "compact", "pretty"],
                        help="JSON whitespace under --schema: flexible (a bounded run between "
                        "tokens, the default), compact (none) or pretty (json.dumps(indent=2))")


def _flags(letters: str) -> int:
    flags = 0
    for letter in letters or "":
        if letter not in _FLAG_NAMES:
            raise SystemExit(f"error: unknown regex flag {letter!r} (use some of 'imsxa')")
        flags |= _FLAG_NAMES[letter]
    return flags


def model_path(args: argparse.Namespace) -> int:
    from structgen.embedded import default_model_folder

    print(default_model_folder())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="structgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    generate_parser = commands.add_parser("generate", help="generate an output that satisfies "
                                          "a constraint")
    generate_parser.add_argument("prompt", help="the prompt (sent through the chat template)")
    _add_constraint_arguments(generate_parser)
    generate_parser.add_argument("--model", default=None,
                                 help="a model folder or hub id (default: the embedded "
                                      "SmolLM2-135M-Instruct)")
    generate_parser.add_argument("--max-tokens", type=int, default=256)
    generate_parser.add_argument("--sampler", choices=("greedy", "sample", "awrs", "smc"),
                                 default=None,
                                 help="greedy (default at temperature 0), sample (masked "
                                      "sampling, default at temperature > 0), awrs (adaptive "
                                      "weighted rejection sampling), smc (sequential Monte "
                                      "Carlo with AWRS proposals)")
    generate_parser.add_argument("--particles", type=int, default=8,
                                 help="SMC particles (with --sampler smc)")
    generate_parser.add_argument("--temperature", type=float, default=None,
                                 help="sampling temperature (default: 0, greedy, for greedy "
                                      "and sample; 1 for awrs and smc)")
    generate_parser.add_argument("--seed", type=int, default=None)
    generate_parser.add_argument("--draft", default="auto",
                                 help="speculative drafts, comma-separated: forced (text the "
                                      "constraint forces), lookup (spans of the prompt); none; "
                                      "or auto (the default: forced,lookup with greedy "
                                      "decoding, none otherwise). The output is the same, only "
                                      "the number of forward passes changes")
    generate_parser.add_argument("--draft-tokens", type=int, default=8,
                                 help="the most tokens drafted per step (with --draft)")
    generate_parser.add_argument("--json", action="store_true",
                                 help="print a JSON object with the text, counts and timings")
    generate_parser.set_defaults(run=generate)
    check_parser = commands.add_parser("check", help="compile a constraint and report on it")
    _add_constraint_arguments(check_parser)
    check_parser.add_argument("--tokenizer", default=None,
                              help="a tokenizer folder (default: the embedded SmolLM2 model's)")
    check_parser.add_argument("--text", default=None, help="trace this sample text token by token")
    check_parser.add_argument("--show", type=int, default=8, help="tokens to print per step")
    check_parser.set_defaults(run=check)
    path_parser = commands.add_parser(
        "model-path", help="print the folder of the embedded default model in transformers' "
        "format (converted from the GGUF file first if needed), e.g. for `vllm serve`")
    path_parser.set_defaults(run=model_path)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except StructgenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
