"""Code point sets as UTF-8 byte-range sequences: the bridge from characters to bytes.

A set of code points becomes a list of sequences of byte ranges, each sequence matching the
UTF-8 encodings of a block of code points, so that a byte automaton can accept exactly the
encodings of the set (tokens may split a character anywhere).
"""

from __future__ import annotations

from functools import lru_cache

from structgen.grammar.charset import CharSet

_LENGTH_LIMITS = ((0, 0x7F), (0x80, 0x7FF), (0x800, 0xFFFF), (0x10000, 0x10FFFF))


def _split(lo: int, hi: int, out: list[tuple[int, int]]) -> None:
    """Split ``lo..hi`` (one encoding length) until every byte position varies independently."""
    stack = [(lo, hi)]
    while stack:
        lo, hi = stack.pop()
        n = len(chr(lo).encode())
        for i in range(1, n):
            m = (1 << (6 * i)) - 1
            if lo & ~m != hi & ~m:
                if lo & m:
                    stack += [((lo | m) + 1, hi), (lo, lo | m)]
                    break
                if hi & m != m:
                    stack += [(hi & ~m, hi), (lo, (hi & ~m) - 1)]
                    break
        else:
            out.append((lo, hi))


@lru_cache(maxsize=65536)
def utf8_sequences(charset: CharSet) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Byte-range sequences whose concatenations are exactly the encodings of ``charset``."""
    blocks: list[tuple[int, int]] = []
    for lo, hi in charset.ranges:
        for limit_lo, limit_hi in _LENGTH_LIMITS:
            a, b = max(lo, limit_lo), min(hi, limit_hi)
            if a <= b:
                _split(a, b, blocks)
    sequences = []
    for lo, hi in sorted(blocks):
        lo_bytes, hi_bytes = chr(lo).encode(), chr(hi).encode()
        sequences.append(tuple(zip(lo_bytes, hi_bytes)))
    return tuple(sequences)


def encodable_chars(byte_allowed) -> CharSet:
    """The code points whose UTF-8 encoding uses only bytes with ``byte_allowed[b]`` true."""
    ranges = []
    for sequence in utf8_sequences(~CharSet(())):
        # Each sequence covers a block whose code points vary independently per byte position;
        # split it on the allowed values of the first byte, and require all later positions to
        # be fully allowed (otherwise walk its code points one by one).
        later_ok = all(all(byte_allowed[b] for b in range(lo, hi + 1)) for lo, hi in sequence[1:])
        lo0, hi0 = sequence[0]
        for lead in range(lo0, hi0 + 1):
            if not byte_allowed[lead]:
                continue
            first = _first_code_point(lead, sequence)
            last = _last_code_point(lead, sequence)
            if later_ok:
                ranges.append((first, last))
            else:
                ranges.extend(
                    (cp, cp) for cp in range(first, last + 1)
                    if 0xD800 > cp or cp > 0xDFFF
                    if all(byte_allowed[b] for b in chr(cp).encode())
                )
    return CharSet.of(ranges)


def _first_code_point(lead: int, sequence) -> int:
    return ord(bytes([lead] + [lo for lo, _ in sequence[1:]]).decode())


def _last_code_point(lead: int, sequence) -> int:
    return ord(bytes([lead] + [hi for _, hi in sequence[1:]]).decode())
