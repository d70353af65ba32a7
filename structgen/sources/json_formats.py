"""JSON Schema ``format`` values as regular terms, for the JSON Schema front end.

``format_term(name)`` gives the language of a format over the *decoded* string value (code
points, no JSON escapes, no quotes), or ``None`` for a name no validator checks (an annotation).
Each term is the exact language of the format's definition (draft 2020-12 and draft-07, RFC
3339, 5321, 1123, 4291, 4122, 3986, 3987, 6901, 6570, ...), as the official JSON Schema Test
Suite reads it, or a documented strict *subset* of it where the exact language is impractical;
never a superset, so every generated string passes a conforming validator. The subsets:

* ``date``, ``date-time``: year ``0000`` is left out (RFC 3339 allows it; Python's ``datetime``
  and most validators do not).
* ``duration``: designators in upper case only (ABNF quoted strings are case-insensitive).
* ``hostname`` (and the domain of ``email``): no label with ``--`` in its third and fourth
  characters. Those are the IDNA A-labels (``xn--``) and reserved labels, whose validity depends
  on Punycode decoding and the IDNA2008 tables.
* ``idn-hostname`` (and the domain of ``idn-email``): ASCII names as for ``hostname``, with any
  of the four IDNA label separators; or names of at most three labels where a label may also be
  a short U-label over a whitelist of lower-case letters (Latin-1, Greek, Cyrillic), kana, CJK
  ideographs and Hangul syllables. Those characters are PVALID, left-to-right, and free of
  contextual rules and of NFC interactions, and the length cap keeps every A-label within 63
  octets (and three labels within 253) whatever the characters are.
* ``email``: address literals are IPv4 without leading zeros or ``IPv6:`` in RFC 5321's forms
  (the general ``tag:content`` literal needs an IANA-registered tag). The RFC 5321 section 4.5.3.1
  size limits are not syntax and are not imposed on the local part.
* ``iri``, ``iri-reference``: no bidirectional formatting characters, which RFC 3987 section
  4.1 forbids outside its ABNF.
* ``relative-json-pointer``: without the index manipulation (``0+1``) of the draft 2020-12
  revision, which draft-07 does not have.
* ``uri-template``: RFC 6570 level 4 without the reserved operators ``= , ! @ |``; the apostrophe
  is a literal, as the test suite expects.

Terms contain no lookaround except one negative lookahead bounding the length of a host name;
its body speaks about the rest of the decoded value, like the anchors of a ``pattern``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from structgen.errors import UnsupportedKeyword
from structgen.grammar.charset import ANY_CHAR, CharSet
from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term, literal
from structgen.sources.regex import parse_regex

__all__ = ["format_term"]

# Formats that validators check but whose language is not regular.
_REFUSED = {
    "regex": "the set of valid regular expressions is not a regular language "
    "(it needs balanced parentheses)",
}

_HEX = "[0-9A-Fa-f]"
_DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # no leading zeros
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_H16 = f"{_HEX}{{1,4}}"

# RFC 3986 character classes (inside brackets) and RFC 3987 additions.
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = f"%{_HEX}{{2}}"
_UCSCHAR_ASTRAL = (
    "".join(f"\\U{plane:04x}0000-\\U{plane:04x}fffd" for plane in range(1, 14))
    + r"\U000e1000-\U000efffd"
)
_UCSCHAR = r"\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef" + _UCSCHAR_ASTRAL
# RFC 3987 section 4.1: IRIs must not contain bidirectional formatting characters (U+200E,
# U+200F, U+202A..U+202E; the later isolates U+2066..U+2069 are left out as well).
_IRI_UCSCHAR = (
    r"\u00a0-\u200d\u2010-\u2029\u202f-\u2065\u206a-\ud7ff\uf900-\ufdcf\ufdf0-\uffef"
    + _UCSCHAR_ASTRAL
)
_IPRIVATE = r"\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"

_LABEL_SEPARATORS = ".\u3002\uff0e\uff61"  # RFC 3490 section 3.1: full stops of IDNA
_MAX_NAME = 253  # RFC 1034 section 3.1: 255 octets on the wire, 253 as text
_MAX_LABEL = 63

# U-label letters (see the module docstring), in two tiers: the tier of small code points gets
# a longer length cap, as its Punycode deltas are smaller.
_ULABEL_SMALL = "\u00df-\u00f6\u00f8-\u00ff\u03ac-\u03ce\u0430-\u045f"
_ULABEL_LARGE = "\u3041-\u3096\u30a1-\u30fa\u30fc\u4e00-\u9fa5\uac00-\ud7a3"


@functools.cache
def _regex(pattern: str) -> Term:
    """The term of a Python regex; the formats share their building blocks."""
    return parse_regex(pattern)


def format_term(name: str) -> Term | None:
    """The regular term of the JSON Schema format ``name`` over a decoded string value.

    Args:
        name: the value of a ``format`` keyword.

    Returns:
        The term (exact, or a documented strict subset: see the module docstring), or ``None``
        when ``name`` is not a format any validator checks, so that it is only an annotation.

    Raises:
        UnsupportedKeyword: for a format that validators check but no regular term can express
            (``regex``).
    """
    if name in _REFUSED:
        raise UnsupportedKeyword("format", f"format {name!r} is not supported: {_REFUSED[name]}")
    return _cached(name) if name in _BUILDERS else None


# ------------------------------------------------------------------------------------ dates


def _date() -> Term:
    """RFC 3339 full-date with the days of each month and Gregorian leap years."""
    year = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
    # Leap: divisible by 4, and not by 100 unless by 400; in two-digit groups, the last pair
    # is a non-zero multiple of 4, or it is 00 and the century pair is a multiple of 4.
    multiple_of_4 = "(?:0[48]|[2468][048]|[13579][26])"
    leap_year = f"(?:[0-9]{{2}}{multiple_of_4}|{multiple_of_4}00)"
    month_day = (
        "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
        "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
        "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    )
    return _regex(f"{year}-{month_day}|{leap_year}-02-29")


def _time() -> Term:
    """RFC 3339 full-time; second 60 (a leap second) only at 23:59 with a zero UTC offset.

    A leap second is valid wherever the local time minus its offset is 23:59 UTC; listing every
    local minute with its two matching offsets takes 2,880 branches that the automaton must
    carry in every state, which made the first mask of any date-time take seconds with a large
    vocabulary. Leap seconds written with a non-zero offset are therefore not generated (a
    subset: never an invalid time).
    """
    fraction = r"(?:\.[0-9]+)?"
    offset = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
    ordinary = f"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]{fraction}{offset}"
    leap = f"23:59:60{fraction}(?:[Zz]|[+-]00:00)"
    return _regex(f"{ordinary}|{leap}")


def _date_time() -> Term:
    return Seq((_cached("date"), _regex("[Tt]"), _cached("time")))


def _duration() -> Term:
    """RFC 3339 Appendix A duration."""
    n = "[0-9]+"
    second = f"{n}S"
    minute = f"{n}M(?:{second})?"
    hour = f"{n}H(?:{minute})?"
    time = f"T(?:{hour}|{minute}|{second})"
    day = f"{n}D"
    month = f"{n}M(?:{day})?"
    year = f"{n}Y(?:{month})?"
    return _regex(f"P(?:(?:{day}|{month}|{year})(?:{time})?|{time}|{n}W)")


# ---------------------------------------------------------------------- hosts and addresses


def _ipv6() -> str:
    """RFC 4291 section 2.2 text forms (RFC 3986's ``IPv6address``), as a regex."""
    ls32 = f"(?:{_H16}:{_H16}|{_IPV4})"
    branches = [f"(?:{_H16}:){{6}}{ls32}", f"::(?:{_H16}:){{5}}{ls32}"]
    for before in range(7):
        head = f"(?:{_H16}(?::{_H16}){{0,{before}}})?::"
        tail = [f"(?:{_H16}:){{4}}{ls32}", f"(?:{_H16}:){{3}}{ls32}", f"(?:{_H16}:){{2}}{ls32}",
                f"{_H16}:{ls32}", ls32, _H16, ""][before]
        branches.append(head + tail)
    return "(?:" + "|".join(branches) + ")"


def _groups(count: int) -> str:
    """Exactly ``count`` colon-separated hex groups (RFC 5321 ``IPv6-hex``)."""
    return "" if count == 0 else f"{_H16}(?::{_H16}){{{count - 1}}}"


def _optional_groups(most: int) -> str:
    return "" if most == 0 else f"(?:{_H16}(?::{_H16}){{0,{most - 1}}})?"


def _smtp_ipv6() -> str:
    """RFC 5321 ``IPv6-addr``: like RFC 4291, but ``::`` stands for at least two groups."""
    branches = [_groups(8), f"{_groups(6)}:{_IPV4}"]
    branches += [f"{_groups(k)}::{_optional_groups(6 - k)}" for k in range(7)]
    branches += [
        f"{_groups(k)}::(?:{_groups(1)}(?::{_H16}){{0,{3 - k}}}:)?{_IPV4}" if k < 4
        else f"{_groups(k)}::{_IPV4}"
        for k in range(5)
    ]
    return "(?:" + "|".join(branches) + ")"


def _label(allowed: str, longest: int) -> str:
    """A label of 1..``longest`` characters of the class ``allowed`` (written without the
    hyphen) and ``-``: no hyphen first or last, nor in both the third and fourth places (RFC 5891
    section 4.2.3.1)."""
    a, d = f"[{allowed}]", f"[{allowed}-]"
    return f"(?:{a}(?:{a}|{d}{a}|{d}{d}{a}|{d}(?:{a}{d}|-{a}){d}{{0,{longest - 5}}}{a})?)"


def _bounded_name(label: str, separators: str) -> Term:
    """Labels joined by ``separators``, at most 253 characters in all.

    The bound is a negative lookahead at the start: a name never has 254 name characters ahead
    of it, as the value ends after the name.
    """
    name_chars = _regex(f"[A-Za-z0-9{separators}-]")
    too_long = Look(Repeat(name_chars, _MAX_NAME + 1, _MAX_NAME + 1), ahead=True, negate=True)
    return Seq((too_long, _regex(f"{label}(?:[{separators}]{label})*")))


def _hostname() -> Term:
    """RFC 1123 host name (no A-labels: see the module docstring)."""
    return _bounded_name(_label("A-Za-z0-9", _MAX_LABEL), r"\.")


def _punycode_digits(value: int, bias: int) -> int:
    """Digits of ``value`` as a Punycode variable-length integer (RFC 3492 section 6.3)."""
    digits, k = 1, 36
    while True:
        threshold = min(max(k - bias, 1), 26)
        if value < threshold:
            return digits
        value = (value - threshold) // (36 - threshold)
        k += 36
        digits += 1


def _longest_ulabel(max_code_point: int) -> int:
    """The most code points (at most ``max_code_point``) a label may have so that its A-label
    fits 63 octets, whatever they are.

    Each encoded delta is at most ``(m - 128) * (h + 1) + length + 1 <= (max - 127) * length
    + 1``; the digits of a value are monotone in it, so the worst bias bounds them all. Basic
    (ASCII) code points cost one octet each plus the ``-`` delimiter, never more than a delta.
    """
    longest = 0
    while True:
        length = longest + 1
        bound = (max_code_point - 127) * length + 1
        digits = max(_punycode_digits(bound, bias) for bias in range(36 * 16))
        worst = max(
            len("xn--") + basic + (basic > 0) + (length - basic) * digits
            for basic in range(length)
        )
        if worst > _MAX_LABEL:
            return longest
        longest = length


def _ulabel(letters: str) -> str:
    """A U-label over lower-case ASCII and ``letters`` (a class body), capped in length."""
    charset = _regex(f"[{letters}]").charset
    return _label(f"a-z0-9{letters}", _longest_ulabel(charset.ranges[-1][1]))


def _idn_hostname() -> Term:
    """IDNA2008 host name (a subset: see the module docstring)."""
    ascii_label = _label("A-Za-z0-9", _MAX_LABEL)
    any_label = "|".join(
        (ascii_label, _ulabel(_ULABEL_SMALL), _ulabel(_ULABEL_SMALL + _ULABEL_LARGE)))
    with_ulabels = _regex(f"(?:{any_label})(?:[{_LABEL_SEPARATORS}](?:{any_label})){{0,2}}")
    return Alt((_bounded_name(ascii_label, _LABEL_SEPARATORS), with_ulabels))


# ----------------------------------------------------------------------------------- e-mail

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_QTEXT = r" !#-\[\]-~"  # RFC 5321 qtextSMTP: printable ASCII but '"' and '\'
_ADDRESS_LITERAL = rf"\[(?:{_IPV4}|IPv6:{_smtp_ipv6()})\]"


def _mailbox(extra: str, domain: Term) -> Term:
    """RFC 5321 ``Mailbox`` (``extra``: characters RFC 6531 adds to atext and qtext)."""
    atom = f"[{_ATEXT}{extra}]+"
    local = rf'{atom}(?:\.{atom})*|"(?:[{_QTEXT}{extra}]|\\[ -~])*"'
    return Seq((_regex(f"(?:{local})@"), Alt((domain, _regex(_ADDRESS_LITERAL)))))


# ------------------------------------------------------------------------- URIs and IRIs


def _uri_regex(iri: bool, reference: bool) -> str:
    """RFC 3986 ``URI`` / ``URI-reference``, or RFC 3987 ``IRI`` / ``IRI-reference``."""
    unreserved = _UNRESERVED + (_IRI_UCSCHAR if iri else "")
    private = _IPRIVATE if iri else ""
    pchar = f"(?:[{unreserved}{_SUB_DELIMS}:@]|{_PCT})"
    segment_nz_nc = f"(?:[{unreserved}{_SUB_DELIMS}@]|{_PCT})+"
    userinfo = f"(?:[{unreserved}{_SUB_DELIMS}:]|{_PCT})*"
    future = rf"[vV]{_HEX}+\.[{_UNRESERVED}{_SUB_DELIMS}:]+"
    reg_name = f"(?:[{unreserved}{_SUB_DELIMS}]|{_PCT})*"  # includes every IPv4address
    host = rf"(?:\[(?:{_ipv6()}|{future})\]|{reg_name})"
    authority = f"(?:{userinfo}@)?{host}(?::[0-9]*)?"
    segment = f"{pchar}*"
    path_abempty = f"(?:/{segment})*"
    path_absolute = f"/(?:{pchar}+(?:/{segment})*)?"
    path_rootless = f"{pchar}+(?:/{segment})*"
    path_noscheme = f"{segment_nz_nc}(?:/{segment})*"
    query = rf"(?:\?(?:{pchar}|[/?{private}])*)?"
    fragment = rf"(?:#(?:{pchar}|[/?])*)?"
    absolute_form = (
        f"[A-Za-z][A-Za-z0-9+.-]*:(?://{authority}{path_abempty}|{path_absolute}"
        f"|{path_rootless}|){query}{fragment}"
    )
    relative_form = (
        f"(?://{authority}{path_abempty}|{path_absolute}|{path_noscheme}|){query}{fragment}"
    )
    return f"{absolute_form}|{relative_form}" if reference else absolute_form


def _uri_template() -> Term:
    """RFC 6570 URI Template, level 4 (see the module docstring for the two deviations)."""
    literal_chars = f"(?:[!#$&'(-;=?-\\[\\]_a-z~{_UCSCHAR}{_IPRIVATE}]|{_PCT})"
    varchar = f"(?:[A-Za-z0-9_]|{_PCT})"
    varspec = rf"{varchar}(?:\.?{varchar})*(?::[1-9][0-9]{{0,3}}|\*)?"
    expression = rf"\{{[+#./;?&]?{varspec}(?:,{varspec})*\}}"
    return _regex(f"(?:{literal_chars}|{expression})*")


# ----------------------------------------------------------------------------- JSON Pointer


def _json_pointer() -> Term:
    """RFC 6901: ``/``-prefixed reference tokens with ``~`` escaped as ``~0`` or ``~1``."""
    unescaped = Chars(ANY_CHAR - CharSet.chars("/~"))
    token = Repeat(Alt((unescaped, _regex("~[01]"))), 0, None)
    return Repeat(Seq((literal("/"), token)), 0, None)


def _relative_json_pointer() -> Term:
    return Seq((_regex("(?:0|[1-9][0-9]*)"), Alt((literal("#"), _cached("json-pointer")))))


# -------------------------------------------------------------------------------- registry

_BUILDERS: dict[str, Callable[[], Term]] = {
    "date": _date,
    "time": _time,
    "date-time": _date_time,
    "duration": _duration,
    "hostname": _hostname,
    "idn-hostname": _idn_hostname,
    "ipv4": lambda: _regex(_IPV4),
    "ipv6": lambda: _regex(_ipv6()),
    "uuid": lambda: _regex(f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"),
    "email": lambda: _mailbox("", _cached("hostname")),
    "idn-email": lambda: _mailbox(r"\u0080-\U0010ffff", _cached("idn-hostname")),
    "uri": lambda: _regex(_uri_regex(iri=False, reference=False)),
    "uri-reference": lambda: _regex(_uri_regex(iri=False, reference=True)),
    "iri": lambda: _regex(_uri_regex(iri=True, reference=False)),
    "iri-reference": lambda: _regex(_uri_regex(iri=True, reference=True)),
    "uri-template": _uri_template,
    "json-pointer": _json_pointer,
    "relative-json-pointer": _relative_json_pointer,
}


@functools.cache
def _cached(name: str) -> Term:
    """Each format's term is built once: terms are immutable and some are large."""
    return _BUILDERS[name]()
