"""Vocabulary: the token side of every constraint, mapping each token id to its exact bytes.

This is the first thing a constraint is compiled against. Every automaton downstream works on
bytes, never on str, because a token can hold part of a UTF-8 character (byte-level BPE merges,
SentencePiece ``<0xNN>`` byte fallback). :meth:`Vocabulary.from_tokenizer` recovers those bytes
from a Hugging Face tokenizer for the byte-level BPE family (GPT-2, Llama-3, Qwen, SmolLM2) and
the SentencePiece family (Llama-2, Mistral, Gemma, T5); special tokens are not text, and the
end-of-sequence ids are kept apart.

:func:`cache_dir` is where later stages keep what they compile or convert on disk.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from structgen.errors import VocabularyError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["Vocabulary", "cache_dir"]


class Vocabulary:
    """Token id -> exact bytes, the end-of-sequence ids, and the logits width.

    Args:
        tokens: ``tokens[i]`` is the byte string token ``i`` adds to the text, or ``None`` for a
            token that is never text (special tokens, padding, unused ids). End-of-sequence ids
            must be ``None`` here: EOS ends the text, it adds none.
        eos_token_ids: the ids that end generation; each must be below ``size``.
        size: the width of the model's logits, at least ``len(tokens)`` (default: exactly that).
            Ids from ``len(tokens)`` to ``size - 1`` are padding, never allowed.
        name: a label for messages and reports; not part of the identity.

    Raises:
        VocabularyError: ``size`` is smaller than ``len(tokens)``, an EOS id is out of range or
            is a text token, or a text token is empty (an empty token could be emitted forever
            without advancing any automaton).

    Instances are immutable, hashable and compare by :attr:`fingerprint`, so compiled
    constraints can be cached per vocabulary.
    """

    __slots__ = ("_eos_token_ids", "_fingerprint", "_name", "_size", "_tokens")

    def __init__(
        self,
        tokens: Sequence[bytes | None],
        eos_token_ids: Iterable[int],
        size: int | None = None,
        name: str = "",
    ):
        stored = tuple(None if token is None else bytes(token) for token in tokens)
        width = len(stored) if size is None else operator.index(size)
        if width < len(stored):
            raise VocabularyError(f"size {width} is smaller than the {len(stored)} tokens given")
        eos = tuple(sorted({operator.index(token_id) for token_id in eos_token_ids}))
        for token_id in eos:
            if not 0 <= token_id < width:
                raise VocabularyError(f"EOS token id {token_id} is outside 0..{width - 1}")
            if token_id < len(stored) and stored[token_id] is not None:
                raise VocabularyError(f"EOS token id {token_id} is a text token; give it as None")
        for token_id, token in enumerate(stored):
            if token == b"":
                raise VocabularyError(f"token id {token_id} is empty; give non-text tokens as None")
        object.__setattr__(self, "_tokens", stored)
        object.__setattr__(self, "_size", width)
        object.__setattr__(self, "_eos_token_ids", eos)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fingerprint", None)

    @property
    def size(self) -> int:
        """The logits width: every id in ``0..size-1`` is a valid token id."""
        return self._size

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """The end-of-sequence ids, sorted."""
        return self._eos_token_ids

    @property
    def tokens(self) -> tuple[bytes | None, ...]:
        """Bytes of each id, ``None`` for non-text ids; may be shorter than :attr:`size`."""
        return self._tokens

    @property
    def name(self) -> str:
        """A label for messages (e.g. the tokenizer's name); not part of the identity."""
        return self._name

    def token_bytes(self, token_id: int) -> bytes:
        """The exact bytes token ``token_id`` adds to the text; ``b""`` for non-text tokens.

        Raises:
            VocabularyError: ``token_id`` is outside ``0..size-1``.
        """
        token_id = operator.index(token_id)
        if not 0 <= token_id < self._size:
            raise VocabularyError(f"token id {token_id} is outside 0..{self._size - 1}")
        token = self._tokens[token_id] if token_id < len(self._tokens) else None
        return b"" if token is None else token

    def is_text(self, token_id: int) -> bool:
        """Whether ``token_id`` adds text (false for EOS, special and padding ids).

        Raises:
            VocabularyError: ``token_id`` is outside ``0..size-1``.
        """
        return self.token_bytes(token_id) != b""

    @property
    def fingerprint(self) -> str:
        """A sha256 hex digest of the tokens' bytes, the EOS ids and the size.

        It is the same in every process and on every machine, so it can key on-disk caches.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256(b"structgen.Vocabulary/1\0")
            digest.update(f"{self._size}:{','.join(map(str, self._eos_token_ids))}\0".encode())
            # Length-prefix every token so that no two token lists hash the same stream.
            for token in self._tokens:
                digest.update(b"N" if token is None else b"T%d:" % len(token) + token)
            object.__setattr__(self, "_fingerprint", digest.hexdigest())
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self is other or self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Vocabulary is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Vocabulary is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[Vocabulary], tuple[Any, ...]]:
        return (Vocabulary, (self._tokens, self._eos_token_ids, self._size, self._name))

    def __repr__(self) -> str:
        text = sum(token is not None for token in self._tokens)
        return (
            f"Vocabulary(name={self._name!r}, size={self._size}, text_tokens={text}, "
            f"eos_token_ids={self._eos_token_ids})"
        )

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        vocab_size: int | None = None,
        eos_token_ids: Iterable[int] | None = None,
    ) -> Vocabulary:
        """Build the vocabulary of a Hugging Face tokenizer, fast or slow.

        Each id maps to the exact bytes it stands for:

        * byte-level BPE (the tokenizer's decoder or pre-tokenizer is ``ByteLevel``, or the
          vocabulary is spelled in GPT-2's byte alphabet): each character of the token string
          is one byte, through the inverse of GPT-2's byte-to-unicode table;
        * SentencePiece (a ``Metaspace`` step, a decoder replacing ``▁``, or a slow tokenizer's
          ``sp_model``): ``▁`` is a space and, with byte fallback, ``<0xNN>`` is the byte NN.
          The space SentencePiece prepends to a text is part of the first token, so the bytes
          of an encoding start with ``b" "``;
        * added tokens: special ones (and ``all_special_ids``) are not text; ordinary ones
          (e.g. whitespace runs) are their content's UTF-8 bytes, which is how they match input;
        * EOS ids are never text, even an ordinary token chosen as EOS.

        Args:
            tokenizer: a ``transformers`` tokenizer.
            vocab_size: the model's logits width when it is wider than the tokenizer (e.g.
                151,936 for Qwen models); the ids in between are padding.
            eos_token_ids: the ids that end generation. By default ``tokenizer.eos_token_id``,
                plus ``<|im_end|>`` when the chat template uses it, since chat models end their
                turn with it even when the tokenizer's EOS is ``<|endoftext|>``. Pass the
                model's ``generation_config.eos_token_id`` here to follow it exactly.

        Raises:
            VocabularyError: the tokenizer family is not recognised, no EOS id is known, or
                ``vocab_size`` is too small for the tokenizer's text or EOS tokens.
        """
        pieces = _id_to_piece(tokenizer)
        added = getattr(tokenizer, "added_tokens_decoder", {})
        base = [None if token_id in added else piece for token_id, piece in enumerate(pieces)]
        tokens = _base_token_bytes(tokenizer, base)
        for token_id, added_token in added.items():
            tokens[token_id] = None if added_token.special else added_token.content.encode()
        for token_id in getattr(tokenizer, "all_special_ids", ()):
            tokens[token_id] = None

        eos = set(_default_eos_token_ids(tokenizer) if eos_token_ids is None else eos_token_ids)
        if not eos:
            raise VocabularyError("the tokenizer has no eos_token_id; pass eos_token_ids")
        for token_id in eos:
            if 0 <= token_id < len(tokens):
                tokens[token_id] = None

        if vocab_size is not None:
            last_text = max((i for i, token in enumerate(tokens) if token is not None), default=-1)
            if vocab_size <= last_text:
                raise VocabularyError(
                    f"vocab_size {vocab_size} is too small: token id {last_text} is text"
                )
            del tokens[vocab_size:]
        return cls(tokens, eos, size=vocab_size, name=getattr(tokenizer, "name_or_path", ""))


def cache_dir() -> Path:
    """The folder where structgen keeps converted tokenizers and compiled artefacts.

    ``$STRUCTGEN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/structgen``, else
    ``~/.cache/structgen``; created on first use. Everything in it can be rebuilt, so deleting
    it is always safe.
    """
    explicit = os.environ.get("STRUCTGEN_CACHE_DIR")
    if explicit:
        folder = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        folder = (Path(xdg) if xdg else Path.home() / ".cache") / "structgen"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte to the printable character that stands for it.

    Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, ...) are
    shifted to U+0100 onwards, which is why a leading space shows as ``Ġ`` (U+0120).
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {byte: chr(byte) for byte in printable}
    shifted = [byte for byte in range(256) if byte not in table]
    table.update((byte, chr(256 + n)) for n, byte in enumerate(shifted))
    return table


_BYTE_LEVEL_ALPHABET = frozenset(_bytes_to_unicode().values())
# str.translate to one Latin-1 character per byte, then .encode("latin-1"), runs in C.
_BYTE_LEVEL_TO_LATIN1 = {ord(char): chr(byte) for byte, char in _bytes_to_unicode().items()}
_OUTSIDE_BYTE_LEVEL = re.compile(
    "[^" + "".join(re.escape(char) for char in sorted(_BYTE_LEVEL_ALPHABET)) + "]"
)
_BYTE_FALLBACK_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPIECE_UNDERLINE = "\u2581"
_BYTE_LEVEL = "byte-level BPE"
_SENTENCEPIECE = "SentencePiece"


def _id_to_piece(tokenizer: PreTrainedTokenizerBase) -> list[str | None]:
    """Every id's token string (``None`` for ids the tokenizer leaves unassigned), in bulk."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        vocab = backend.get_vocab(with_added_tokens=False)
    else:
        vocab = tokenizer.get_vocab()
    added = getattr(tokenizer, "added_tokens_decoder", {})
    size = max([len(tokenizer), *(token_id + 1 for token_id in vocab.values()), *added])
    pieces: list[str | None] = [None] * size
    for piece, token_id in vocab.items():
        pieces[token_id] = piece
    return pieces


def _base_token_bytes(
    tokenizer: PreTrainedTokenizerBase, pieces: list[str | None]
) -> list[bytes | None]:
    """Bytes of each model-vocabulary piece, by the tokenizer family's rules."""
    family, byte_fallback = _family(tokenizer, pieces)
    if family == _BYTE_LEVEL:
        return _byte_level_bytes(pieces)
    return _sentencepiece_bytes(tokenizer, pieces, byte_fallback)


def _sentencepiece_bytes(
    tokenizer: PreTrainedTokenizerBase, pieces: list[str | None], byte_fallback: bool
) -> list[bytes | None]:
    """``▁`` is a space, ``<0xNN>`` the byte NN under byte fallback; control, unknown and
    unused pieces of a slow tokenizer's model never stand for text."""
    sp_model = getattr(tokenizer, "sp_model", None)
    not_text = set()
    if sp_model is not None:
        not_text = {
            token_id
            for token_id in range(sp_model.get_piece_size())
            if sp_model.is_control(token_id)
            or sp_model.is_unknown(token_id)
            or sp_model.is_unused(token_id)
        }
    tokens: list[bytes | None] = []
    for token_id, piece in enumerate(pieces):
        byte = _BYTE_FALLBACK_PIECE.fullmatch(piece) if byte_fallback and piece else None
        if piece is None or token_id in not_text:
            tokens.append(None)
        elif byte is not None:
            tokens.append(bytes([int(byte.group(1), 16)]))
        else:
            tokens.append(piece.replace(_SPIECE_UNDERLINE, " ").encode())
    return tokens


def _byte_level_bytes(pieces: list[str | None]) -> list[bytes | None]:
    """Invert GPT-2's byte-to-unicode table; pieces outside its alphabet are not text."""
    tokens: list[bytes | None] = []
    foreign = []
    for token_id, piece in enumerate(pieces):
        if piece is None:
            tokens.append(None)
        elif _OUTSIDE_BYTE_LEVEL.search(piece):
            foreign.append(token_id)
            tokens.append(None)
        else:
            tokens.append(piece.translate(_BYTE_LEVEL_TO_LATIN1).encode("latin-1"))
    if foreign:
        warnings.warn(
            f"{len(foreign)} byte-level tokens hold characters outside the byte alphabet and "
            f"are treated as not text (ids {foreign[:5]}...)",
            stacklevel=4,
        )
    return tokens


def _family(tokenizer: PreTrainedTokenizerBase, pieces: list[str | None]) -> tuple[str, bool]:
    """Which family's rules turn the tokenizer's pieces into bytes, and whether SentencePiece
    byte fallback (``<0xNN>`` pieces) is on.

    A slow tokenizer's ``sp_model`` or a fast one's pipeline says it best; the vocabulary's
    alphabet decides for tokenizers that describe neither.
    """
    sp_model = getattr(tokenizer, "sp_model", None)
    if sp_model is not None:
        return _SENTENCEPIECE, bool(sp_model.is_byte(sp_model.piece_to_id("<0x00>")))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        steps = [
            step
            for component in (backend.normalizer, backend.pre_tokenizer, backend.decoder)
            if component is not None
            for step in _steps(json.loads(component.__getstate__()))
        ]
        kinds = {step.get("type") for step in steps}
        if "ByteLevel" in kinds:
            return _BYTE_LEVEL, False
        if "Metaspace" in kinds or any(
            step.get("type") == "Replace"
            and _SPIECE_UNDERLINE in json.dumps(step, ensure_ascii=False)
            for step in steps
        ):
            byte_fallback = "ByteFallback" in kinds or getattr(
                backend.model, "byte_fallback", False
            )
            return _SENTENCEPIECE, bool(byte_fallback)
    present = set(pieces) - {None}
    inside = sum(not _OUTSIDE_BYTE_LEVEL.search(piece) for piece in present)
    # Space is "Ġ" in the byte alphabet; some byte-level vocabularies lack a few bytes or hold
    # a few stray pieces, so demand nearly all pieces, not all bytes, in the alphabet.
    if "\u0120" in present and inside >= 0.99 * len(present):
        return _BYTE_LEVEL, False
    if any(_SPIECE_UNDERLINE in piece for piece in present):
        byte_fallback = all(f"<0x{byte:02X}>" in present for byte in range(256))
        return _SENTENCEPIECE, byte_fallback
    raise VocabularyError(
        f"cannot tell how the tokens of {type(tokenizer).__name__} map to bytes: neither "
        "byte-level BPE nor SentencePiece"
    )


def _steps(node: Any) -> Iterator[dict[str, Any]]:
    """Every component dict in a serialized normalizer/pre-tokenizer/decoder, Sequences opened."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _steps(value)
    elif isinstance(node, list):
        for value in node:
            yield from _steps(value)


def _default_eos_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """``eos_token_id``, plus ``<|im_end|>`` when the chat template ends turns with it."""
    eos = set() if tokenizer.eos_token_id is None else {tokenizer.eos_token_id}
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = "\n".join(template.values())
    if "<|im_end|>" in template:
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if im_end is not None and im_end != tokenizer.unk_token_id:
            eos.add(im_end)
    return eos
