"""The ``structgen`` command: compile a constraint against a tokenizer and report on it.

``structgen check --regex R [--text SAMPLE]`` prints the automaton size, compile and mask times,
the tokens allowed at the start, and, given a sample text, the matcher's verdict token by token.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

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

    flags = 0
    for letter in args.flags or "":
        flags |= _FLAG_NAMES[letter]
    constraint = sg.regex(args.regex, flags)
    tokenizer, vocab = _load_vocabulary(args.tokenizer)
    started = time.perf_counter()
    compiled = sg.compile(constraint, vocab)
    compile_ms = (time.perf_counter() - started) * 1e3
    matcher = compiled.matcher()
    allowed = _allowed_ids(matcher.mask(), vocab.size)
    print(f"constraint   regex {args.regex!r}" + (f" flags={args.flags}" if flags else ""))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="structgen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="compile a constraint and report on it")
    check_parser.add_argument("--regex", required=True, help="the regular expression")
    check_parser.add_argument("--flags", default="", help="regex flags among 'imsxa'")
    check_parser.add_argument("--tokenizer", default=None,
                              help="a tokenizer folder (default: the embedded SmolLM2 model's)")
    check_parser.add_argument("--text", default=None, help="trace this sample text token by token")
    check_parser.add_argument("--show", type=int, default=8, help="tokens to print per step")
    args = parser.parse_args(argv)
    try:
        return check(args)
    except StructgenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
