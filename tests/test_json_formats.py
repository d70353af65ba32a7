"""JSON Schema ``format`` terms (``structgen.sources.json_formats``).

Ground truth is the official JSON Schema Test Suite (``optional/format``, draft 2020-12 and
draft 7): an invalid instance accepted is a failure, always; a valid instance rejected is
allowed only where the module documents a strict subset, and each such gap is named below.
Members of every term are also checked against ``jsonschema``'s format checkers (which need the
``jsonschema[format-nongpl]`` extras), and a few formats against independent oracles both ways
(``datetime``, ``ipaddress``, ``idna``, ``jsonpointer``, ``rfc3986_validator``).
"""

from __future__ import annotations

import calendar
import functools
import ipaddress
import itertools
import json
import random
import re
import unicodedata

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from structgen.automata.byte_dfa import LazyByteDFA
from structgen.errors import UnsupportedKeyword
from structgen.grammar.regular import Alt, Chars, Look, Repeat, Seq, Term, subterms
from structgen.sources import json_formats
from structgen.sources.json_formats import format_term
from structgen.testing import reference
from structgen.testing.schema_suite import SUITE_DIR

ENFORCED = (
    "date", "time", "date-time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uuid", "uri", "uri-reference", "iri", "iri-reference", "uri-template",
    "json-pointer", "relative-json-pointer",
)
REFUSED = ("regex",)

_SEPARATORS = ".\u3002\uff0e\uff61"


def _labels(name: str) -> list[str]:
    return re.split(f"[{re.escape(_SEPARATORS)}]", name)


def _outside_idn_subset(name: str) -> bool:
    """An IDN the documented subset leaves out: an A-label (or another ``--`` label), a
    character outside the U-label whitelist, a U-label beyond its length cap, or U-labels in a
    name of more than three labels."""
    if not name.isascii() and len(_labels(name)) > 3:
        return True
    small = re.compile(f"[a-z0-9{json_formats._ULABEL_SMALL}-]*")
    large = re.compile(f"[a-z0-9{json_formats._ULABEL_SMALL}{json_formats._ULABEL_LARGE}-]*")
    for label in _labels(name):
        if label[2:4] == "--":
            return True
        if label.isascii():
            continue
        if small.fullmatch(label):
            if len(label) > json_formats._longest_ulabel(0x45F):
                return True
        elif not large.fullmatch(label) or len(label) > json_formats._longest_ulabel(0xD7A3):
            return True
    return False


def _offset_leap_second(text: str) -> bool:
    """A leap second written with a non-zero UTC offset (left out: see ``_time``)."""
    found = re.search(r"\d\d:\d\d:60(?:\.\d+)?([Zz]|[+-]\d\d:\d\d)$", text)
    return found is not None and found.group(1) not in ("Z", "z", "+00:00", "-00:00")


# Valid suite instances that a documented subset rejects, per format.
KNOWN_GAPS = {
    "time": _offset_leap_second,
    "date-time": _offset_leap_second,
    "hostname": lambda s: any(label[2:4] == "--" for label in s.split(".")),
    "idn-hostname": _outside_idn_subset,
    # IDNA2008 wants NFC U-labels; the suite accepts a decomposed "e\u0301" in an e-mail domain.
    "idn-email": lambda s: not unicodedata.is_normalized("NFC", s.rpartition("@")[2]),
}


@functools.cache
def _dfa(name: str) -> LazyByteDFA:
    return LazyByteDFA(format_term(name))


def accepts(name: str, text: str) -> bool:
    dfa = _dfa(name)
    state = dfa.walk(dfa.start, text.encode())
    return state >= 0 and bool(dfa.accepting[state])


def _suite_groups():
    for draft in ("draft2020-12", "draft7"):
        for path in sorted((SUITE_DIR / draft / "optional" / "format").glob("*.json")):
            for index, group in enumerate(json.loads(path.read_text())):
                yield pytest.param(group, id=f"{draft}/{path.stem}/{index}")


SUITE_GROUPS = list(_suite_groups())


def test_suite_is_present():
    assert len(SUITE_GROUPS) >= 50


@pytest.mark.parametrize("group", SUITE_GROUPS)
def test_official_suite(group):
    name = group["schema"]["format"]
    strings = [(t["data"], t["valid"]) for t in group["tests"] if isinstance(t["data"], str)]
    assert strings
    if name in REFUSED:
        with pytest.raises(UnsupportedKeyword):
            format_term(name)
        return
    if name not in ENFORCED:
        assert format_term(name) is None
        return
    term = format_term(name)
    gap = KNOWN_GAPS.get(name, lambda s: False)
    for text, valid in strings:
        accepted = accepts(name, text)
        if len(text) <= 80:
            assert reference.fullmatch(term, text) == accepted, text
        if not valid:
            assert not accepted, f"false accept of {text!r}"
        else:
            assert accepted != gap(text), f"{text!r}: accepted={accepted}, documented gap={gap(text)}"


def test_every_suite_format_is_decided():
    names = {group.values[0]["schema"]["format"] for group in SUITE_GROUPS}
    assert names - {"unknown"} == set(ENFORCED) | set(REFUSED)


def test_unknown_formats_are_annotations():
    for name in ("unknown", "", "color", "Date", "int32", "binary"):
        assert format_term(name) is None


def test_regex_format_is_refused_with_reason():
    with pytest.raises(UnsupportedKeyword) as caught:
        format_term("regex")
    assert caught.value.keyword == "format"
    assert "regex" in str(caught.value) and "not a regular language" in str(caught.value)


@pytest.mark.parametrize("name", ENFORCED)
def test_terms_are_cached_and_only_bound_names_by_lookahead(name):
    term = format_term(name)
    assert format_term(name) is term
    for node in subterms(term):
        if isinstance(node, Look):
            assert node.ahead and node.negate
            assert isinstance(node.body, Repeat) and node.body.min == node.body.max == 254


# ----------------------------------------------------------------- members vs jsonschema


def _nth_code_point(charset, index: int) -> str:
    for lo, hi in charset.ranges:
        if index <= hi - lo:
            return chr(lo + index)
        index -= hi - lo + 1
    raise IndexError(index)


def _fixed_text(term: Term) -> str | None:
    """The one string ``term`` matches, if it is a literal."""
    if isinstance(term, Chars) and term.charset.size() == 1:
        return chr(term.charset.ranges[0][0])
    if isinstance(term, Seq):
        parts = [_fixed_text(x) for x in term.items]
        return None if None in parts else "".join(parts)
    return None


def _members(term: Term, memo: dict) -> st.SearchStrategy[str]:
    """Strings built by walking ``term`` (lookarounds ignored: callers filter on the DFA)."""
    cached = memo.get(id(term))
    if cached is not None:
        return cached
    fixed = _fixed_text(term)
    if fixed is not None:
        strategy = st.just(fixed)
    elif isinstance(term, Chars):
        charset = term.charset
        strategy = st.integers(0, charset.size() - 1).map(
            functools.partial(_nth_code_point, charset))
    elif isinstance(term, Seq):
        strategy = st.tuples(*(_members(x, memo) for x in term.items)).map("".join)
    elif isinstance(term, Alt):
        strategy = st.one_of(*(_members(x, memo) for x in term.items))
    elif isinstance(term, Repeat):
        top = term.min + 6 if term.max is None else min(term.max, term.min + 6)
        strategy = st.lists(_members(term.item, memo), min_size=term.min, max_size=top).map(
            "".join)
    else:
        strategy = st.just("")
    memo[id(term)] = strategy
    return strategy


@functools.cache
def _format_members(name: str) -> st.SearchStrategy[str]:
    return _members(format_term(name), {})


def _leap_second(offset: int):
    return lambda s: s[offset:offset + 2] == "60"


def _rfc3987_syntax_gap(text: str) -> bool:
    return max(text, default="\0") > "\uffff" or re.search(r"\[(V|[^\]]*::)", text) is not None


# Where jsonschema's checker rejects what RFC and suite accept (the suite wins).
CHECKER_DISAGREES = {
    # rfc3339_validator has no leap seconds ("1998-12-31T23:59:60Z" is valid in the suite).
    "time": _leap_second(6),
    "date-time": _leap_second(17),
    # jsonschema refuses a digit after a 0 in the prefix ("100" is valid in the suite).
    "relative-json-pointer": lambda s: re.match("[0-9]*0[0-9]", s) is not None,
    # uri_template refuses %-encoded variable names and 4-digit prefixes ("{%41}", "{v:1000}").
    "uri-template": lambda s: re.search(r"\{[^}]*(%|:[0-9]{4})", s) is not None,
    # rfc3986_validator wants a lower-case "v" in an IPvFuture literal (RFC 3986's ABNF, like
    # the suite's "http://[V1.fe]" for IRIs, accepts both cases).
    "uri": lambda s: "[V" in s,
    "uri-reference": lambda s: "[V" in s,
    # rfc3987_syntax knows no character beyond the BMP ("/\U00010300", "?q=\U000f0000"), lets
    # "::" stand for one group only ("[2001:db8::1]") and wants a lower-case "v" ("[V1.fe]").
    "iri": lambda s: _rfc3987_syntax_gap(s),
    "iri-reference": lambda s: _rfc3987_syntax_gap(s),
}

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


@pytest.mark.parametrize("name", ENFORCED)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_members_pass_jsonschema_checker(name, data):
    assert name in CHECKER.checkers, (
        f"no jsonschema checker for {name!r}: install jsonschema[format-nongpl]")
    text = data.draw(_format_members(name))
    assume(accepts(name, text))  # the generator ignores the lookahead bounding host names
    if not CHECKER_DISAGREES.get(name, lambda s: False)(text):
        assert CHECKER.conforms(text, name), text


# --------------------------------------------------------------------- independent oracles


def test_dates_follow_the_gregorian_calendar():
    rng = random.Random(7)
    years = [1, 4, 100, 400, 1582, 1900, 2000, 2004, 2021, 2100, 2400, 9996, 9999]
    years += rng.sample(range(1, 10000), 40)
    for year, month, day in itertools.product(years, range(14), range(33)):
        text = f"{year:04d}-{month:02d}-{day:02d}"
        valid = 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
        assert accepts("date", text) == valid, text
    assert not accepts("date", "0000-01-01")  # documented subset


def _utc_minute(local: int, offset: str) -> int:
    if offset in "Zz":
        return local
    minutes = int(offset[1:3]) * 60 + int(offset[4:6])
    return (local - minutes if offset[0] == "+" else local + minutes) % 1440


def test_leap_seconds_only_at_2359_utc():
    """Second 60 is accepted at 23:59 with a zero offset, and never where the time minus its
    offset is not 23:59 UTC (other valid leap seconds are left out: see ``_time``)."""
    rng = random.Random(3)
    dfa = _dfa("time")
    every_offset = ["Z", "z"] + [f"{sign}{h:02d}:{m:02d}" for sign in "+-" for h in range(24)
                                 for m in range(60)]
    for local in range(1440):
        prefix = f"{local // 60:02d}:{local % 60:02d}:60"
        for fraction in ("", ".5"):
            state = dfa.walk(dfa.start, (prefix + fraction).encode())
            for offset in ["Z", "z", "+00:00", "-00:00"] + rng.sample(every_offset, 12):
                end = dfa.walk(state, offset.encode()) if state >= 0 else state
                accepted = end >= 0 and bool(dfa.accepting[end])
                utc = _utc_minute(local, offset) == 23 * 60 + 59
                assert not accepted or utc, prefix + fraction + offset
                if local == 23 * 60 + 59 and offset in ("Z", "z", "+00:00", "-00:00"):
                    assert accepted, prefix + fraction + offset
    for text in ("12:00:59+05:17", "00:00:00-23:59", "23:59:59.9z", "23:59:60.25Z"):
        assert accepts("time", text)
    assert accepts("date-time", "1990-12-31t23:59:60+00:00")


def _random_name(rng: random.Random, length: int) -> str:
    """A host name of exactly ``length`` characters with random label lengths up to 63."""
    labels, left = [], length
    while left > 0:
        size = min(left, rng.randint(1, 63))
        if 0 < left - size < 2:  # a last label needs a dot and a character
            size = left
        if size > 63:
            size = left - 2
        labels.append("".join(rng.choice("abc123") for _ in range(size)))
        left -= size + 1
    name = ".".join(labels)
    assert len(name) == length and all(len(label) <= 63 for label in labels)
    return name


def test_host_name_length_bounds():
    rng = random.Random(5)
    for _ in range(10):
        assert accepts("hostname", _random_name(rng, 253))
        assert not accepts("hostname", _random_name(rng, 254))
        assert accepts("idn-hostname", _random_name(rng, 253).replace(".", "\u3002"))
        assert not accepts("idn-hostname", _random_name(rng, 254).replace(".", "\uff61"))
    assert accepts("hostname", "a" * 63 + ".b")
    assert not accepts("hostname", "a" * 64 + ".b")
    for label in ("a--b", "abc--d", "ab-c", "a-b-c-d"):
        assert accepts("hostname", label)
    for label in ("ab--c", "xn--abc", "XN--ab", "-ab", "ab-", "a_b"):
        assert not accepts("hostname", label)


def _ulabel_tiers():
    small = json_formats._ULABEL_SMALL
    return [(small, 0x45F), (small + json_formats._ULABEL_LARGE, 0xD7A3)]


def _class_chars(body: str) -> list[str]:
    pattern = re.compile(f"[{body}]")
    return [chr(cp) for cp in range(0x80, 0xD7A4) if pattern.fullmatch(chr(cp))]


def test_ulabel_whitelist_is_pvalid_ltr_and_nfc_inert():
    import idna

    letters = _class_chars(json_formats._ULABEL_SMALL + json_formats._ULABEL_LARGE)
    second_of_a_pair = set()
    for cp in range(0x110000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            second_of_a_pair.add(chr(int(parts[1], 16)))
    for ch in letters:
        idna.encode(ch)  # raises unless PVALID and context-free
        assert unicodedata.bidirectional(ch) == "L", ch
        assert unicodedata.combining(ch) == 0 and unicodedata.is_normalized("NFC", ch), ch
        assert ch not in second_of_a_pair, ch
    assert not any(0x1100 <= ord(ch) <= 0x11FF for ch in letters)  # no conjoining jamo


def test_ulabels_fit_63_octets_at_their_cap():
    import idna

    rng = random.Random(11)
    for letters, top in _ulabel_tiers():
        cap = json_formats._longest_ulabel(top)
        chars = _class_chars(letters)
        high = chars[-40:]
        for _ in range(300):
            pool = rng.choice([chars, high, chars[:5] + chars[-5:]])
            label = "".join(rng.choice(pool) for _ in range(cap))
            assert len(idna.encode(label)) <= 63, label
            assert accepts("idn-hostname", label) and accepts("idn-hostname", f"a.{label}.b")
            assert not accepts("idn-hostname", label + chars[0])
        descending = "".join(chars[::-max(1, len(chars) // cap)][:cap])
        assert len(idna.encode(descending)) <= 63
    assert not accepts("idn-hostname", "\u00fc.\u00fc.\u00fc.\u00fc")  # U-labels: 3 labels


def test_ip_addresses_agree_with_ipaddress():
    rng = random.Random(2)
    octets = ["0", "1", "9", "10", "99", "100", "199", "249", "250", "255", "256", "01", "00"]
    for _ in range(3000):
        text = ".".join(rng.choice(octets) for _ in range(rng.choice([3, 4, 4, 4, 5])))
        try:
            ipaddress.IPv4Address(text)
            valid = True
        except ValueError:
            valid = False
        assert accepts("ipv4", text) == valid, text
    pieces = ["", "0", "1", "ab", "fFfF", "12345", "g"]
    for _ in range(6000):
        groups = [rng.choice(pieces) for _ in range(rng.randint(1, 9))]
        if rng.random() < 0.3:
            groups[-1] = ".".join(rng.choice(octets[:10] + ["01"]) for _ in range(4))
        text = ":".join(groups)
        try:
            ipaddress.IPv6Address(text)
            valid = True
        except ValueError:
            valid = False
        assert accepts("ipv6", text) == valid, text


def _random_text(rng: random.Random, pieces: list[str]) -> str:
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))


def test_json_pointers_agree_with_jsonpointer():
    import jsonpointer

    rng = random.Random(4)
    for _ in range(5000):
        text = _random_text(rng, ["/", "~", "~0", "~1", "0", "1", "a", "#", "\n", "\u00e9"])
        try:
            jsonpointer.JsonPointer(text)
            valid = True
        except jsonpointer.JsonPointerException:
            valid = False
        assert accepts("json-pointer", text) == valid, text


def test_uris_agree_with_rfc3986_validator():
    from rfc3986_validator import validate_rfc3986

    rng = random.Random(6)
    pieces = ["http", "a", ":", "//", "/", "?", "#", "@", "[", "]", "::1", "v1.x", "[V7.a:b]",
              "%41", "%4", "%", "1", ".", "-", "!", " ", "\u00e9", "80", "192.168.0.1",
              "::ffff:1.2.3.4", "\\", '"', "{"]
    for _ in range(8000):
        text = _random_text(rng, pieces)
        if CHECKER_DISAGREES["uri"](text):
            assert accepts("uri-reference", text) == accepts(
                "uri-reference", text.replace("[V", "[v")), text
            continue
        assert accepts("uri", text) == bool(validate_rfc3986(text, rule="URI")), text
        assert accepts("uri-reference", text) == bool(
            validate_rfc3986(text, rule="URI_reference")), text


def test_iris_refuse_bidirectional_formatting_characters():
    for name in ("iri", "iri-reference"):
        assert accepts(name, "http://example.com/\u00e9t\u00e9?\u05d0=\U00010300#x")
        for mark in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2069":
            assert not accepts(name, f"http://example.com/a{mark}b"), ascii(mark)
