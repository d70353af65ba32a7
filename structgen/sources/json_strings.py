"""JSON string literals: terms over decoded string values become terms over JSON text.

JSON Schema's string keywords (``pattern``, ``minLength``/``maxLength``, ``enum``, ``format``)
constrain the *decoded* value, but a model writes JSON text: ``"``, the value with every code
point spelled in one of its JSON encodings, ``"``. :func:`json_string_term` maps a term over
decoded code points (``structgen.grammar.regular``) to the term of exactly those literals; the
other functions build the decoded terms the schema compiler intersects before encoding.

Every code point ``c`` has a set of spellings (*tokens*), all of which are accepted:

* ``c`` itself, unless it is ``"``, ``\\`` or a control character U+0000..U+001F (raw code points
  beyond the BMP included);
* ``\\" \\\\ \\/ \\b \\f \\n \\r \\t`` for the eight characters that have a short escape;
* ``\\uXXXX`` with hex digits in either case, for every BMP code point;
* ``\\uD8XX\\uDCXX`` (a surrogate pair, hex digits in either case) above U+FFFF.

A lone surrogate escape (``"\\ud800"``) decodes to no Unicode scalar value: it is never
produced, like lone surrogates everywhere in structgen (the alphabet is the scalar values).

Why lookarounds stay exact, with these facts about the encoded content (the text between the
quotes):

1. Tokens form a prefix code: a raw token is one character other than ``\\``; an escape starts
   with ``\\`` and none is a prefix of another (the first half of a pair is no token by itself).
   So content text splits into tokens in one way only, from its start or from any token
   boundary.
2. Content never holds a raw ``"``: a ``"`` in it is the second character of a ``\\"`` token.
3. The closing ``"`` begins no token.

A decoded lookahead ``(?=B)`` at a token boundary becomes ``(?=E(B))``: ``E(B)`` matches only
whole tokens (1), which cannot run past the closing quote (3), so it matches a prefix of the
remaining text exactly when ``B`` matches a prefix of the remaining value. In particular the
end-of-value anchor ``(?!.)`` becomes "no token follows".

A decoded lookbehind ``(?<=B)`` becomes ``(?<="E(.)*E(B))``. The suffix cannot simply be
``E(B)``: text read backwards splits ambiguously (the value backslash, ``n`` is spelled
``\\\\n``, which ends with ``\\n``, a newline's spelling; the value ``\\u005c`` spelled raw
ends like an escaped backslash), so the body re-reads the content from a quote. Assuming (4)
the character before the opening quote, if any, is not a backslash (true in every JSON text,
where backslashes occur only inside strings, so also when the string term is embedded in a
larger terminal such as ``"key": "value"``), the body's quote is the opening quote or the
quote of a ``\\"`` token (2) (a quote before the opening one would make ``E(.)*`` read the
opening quote as the end of a ``\\"`` token, against 4); either way a token boundary follows,
and by (1) the rest decodes to the value's text since that boundary: the body matches iff some
suffix of the decoded value before this point is in ``B``. Negation carries over, and the
start-of-value anchor ``(?<!.)`` becomes "no token between the opening quote and here". A
lookaround inside a lookbehind body is refused (the automaton stage cannot track it either).
"""

from __future__ import annotations

import functools

from structgen.errors import UnsupportedKeyword
from structgen.grammar.charset import ANY_CHAR, CharSet
from structgen.grammar.regular import (
    NOTHING,
    Alt,
    Chars,
    Look,
    Repeat,
    Seq,
    Term,
    literal,
    subterms,
)
from structgen.sources.regex import parse_regex

__all__ = [
    "ANY_STRING",
    "END",
    "START",
    "encoded_chars",
    "intersect",
    "json_string_literal_term",
    "json_string_term",
    "pattern_search_term",
    "string_length_term",
]

ANY_STRING = Repeat(Chars(ANY_CHAR), 0, None)
END = Look(Chars(ANY_CHAR), ahead=True, negate=True)
START = Look(Chars(ANY_CHAR), ahead=False, negate=True)

_QUOTE = literal('"')
_BACKSLASH = Chars(CharSet.chars("\\"))
_U = Chars(CharSet.chars("u"))
_NOT_RAW = CharSet.of([(0, 0x1F)]) | CharSet.chars('"\\')
_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r",
                  "\t": "t"}  # fmt: skip
_BMP = CharSet.of([(0, 0xFFFF)])
_ASTRAL = CharSet.of([(0x10000, 0x10FFFF)])
_HIGH_SURROGATE, _LOW_SURROGATE = 0xD800, 0xDC00

Ranges = tuple[tuple[int, int], ...]


def _alt(items: list[Term]) -> Term:
    return items[0] if len(items) == 1 else Alt(tuple(items))


@functools.cache
def _hex_digits(nibbles: frozenset[int]) -> Chars:
    """One hex digit whose value is in ``nibbles``, in either case."""
    chars = "".join(f"{v:x}{v:X}" for v in nibbles)
    return Chars(CharSet.chars(chars))


def _split(ranges: Ranges, span: int) -> dict[int, list[tuple[int, int]]]:
    """``ranges`` cut at multiples of ``span``: leading digit -> the ranges of the rest."""
    parts: dict[int, list[tuple[int, int]]] = {}
    for lo, hi in ranges:
        for digit in range(lo // span, hi // span + 1):
            base = digit * span
            parts.setdefault(digit, []).append(
                (max(lo, base) - base, min(hi, base + span - 1) - base)
            )
    return parts


@functools.lru_cache(maxsize=65536)
def _hex_term(ranges: Ranges, digits: int) -> Term:
    """``digits`` hex digits (either case) spelling a value in ``ranges``.

    A trie over the digits: leading digits whose remainders are the same set share one branch,
    and equal remainders are one cached term, so a full block (``0000-0FFF``) costs one node.
    """
    if digits == 1:
        return _hex_digits(frozenset(v for lo, hi in ranges for v in range(lo, hi + 1)))
    by_rest: dict[Ranges, set[int]] = {}
    for digit, rest in _split(ranges, 16 ** (digits - 1)).items():
        by_rest.setdefault(tuple(rest), set()).add(digit)
    branches = [
        Seq((_hex_digits(frozenset(lead)), _hex_term(rest, digits - 1)))
        for rest, lead in sorted(by_rest.items(), key=lambda item: min(item[1]))
    ]
    return _alt(branches)


def _pair_terms(astral: CharSet) -> list[Term]:
    """``XXXX\\uXXXX`` (after the first ``\\u``) for the code points of ``astral``: high
    surrogates whose low halves form the same set share one branch."""
    lows: dict[int, list[tuple[int, int]]] = {}
    for lo, hi in astral.ranges:
        for high, rest in _split(((lo - 0x10000, hi - 0x10000),), 0x400).items():
            lows.setdefault(high, []).extend(rest)
    by_low: dict[Ranges, list[tuple[int, int]]] = {}
    for high, rest in sorted(lows.items()):
        highs = by_low.setdefault(tuple(rest), [])
        value = _HIGH_SURROGATE + high
        if highs and highs[-1][1] == value - 1:
            highs[-1] = (highs[-1][0], value)
        else:
            highs.append((value, value))
    return [
        Seq(
            (
                _hex_term(tuple(highs), 4),
                _BACKSLASH,
                _U,
                _hex_term(tuple((_LOW_SURROGATE + a, _LOW_SURROGATE + b) for a, b in rest), 4),
            )
        )
        for rest, highs in by_low.items()
    ]


@functools.lru_cache(maxsize=4096)
def encoded_chars(charset: CharSet) -> Term:
    """Every token (module docstring) of every code point in ``charset``; ``NOTHING`` if empty.

    Raw characters | ``\\`` (short escape letters | ``u`` (BMP hex | surrogate pairs)).
    """
    branches: list[Term] = []
    raw = charset - _NOT_RAW
    if raw:
        branches.append(Chars(raw))
    escapes: list[Term] = []
    letters = "".join(letter for c, letter in _SHORT_ESCAPES.items() if ord(c) in charset)
    if letters:
        escapes.append(Chars(CharSet.chars(letters)))
    hex_forms: list[Term] = []
    bmp = charset & _BMP
    if bmp:
        hex_forms.append(_hex_term(bmp.ranges, 4))
    astral = charset & _ASTRAL
    if astral:
        hex_forms.extend(_pair_terms(astral))
    if hex_forms:
        escapes.append(Seq((_U, _alt(hex_forms))))
    if escapes:
        branches.append(Seq((_BACKSLASH, _alt(escapes))))
    return _alt(branches) if branches else NOTHING


def _has_look(term: Term) -> bool:
    return any(isinstance(node, Look) for node in subterms(term))


def _encode(content: Term, keyword: str) -> Term:
    """The term over content text (between the quotes) for a term over decoded code points."""
    memo: dict[int, Term] = {}
    any_prefix = Seq((_QUOTE, Repeat(encoded_chars(ANY_CHAR), 0, None)))

    def visit(node: Term) -> Term:
        done = memo.get(id(node))
        if done is not None:
            return done
        if isinstance(node, Chars):
            result = encoded_chars(node.charset)
        elif isinstance(node, Seq):
            result = Seq(tuple(visit(x) for x in node.items))
        elif isinstance(node, Alt):
            result = Alt(tuple(visit(x) for x in node.items))
        elif isinstance(node, Repeat):
            result = Repeat(visit(node.item), node.min, node.max)
        elif isinstance(node, Look) and node.ahead:
            result = Look(visit(node.body), True, node.negate)
        elif isinstance(node, Look):
            if _has_look(node.body):
                raise UnsupportedKeyword(
                    keyword,
                    f"{keyword}: a lookaround or anchor inside a lookbehind cannot be enforced",
                )
            result = Look(Seq((any_prefix, visit(node.body))), False, node.negate)
        else:
            raise TypeError(f"not a regular term: {node!r}")
        memo[id(node)] = result
        return result

    return visit(content)


def json_string_term(content: Term, *, keyword: str = "pattern") -> Term:
    """The JSON string literals (quotes included) whose decoded value ``content`` matches in full.

    Args:
        content: a term over decoded code points; lookaheads and lookbehinds (anchors included)
            refer to the string value alone, as they do for a JSON Schema ``pattern``.
        keyword: the schema keyword to name in errors.

    Returns:
        A term over JSON text accepting every encoding (module docstring) of every matching
        value, and nothing else, wherever it is embedded, provided the character before its
        opening quote is not a backslash (always so in JSON).

    Raises:
        UnsupportedKeyword: a lookbehind whose body holds a lookaround.
    """
    return Seq((_QUOTE, _encode(content, keyword), _QUOTE))


@functools.lru_cache(maxsize=1 << 13)  # property names recur in every variant of their object
def json_string_literal_term(value: str) -> Term:
    """Every JSON encoding of the string ``value`` (for ``enum``/``const``, and property names),
    quotes included.

    A ``value`` holding a lone surrogate (possible in a Python ``str``) is no sequence of
    Unicode scalar values: the result is ``NOTHING``.
    """
    tokens = [encoded_chars(CharSet.of([(ord(c), ord(c))])) for c in value]
    if NOTHING in tokens:
        return NOTHING
    return Seq((_QUOTE, *tokens, _QUOTE))


def string_length_term(min_length: int, max_length: int | None) -> Term:
    """Decoded strings of ``min_length`` to ``max_length`` code points (None: no maximum).

    One counted repetition, never unrolled; ``NOTHING`` when the bounds leave no length.
    """
    if min_length < 0 or (max_length is not None and max_length < 0):
        raise ValueError("string lengths are non-negative")
    if max_length is not None and max_length < min_length:
        return NOTHING
    return Repeat(Chars(ANY_CHAR), min_length, max_length)


def intersect(*terms: Term) -> Term:
    """A term whose full-match language is the intersection of those of ``terms``.

    All but the last are checked by lookaheads ``(?=t$)`` at the start, so ``END`` (and every
    anchor) keeps meaning the end of the text the result is matched against: use it on decoded
    values (then encode), or on whole texts, not on parts of a longer text.
    """
    if not terms:
        raise ValueError("intersect needs at least one term")
    if NOTHING in terms:
        return NOTHING
    kept = [t for t in dict.fromkeys(terms) if t != ANY_STRING]
    if not kept:
        return ANY_STRING
    checks = tuple(Look(Seq((t, END)), ahead=True, negate=False) for t in kept[:-1])
    return Seq((*checks, kept[-1])) if checks else kept[-1]


def _search_branch(branch: Term) -> Term:
    """``.*branch.*``, where a leading ``^`` or trailing ``$`` replaces the ``.*`` beside it."""
    items = list(branch.items) if type(branch) is Seq else [branch]
    anchored_start = bool(items) and items[0] == START
    if anchored_start:
        items.pop(0)
    anchored_end = bool(items) and items[-1] == END
    if anchored_end:
        items.pop()
    if not anchored_start:
        items.insert(0, ANY_STRING)
    if not anchored_end:
        items.append(ANY_STRING)
    return items[0] if len(items) == 1 else Seq(tuple(items))


def pattern_search_term(pattern: str) -> Term:
    """Decoded strings in which the ECMA-262 ``pattern`` matches somewhere (JSON Schema's
    unanchored search).

    Raises:
        RegexError: ``pattern`` is not a valid ECMA-262 regular expression.
        UnsupportedRegex: a valid pattern using a construct structgen cannot enforce (see
            ``structgen.sources.regex``: backreferences, case-insensitive matching, ...); the
            caller decides whether to refuse the schema or to drop the keyword.
    """
    term = parse_regex(pattern, dialect="ecma")
    branches = term.items if type(term) is Alt and term.items else (term,)
    return _alt([_search_branch(b) for b in branches])
