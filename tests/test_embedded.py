"""The embedded default model: converting SmolLM2's GGUF file into a cached transformers folder.

The converted copy must be the GGUF model exactly: same logits, same tokenizer ids, special
tokens and chat template. The first run converts into the real cache (about 40 s on two CPU
cores) and the ``gguf`` fixture de-quantises the GGUF file once more for reference; later runs
load the cached copy in well under a second after the imports.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
import torch
import transformers
import transformers.modeling_gguf_pytorch_utils as gguf_utils
from transformers import AutoModelForCausalLM, AutoTokenizer

from structgen import embedded
from structgen.embedded import default_model_dir, load_default_hf, smollm2_gguf_path

PROMPTS = [
    "The capital of France is",
    'Reply in JSON: {"name": "Ada", "born": 1815, "tags": ["math", "poetry"]}',
    [{"role": "user", "content": "Give me three prime numbers, comma separated."}],
]

TEXTS = [
    "Hello, world!",
    "  leading spaces, trailing tabs\t\t\nand a new line\r\n",
    "Le café est très chaud ; Über den Wolken. 日本語の文章です。 😀 👍🏽",
    "def f(x):\n    return x ** 2  # 3.14159 -273.15 1e-9",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
]


@pytest.fixture(scope="session")
def converted():
    """The default model and tokenizer loaded through the cache (converting it if cold)."""
    return load_default_hf()


@pytest.fixture(scope="session")
def gguf():
    """The reference: model and tokenizer read straight from the GGUF file."""
    source = smollm2_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    return model.eval(), tokenizer


@pytest.mark.parametrize("prompt", PROMPTS, ids=["plain", "json", "chat"])
def test_converted_logits_equal_gguf_logits(prompt, converted, gguf):
    model, tokenizer = converted
    reference_model, reference_tokenizer = gguf
    if isinstance(prompt, list):
        prompt = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    assert ids.tolist() == reference_tokenizer(prompt, return_tensors="pt").input_ids.tolist()
    with torch.inference_mode():
        logits = model(ids).logits
        reference = reference_model(ids).logits
    assert logits.dtype == reference.dtype == torch.float32
    assert (logits - reference).abs().max().item() < 1e-5
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))


def test_converted_model_is_a_plain_tied_float32_model(converted, gguf):
    model, _ = converted
    reference_model, _ = gguf
    assert not model.training
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert getattr(model, "hf_quantizer", None) is None
    assert "quantization_config" not in model.config.to_dict()
    assert model.config.vocab_size == 49152
    # lm_head shares embed_tokens, as in the GGUF model, rather than holding a copy.
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    # The non-persistent rotary buffers are recomputed from the config, identically.
    assert torch.equal(model.model.rotary_emb.inv_freq, reference_model.model.rotary_emb.inv_freq)
    assert model.generation_config.to_dict() == reference_model.generation_config.to_dict()
    assert (default_model_dir() / "generation_config.json").is_file()


def test_converted_tokenizer_equals_gguf_tokenizer(converted, gguf):
    _, tokenizer = converted
    _, reference = gguf
    assert type(tokenizer) is type(reference)
    assert len(tokenizer) == len(reference) == 49152
    assert tokenizer.get_vocab() == reference.get_vocab()
    assert tokenizer.special_tokens_map == reference.special_tokens_map
    assert tokenizer.all_special_ids == reference.all_special_ids
    assert str(tokenizer.added_tokens_decoder) == str(reference.added_tokens_decoder)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == 2
    assert tokenizer.chat_template == reference.chat_template
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True) == (
        reference.apply_chat_template(messages, add_generation_prompt=True)
    )
    for text in TEXTS:
        for special in (False, True):
            ids = tokenizer.encode(text, add_special_tokens=special)
            assert ids == reference.encode(text, add_special_tokens=special), text
        assert tokenizer.decode(ids) == reference.decode(ids) == text


def test_second_load_comes_from_the_cache(converted, monkeypatch, capsys):
    folder = default_model_dir()
    stamp = json.loads((folder / "structgen-stamp.json").read_text())
    assert stamp["transformers"] == transformers.__version__
    assert stamp["size"] == smollm2_gguf_path().stat().st_size
    assert (folder / "model.safetensors").stat().st_size == stamp["files"]["model.safetensors"]

    def no_gguf(*args, **kwargs):
        raise AssertionError("the GGUF file was read although the cache is current")

    monkeypatch.setattr(gguf_utils, "load_gguf_checkpoint", no_gguf)
    capsys.readouterr()
    model, tokenizer = load_default_hf(device=torch.device("cpu"), dtype=torch.bfloat16)
    assert "converting" not in capsys.readouterr().err
    assert model.dtype == torch.bfloat16 and not model.training
    assert tokenizer.encode(TEXTS[0]) == converted[1].encode(TEXTS[0])


@pytest.mark.parametrize("damage", ["missing weights", "truncated weights", "no stamp"])
def test_a_damaged_cache_is_rebuilt(damage, converted, gguf, tmp_path, monkeypatch, capsys):
    """A partial copy under ``$STRUCTGEN_CACHE_DIR`` is converted again, not loaded.

    To keep this fast, the conversion gets the already de-quantised ``gguf`` fixture instead of
    reading the GGUF file again; everything it writes and the reload are real.
    """
    real_folder = default_model_dir()
    monkeypatch.setenv("STRUCTGEN_CACHE_DIR", str(tmp_path))
    folder = default_model_dir()
    assert folder.is_relative_to(tmp_path)
    shutil.copytree(real_folder, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    if damage == "truncated weights":
        (folder / "model.safetensors").write_bytes(b"\0" * 1024)
    elif damage == "no stamp":
        (folder / "structgen-stamp.json").unlink()
        shutil.copy(real_folder / "model.safetensors", folder / "model.safetensors")

    reference_model, reference_tokenizer = gguf
    _serve_gguf_loads(monkeypatch, AutoModelForCausalLM, reference_model)
    _serve_gguf_loads(monkeypatch, AutoTokenizer, reference_tokenizer)
    capsys.readouterr()
    model, tokenizer = load_default_hf()
    assert str(folder) in capsys.readouterr().err
    assert embedded._is_current(folder, embedded._source_stamp(smollm2_gguf_path()))
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no leftovers
    ids = tokenizer(TEXTS[2], return_tensors="pt").input_ids
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, converted[0](ids).logits)


def test_abandoned_temporary_folders_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("STRUCTGEN_CACHE_DIR", str(tmp_path))
    folder = default_model_dir()
    old, fresh = (folder.with_name(f".{folder.name}-tmp-{age}") for age in ("old", "fresh"))
    for path in (old, fresh):
        path.mkdir(parents=True)
        (path / "model.safetensors").write_bytes(b"partial")
    an_hour_ago = time.time() - 3601
    os.utime(old, (an_hour_ago, an_hour_ago))
    embedded._remove_abandoned(folder)
    assert not old.exists() and fresh.exists()


def _serve_gguf_loads(monkeypatch, auto_class, loaded) -> None:
    """Make ``auto_class.from_pretrained(..., gguf_file=...)`` return ``loaded``; other loads
    (from the converted folder) go through unchanged."""
    load = auto_class.from_pretrained

    def from_pretrained(*args, **kwargs):
        return loaded if "gguf_file" in kwargs else load(*args, **kwargs)

    monkeypatch.setattr(auto_class, "from_pretrained", from_pretrained)
