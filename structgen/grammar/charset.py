"""Sets of Unicode code points as sorted, disjoint, inclusive ranges.

The alphabet of every structgen language is the Unicode scalar values: 0..0x10FFFF without the
surrogates 0xD800..0xDFFF, which no UTF-8 text can contain. Complements are taken within it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)


def _normalise(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort, merge, and cut the surrogate block out of ``ranges``."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if lo > hi:
            continue
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[tuple[int, int]] = []
    s_lo, s_hi = SURROGATES
    for lo, hi in merged:
        if hi < s_lo or lo > s_hi:
            out.append((lo, hi))
            continue
        if lo < s_lo:
            out.append((lo, s_lo - 1))
        if hi > s_hi:
            out.append((s_hi + 1, hi))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CharSet:
    """An immutable set of code points; hashable so regex terms built from it can be cached.

    Unicode classes hold hundreds of ranges, so the hash is computed once.
    """

    ranges: tuple[tuple[int, int], ...]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(self.ranges))

    def __hash__(self) -> int:
        return self._hash

    @staticmethod
    def of(ranges: Iterable[tuple[int, int]]) -> CharSet:
        return CharSet(_normalise(ranges))

    @staticmethod
    def chars(text: str) -> CharSet:
        return CharSet.of((ord(c), ord(c)) for c in text)

    @staticmethod
    def from_predicate(predicate, lo: int = 0, hi: int = MAX_CODE_POINT) -> CharSet:
        """The code points in ``lo..hi`` for which ``predicate(chr(cp))`` holds."""
        ranges = []
        start = None
        for cp in range(lo, hi + 1):
            if predicate(chr(cp)):
                if start is None:
                    start = cp
            elif start is not None:
                ranges.append((start, cp - 1))
                start = None
        if start is not None:
            ranges.append((start, hi))
        return CharSet.of(ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __contains__(self, cp: int) -> bool:
        for lo, hi in self.ranges:
            if lo <= cp <= hi:
                return True
            if cp < lo:
                return False
        return False

    def __or__(self, other: CharSet) -> CharSet:
        return CharSet.of(self.ranges + other.ranges)

    def __and__(self, other: CharSet) -> CharSet:
        out = []
        i = j = 0
        a, b = self.ranges, other.ranges
        while i < len(a) and j < len(b):
            lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return CharSet(tuple(out))

    def __invert__(self) -> CharSet:
        out = []
        prev = 0
        for lo, hi in self.ranges:
            if lo > prev:
                out.append((prev, lo - 1))
            prev = hi + 1
        if prev <= MAX_CODE_POINT:
            out.append((prev, MAX_CODE_POINT))
        return CharSet.of(out)

    def __sub__(self, other: CharSet) -> CharSet:
        return self & ~other

    def size(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __repr__(self) -> str:
        parts = []
        for lo, hi in self.ranges[:6]:
            parts.append(f"{lo:#x}" if lo == hi else f"{lo:#x}-{hi:#x}")
        more = "..." if len(self.ranges) > 6 else ""
        return f"CharSet[{', '.join(parts)}{more}]"


EMPTY_SET = CharSet(())
ANY_CHAR = ~EMPTY_SET
NEWLINE = CharSet.chars("\n")
