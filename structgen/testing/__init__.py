"""Helpers for tests: toy models, reference matchers, tokenizer loaders (not the core API)."""

from structgen.testing.toy import ToyModel

__all__ = ["ToyModel"]
