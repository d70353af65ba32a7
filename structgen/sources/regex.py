"""Regex front end: a Python ``re`` pattern becomes a regular term (``structgen.grammar.regular``).

``parse_regex(pattern, flags)`` reads the syntax of Python's ``re`` with its own recursive-descent
parser (groups are kept on an explicit stack, so nesting depth never reaches Python's recursion
limit). The term's language is the set of strings ``s`` with ``re.fullmatch(pattern, s, flags)``
under Python 3.11 Unicode semantics, with these deliberate differences, each of which yields a
*subset* of Python's language (every output of a constraint still matches under ``re``):

* ``\\d \\w \\s`` stand for ASCII ``[0-9]``, ``[A-Za-z0-9_]`` and ``[ \\t\\n\\r\\f\\v]``, while
  ``\\D \\W \\S`` are the exact complements of Python's Unicode classes (``str.isdecimal``,
  ``str.isalnum() or '_'``, ``str.isspace``). Where a class item sits in a negative position (inside
  ``[^...]``, on the right of ``--``, inside a negative lookaround) its over-approximation is used
  instead (Unicode ``\\d``, ASCII-complement ``\\D``, ...), so the result stays a subset. With
  ``re.ASCII`` every class is exact. On ASCII strings the only visible effect is that ``\\s`` does
  not match the separators ``\\x1c``-``\\x1f``, which Python's Unicode ``\\s`` accepts.
  With ``exact_classes=True`` (Lark grammars) all six are Python's Unicode classes.
* Lone surrogates (``\\ud800``) match nothing: the alphabet is the Unicode scalar values.

Case-insensitive matching reproduces CPython's compiler exactly, quirks included: simple case
mappings plus ``re``'s table of extra equivalences (derived here from ``str.lower``/``str.upper``),
class membership tested on the lowercased character, and a multi-item class (or an alternation
that CPython folds into one) that names an uppercase non-BMP letter not matching it at all.

Extensions beyond ``re`` (Python rejects these, so there is no Python language to stay under):

* ``\\p{..}``/``\\P{..}``/``\\pL``: general categories and their groups (short, long or
  ``gc=``/``General_Category=`` names, ``^`` negation), ``Any``, ``ASCII``, ``Assigned``, exact via
  ``unicodedata``. ``IGNORECASE`` does not widen them (PCRE2's rule). Scripts and binary
  properties raise :class:`UnsupportedRegex`: ``unicodedata`` cannot list them exactly.
* Set operations inside character classes, with the ``regex`` module's V1 meaning: nested classes
  ``[[a-z][0-9]]`` (union), ``&&``, ``--``, ``||``, ``~~``; implicit union binds tightest, then
  ``--``, ``&&``, ``~~``, ``||``. Only a class that Python flags with a FutureWarning ("possible
  nested set", "possible set difference/intersection/...") is read this way, so every class that
  ``re`` reads silently keeps ``re``'s meaning. In such a class ``[`` always opens a nested class, a
  dangling operator is an error, and POSIX classes ``[[:alpha:]]`` raise :class:`UnsupportedRegex`.
* ``(?<name>...)`` named groups, ``\\u{1F600}`` escapes, lookbehinds of any width.

Constructs whose language is not what their syntax suggests, or is not regular, raise
:class:`UnsupportedRegex` naming the construct and its position: possessive quantifiers of more
than one character and atomic groups around more than such a repetition (``[a-z]*+`` and
``(?>[a-z]*)`` are read exactly: the run is never given back), backreferences, conditionals,
recursion, the TEMPLATE flag. Every pattern ``re.compile``
rejects is rejected with :class:`RegexError`, at the position ``re`` reports (except that ``re``
reports a lone trailing backslash before anything else, and a malformed ``(?<name>`` is ours to
describe). Groups nest at most 256 deep. Anchors, ``\\b`` and lookarounds become ``Look`` terms;
``\\B`` also requires a non-empty string, as in Python 3.11.

The ECMA-262 dialect (``dialect="ecma"``), for JSON Schema's ``pattern`` and
``patternProperties``, reads ECMAScript syntax with the ``u`` flag (ES2025, so lookbehinds, named
groups and ``(?ms-ms:...)`` modifiers included) with ECMAScript's meanings, exactly:

* ``^``/``$`` are the start/end of the input only (no final-newline allowance); with MULTILINE
  also after/before a line terminator (``\\n \\r \\u2028 \\u2029``). ``.`` is any code point
  but a line terminator (any at all with DOTALL).
* ``\\d \\w`` are ``[0-9]`` and ``[A-Za-z0-9_]``, ``\\s`` is WhiteSpace and LineTerminator
  (``\\t \\n \\v \\f \\r``, space, ``\\u00a0 \\u1680 \\u2000-\\u200a \\u2028 \\u2029 \\u202f
  \\u205f \\u3000 \\ufeff``); ``\\D \\W \\S`` their complements; ``\\b``/``\\B`` use the ASCII word
  set (``\\B`` matches inside the empty string).
* Escapes: ``\\f \\n \\r \\t \\v \\0 \\cX \\xHH \\uHHHH \\u{H...}`` (a ``\\uHHHH\\uHHHH`` surrogate
  pair is one code point, a lone surrogate matches nothing), and a backslash before a syntax
  character or ``/`` (and ``-`` in a class). Any other escape (``\\a``, ``\\A``, ``\\Z``, ``\\e``,
  ``\\-`` outside a class, an octal ``\\1`` in a class...) is a syntax error, as are Python-only
  forms: ``(?P<n>..)``, ``(?P=n)``, ``(?#..)``, ``(?i)``-style global flags, ``{,n}``, a ``{``,
  ``}`` or ``]`` that is not part of a quantifier or class, quantified assertions.
* Classes: ``[]`` matches nothing, ``[^]`` anything; ``[`` inside a class is a literal; a range
  with a class escape as an end is an error.
* ``\\p{..}``/``\\P{..}``: names and values are matched exactly as ECMA-262 lists them (no loose
  matching, braces required): general categories (bare, ``gc=`` or ``General_Category=``) and the
  binary properties ``Any``, ``ASCII``, ``ASCII_Hex_Digit``, ``Assigned``; scripts and the other
  binary properties raise :class:`UnsupportedRegex`, unknown names :class:`RegexError`.
  Categories come from the running Python's ``unicodedata``, which may trail the JavaScript
  engine's Unicode version.
* Refused as :class:`UnsupportedRegex` (only once the whole pattern is known to be valid):
  backreferences ``\\1`` and ``\\k<name>``, case-insensitive matching (the IGNORECASE flag or an
  ``(?i:...)`` modifier), unsupported properties. Group names use Python's identifier tables for
  ID_Start/ID_Continue; a name may repeat only in different alternatives (ES2025).
"""

from __future__ import annotations

import array
import bisect
import functools
import sys
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from structgen.automata.byte_dfa import LazyByteDFA
from structgen.automata.derivatives import TermAlgebra
from structgen.errors import LimitExceeded, RegexError, UnsupportedRegex
from structgen.grammar.cfg import term_nullable
from structgen.grammar.charset import ANY_CHAR, EMPTY_SET, MAX_CODE_POINT, NEWLINE, CharSet
from structgen.grammar.regular import (
    EPSILON,
    Alt,
    Chars,
    LazyRepeat,
    Look,
    Repeat,
    Seq,
    Term,
    concat,
    first_matches,
    subterms,
)

__all__ = ["parse_regex"]

# The flag values of Python's ``re`` module (``re.RegexFlag``).
_TEMPLATE = 1
_IGNORECASE = 2
_LOCALE = 4
_MULTILINE = 8
_DOTALL = 16
_UNICODE = 32
_VERBOSE = 64
_DEBUG = 128
_ASCII = 256
_KNOWN_FLAGS = (
    _TEMPLATE | _IGNORECASE | _LOCALE | _MULTILINE | _DOTALL | _UNICODE | _VERBOSE | _DEBUG | _ASCII
)
_INLINE_FLAGS = {
    "i": _IGNORECASE,
    "L": _LOCALE,
    "m": _MULTILINE,
    "s": _DOTALL,
    "x": _VERBOSE,
    "a": _ASCII,
    "t": _TEMPLATE,
    "u": _UNICODE,
}
_TYPE_FLAGS = _ASCII | _LOCALE | _UNICODE
_EXACT_CLASSES = 1 << 30  # not an ``re`` flag: ``parse_regex(..., exact_classes=True)``
_KEEP_LAZY = 1 << 29  # nor this one: ``parse_regex(..., first_match=True)``
_GLOBAL_FLAGS = _DEBUG | _TEMPLATE

_MAX_REPEAT = 4294967295  # Python's MAXREPEAT: larger repetition counts are an error
_MAX_NESTING = 256  # groups deeper than this are refused: later stages recurse over terms
_MAX_CLASS_NESTING = 64
_BMP_MAX = 0xFFFF

_DIGITS = frozenset("0123456789")
_OCTDIGITS = frozenset("01234567")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WHITESPACE = frozenset(" \t\n\r\v\f")
_SIMPLE_ESCAPES = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}

_ASCII_DIGIT = CharSet.chars("0123456789")
_ASCII_WORD = CharSet.of([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
_ASCII_SPACE = CharSet.chars(" \t\n\r\f\v")
_ASCII_ALL = CharSet.of([(0, 0x7F)])

# ---------------------------------------------------------------------------------------------
# Unicode tables, computed once on first use with C-speed passes over every code point.


@functools.cache
def _all_code_points() -> str:
    """Every code point 0..0x10FFFF (surrogates included) as one string, for ``map`` passes."""
    typecode = "I" if array.array("I").itemsize == 4 else "L"
    codes = array.array(typecode, range(MAX_CODE_POINT + 1)).tobytes()
    return codes.decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be", "surrogatepass")


def _charset_from_mask(mask: bytes) -> CharSet:
    """The code points whose byte in ``mask`` (one per code point) is non-zero."""
    ranges = []
    start = mask.find(1)
    while start >= 0:
        end = mask.find(0, start)
        if end < 0:
            ranges.append((start, len(mask) - 1))
            break
        ranges.append((start, end - 1))
        start = mask.find(1, end)
    return CharSet.of(ranges)


@functools.cache
def _unicode_decimal() -> CharSet:
    """Python's Unicode ``\\d``: ``str.isdecimal``."""
    return _charset_from_mask(bytes(map(str.isdecimal, _all_code_points())))


@functools.cache
def _unicode_word() -> CharSet:
    """Python's Unicode ``\\w``: ``str.isalnum`` or underscore."""
    return _charset_from_mask(bytes(map(str.isalnum, _all_code_points()))) | CharSet.chars("_")


@functools.cache
def _unicode_space() -> CharSet:
    """Python's Unicode ``\\s``: ``str.isspace``."""
    return _charset_from_mask(bytes(map(str.isspace, _all_code_points())))


_CATEGORY_GROUPS = {
    "L": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "LC": ("Lu", "Ll", "Lt"),
    "M": ("Mn", "Mc", "Me"),
    "N": ("Nd", "Nl", "No"),
    "P": ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),
    "S": ("Sm", "Sc", "Sk", "So"),
    "Z": ("Zs", "Zl", "Zp"),
    "C": ("Cc", "Cf", "Cs", "Co", "Cn"),
}
_CATEGORIES = tuple(c for group in "LMNPSZC" for c in _CATEGORY_GROUPS[group])


@functools.cache
def _category_sets() -> dict[str, CharSet]:
    """Each two-letter general category as a set, from one ``unicodedata.category`` pass."""
    code = {name: i for i, name in enumerate(_CATEGORIES)}
    data = bytes(map(code.__getitem__, map(unicodedata.category, _all_code_points())))
    sets = {}
    for name, i in code.items():
        table = bytes(1 if b == i else 0 for b in range(256))
        sets[name] = _charset_from_mask(data.translate(table))
    return sets


class _Folding:
    """The case mappings CPython's ``re`` uses for IGNORECASE, as sparse tables.

    ``lower``/``upper`` hold the simple case mappings where they move a code point (CPython's
    ``_PyUnicode_ToLowercase`` is the first character of ``str.lower()``); ``fixes`` maps a
    lowercase letter to the other lowercase letters with the same uppercase (``re._casefix``).
    """

    __slots__ = ("cased", "fixes", "lower", "lower_inverse", "lower_moved", "upper", "upper_moved")

    def __init__(self, lower: dict[int, int], upper: dict[int, int], fixes, cased) -> None:
        self.lower = lower
        self.lower_moved = CharSet.of((c, c) for c in lower)
        inverse: dict[int, list[int]] = defaultdict(list)
        for c, lo in lower.items():
            inverse[lo].append(c)
        self.lower_inverse = {k: tuple(v) for k, v in inverse.items()}
        self.upper = upper
        self.upper_moved = CharSet.of((c, c) for c in upper)
        self.fixes = fixes
        self.cased = cased

    def preimage_of(self, targets) -> CharSet:
        """The code points whose lowercase is one of ``targets``."""
        points = []
        for t in targets:
            if t not in self.lower:
                points.append(t)
            points.extend(self.lower_inverse.get(t, ()))
        return CharSet.of((c, c) for c in points)

    def literal(self, cp: int) -> CharSet:
        """What a literal ``cp`` matches: its lowercase, or a listed equivalent, lowercased."""
        if cp not in self.cased:
            return CharSet.of([(cp, cp)])
        lo = self.lower.get(cp, cp)
        return self.preimage_of((lo, *self.fixes.get(lo, ())))

    def charset(self, bmp: CharSet, tail_literals: list[int], tail_ranges) -> CharSet:
        """What a class with these literal/range items matches (CPython's ``_optimize_charset``).

        BMP items are lowercased into a bitmap, with their extra equivalents; items beyond the BMP
        are kept as written (a literal) or matched with their uppercase too (a range). A character
        matches when its lowercase is in the result.
        """
        moved = bmp & self.lower_moved
        images = [self.lower[c] for lo, hi in moved.ranges for c in range(lo, hi + 1)]
        x = (bmp - self.lower_moved) | CharSet.of((c, c) for c in images)
        contains = _membership(x)
        x |= CharSet.of((k, k) for key, ks in self.fixes.items() if contains(key) for k in ks)
        x |= CharSet.of((c, c) for c in tail_literals)
        for lo, hi in tail_ranges:
            r = CharSet.of([(lo, hi)])
            inside = _membership(r)
            x |= r | CharSet.of((c, c) for c, u in self.upper.items() if inside(u))
        contains = _membership(x)
        return (x - self.lower_moved) | CharSet.of(
            (c, c) for c, lo in self.lower.items() if contains(lo)
        )


def _membership(charset: CharSet):
    """A fast membership test for ``charset`` (binary search over its ranges)."""
    ranges = charset.ranges
    starts = [lo for lo, _ in ranges]

    def contains(cp: int) -> bool:
        i = bisect.bisect_right(starts, cp) - 1
        return i >= 0 and cp <= ranges[i][1]

    return contains


def _moved(mapping) -> dict[int, int]:
    """Code point -> first character of ``mapping(chr(cp))``, where that differs from ``cp``.

    Blocks of code points that ``mapping`` leaves alone as a whole are skipped (most of
    Unicode has no case): one call per block instead of one per code point.
    (``str.lower`` of a block keeps every character exactly when each one alone is kept: its
    only context rule, the final sigma, concerns a character that changes either way.)
    """
    chars = _all_code_points()
    out = {}
    for start in range(0, len(chars), _CASE_BLOCK):
        block = chars[start:start + _CASE_BLOCK]
        if mapping(block) == block:
            continue
        for offset, char in enumerate(block):
            first = mapping(char)[0]
            if first != char:
                out[start + offset] = ord(first)
    return out


_CASE_BLOCK = 512


@functools.cache
def _unicode_folding() -> _Folding:
    """Case tables for IGNORECASE on str patterns (Unicode mode)."""
    lower, upper = _moved(str.lower), _moved(str.upper)
    # re's extra equivalences: lowercase letters that share an uppercase (how CPython's
    # Tools/scripts/generate_re_casefix.py builds re/_casefix.py).
    candidates = {chr(c) for c in upper} | {chr(c) for c in upper.values()}
    same_upper: dict[str, set[int]] = defaultdict(set)
    for c in candidates:
        same_upper[c.upper()].add(ord(c.lower()[0]))
    fixes = {}
    for lowers in same_upper.values():
        if len(lowers) > 1:
            for lo in lowers:
                fixes[lo] = tuple(sorted(lowers - {lo}))
    return _Folding(lower, upper, fixes, frozenset(lower) | frozenset(upper))


@functools.cache
def _ascii_folding() -> _Folding:
    """Case tables for IGNORECASE with re.ASCII: only A-Z/a-z fold (non-BMP ranges still use
    the Unicode uppercase, as CPython's RANGE_UNI_IGNORE does)."""
    lower = {c: c + 32 for c in range(0x41, 0x5B)}
    cased = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))
    return _Folding(lower, _unicode_folding().upper, {}, cased)


def _folding(flags: int) -> _Folding:
    """The case tables that ``flags`` select."""
    return _ascii_folding() if flags & _ASCII else _unicode_folding()


# ---------------------------------------------------------------------------------------------
# Character sets of literals, class escapes and classes.


def _category(letter: str, flags: int, under: bool) -> CharSet:
    """``\\d \\D \\w \\W \\s \\S``: the exact ASCII set with re.ASCII, else the under-approximation
    (ASCII positive classes, exact Unicode complements) or the over-approximation."""
    base = letter.lower()
    ascii_set = {"d": _ASCII_DIGIT, "w": _ASCII_WORD, "s": _ASCII_SPACE}[base]
    if flags & _ASCII:
        return ascii_set if letter == base else ~ascii_set
    unicode_set = {"d": _unicode_decimal, "w": _unicode_word, "s": _unicode_space}[base]()
    if flags & _EXACT_CLASSES:
        return unicode_set if letter == base else ~unicode_set
    if letter == base:
        return ascii_set if under else unicode_set
    return ~unicode_set if under else ~ascii_set


@functools.lru_cache(maxsize=65536)
def _literal_term(cp: int, flags: int, negate: bool = False) -> Chars:
    """The term of a literal ``cp`` (or of ``[^cp]``) under ``flags`` (IGNORECASE/ASCII bits).

    Terms are cached whole: building one hashes its set, which costs more than parsing.
    """
    if flags & _IGNORECASE:
        charset = _folding(flags).literal(cp)
    else:
        charset = CharSet.of([(cp, cp)])
    return Chars(~charset if negate else charset)


@functools.lru_cache(maxsize=4096)
def _class_term(items: tuple, negate: bool, flags: int, under: bool) -> Chars:
    """``Chars`` of :func:`_class_charset`, cached whole like :func:`_literal_term`."""
    return Chars(_class_charset(items, negate, flags, under))


@functools.cache
def _dot(dotall: bool) -> Chars:
    """The term of ``.``."""
    return Chars(ANY_CHAR if dotall else ~NEWLINE)


@functools.lru_cache(maxsize=4096)
def _class_charset(items: tuple, negate: bool, flags: int, under: bool) -> CharSet:
    """The characters a class of Python-level ``items`` matches.

    ``items`` are ``("LITERAL", cp)``, ``("RANGE", lo, hi)``, ``("CATEGORY", letter)`` or
    ``("PROP", charset)``. ``under`` asks for an under-approximation of the class (else an
    over-approximation); the categories take the opposite one before a negation.
    """
    category_under = under != negate
    bmp, tail_literals, tail_ranges, extra = [], [], [], EMPTY_SET
    for item in items:
        kind = item[0]
        if kind == "LITERAL":
            if item[1] <= _BMP_MAX:
                bmp.append((item[1], item[1]))
            else:
                tail_literals.append(item[1])
        elif kind == "RANGE":
            if item[1] <= _BMP_MAX:
                bmp.append((item[1], min(item[2], _BMP_MAX)))
            if item[2] > _BMP_MAX:
                tail_ranges.append((item[1], item[2]))
        elif kind == "CATEGORY":
            extra |= _category(item[1], flags, category_under)
        else:
            extra |= item[1]
    if flags & _IGNORECASE:
        written = _folding(flags).charset(CharSet.of(bmp), tail_literals, tail_ranges)
    else:
        written = CharSet.of(bmp + [(c, c) for c in tail_literals] + tail_ranges)
    result = written | extra
    return ~result if negate else result


# ---------------------------------------------------------------------------------------------
# Unicode properties (\p{..}).

# PropertyValueAliases.txt, gc: every long name and alias of each category.
_CATEGORY_ALIASES = {
    "C": ("Other",),
    "Cc": ("Control", "cntrl"),
    "Cf": ("Format",),
    "Cn": ("Unassigned",),
    "Co": ("Private_Use",),
    "Cs": ("Surrogate",),
    "L": ("Letter",),
    "LC": ("Cased_Letter", "L&"),
    "Ll": ("Lowercase_Letter",),
    "Lm": ("Modifier_Letter",),
    "Lo": ("Other_Letter",),
    "Lt": ("Titlecase_Letter",),
    "Lu": ("Uppercase_Letter",),
    "M": ("Mark", "Combining_Mark"),
    "Mc": ("Spacing_Mark",),
    "Me": ("Enclosing_Mark",),
    "Mn": ("Nonspacing_Mark",),
    "N": ("Number",),
    "Nd": ("Decimal_Number", "digit"),
    "Nl": ("Letter_Number",),
    "No": ("Other_Number",),
    "P": ("Punctuation", "punct"),
    "Pc": ("Connector_Punctuation",),
    "Pd": ("Dash_Punctuation",),
    "Pe": ("Close_Punctuation",),
    "Pf": ("Final_Punctuation",),
    "Pi": ("Initial_Punctuation",),
    "Po": ("Other_Punctuation",),
    "Ps": ("Open_Punctuation",),
    "S": ("Symbol",),
    "Sc": ("Currency_Symbol",),
    "Sk": ("Modifier_Symbol",),
    "Sm": ("Math_Symbol",),
    "So": ("Other_Symbol",),
    "Z": ("Separator",),
    "Zl": ("Line_Separator",),
    "Zp": ("Paragraph_Separator",),
    "Zs": ("Space_Separator",),
}


def _loose(name: str) -> str:
    """UAX #44 loose matching: case, spaces, underscores and hyphens are ignored."""
    return "".join(c for c in name if c not in " _-").lower()


_CATEGORY_NAMES = {
    _loose(alias): code for code, aliases in _CATEGORY_ALIASES.items() for alias in (code, *aliases)
}
_CATEGORY_KEYS = frozenset({"gc", "generalcategory"})


def _property_charset(body: str) -> CharSet | None:
    """The set a ``\\p{body}`` names, or None when it is no property we can enumerate exactly."""
    negate = body.startswith("^")
    name = body[1:] if negate else body
    for sep in "=:":
        if sep in name:
            key, name = name.split(sep, 1)
            if _loose(key) not in _CATEGORY_KEYS:
                return None
            code = _CATEGORY_NAMES.get(_loose(name))
            break
    else:
        loose = _loose(name)
        special = {"any": ANY_CHAR, "ascii": _ASCII_ALL}
        if loose in special:
            return ~special[loose] if negate else special[loose]
        if loose == "assigned":
            unassigned = _category_sets()["Cn"]
            return unassigned if negate else ~unassigned
        code = _CATEGORY_NAMES.get(loose)
    if code is None:
        return None
    sets = _category_sets()
    result = EMPTY_SET
    for member in _CATEGORY_GROUPS.get(code, (code,)):
        result |= sets[member]
    return ~result if negate else result


# ---------------------------------------------------------------------------------------------
# Anchors.

_END = Look(Chars(ANY_CHAR), ahead=True, negate=True)
_START = Look(Chars(ANY_CHAR), ahead=False, negate=True)
_NOT_EMPTY = Alt((Look(Chars(ANY_CHAR), False, False), Look(Chars(ANY_CHAR), True, False)))


@functools.cache
def _anchor(letter: str, multiline: bool, ascii: bool) -> Term:
    """The Look term of ``^ $ \\A \\Z \\b \\B`` (``letter`` is the character after ``\\``, or the
    anchor itself)."""
    if letter in "^A":
        if letter == "^" and multiline:
            return Look(Chars(~NEWLINE), ahead=False, negate=True)
        return _START
    if letter == "Z":
        return _END
    if letter == "$":
        if multiline:
            return Look(Alt((Chars(NEWLINE), _END)), ahead=True, negate=False)
        return Look(Seq((Repeat(Chars(NEWLINE), 0, 1), _END)), ahead=True, negate=False)
    word = Chars(_ASCII_WORD if ascii else _unicode_word())
    before, after = Look(word, False, False), Look(word, True, False)
    not_before, not_after = Look(word, False, True), Look(word, True, True)
    if letter == "b":
        return Alt((Seq((before, not_after)), Seq((not_before, after))))
    # Python 3.11's \B never matches inside the empty string.
    return Alt((Seq((before, after)), Seq((not_before, not_after, _NOT_EMPTY))))


# ---------------------------------------------------------------------------------------------
# Term construction.


def _alternation(terms: list[Term]) -> Term:
    """Alternation, with nested alternations flattened and a lone branch returned as is."""
    parts: list[Term] = []
    for t in terms:
        if type(t) is Alt and t.items:
            parts.extend(t.items)
        else:
            parts.append(t)
    return parts[0] if len(parts) == 1 else Alt(tuple(parts))


def _repeat(term: Term, lo: int, hi: int | None) -> Term:
    """``Repeat`` without unrolling; the two trivial counts simplify."""
    if lo == hi == 1:
        return term
    if hi == 0:
        return EPSILON
    return Repeat(term, lo, hi)


def _possessive_repeat(item: Chars, lo: int, hi: int | None) -> Term:
    """``item{lo,hi}+``: as many characters of ``item`` as there are, up to ``hi``, never
    giving any back, so a count below ``hi`` is taken only where no further one follows."""
    if lo == hi:
        return _repeat(item, lo, hi)
    stop = Look(item, ahead=True, negate=True)
    if hi is None:
        return Seq((Repeat(item, lo, None), stop))
    return Alt((_repeat(item, hi, hi), Seq((_repeat(item, lo, hi - 1), stop))))


# ---------------------------------------------------------------------------------------------
# The parser.

_ATOM, _ANCHOR, _REPEAT = range(3)


@dataclass(slots=True)
class _Item:
    """One element of a branch: its term, what a quantifier may do with it, and the items it
    stands for in CPython's parse tree (``keys``: pairs of a comparable key and, for a literal,
    its position), which decide how CPython merges alternations into classes."""

    term: Term
    kind: int
    keys: tuple
    run: tuple[Chars, int, int | None] | None = None  # a greedy repetition of one character


@dataclass(slots=True)
class _Frame:
    """An open group: its branches so far and the settings that hold inside it."""

    start: int
    flags: int
    verbose: bool
    positive: bool  # False inside an odd number of negative lookarounds
    group: int | None = None  # capture group number
    look: tuple[bool, bool] | None = None  # (ahead, negate) of a lookaround
    spliced: bool = False  # (?:...) without flags: CPython inlines its items
    atomic: bool = False  # (?>...): what it matched is never given back
    branches: list[list[_Item]] = field(default_factory=list)
    items: list[_Item] = field(default_factory=list)


def _unique() -> tuple:
    """Keys of an item CPython never finds equal to another (groups, repeats, lookarounds)."""
    return ((object(), -1),)


class _Parser:
    """One pass over one pattern: a cursor, the open groups, and what CPython's parser tracks."""

    def __init__(self, pattern: str, flags: int, class_literals: frozenset[int]) -> None:
        self.p = pattern
        self.n = len(pattern)
        self.i = 0
        self.flags = flags
        self.groups = 1  # CPython counts group 0
        self.open_groups: set[int] = set()
        self.group_names: dict[str, int] = {}
        # Positions of literals that CPython merges into a class; a second pass gives them the
        # class semantics (see merge_keys).
        self.class_literals = class_literals
        self.merged_literals: set[int] = set()

    # -- errors and tokens ---------------------------------------------------------------------

    def error(self, message: str, pos: int) -> RegexError:
        """A RegexError at ``pos`` of this pattern."""
        return RegexError(message, self.p, pos)

    def unsupported(self, construct: str, pos: int, why: str = "") -> UnsupportedRegex:
        """An UnsupportedRegex naming ``construct`` at ``pos`` (and why, when it is not obvious)."""
        return UnsupportedRegex(f"{construct} is not supported{why}", self.p, pos)

    def token(self, k: int) -> str:
        """CPython's token at ``k``: one character, or a backslash and the character after it."""
        if self.p[k] != "\\":
            return self.p[k]
        if k + 1 >= self.n:
            raise self.error("bad escape (end of pattern)", self.n - 1)
        return self.p[k : k + 2]

    def take_while(self, k: int, count: int, allowed: frozenset[str]) -> str:
        """Up to ``count`` characters from ``k`` that are in ``allowed``."""
        j = k
        while j < self.n and j - k < count and self.p[j] in allowed:
            j += 1
        return self.p[k:j]

    def name_until(self, k: int, terminator: str, what: str) -> tuple[str, int]:
        """A name from ``k`` up to ``terminator``; returns it and the index after the terminator
        (CPython's ``getuntil``, errors and positions included)."""
        name = ""
        while True:
            if k >= self.n:
                if not name:
                    raise self.error(f"missing {what}", self.n)
                raise self.error(f"missing {terminator}, unterminated name", self.n - len(name))
            tok = self.token(k)
            k += len(tok)
            if tok == terminator:
                if not name:
                    raise self.error(f"missing {what}", k - 1)
                return name, k
            name += tok

    def skip_until(self, k: int, terminator: str) -> int | None:
        """The index after the first ``terminator`` token from ``k``, None if there is none:
        comments are skipped token by token, so an escaped terminator does not end them."""
        while k < self.n:
            tok = self.token(k)
            k += len(tok)
            if tok == terminator:
                return k
        return None

    def check_group_name(self, name: str, end: int) -> None:
        """Group names are identifiers; ``end`` is the index after the closing delimiter."""
        if not name.isidentifier():
            raise self.error(f"bad character in group name {name!r}", end - len(name) - 1)

    # -- the main loop ---------------------------------------------------------------------------

    def parse(self) -> Term:
        """Parse the whole pattern into a term."""
        p, n = self.p, self.n
        root = _Frame(0, self.flags, bool(self.flags & _VERBOSE), True)
        stack = [root]
        while self.i < n:
            frame = stack[-1]
            c = p[self.i]
            if frame.verbose:
                if c in _WHITESPACE:
                    self.i += 1
                    continue
                if c == "#":
                    self.i = self.skip_until(self.i + 1, "\n") or n
                    continue
            if c == "|":
                frame.branches.append(frame.items)
                frame.items = []
                self.i += 1
            elif c == ")":
                if len(stack) == 1:
                    raise self.error("unbalanced parenthesis", self.i)
                self.i += 1
                stack.pop()
                stack[-1].items.append(self.close_group(frame))
            elif c == "(":
                opened = self.open_group(frame, root)
                if opened is not None:
                    if len(stack) > _MAX_NESTING:
                        raise self.error(f"groups nested deeper than {_MAX_NESTING}", opened.start)
                    stack.append(opened)
            elif c not in "*+?{" or not self.quantify(frame):
                frame.items.append(self.atom(frame))
        if len(stack) > 1:
            raise self.error("missing ), unterminated subpattern", stack[-1].start)
        if self.flags & _ASCII and self.flags & _UNICODE:
            raise RegexError("ASCII and UNICODE flags are incompatible")
        if self.flags & _TEMPLATE:
            raise UnsupportedRegex("the TEMPLATE flag (?t) is not supported")
        branches = root.branches + [root.items]
        self.merge_keys(branches, root.flags)
        return _alternation([concat(*(it.term for it in b)) for b in branches])

    # -- groups -------------------------------------------------------------------------------------

    def open_group(self, frame: _Frame, root: _Frame) -> _Frame | None:
        """Read ``(`` and its extension syntax; return the new frame, or None for a comment or
        global flags (which open nothing)."""
        p, n, start = self.p, self.n, self.i
        child = _Frame(start, frame.flags, frame.verbose, frame.positive)
        if not p.startswith("(?", start):
            self.i = start + 1
            child.group = self.open_capture(None, start)
            return child
        k = start + 2
        if k >= n:
            raise self.error("unexpected end of pattern", n)
        tok = self.token(k)
        k += len(tok)
        if tok == "P":
            if p.startswith("<", k):
                name, k = self.name_until(k + 1, ">", "group name")
                self.check_group_name(name, k)
                self.i = k
                child.group = self.open_capture(name, k - len(name) - 1)
                return child
            if p.startswith("=", k):
                name, k = self.name_until(k + 1, ")", "group name")
                self.check_group_name(name, k)
                gid = self.group_names.get(name)
                if gid is None:
                    raise self.error(f"unknown group name {name!r}", k - len(name) - 1)
                if gid in self.open_groups:
                    raise self.error("cannot refer to an open group", k - len(name) - 1)
                raise self.unsupported(f"backreference (?P={name})", start)
            if p.startswith(">", k):
                raise self.unsupported("recursion (?P>...)", start)
            if k >= n:
                raise self.error("unexpected end of pattern", n)
            raise self.error("unknown extension ?P" + self.token(k), start + 1)
        if tok == ":":
            self.i = k
            child.spliced = True
            return child
        if tok == "#":
            end = self.skip_until(k, ")")
            if end is None:
                raise self.error("missing ), unterminated comment", start)
            self.i = end
            return None
        if tok in ("=", "!"):
            self.i = k
            return self.lookaround(child, True, tok == "!")
        if tok == "<":
            if k >= n:
                raise self.error("unexpected end of pattern", n)
            nxt = self.token(k)
            if nxt in ("=", "!"):
                self.i = k + 1
                return self.lookaround(child, False, nxt == "!")
            if not nxt.isidentifier():
                raise self.error("unknown extension ?<" + nxt, start + 1)
            name, k = self.name_until(k, ">", "group name")
            self.check_group_name(name, k)
            self.i = k
            child.group = self.open_capture(name, k - len(name) - 1)
            return child
        if tok == "(":
            raise self.unsupported("conditional group (?(...)...)", start)
        if tok == ">":
            self.i = k
            child.atomic = True
            return child
        if tok in ("R", "&", "+") or tok in _DIGITS or (tok == "-" and p[k : k + 1] in _DIGITS):
            raise self.unsupported("recursion (?R)/(?n)/(?&name)", start)
        if tok in _INLINE_FLAGS or tok == "-":
            return self.inline_flags(frame, root, child, k - len(tok))
        raise self.error("unknown extension ?" + tok, start + 1)

    def lookaround(self, child: _Frame, ahead: bool, negate: bool) -> _Frame:
        """A lookaround frame; a negative one flips which approximation classes use."""
        child.look = (ahead, negate)
        if negate:
            child.positive = not child.positive
        return child

    def open_capture(self, name: str | None, name_pos: int) -> int:
        """Number a capturing group (CPython's ``opengroup``)."""
        gid = self.groups
        self.groups += 1
        if name is not None:
            previous = self.group_names.get(name)
            if previous is not None:
                raise self.error(
                    f"redefinition of group name {name!r} as group {gid}; was group {previous}",
                    name_pos,
                )
            self.group_names[name] = gid
        self.open_groups.add(gid)
        return gid

    def inline_flags(self, frame: _Frame, root: _Frame, child: _Frame, k: int) -> _Frame | None:
        """``(?aiLmsux)``, ``(?flags:...)``, ``(?flags-flags:...)`` (CPython's ``_parse_flags``)."""
        start = self.i
        add = remove = 0
        tok = self.token(k)
        k += len(tok)
        if tok != "-":
            while True:
                flag = _INLINE_FLAGS[tok]
                if tok == "L":
                    raise self.error("bad inline flags: cannot use 'L' flag with a str pattern", k)
                add |= flag
                if flag & _TYPE_FLAGS and add & _TYPE_FLAGS != flag:
                    raise self.error("bad inline flags: flags 'a', 'u' and 'L' are incompatible", k)
                if k >= self.n:
                    raise self.error("missing -, : or )", k)
                tok = self.token(k)
                k += len(tok)
                if tok in (")", "-", ":"):
                    break
                if tok not in _INLINE_FLAGS:
                    message = "unknown flag" if tok.isalpha() else "missing -, : or )"
                    raise self.error(message, k - len(tok))
        if tok == ")":
            if frame is not root or root.branches or frame.items:
                raise self.error("global flags not at the start of the expression", start)
            self.flags |= add
            root.flags |= add
            root.verbose = bool(root.flags & _VERBOSE)
            self.i = k
            return None
        if add & _GLOBAL_FLAGS:
            raise self.error("bad inline flags: cannot turn on global flag", k - 1)
        if tok == "-":
            if k >= self.n:
                raise self.error("missing flag", k)
            tok = self.token(k)
            k += len(tok)
            if tok not in _INLINE_FLAGS:
                raise self.error("unknown flag" if tok.isalpha() else "missing flag", k - len(tok))
            while True:
                flag = _INLINE_FLAGS[tok]
                if flag & _TYPE_FLAGS:
                    raise self.error("bad inline flags: cannot turn off flags 'a', 'u' and 'L'", k)
                remove |= flag
                if k >= self.n:
                    raise self.error("missing :", k)
                tok = self.token(k)
                k += len(tok)
                if tok == ":":
                    break
                if tok not in _INLINE_FLAGS:
                    message = "unknown flag" if tok.isalpha() else "missing :"
                    raise self.error(message, k - len(tok))
        if remove & _GLOBAL_FLAGS:
            raise self.error("bad inline flags: cannot turn off global flag", k - 1)
        if add & remove:
            raise self.error("bad inline flags: flag turned on and off", k - 1)
        flags = frame.flags
        if add & _TYPE_FLAGS:
            flags &= ~_TYPE_FLAGS
        child.flags = (flags | add) & ~remove
        child.verbose = (frame.verbose or bool(add & _VERBOSE)) and not remove & _VERBOSE
        self.i = k
        return child

    def close_group(self, frame: _Frame) -> _Item:
        """The item a closed group becomes in its parent."""
        branches = frame.branches + [frame.items]
        keys = self.merge_keys(branches, frame.flags)
        term = _alternation([concat(*(it.term for it in b)) for b in branches])
        if frame.look is not None:
            if not frame.look[0] and any(isinstance(x, Look) for x in subterms(term)):
                raise self.unsupported("a lookaround or anchor inside a lookbehind",
                                       frame.start)
            return _Item(Look(term, *frame.look), _ATOM, _unique())
        if frame.group is not None:
            self.open_groups.discard(frame.group)
        if frame.atomic:
            return _Item(self.atomic_term(frame), _ATOM, _unique())
        if frame.spliced:
            return _Item(term, _ATOM, keys)
        return _Item(term, _ATOM, _unique())

    def atomic_term(self, frame: _Frame) -> Term:
        """``(?>x)`` for ``x`` one character or a greedy repetition of one, which then keeps
        its whole run (``(?>a*)`` is ``a*+``); other atomic groups are refused."""
        if not frame.branches and len(frame.items) == 1:
            item = frame.items[0]
            if item.run is not None:
                return _possessive_repeat(*item.run)
            if item.kind == _ATOM and isinstance(item.term, Chars):
                return item.term
        raise self.unsupported("atomic group (?>...) around more than a greedy repetition of "
                               "one character", frame.start)

    def merge_keys(self, branches: list[list[_Item]], flags: int) -> tuple:
        """CPython's ``_parse_sub`` on the keys of ``branches``: factor out a common prefix, and
        when every branch then is one literal or positive class, merge them into one class.

        The merge only changes the language for an uppercase letter beyond the BMP under
        Unicode IGNORECASE (a class compares it with the lowercased input, so it never matches);
        such literals are recorded for a second pass that gives them that class semantics.
        """
        seqs = [[key for item in b for key in item.keys] for b in branches]
        if len(seqs) == 1:
            return tuple(seqs[0])
        k = 0
        while all(len(s) > k for s in seqs) and all(s[k][0] == seqs[0][k][0] for s in seqs):
            k += 1
        rest = [s[k:] for s in seqs]
        if not all(len(r) == 1 and _mergeable(r[0][0]) for r in rest):
            return tuple(seqs[0][:k]) + _unique()
        merged: list[tuple] = []
        unicode_ignorecase = flags & _IGNORECASE and not flags & _ASCII
        for [(key, pos)] in rest:
            if key[0] == "I":
                merged.extend(key[2])
                continue
            merged.append(("LITERAL", key[1]))
            if unicode_ignorecase and key[1] > _BMP_MAX and key[1] in _unicode_folding().lower:
                self.merged_literals.add(pos)
        return tuple(seqs[0][:k]) + ((("I", False, tuple(dict.fromkeys(merged))), -1),)

    # -- quantifiers --------------------------------------------------------------------------------

    def counted_quantifier(self) -> tuple[int, int | None, int] | None:
        """``{m}``, ``{m,}``, ``{,n}``, ``{m,n}`` at the cursor as (min, max, end), or None when
        the brace is a literal (as in CPython)."""
        p, start = self.p, self.i
        k = start + 1
        if p.startswith("}", k):
            return None
        lo = self.take_while(k, self.n, _DIGITS)
        k += len(lo)
        if p.startswith(",", k):
            hi = self.take_while(k + 1, self.n, _DIGITS)
            k += 1 + len(hi)
        else:
            hi = lo
        if not p.startswith("}", k):
            return None
        if max(len(lo.lstrip("0")), len(hi.lstrip("0"))) > len(str(_MAX_REPEAT)):
            raise self.error("the repetition number is too large", start)
        low = int(lo) if lo else 0
        high = int(hi) if hi else None
        if low >= _MAX_REPEAT or (high is not None and high >= _MAX_REPEAT):
            raise self.error("the repetition number is too large", start)
        if high is not None and high < low:
            raise self.error("min repeat greater than max repeat", start + 1)
        return low, high, k + 1

    def quantify(self, frame: _Frame) -> bool:
        """Apply the quantifier at the cursor to the last item of the current branch; False when
        the cursor is on a ``{`` that is a literal."""
        start = self.i
        c = self.p[start]
        if c == "{":
            counted = self.counted_quantifier()
            if counted is None:
                return False
            low, high, end = counted
        else:
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            end = start + 1
        if not frame.items or frame.items[-1].kind == _ANCHOR:
            raise self.error("nothing to repeat", start)
        if frame.items[-1].kind == _REPEAT:
            raise self.error("multiple repeat", start)
        lazy = self.p.startswith("?", end)
        possessive = not lazy and self.p.startswith("+", end)
        item = frame.items[-1]
        if possessive and not isinstance(item.term, Chars):
            raise self.unsupported(f"possessive quantifier {self.p[start : end + 1]!r} on more "
                                   "than one character", start)
        if lazy or possessive:
            end += 1
        term = (_possessive_repeat(item.term, low, high) if possessive
                else _repeat(item.term, low, high))
        if lazy and self.flags & _KEEP_LAZY and isinstance(term, Repeat) and low != high:
            term = LazyRepeat(term.item, low, high)
        greedy_run = (item.term, low, high) if (
            not lazy and not possessive and isinstance(item.term, Chars)) else None
        frame.items[-1] = _Item(term, _REPEAT, _unique(), greedy_run)
        self.i = end
        return True

    # -- atoms ----------------------------------------------------------------------------------------

    def atom(self, frame: _Frame) -> _Item:
        """A literal, escape, class, ``.``, ``^`` or ``$`` at the cursor."""
        start = self.i
        c = self.p[start]
        flags = frame.flags
        if c == "\\":
            return self.escape(frame)
        if c == "[":
            return self.char_class(frame)
        self.i += 1
        if c == ".":
            return _Item(_dot(bool(flags & _DOTALL)), _ATOM, (((".",), -1),))
        if c in "^$":
            term = _anchor(c, bool(flags & _MULTILINE), bool(flags & _ASCII))
            return _Item(term, _ANCHOR, ((("AT", c), -1),))
        return self.literal(ord(c), start, flags)

    def literal(self, cp: int, pos: int, flags: int) -> _Item:
        """A literal code point written at ``pos``."""
        flags &= _IGNORECASE | _ASCII
        if pos in self.class_literals:
            term = _class_term((("LITERAL", cp),), False, flags, True)
        else:
            term = _literal_term(cp, flags)
        return _Item(term, _ATOM, ((("L", cp), pos),))

    def escape(self, frame: _Frame) -> _Item:
        """A backslash escape outside a class (CPython's ``_escape`` plus our extensions)."""
        p, start, flags = self.p, self.i, frame.flags
        tok = self.token(start)
        c = tok[1]
        k = start + 2
        if c in "AbBZ":
            self.i = k
            term = _anchor(c, bool(flags & _MULTILINE), bool(flags & _ASCII))
            return _Item(term, _ANCHOR, ((("AT", c), -1),))
        if c in "dDsSwW":
            self.i = k
            items = (("CATEGORY", c),)
            term = _class_term(items, False, flags & (_IGNORECASE | _ASCII | _EXACT_CLASSES),
                               frame.positive)
            return _Item(term, _ATOM, ((("I", False, items), -1),))
        if c in "pP":
            charset, self.i = self.property(start)
            return _Item(Chars(charset), _ATOM, _unique())
        if c == "0":
            digits = self.take_while(k, 2, _OCTDIGITS)
            self.i = k + len(digits)
            return self.literal(int("0" + digits, 8), start, flags)
        if c in _DIGITS:
            return self.numeric_escape(start, flags)
        if c == "k" and p[k : k + 1] in ("<", "{", "'"):
            raise self.unsupported("backreference \\k<name>", start)
        cp, self.i = self.code_escape(start)
        return self.literal(cp, start, flags)

    def numeric_escape(self, start: int, flags: int) -> _Item:
        """``\\1``..``\\99`` (a backreference) or a three-digit octal escape."""
        p = self.p
        escape = p[start : start + 2]
        k = start + 2
        if k < self.n and p[k] in _DIGITS:
            escape += p[k]
            k += 1
            if escape[1] in _OCTDIGITS and escape[2] in _OCTDIGITS and p[k : k + 1] in _OCTDIGITS:
                escape += p[k]
                k += 1
                value = int(escape[1:], 8)
                if value > 0o377:
                    raise self.error(f"octal escape value {escape} outside of range 0-0o377", start)
                self.i = k
                return self.literal(value, start, flags)
        group = int(escape[1:])
        if group < self.groups:
            if group in self.open_groups:
                raise self.error("cannot refer to an open group", start)
            raise self.unsupported(f"backreference {escape}", start)
        raise self.error(f"invalid group reference {group}", start + 1)

    def code_escape(self, start: int) -> tuple[int, int]:
        """An escape that denotes one code point, shared by classes and the rest; returns the
        code point and the index after the escape. Unknown letter escapes are errors."""
        p = self.p
        c = p[start + 1]
        k = start + 2
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c], k
        if c in "xuU":
            if c == "u" and p.startswith("{", k):
                return self.braced_escape(start)
            width = {"x": 2, "u": 4, "U": 8}[c]
            digits = self.take_while(k, width, _HEXDIGITS)
            escape = p[start : k + len(digits)]
            if len(digits) != width:
                raise self.error(f"incomplete escape {escape}", start)
            value = int(digits, 16)
            if value > MAX_CODE_POINT:
                raise self.error(f"bad escape {escape}", start)
            return value, k + width
        if c == "N":
            if not p.startswith("{", k):
                raise self.error("missing {", k)
            name, end = self.name_until(k + 1, "}", "character name")
            try:
                return ord(unicodedata.lookup(name)), end
            except (KeyError, TypeError):
                raise self.error(f"undefined character name {name!r}", start) from None
        if c in _ASCII_LETTERS or c in _DIGITS:
            raise self.error(f"bad escape \\{c}", start)
        return ord(c), k

    def braced_escape(self, start: int) -> tuple[int, int]:
        """Our ``\\u{H...}`` extension: one to six hex digits naming a code point."""
        k = start + 3
        digits = self.take_while(k, 7, _HEXDIGITS)
        end = k + len(digits)
        if not 1 <= len(digits) <= 6 or not self.p.startswith("}", end):
            raise self.error(f"incomplete escape {self.p[start : end + 1]}", start)
        value = int(digits, 16)
        if value > MAX_CODE_POINT:
            raise self.error(f"bad escape {self.p[start : end + 1]}", start)
        return value, end + 1

    def property(self, start: int) -> tuple[CharSet, int]:
        """``\\p{name}``, ``\\P{name}``, ``\\pL``: the set and the index after the escape."""
        p, n = self.p, self.n
        k = start + 2
        if k >= n:
            raise self.error("missing property name", start)
        if p[k] == "{":
            close = p.find("}", k)
            if close < 0:
                raise self.error("missing }, unterminated property name", start)
            body, end = p[k + 1 : close], close + 1
            if not body or body == "^":
                raise self.error("missing property name", start)
        else:
            body, end = p[k], k + 1
        charset = _property_charset(body)
        if charset is None:
            raise self.unsupported(
                f"Unicode property {body!r}",
                start,
                " (only general categories, Any, ASCII and Assigned are: scripts and binary"
                " properties need tables that unicodedata lacks)",
            )
        return (~charset if p[start + 1] == "P" else charset), end

    # -- character classes -------------------------------------------------------------------------

    def char_class(self, frame: _Frame) -> _Item:
        """A ``[...]`` class: read as CPython reads it unless CPython would warn about set
        syntax, in which case it is a set expression (module docstring)."""
        start, flags = self.i, frame.flags & (_IGNORECASE | _ASCII | _EXACT_CLASSES)
        parsed = self.python_class(start)
        if parsed is None:
            low, high = self.set_class(start, flags, 1)
            return _Item(Chars(low if frame.positive else high), _ATOM, _unique())
        items, negate, self.i = parsed
        if len(items) == 1 and items[0][0] == "LITERAL":
            cp = items[0][1]
            if negate:
                return _Item(_literal_term(cp, flags, True), _ATOM, ((("N", cp), -1),))
            return self.literal(cp, start, flags)
        term = _class_term(items, negate, flags, frame.positive)
        if any(it[0] == "PROP" for it in items):
            return _Item(term, _ATOM, _unique())
        return _Item(term, _ATOM, ((("I", negate, items), -1),))

    def python_class(self, start: int) -> tuple[tuple, bool, int] | None:
        """CPython's class loop: (unique items, negated, end index), or None where CPython
        would emit a FutureWarning about nested sets or set operations."""
        p, n = self.p, self.n
        k = start + 1
        if p.startswith("[", k):
            return None
        negate = p.startswith("^", k)
        k += negate
        items: list[tuple] = []
        while True:
            if k >= n:
                raise self.error("unterminated character set", start)
            c = p[k]
            if c == "]" and items:
                k += 1
                break
            first = k
            if c == "\\":
                code1, k = self.class_escape(k)
            else:
                if items and c in "-&~|" and p.startswith(c, k + 1):
                    return None
                code1 = ("LITERAL", ord(c))
                k += 1
            if not p.startswith("-", k):
                items.append(code1)
                continue
            k += 1
            if k >= n:
                raise self.error("unterminated character set", start)
            second = k
            if p[k] == "]":
                items += [code1, ("LITERAL", 45)]
                k += 1
                break
            if p[k] == "\\":
                code2, k = self.class_escape(k)
            else:
                if p[k] == "-":
                    return None
                code2 = ("LITERAL", ord(p[k]))
                k += 1
            if code1[0] != "LITERAL" or code2[0] != "LITERAL" or code2[1] < code1[1]:
                this, that = self.token(first), self.token(second)
                raise self.error(
                    f"bad character range {this}-{that}", k - len(this) - 1 - len(that)
                )
            items.append(("RANGE", code1[1], code2[1]))
        return tuple(dict.fromkeys(items)), negate, k

    def class_escape(self, k: int) -> tuple[tuple, int]:
        """An escape inside a class (CPython's ``_class_escape`` plus ``\\p``): the item and the
        index after it."""
        c = self.token(k)[1]
        if c == "b":
            return ("LITERAL", 8), k + 2
        if c in "dDsSwW":
            return ("CATEGORY", c), k + 2
        if c in "pP":
            charset, end = self.property(k)
            return ("PROP", charset), end
        if c in _OCTDIGITS:
            digits = self.take_while(k + 1, 3, _OCTDIGITS)
            value = int(digits, 8)
            if value > 0o377:
                raise self.error(f"octal escape value \\{digits} outside of range 0-0o377", k)
            return ("LITERAL", value), k + 1 + len(digits)
        cp, end = self.code_escape(k)
        return ("LITERAL", cp), end

    def set_class(self, start: int, flags: int, depth: int) -> tuple[CharSet, CharSet]:
        """A class with set operations (``regex`` V1 syntax) as (under, over) approximations;
        leaves the cursor after its ``]``."""
        p, n = self.p, self.n
        if depth > _MAX_CLASS_NESTING:
            raise self.error(f"character classes nested deeper than {_MAX_CLASS_NESTING}", start)
        k = start + 1
        posix_end = _posix_class_end(p, k) if depth > 1 and p.startswith(":", k) else None
        if posix_end is not None:
            raise self.unsupported(f"POSIX character class {p[start:posix_end]}", start)
        negate = p.startswith("^", k)
        k += negate
        operands: list[tuple[CharSet, CharSet]] = []
        operators: list[str] = []
        items: list[tuple] = []
        nested: list[tuple[CharSet, CharSet]] = []
        bracket_start = True
        while True:
            if k >= n:
                raise self.error("unterminated character set", start)
            c = p[k]
            operand_empty = not items and not nested
            if c == "]" and not bracket_start:
                if operand_empty:
                    raise self.error("missing operand of a set operation", k)
                k += 1
                break
            if c in "-&~|" and p.startswith(c, k + 1) and not bracket_start:
                if operand_empty:
                    raise self.error("missing operand of a set operation", k)
                operands.append(_operand(items, nested, flags))
                operators.append(c)
                items, nested = [], []
                k += 2
                continue
            bracket_start = False
            if c == "[":
                nested.append(self.set_class(k, flags, depth + 1))
                k = self.i
                continue
            first = k
            if c == "\\":
                code1, k = self.class_escape(k)
            else:
                code1 = ("LITERAL", ord(c))
                k += 1
            if p.startswith("-", k) and k + 1 < n and p[k + 1] not in "-]":
                second = k + 1
                if p[second] == "\\":
                    code2, k = self.class_escape(second)
                else:
                    code2 = ("LITERAL", ord(p[second]))
                    k = second + 1
                if (
                    p[second] == "["
                    or code1[0] != "LITERAL"
                    or code2[0] != "LITERAL"
                    or (code2[1] < code1[1])
                ):
                    this, that = self.token(first), self.token(second)
                    raise self.error(f"bad character range {this}-{that}", first)
                items.append(("RANGE", code1[1], code2[1]))
            else:
                items.append(code1)
        operands.append(_operand(items, nested, flags))
        low, high = _combine(operands, operators)
        self.i = k
        return (~high, ~low) if negate else (low, high)


def _posix_class_end(p: str, k: int) -> int | None:
    """The index after ``[:name:]`` when a POSIX class name starts at ``k`` (the first ``:``)."""
    j = k + 1 + (p[k + 1 : k + 2] == "^")
    while j < len(p) and p[j].isalpha():
        j += 1
    if j > k + 1 and p.startswith(":]", j):
        return j + 2
    return None


def _mergeable(key) -> bool:
    """Whether CPython folds an alternation branch made of this item into a class."""
    return isinstance(key, tuple) and (key[0] == "L" or (key[0] == "I" and not key[1]))


def _operand(items: list[tuple], nested: list[tuple[CharSet, CharSet]], flags: int):
    """(under, over) of an implicit union of plain class items and nested classes."""
    key = tuple(items)
    low = _class_charset(key, False, flags, True) if items else EMPTY_SET
    high = _class_charset(key, False, flags, False) if items else EMPTY_SET
    for a, b in nested:
        low, high = low | a, high | b
    return low, high


def _combine(operands: list, operators: list[str]) -> tuple[CharSet, CharSet]:
    """Reduce operands by precedence (``--`` > ``&&`` > ``~~`` > ``||``, each left to right),
    keeping under- and over-approximations: a difference subtracts the other bound."""
    for level in "-&~|":
        values, ops = [operands[0]], []
        for op, rhs in zip(operators, operands[1:]):
            if op != level:
                values.append(rhs)
                ops.append(op)
                continue
            (a_lo, a_hi), (b_lo, b_hi) = values[-1], rhs
            if op == "-":
                values[-1] = (a_lo - b_hi, a_hi - b_lo)
            elif op == "&":
                values[-1] = (a_lo & b_lo, a_hi & b_hi)
            elif op == "~":
                values[-1] = ((a_lo - b_hi) | (b_lo - a_hi), (a_hi - b_lo) | (b_hi - a_lo))
            else:
                values[-1] = (a_lo | b_lo, a_hi | b_hi)
        operands, operators = values, ops
    return operands[0]


# ---------------------------------------------------------------------------------------------
# The ECMA-262 dialect: ECMAScript patterns with the ``u`` flag, as JSON Schema reads them. The
# grammar differs from Python's in many small places (what may be escaped, what a ``{`` is, how
# classes and ranges read), so it has a parser of its own; terms and anchors are shared.

_ECMA_SYNTAX = frozenset("^$\\.*+?()[]{}|")
_ECMA_CONTROL_ESCAPES = {"f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_ECMA_LINE_TERMINATORS = CharSet.chars("\n\r\u2028\u2029")
# WhiteSpace (TAB, VT, FF, ZWNBSP, the Space_Separator category) and LineTerminator.
_ECMA_SPACE = CharSet.chars(
    "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"
) | CharSet.of([(0x2000, 0x200A)])
_ECMA_CLASSES = {"d": _ASCII_DIGIT, "w": _ASCII_WORD, "s": _ECMA_SPACE}
_ECMA_FLAGS = {"i": _IGNORECASE, "m": _MULTILINE, "s": _DOTALL}
# ECMA-262 matches property names and values exactly (no loose matching, no ``L&``).
_ECMA_CATEGORY_NAMES = {
    alias: code
    for code, aliases in _CATEGORY_ALIASES.items()
    for alias in (code, *aliases)
    if alias != "L&"
}
_ECMA_CATEGORY_KEYS = frozenset({"General_Category", "gc"})
_ECMA_SCRIPT_KEYS = frozenset({"Script", "sc", "Script_Extensions", "scx"})
_ASCII_HEX = CharSet.chars("0123456789abcdefABCDEF")
# The binary properties of ECMA-262's table: valid syntax, but only those we can list exactly
# (``_ecma_binary_property``) are supported.
# fmt: off
_ECMA_BINARY_PROPERTIES = frozenset((
    "ASCII", "ASCII_Hex_Digit", "AHex", "Alphabetic", "Alpha", "Any", "Assigned", "Bidi_Control",
    "Bidi_C", "Bidi_Mirrored", "Bidi_M", "Case_Ignorable", "CI", "Cased",
    "Changes_When_Casefolded", "CWCF", "Changes_When_Casemapped", "CWCM",
    "Changes_When_Lowercased", "CWL", "Changes_When_NFKC_Casefolded", "CWKCF",
    "Changes_When_Titlecased", "CWT", "Changes_When_Uppercased", "CWU", "Dash",
    "Default_Ignorable_Code_Point", "DI", "Deprecated", "Dep", "Diacritic", "Dia", "Emoji",
    "Emoji_Component", "EComp", "Emoji_Modifier", "EMod", "Emoji_Modifier_Base", "EBase",
    "Emoji_Presentation", "EPres", "Extended_Pictographic", "ExtPict", "Extender", "Ext",
    "Grapheme_Base", "Gr_Base", "Grapheme_Extend", "Gr_Ext", "Hex_Digit", "Hex",
    "IDS_Binary_Operator", "IDSB", "IDS_Trinary_Operator", "IDST", "ID_Continue", "IDC",
    "ID_Start", "IDS", "Ideographic", "Ideo", "Join_Control", "Join_C", "Logical_Order_Exception",
    "LOE", "Lowercase", "Lower", "Math", "Noncharacter_Code_Point", "NChar", "Pattern_Syntax",
    "Pat_Syn", "Pattern_White_Space", "Pat_WS", "Quotation_Mark", "QMark", "Radical",
    "Regional_Indicator", "RI", "Sentence_Terminal", "STerm", "Soft_Dotted", "SD",
    "Terminal_Punctuation", "Term", "Unified_Ideograph", "UIdeo", "Uppercase", "Upper",
    "Variation_Selector", "VS", "White_Space", "space", "XID_Continue", "XIDC", "XID_Start",
    "XIDS",
))
# fmt: on


def _ecma_binary_property(name: str) -> CharSet | None:
    """The binary properties whose sets are fixed by definition or by ``unicodedata``."""
    if name == "Any":
        return ANY_CHAR
    if name == "ASCII":
        return _ASCII_ALL
    if name in ("ASCII_Hex_Digit", "AHex"):
        return _ASCII_HEX
    if name == "Assigned":
        return ~_category_sets()["Cn"]
    return None


@functools.cache
def _ecma_boundary(positive: bool) -> Term:
    """``\\b`` (``positive``) or ``\\B``: IsWordChar on the ASCII word set, false off the ends."""
    word = Chars(_ASCII_WORD)
    before, after = Look(word, False, False), Look(word, True, False)
    not_before, not_after = Look(word, False, True), Look(word, True, True)
    if positive:
        return Alt((Seq((before, not_after)), Seq((not_before, after))))
    return Alt((Seq((before, after)), Seq((not_before, not_after))))


@functools.cache
def _ecma_anchor(letter: str, multiline: bool) -> Term:
    """``^`` or ``$``: the ends of the input, or also beside a line terminator (``m`` flag)."""
    if not multiline:
        return _START if letter == "^" else _END
    return Look(Chars(~_ECMA_LINE_TERMINATORS), ahead=letter == "$", negate=True)


def _ecma_identifier(name: str) -> bool:
    """RegExpIdentifierName, with Python's identifier tables standing in for ID_Start and
    ID_Continue (they differ on a handful of compatibility characters)."""
    if not name or not (name[0] in "$_" or name[0].isidentifier()):
        return False
    return all(c in "$\u200c\u200d" or ("_" + c).isidentifier() for c in name[1:])


@dataclass(slots=True)
class _EcmaFrame:
    """An open group: its branches of (term, kind) items and the flags that hold inside it."""

    start: int
    flags: int
    ident: int
    look: tuple[bool, bool] | None = None
    branches: list[list[tuple[Term, int]]] = field(default_factory=list)
    items: list[tuple[Term, int]] = field(default_factory=list)


class _EcmaParser:
    """One pass over an ECMA-262 pattern (``u`` flag grammar, ES2025 with modifiers).

    Syntax errors are raised where they are found; a well-formed construct we cannot enforce is
    remembered and raised only once the whole pattern has parsed, so that ``UnsupportedRegex``
    always means "valid ECMA-262" and ``RegexError`` "invalid".
    """

    def __init__(self, pattern: str, flags: int) -> None:
        self.p = pattern
        self.n = len(pattern)
        self.i = 0
        self.flags = flags
        self.groups = 0
        self.frames = 0
        self.names: dict[str, list[dict[int, int]]] = {}  # name -> paths of its groups
        self.numbered_refs: list[tuple[int, int]] = []
        self.named_refs: list[tuple[str, int]] = []
        self.deferred: UnsupportedRegex | None = None

    def error(self, message: str, pos: int) -> RegexError:
        return RegexError(message, self.p, pos)

    def defer(self, construct: str, pos: int, why: str = "") -> None:
        """Remember the first unsupported construct (raised after the syntax is checked)."""
        if self.deferred is None:
            self.deferred = UnsupportedRegex(f"{construct} is not supported{why}", self.p, pos)

    def frame(self, start: int, flags: int) -> _EcmaFrame:
        self.frames += 1
        return _EcmaFrame(start, flags, self.frames)

    def source_char(self, k: int) -> tuple[int, int]:
        """The code point at ``k`` (a surrogate pair in the pattern string is one code point)."""
        c = ord(self.p[k])
        if 0xD800 <= c <= 0xDBFF and k + 1 < self.n and 0xDC00 <= ord(self.p[k + 1]) <= 0xDFFF:
            return 0x10000 + ((c - 0xD800) << 10) + (ord(self.p[k + 1]) - 0xDC00), k + 2
        return c, k + 1

    # -- the main loop -------------------------------------------------------------------------

    def parse(self) -> Term:
        p, n = self.p, self.n
        root = self.frame(0, self.flags)
        stack = [root]
        while self.i < n:
            frame = stack[-1]
            c = p[self.i]
            if c == "|":
                frame.branches.append(frame.items)
                frame.items = []
                self.i += 1
            elif c == ")":
                if len(stack) == 1:
                    raise self.error("unmatched )", self.i)
                self.i += 1
                stack.pop()
                stack[-1].items.append(self.close_group(frame))
            elif c == "(":
                child = self.open_group(stack)
                if len(stack) > _MAX_NESTING:
                    raise self.error(f"groups nested deeper than {_MAX_NESTING}", child.start)
                stack.append(child)
            elif c in "*+?{":
                self.quantify(frame)
            elif c in "}]":
                raise self.error(f"lone {c}", self.i)
            else:
                frame.items.append(self.atom(frame))
        if len(stack) > 1:
            raise self.error("missing ), unterminated group", stack[-1].start)
        for number, pos in self.numbered_refs:
            if number > self.groups:
                raise self.error(f"backreference \\{number} to a group that does not exist", pos)
        for name, pos in self.named_refs:
            if name not in self.names:
                raise self.error(f"backreference to an unknown group name {name!r}", pos)
        if self.deferred is not None:
            raise self.deferred
        return self.close_group(root)[0]

    # -- groups --------------------------------------------------------------------------------

    def open_group(self, stack: list[_EcmaFrame]) -> _EcmaFrame:
        p, start = self.p, self.i
        parent = stack[-1]
        child = self.frame(start, parent.flags)
        if not p.startswith("(?", start):
            self.i = start + 1
            self.groups += 1
            return child
        k = start + 2
        if p.startswith(":", k):
            self.i = k + 1
        elif p.startswith("=", k) or p.startswith("!", k):
            child.look = (True, p[k] == "!")
            self.i = k + 1
        elif p.startswith("<=", k) or p.startswith("<!", k):
            child.look = (False, p[k + 1] == "!")
            self.i = k + 2
        elif p.startswith("<", k):
            name, self.i = self.group_name(k)
            path = {f.ident: len(f.branches) for f in stack}
            for other in self.names.get(name, ()):
                # ES2025: one name twice only in different alternatives of some disjunction.
                if not any(other.get(ident, branch) != branch for ident, branch in path.items()):
                    raise self.error(f"duplicate group name {name!r}", k + 1)
            self.names.setdefault(name, []).append(path)
            self.groups += 1
        else:
            child.flags, self.i = self.modifiers(start, parent.flags)
        return child

    def modifiers(self, start: int, flags: int) -> tuple[int, int]:
        """``(?ims-ims:``: the flags inside the group and the index after ``:``."""
        p, k = self.p, start + 2
        letters = ["", ""]
        side = 0
        while k < self.n and (p[k] in _ECMA_FLAGS or (p[k] == "-" and side == 0)):
            if p[k] == "-":
                side = 1
            else:
                letters[side] += p[k]
            k += 1
        add, remove = letters
        if not p.startswith(":", k) or (side == 0 and not add):
            raise self.error("invalid group", start)
        if side == 1 and not add and not remove:
            raise self.error("invalid group modifiers: nothing to change", start)
        if len(set(add + remove)) != len(add + remove):
            raise self.error("invalid group modifiers: a flag repeated", start)
        if "i" in add:
            self.defer("the i modifier (case-insensitive matching)", start)
        for letter in add:
            flags |= _ECMA_FLAGS[letter]
        for letter in remove:
            flags &= ~_ECMA_FLAGS[letter]
        return flags & (_MULTILINE | _DOTALL), k + 1

    def group_name(self, k: int) -> tuple[str, int]:
        """``<name>`` at ``k``: the name (escapes decoded) and the index after ``>``."""
        p, n = self.p, self.n
        j = k + 1
        chars = []
        while j < n and p[j] != ">":
            if p[j] == "\\":
                if not p.startswith("u", j + 1):
                    raise self.error("invalid escape in a group name", j)
                cp, j = self.unicode_escape(j)
            else:
                cp, j = self.source_char(j)
            chars.append(chr(cp))
        if j >= n:
            raise self.error("unterminated group name", k)
        name = "".join(chars)
        if not _ecma_identifier(name):
            raise self.error(f"invalid group name {name!r}", k + 1)
        return name, j + 1

    def close_group(self, frame: _EcmaFrame) -> tuple[Term, int]:
        """The item a closed group becomes: lookarounds cannot be quantified under ``u``."""
        branches = frame.branches + [frame.items]
        term = _alternation([concat(*(t for t, _ in b)) for b in branches])
        if frame.look is not None:
            return Look(term, *frame.look), _ANCHOR
        return term, _ATOM

    # -- quantifiers ---------------------------------------------------------------------------

    def quantify(self, frame: _EcmaFrame) -> None:
        p, start = self.p, self.i
        c = p[start]
        if c == "{":
            counted = self.braces(start)
            if counted is None:
                raise self.error("incomplete quantifier", start)
            low, high, end = counted
        else:
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            end = start + 1
        if not frame.items or frame.items[-1][1] != _ATOM:
            raise self.error("nothing to repeat", start)
        if p.startswith("?", end):
            end += 1
        frame.items[-1] = (_repeat(frame.items[-1][0], low, high), _REPEAT)
        self.i = end

    def braces(self, start: int) -> tuple[int, int | None, int] | None:
        """``{m}``, ``{m,}``, ``{m,n}`` at ``start`` as (min, max, end); None if malformed."""
        p = self.p
        k = start + 1
        lo = self.digits(k)
        if not lo:
            return None
        k += len(lo)
        hi = lo
        if p.startswith(",", k):
            hi = self.digits(k + 1)
            k += 1 + len(hi)
        if not p.startswith("}", k):
            return None
        low, high = int(lo), int(hi) if hi else None
        if high is not None and high < low:
            raise self.error("numbers out of order in {} quantifier", start)
        return low, high, k + 1

    def digits(self, k: int) -> str:
        j = k
        while j < self.n and self.p[j] in _DIGITS:
            j += 1
        return self.p[k:j]

    # -- atoms and escapes -----------------------------------------------------------------------

    def atom(self, frame: _EcmaFrame) -> tuple[Term, int]:
        """A literal, escape, class, ``.``, ``^`` or ``$`` at the cursor."""
        c = self.p[self.i]
        if c == "\\":
            return self.escape(frame)
        if c == "[":
            return Chars(self.char_class()), _ATOM
        if c in ".^$":
            self.i += 1
            if c == ".":
                dotall = bool(frame.flags & _DOTALL)
                return Chars(ANY_CHAR if dotall else ~_ECMA_LINE_TERMINATORS), _ATOM
            return _ecma_anchor(c, bool(frame.flags & _MULTILINE)), _ANCHOR
        cp, self.i = self.source_char(self.i)
        return _literal_term(cp, 0), _ATOM

    def escape(self, frame: _EcmaFrame) -> tuple[Term, int]:
        """AtomEscape: an assertion, backreference, class escape or character escape."""
        p, start = self.p, self.i
        if start + 1 >= self.n:
            raise self.error("\\ at end of pattern", start)
        c = p[start + 1]
        if c in "bB":
            self.i = start + 2
            return _ecma_boundary(c == "b"), _ANCHOR
        if c in "123456789":
            digits = self.digits(start + 1)
            self.i = start + 1 + len(digits)
            self.numbered_refs.append((int(digits), start))
            self.defer(f"backreference \\{digits}", start)
            return EPSILON, _ATOM
        if c == "k":
            if not p.startswith("<", start + 2):
                raise self.error("invalid named reference", start)
            name, self.i = self.group_name(start + 2)
            self.named_refs.append((name, start))
            self.defer(f"backreference \\k<{name}>", start)
            return EPSILON, _ATOM
        if c in "dDsSwWpP":
            charset, self.i = self.class_escape(start)
            return Chars(charset), _ATOM
        cp, self.i = self.character_escape(start, in_class=False)
        return _literal_term(cp, 0), _ATOM

    def character_escape(self, start: int, in_class: bool) -> tuple[int, int]:
        """CharacterEscape at ``start`` (the backslash): the code point and the index after it."""
        p = self.p
        c = p[start + 1]
        k = start + 2
        if c in _ECMA_CONTROL_ESCAPES:
            return _ECMA_CONTROL_ESCAPES[c], k
        if c == "c":
            if p[k : k + 1] in _ASCII_LETTERS:
                return ord(p[k]) % 32, k + 1
            raise self.error("invalid control escape: \\c takes an ASCII letter", start)
        if c == "0":
            if p[k : k + 1] in _DIGITS:
                raise self.error("invalid decimal escape", start)
            return 0, k
        if c == "x":
            hex_digits = p[k : k + 2]
            if len(hex_digits) == 2 and all(h in _HEXDIGITS for h in hex_digits):
                return int(hex_digits, 16), k + 2
            raise self.error("invalid escape \\x: two hex digits expected", start)
        if c == "u":
            return self.unicode_escape(start)
        if c in _ECMA_SYNTAX or c == "/" or (in_class and c == "-"):
            return ord(c), k
        if c.isascii() and not c.isalnum():
            # Annex B's identity escapes (``\'``, ``\-``, ``\ ``...): real schemas write them,
            # and an escaped ASCII symbol means itself in every regex dialect.
            return ord(c), k
        raise self.error(f"invalid escape \\{c}", start)

    def hex4(self, k: int) -> int | None:
        digits = self.p[k : k + 4]
        if len(digits) == 4 and all(h in _HEXDIGITS for h in digits):
            return int(digits, 16)
        return None

    def unicode_escape(self, start: int) -> tuple[int, int]:
        """``\\u{H...}``, ``\\uHHHH``, or a ``\\uHHHH\\uHHHH`` surrogate pair (one code point);
        a lone surrogate stays a surrogate, which matches nothing."""
        p = self.p
        k = start + 2
        if p.startswith("{", k):
            j = k + 1
            while j < self.n and p[j] in _HEXDIGITS:
                j += 1
            if j == k + 1 or not p.startswith("}", j):
                raise self.error("invalid Unicode escape", start)
            value = int(p[k + 1 : j], 16)
            if value > MAX_CODE_POINT:
                raise self.error("Unicode escape beyond U+10FFFF", start)
            return value, j + 1
        value = self.hex4(k)
        if value is None:
            raise self.error("invalid Unicode escape: four hex digits expected", start)
        k += 4
        if 0xD800 <= value <= 0xDBFF and p.startswith("\\u", k):
            low = self.hex4(k + 2)
            if low is not None and 0xDC00 <= low <= 0xDFFF:
                return 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00), k + 6
        return value, k

    def class_escape(self, start: int) -> tuple[CharSet, int]:
        """``\\d \\D \\s \\S \\w \\W \\p{..} \\P{..}`` at ``start``: the set and the index after."""
        c = self.p[start + 1]
        if c in "pP":
            charset, end = self.property(start)
            return (~charset if c == "P" else charset), end
        charset = _ECMA_CLASSES[c.lower()]
        return (charset if c.islower() else ~charset), start + 2

    def property(self, start: int) -> tuple[CharSet, int]:
        """``\\p{name}``, ``\\p{key=value}``: general categories and a few binary properties;
        scripts and the other binary properties are valid but unsupported."""
        p = self.p
        close = p.find("}", start + 3) if p.startswith("{", start + 2) else -1
        if close < 0:
            raise self.error("invalid property escape: \\p{name} expected", start)
        body = p[start + 3 : close]
        key, sep, value = body.partition("=")
        charset = None
        if sep and key in _ECMA_CATEGORY_KEYS:
            code = _ECMA_CATEGORY_NAMES.get(value)
        elif sep and key in _ECMA_SCRIPT_KEYS and value.replace("_", "").isalnum():
            code = None
            self.defer(f"Unicode script property {body!r}", start, " (unicodedata has no scripts)")
            charset = EMPTY_SET
        elif sep:
            code = None
        else:
            code = _ECMA_CATEGORY_NAMES.get(body)
            if code is None and body in _ECMA_BINARY_PROPERTIES:
                charset = _ecma_binary_property(body)
                if charset is None:
                    why = " (unicodedata has no table for it)"
                    self.defer(f"Unicode binary property {body!r}", start, why)
                    charset = EMPTY_SET
        if code is not None:
            charset = _property_charset(code)
        if charset is None:
            raise self.error(f"unknown Unicode property {body!r}", start)
        return charset, close + 1

    def char_class(self) -> CharSet:
        """A ``[...]`` class at the cursor (``[]`` matches nothing, ``[^]`` anything)."""
        p, n, start = self.p, self.n, self.i
        k = start + 1
        negate = p.startswith("^", k)
        k += negate
        ranges: list[tuple[int, int]] = []
        sets: list[CharSet] = []
        while True:
            if k >= n:
                raise self.error("unterminated character class", start)
            if p[k] == "]":
                k += 1
                break
            first_pos = k
            first, k = self.class_atom(k)
            if p.startswith("-", k) and k + 1 < n and p[k + 1] != "]":
                second, k = self.class_atom(k + 1)
                if isinstance(first, CharSet) or isinstance(second, CharSet):
                    raise self.error("invalid character class range: a class escape", first_pos)
                if first > second:
                    raise self.error("range out of order in character class", first_pos)
                ranges.append((first, second))
            elif isinstance(first, CharSet):
                sets.append(first)
            else:
                ranges.append((first, first))
        self.i = k
        charset = CharSet.of(ranges)
        for extra in sets:
            charset |= extra
        return ~charset if negate else charset

    def class_atom(self, k: int) -> tuple[int | CharSet, int]:
        """One ClassAtom at ``k``: a code point or (for a class escape) a set."""
        p = self.p
        if p[k] != "\\":
            return self.source_char(k)
        if k + 1 >= self.n:
            raise self.error("\\ at end of pattern", k)
        c = p[k + 1]
        if c == "b":
            return 8, k + 2
        if c in "dDsSwWpP":
            return self.class_escape(k)
        return self.character_escape(k, in_class=True)


def _parse_ecma(pattern: str, flags: int) -> Term:
    """``parse_regex`` in the ECMA-262 dialect (see the module docstring)."""
    unknown = flags & ~(_MULTILINE | _DOTALL | _UNICODE | _IGNORECASE)
    if unknown:
        raise RegexError(f"flags {unknown:#x} have no ECMA-262 counterpart (only i, m, s)")
    parser = _EcmaParser(pattern, flags & (_MULTILINE | _DOTALL))
    if flags & _IGNORECASE:
        parser.defer("the IGNORECASE flag (ECMA-262 i)", 0)
    return parser.parse()


def parse_regex(pattern: str, flags: int = 0, *, dialect: str = "python",
                exact_classes: bool = False, first_match: bool = False) -> Term:
    """The regular term whose language is ``{s : re.fullmatch(pattern, s, flags)}``.

    Args:
        pattern: a pattern in Python ``re`` syntax, with the extensions the module docstring
            lists, or (``dialect="ecma"``) an ECMA-262 pattern as JSON Schema reads it.
        flags: ``re`` flags (IGNORECASE, DOTALL, MULTILINE, VERBOSE, ASCII; UNICODE and DEBUG are
            accepted and change nothing). In the ECMA dialect only MULTILINE and DOTALL (ECMA's
            ``m`` and ``s``) and UNICODE (a no-op: ``u`` is always on) are available.
        dialect: ``"python"`` or ``"ecma"``.
        exact_classes: Python's Unicode ``\\d \\w \\s`` exactly, instead of the ASCII classes
            of the module docstring (Lark grammars, whose reference is Python's ``re``).
        first_match: the texts ``re.match`` takes whole (lark's lexer reads a terminal with
            it): lazy quantifiers stop where the rest of the pattern first matches, and an
            alternative is taken only where no earlier one leads to a match
            (:func:`~structgen.grammar.regular.first_matches`); else every full match counts
            (a lazy quantifier matches what a greedy one does).

    Returns:
        A term over Unicode scalar values that must match the whole string; its language is
        Python's (a subset of it where the module docstring says so), or in the ECMA dialect
        the strings that ECMAScript's ``new RegExp(pattern, "u")`` matches in full.

    Raises:
        RegexError: the pattern is malformed (``pos`` is the 0-based offset, as in ``re.error``);
            in the ECMA dialect, exactly when it is not valid ECMA-262 ``u``-mode syntax (as far
            as the module docstring's tables go).
        UnsupportedRegex: a construct whose language structgen cannot enforce exactly (in the
            ECMA dialect only for patterns that are otherwise valid).
        ValueError: an unknown ``dialect``.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
    flags = int(flags)
    if dialect == "ecma":
        return _parse_ecma(pattern, flags)
    if dialect != "python":
        raise ValueError(f"unknown regex dialect {dialect!r} (expected 'python' or 'ecma')")
    if flags & ~_KNOWN_FLAGS:
        raise RegexError(f"unknown flags {flags & ~_KNOWN_FLAGS:#x}")
    if flags & _LOCALE:
        raise RegexError("cannot use LOCALE flag with a str pattern")
    if exact_classes:
        flags |= _EXACT_CLASSES
    if first_match:
        flags |= _KEEP_LAZY
    parser = _Parser(pattern, flags, frozenset())
    term = parser.parse()
    if parser.merged_literals:
        term = _Parser(pattern, flags, frozenset(parser.merged_literals)).parse()
    return first_matches(term, _shadowing) if first_match else term


def _shadowing(branches: tuple[Term, ...], rest: Term) -> list[tuple[int, ...]]:
    """For each of ``branches``, the earlier ones that ``re`` may take in its place: those
    some text of which, followed by ``rest``, begins a text of it followed by ``rest``.
    Branches of fixed strings (keyword lists run to hundreds) are kept in a trie of their
    character classes, which a later one walks down where its classes meet theirs
    (:class:`_ClassTrie`); the others are decided on automata (:class:`_Shadows`)."""
    shadows = _Shadows(branches, rest)
    trie = _ClassTrie()
    others: list[int] = []  # the earlier branches that are no fixed strings
    found = []
    for i, branch in enumerate(branches):
        classes = _fixed_length(branch)
        if classes:
            earlier = shadows.among(others, i)
            earlier += trie.shadowing(classes, shadows, i)
            trie.add(classes, i)
        else:
            earlier = shadows.among(range(i), i)
            others.append(i)
        found.append(tuple(sorted(earlier)))
    return found


class _ClassTrie:
    """Fixed strings (by number) in a trie of their character classes."""

    def __init__(self) -> None:
        self._root: dict = {}  # class -> (subtrie, the strings ending there)
        self._meets: dict[tuple[CharSet, CharSet], bool] = {}

    def add(self, classes: list[CharSet], number: int) -> None:
        node = self._root
        for cls in classes:
            node, ends = node.setdefault(cls, ({}, []))
        ends.append(number)

    def shadowing(self, classes: list[CharSet], shadows: _Shadows, branch: int) -> list[int]:
        """The strings held that shadow branch ``branch``, the fixed string of ``classes``
        (see :func:`_shadowing`): those its texts may begin with, where the rest may be empty
        or the automaton says so, and, when the rest is not empty, the longer ones whose end
        the rest may begin."""
        found = []
        level = [self._root]
        for depth, cls in enumerate(classes):
            below = []
            for node in level:
                for key, (child, ends) in node.items():
                    if self._meet(key, cls):
                        below.append(child)
                        found += [j for j in ends if depth + 1 == len(classes)
                                  or shadows.test([j], branch, begins=True)]
            level = below
        while level and shadows.rest != EPSILON:
            below = [entry for node in level for entry in node.values()]
            found += [j for _, ends in below for j in ends if shadows.test([j], branch)]
            level = [child for child, _ in below]
        return found

    def _meet(self, a: CharSet, b: CharSet) -> bool:
        found = self._meets.get((a, b))
        if found is None:
            found = self._meets[a, b] = bool(a & b)
        return found


class _Shadows:
    """Which branches of an alternation, each followed by ``rest``, shadow which (see
    :func:`_shadowing`), asked of an automaton; what every question reads is computed once:
    each branch's first characters, and the terms' derivatives (one algebra for all the
    automata, so a branch's are shared by every question it is part of)."""

    def __init__(self, branches: tuple[Term, ...], rest: Term):
        self.rest = rest
        self._followed = [concat(branch, rest) for branch in branches]
        self._firsts = [_first_chars(term) for term in self._followed]
        self._nullable = [term_nullable(term) for term in self._followed]
        self._algebra = TermAlgebra()

    def among(self, candidates, branch: int) -> list[int]:
        """Those of branches ``candidates`` that shadow branch ``branch``, found by halving:
        asked of them all together first, as most branches are shadowed by none, then of each
        half that does, so that a few shadowing branches among many (``\\d+px|\\d+em|...``)
        cost a few questions per halving, not one per branch."""
        candidates = list(candidates)
        if not candidates or not self.test(candidates, branch):
            return []
        if len(candidates) == 1:
            return candidates
        half = len(candidates) // 2
        return self.among(candidates[:half], branch) + self.among(candidates[half:], branch)

    def test(self, earlier: list[int], branch: int, begins: bool = False) -> bool:
        """Whether some text of ``branch rest`` begins with a text of ``e rest`` for one of
        the branches ``earlier``: yes where ``e`` is a fixed string that ``branch`` may begin
        with (``begins``) and ``rest`` may be empty; otherwise decided on the automaton of
        ``branch rest`` read under the lookahead ``e rest``, and yes where that is too large
        to decide, which only costs a guard."""
        if begins:
            if term_nullable(self.rest):
                return True
        elif not any(self._nullable[j] for j in earlier) and not any(
                self._firsts[j] & self._firsts[branch] for j in earlier):
            return False
        terms = [self._followed[j] for j in earlier]
        lookahead = terms[0] if len(terms) == 1 else Alt(tuple(terms))
        try:
            return not LazyByteDFA(Seq((Look(lookahead, ahead=True, negate=False),
                                        self._followed[branch])),
                                   algebra=self._algebra).language_is_empty()
        except LimitExceeded:
            return True


def _fixed_length(term: Term) -> list[CharSet] | None:
    """The character class of each position of ``term``, when it is a sequence of single
    characters (a literal, case-insensitive or not); None otherwise."""
    items = term.items if isinstance(term, Seq) else (term,)
    if not all(isinstance(item, Chars) for item in items):
        return None
    return [item.charset for item in items]


def _first_chars(term: Term) -> CharSet:
    """The characters a match of ``term`` may begin with (a lookaround reads, it does not
    take: it adds none)."""
    if isinstance(term, Chars):
        return term.charset
    found = EMPTY_SET
    if isinstance(term, Seq):
        for item in term.items:
            found |= _first_chars(item)
            if not term_nullable(item):
                break
    elif isinstance(term, Alt):
        for item in term.items:
            found |= _first_chars(item)
    elif isinstance(term, Repeat) and term.max != 0:
        found = _first_chars(term.item)
    return found
