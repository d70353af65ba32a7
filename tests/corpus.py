"""Realistic regular expressions used across tests: validation patterns as people write them."""

import re

# (pattern, flags): every pattern here must be supported exactly.
PATTERNS = [
    (r"\d{3}-\d{4}", 0),
    (r"\(\d{3}\) \d{3}-\d{4}", 0),
    (r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", 0),
    (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", 0),
    (r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}", 0),
    (r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", 0),
    (r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", 0),
    (r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?", 0),
    (r"[A-Za-z_][A-Za-z0-9_]*", 0),
    (r"#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3}", 0),
    (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?", 0),
    (r"(yes|no|maybe|y|n)", 0),
    (r"(cat|category|cattle|dog)s?", 0),
    (r"(a|ab)(c|bcd)(d*)", 0),
    (r"((ab){1,3}c?){2}", 0),
    (r"[^\s,]+(, [^\s,]+){0,3}", 0),
    (r"\w+( \w+)*\.", 0),
    (r"\S+", 0),
    (r"\D{2,4}", 0),
    (r"[^aeiou\d]{1,5}", 0),
    (r"\p{Lu}\p{Ll}+( \p{Lu}\p{Ll}+)*", 0),
    (r"[\p{L}--[a-z]]+", 0),
    (r".{0,3}x", 0),
    (r"(?i)hello( world)?", 0),
    (r"HeLLo", re.IGNORECASE),
    (r"caf[eé] (au lait)?", 0),
    (r"\u00e9+|\u6f22\u5b57", 0),
    (r"^\d+$", 0),
    (r"^(?=.*[A-Z])(?=.*\d)[A-Za-z\d]{4,8}$", 0),
    (r"^(?!.*--)[a-z-]{1,8}$", 0),
    (r"(?<=a)b|ab", 0),
    (r"a(?<=a)b(?<!c)c?", 0),
    (r"\bfoo\b.?", 0),
    (r"(\b\w+\b ?){1,3}", 0),
    (r"(?:(?!ab)[ab])*", 0),
    (r"x{2,5}?y*?", 0),
    (r"a$\n?", 0),
    (r"(?m)a$\nb", 0),
    (r"(?s)a.b", 0),
    (r"(?x) \d+ \# [a-z]+  # a comment", 0),
    (r"[\d\s]{2}\W", 0),
    (r"[\[\]\\^-]+", 0),
    (r"a{3}|b{0,2}|c{2,}", 0),
]

# Patterns whose language is empty.
EMPTY_PATTERNS = [r"a(?=b)c", r"[^\s\S]", r"(?!)x", r"x\Ay", r"a\bb", r"(?=a)b"]
