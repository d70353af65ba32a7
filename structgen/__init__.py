"""structgen: constrained and structured generation for language models.

The public API, re-exported here; see the README for a tour and DESIGN notes.
"""

from structgen.automata.byte_dfa import Limits
from structgen.automata.matcher import Matcher, TokenConstraint
from structgen.compiler import compile
from structgen.constraints import (
    Constraint,
    JsonSchema,
    after,
    choice,
    grammar,
    json_schema,
    regex,
    sequence,
)
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
    "AWRS",
    "SMC",
    "Constraint",
    "DraftModel",
    "EmptyLanguage",
    "ForcedDraft",
    "GenerationResult",
    "GrammarError",
    "Greedy",
    "IncompleteOutput",
    "JsonSchema",
    "LanguageModel",
    "LimitExceeded",
    "Limits",
    "Matcher",
    "PromptLookup",
    "RegexError",
    "Sample",
    "Sampler",
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
    "from_transformers",
    "function",
    "generate",
    "generate_json",
    "grammar",
    "json_schema",
    "load_model",
    "regex",
    "sequence",
    "stream",
]


# Names whose modules import torch (seconds): loaded on first use, so that compiling
# constraints and the `structgen check` command stay light.
_LAZY = {
    "apply_token_bitmask": "structgen.kernels.torch_masks",
    "function": "structgen.api",
    "generate": "structgen.api",
    "generate_json": "structgen.api",
    "stream": "structgen.api",
    "GenerationResult": "structgen.decoding.loop",
    "AWRS": "structgen.decoding.awrs",
    "SMC": "structgen.decoding.smc",
    "ForcedDraft": "structgen.decoding.drafts",
    "PromptLookup": "structgen.decoding.drafts",
    "DraftModel": "structgen.decoding.drafts",
    "Greedy": "structgen.decoding.samplers",
    "Sample": "structgen.decoding.samplers",
    "Sampler": "structgen.decoding.samplers",
    "LanguageModel": "structgen.decoding.models",
    "from_transformers": "structgen.decoding.models",
    "load_model": "structgen.decoding.models",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'structgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
