"""structgen: constrained and structured generation for language models.

The public API, re-exported here; see the README for a tour and DESIGN notes.
"""

from structgen.automata.byte_dfa import Limits
from structgen.automata.matcher import Matcher, TokenConstraint
from structgen.compiler import compile
from structgen.constraints import Constraint, after, choice, regex, sequence
from structgen.errors import (
    EmptyLanguage,
    GrammarError,
    IncompleteOutput,
    LimitExceeded,
    RegexError,
    SchemaError,
    StructgenError,
    UnsupportedKeyword,
    UnsupportedRegex,
    VocabularyError,
)
from structgen.vocab import Vocabulary

__all__ = [
    "Constraint",
    "EmptyLanguage",
    "GrammarError",
    "IncompleteOutput",
    "LimitExceeded",
    "Limits",
    "Matcher",
    "RegexError",
    "SchemaError",
    "StructgenError",
    "TokenConstraint",
    "UnsupportedKeyword",
    "UnsupportedRegex",
    "Vocabulary",
    "VocabularyError",
    "after",
    "apply_token_bitmask",
    "choice",
    "compile",
    "regex",
    "sequence",
]


def __getattr__(name: str):
    # Importing torch costs seconds; only the mask-application kernel needs it.
    if name == "apply_token_bitmask":
        from structgen.kernels.torch_masks import apply_token_bitmask

        return apply_token_bitmask
    raise AttributeError(f"module 'structgen' has no attribute {name!r}")
