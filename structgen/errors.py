"""Every error structgen raises: one hierarchy under :class:`StructgenError`.

Messages name the offending input: a position in a pattern, a keyword of a schema, a token id.
"""

from __future__ import annotations


class StructgenError(Exception):
    """Base class of every error structgen raises on purpose."""


class RegexError(StructgenError, ValueError):
    """A malformed regular expression; ``pos`` is the 0-based offset of the problem."""

    def __init__(self, message: str, pattern: str | None = None, pos: int | None = None):
        self.pattern = pattern
        self.pos = pos
        if pos is not None:
            message = f"{message} at position {pos}"
            if pattern is not None:
                message += f"\n  {pattern}\n  {' ' * pos}^"
        super().__init__(message)


class UnsupportedRegex(RegexError):
    """A well-formed regex whose construct structgen cannot enforce exactly (e.g. a backreference)."""


class GrammarError(StructgenError, ValueError):
    """A malformed or unsupported grammar; carries ``line`` and ``column`` when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.line = line
        self.column = column
        if line is not None:
            message = f"{message} (line {line}, column {column})"
        super().__init__(message)


class SchemaError(StructgenError, ValueError):
    """An invalid JSON Schema, or one that cannot be resolved (e.g. a remote ``$ref``)."""


class UnsupportedKeyword(SchemaError):
    """A JSON Schema assertion keyword structgen does not enforce; named in the message."""

    def __init__(self, keyword: str, message: str | None = None):
        self.keyword = keyword
        super().__init__(message or f"unsupported JSON Schema keyword {keyword!r}")


class EmptyLanguage(StructgenError, ValueError):
    """The constraint accepts no string at all, so generation could never finish."""


class VocabularyError(StructgenError, ValueError):
    """The vocabulary cannot express the constraint, or a token id is out of range."""


class LimitExceeded(StructgenError):
    """A user-set resource limit (automaton states, compile time, cache memory) was exceeded."""


class IncompleteOutput(StructgenError):
    """Generation stopped (e.g. at ``max_tokens``) before the constraint was satisfied.

    ``partial`` holds the text produced so far; it is a prefix of some valid output.
    """

    def __init__(self, message: str, partial: str = ""):
        self.partial = partial
        super().__init__(message)
