"""structgen inside vLLM (``structgen.integrations.vllm``), run with vLLM's CPU build.

These tests need vLLM, whose pins differ from the main environment's, so they run in their own
environment (``./setup.sh vllm``, then ``.venv-vllm/bin/python -m pytest tests/vllm``; CI does
both) and the main run ignores this folder. They prove: the processor follows vLLM's persistent
batch (random adds, removals, moves and swaps; every row's mask is its own request's);
malformed and invalid constraints are refused before they reach the engine; constrained outputs
finish within ``max_tokens`` (greedy: with the best fitting token); and real vLLM engines on
the default model, offline and behind the OpenAI-compatible server with concurrent requests,
return finished outputs that satisfy each request's constraint.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import jsonschema
import lark
import numpy as np
import pytest
import torch
import vllm
from vllm.exceptions import VLLMValidationError
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

import structgen as sg
from structgen.constraints import GRAMMARS_DIR
from structgen.embedded import default_model_dir
from structgen.integrations import vllm as sg_vllm

PERSON = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 24},
                         "born": {"type": "integer", "minimum": 0, "maximum": 2100}},
          "required": ["name", "born"]}
PHONE = r"\(\d{3}\) \d{3}-\d{4}"
ARITHMETIC = lark.Lark((GRAMMARS_DIR / "arithmetic.lark").read_text(), parser="earley",
                       lexer="dynamic_complete")


@pytest.fixture(scope="module")
def model_path() -> str:
    """The default model in transformers' format, converted by the main environment (this one
    has another transformers version, and the conversion records which made it)."""
    folder = default_model_dir()
    if not (folder / "model.safetensors").exists():
        pytest.fail(f"{folder} is not converted yet: run `.venv/bin/structgen model-path` in the "
                    "main environment first")
    return str(folder)


def _fake_config(path: str, vocab_size: int) -> SimpleNamespace:
    model_config = SimpleNamespace(tokenizer=path, tokenizer_revision=None,
                                   trust_remote_code=False, get_vocab_size=lambda: vocab_size)
    return SimpleNamespace(model_config=model_config)


def _specs():
    return [{"json_schema": PERSON, "whitespace": "compact"}, {"regex": PHONE},
            {"grammar": "arithmetic"}, None]


def test_the_processor_follows_the_persistent_batch(model_path):
    processor = sg_vllm.StructgenLogitsProcessor(_fake_config(model_path, 49152),
                                                 torch.device("cpu"), False)
    vocab = processor.vocab
    rng = random.Random(0)
    slots: dict[int, tuple[sg.Matcher | None, list[int]]] = {}  # the truth: slot -> request
    batch = 6
    steps = 0
    for _ in range(60):
        removed, added, moved = [], [], []
        for slot in list(slots):
            if rng.random() < 0.1:
                removed.append(slot)
                del slots[slot]
        for slot in range(batch):
            if slot not in slots and rng.random() < 0.5:
                spec = rng.choice(_specs())
                params = vllm.SamplingParams(max_tokens=1000, extra_args=None if spec is None else {
                    sg_vllm.KEY: spec if rng.random() < 0.5 else json.dumps(spec)})
                output: list[int] = []
                matcher = None if spec is None else sg.compile(
                    sg_vllm.constraint_of(spec), vocab).matcher()
                slots[slot] = (matcher, output)
                added.append((slot, params, [1, 2, 3], output))
        for _ in range(rng.randint(0, 2)):
            a, b = rng.sample(range(batch), 2)
            swap = rng.random() < 0.5
            if not swap and b in slots:
                continue  # a one-way move only goes to a free slot
            moved.append((a, b, MoveDirectionality.SWAP if swap else
                          MoveDirectionality.UNIDIRECTIONAL))
            first, second = slots.pop(a, None), slots.pop(b, None)
            if first is not None:
                slots[b] = first
            if second is not None and swap:
                slots[a] = second
        processor.update_state(BatchUpdate(batch, removed, added, moved))
        logits = torch.randn(batch, vocab.size)
        masked = processor.apply(logits.clone())
        for slot in range(batch):
            request = slots.get(slot)
            if request is None or request[0] is None:
                assert torch.equal(masked[slot], logits[slot])
                continue
            matcher, output = request
            bits = np.unpackbits(matcher.mask().view(np.uint8), bitorder="little")[:vocab.size]
            allowed = torch.from_numpy(bits.astype(bool))
            assert torch.equal(torch.isfinite(masked[slot]), allowed)
            choices = np.flatnonzero(bits)
            token = int(rng.choice(choices.tolist()))
            if token in vocab.eos_token_ids:
                continue  # vLLM would end the request; it stays until removed
            assert matcher.advance(token)
            output.append(token)  # vLLM appends to the same list the processor holds
            steps += 1
        processor.update_state(None)
    assert steps > 50


def _fits(matcher: sg.Matcher, token: int, left: int, eos: set[int]) -> bool:
    """The reference: after ``token`` the text can still finish and leave room for the EOS that
    ends the output (vLLM counts it in ``max_tokens``) among the ``left - 1`` tokens after
    it."""
    if token in eos:
        return True
    probe = matcher.copy()
    if not probe.advance(token):
        return False
    need = probe.completion_bytes()
    return need is not None and need <= left - 2


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("spec", [{"regex": '"[a-z ]{0,300}"'},
                                  {"json_schema": PERSON, "whitespace": "compact"},
                                  {"grammar": "arithmetic"}])
def test_requests_finish_within_max_tokens(model_path, spec, temperature):
    """Random logits rarely close a string or an expression, so unbudgeted outputs would be
    cut; with the budget every output ends with EOS within ``max_tokens`` and is complete. Each
    step's row keeps only tokens that fit; under greedy decoding its argmax is the best token
    that fits among the ``MAX_CHECKS`` best allowed ones."""
    processor = sg_vllm.StructgenLogitsProcessor(_fake_config(model_path, 49152),
                                                 torch.device("cpu"), False)
    vocab, eos = processor.vocab, set(processor.vocab.eos_token_ids)
    generator = torch.Generator().manual_seed(0)
    for trial in range(4):
        max_tokens = 24 + 4 * trial
        output: list[int] = []
        params = vllm.SamplingParams(max_tokens=max_tokens, temperature=temperature,
                                     extra_args={sg_vllm.KEY: spec})
        processor.update_state(BatchUpdate(1, [], [(0, params, [1], output)], []))
        reference = sg.compile(sg_vllm.constraint_of(params.extra_args[sg_vllm.KEY]),
                               vocab).matcher()
        while True:
            logits = torch.randn(1, vocab.size, generator=generator) * 3
            row = processor.apply(logits.clone())[0]
            left = max_tokens - len(output)
            finite = torch.isfinite(row).nonzero().flatten().tolist()
            assert finite
            if len(finite) <= sg_vllm.MAX_CHECKS:  # near the end: only fitting tokens stay
                assert all(_fits(reference, t, left, eos) for t in finite)
            if temperature == 0.0:
                token = int(row.argmax())
                bits = np.unpackbits(reference.mask().view(np.uint8), bitorder="little")
                allowed = torch.from_numpy(bits[:vocab.size].astype(bool))
                top = logits[0].masked_fill(~allowed, float("-inf")).topk(sg_vllm.MAX_CHECKS)
                better = top.indices[top.values > logits[0, token]].tolist()
                assert not any(_fits(reference, t, left, eos) for t in better)
            else:
                token = int(torch.multinomial(torch.softmax(row, 0), 1, generator=generator))
            if token in eos:
                break
            assert reference.advance(token)
            output.append(token)
            assert len(output) < max_tokens, b"".join(map(vocab.token_bytes, output))
            processor.update_state(None)
        assert reference.is_accepting()
        processor.update_state(BatchUpdate(1, [0], [], []))


def test_invalid_constraints_are_refused_by_validate_params():
    bad = [{"json_schema": {"type": "object", "minProperties": "two"}},
           {"regex": "(unclosed"}, {"grammar": "start: ("}, {"json_schema": {}, "regex": "a"},
           {"sql": "select"}, "{not json", {"regex": "a", "whitespace": "compact"}]
    for spec in bad:
        with pytest.raises(ValueError):
            sg_vllm.StructgenLogitsProcessor.validate_params(
                vllm.SamplingParams(extra_args={sg_vllm.KEY: spec}))
    sg_vllm.StructgenLogitsProcessor.validate_params(
        vllm.SamplingParams(extra_args={sg_vllm.KEY: {"json_schema": PERSON}}))
    sg_vllm.StructgenLogitsProcessor.validate_params(vllm.SamplingParams())


def _check(kind: str, spec: dict, text: str, finish_reason: str) -> None:
    """The output finished (within ``max_tokens``, which is shorter than the longest JSON
    document and than sentences of the unbounded arithmetic grammar) and satisfies its
    constraint."""
    assert finish_reason == "stop", (kind, finish_reason, text)
    if kind == "json":
        jsonschema.validate(json.loads(text), PERSON)
        assert set(json.loads(text)) <= set(PERSON["properties"])
    elif kind == "phone":
        assert re.fullmatch(PHONE, text), text
    else:
        ARITHMETIC.parse(text)


# Enough for the shortest JSON document and phone number, not for the longest JSON document (a
# 24-character name, each character a \uXXXX escape): outputs finish within the budget.
MAX_TOKENS = 40
REQUESTS = [
    ("json", "Extract the person as JSON: Ada Lovelace, born in 1815.",
     {"json_schema": PERSON, "whitespace": "compact"}),
    ("phone", "Give me a US phone number.", {"regex": PHONE}),
    ("arithmetic", "Write an arithmetic expression that equals 10.", {"grammar": "arithmetic"}),
    ("json", "Extract the person as JSON: Alan Turing, born 1912.",
     {"json_schema": PERSON, "whitespace": "compact"}),
]


def test_offline_batch_of_mixed_constraints(model_path):
    llm = vllm.LLM(model=model_path, max_model_len=1024, enforce_eager=True, seed=0,
                   logits_processors=[sg_vllm.StructgenLogitsProcessor])
    params = []
    for index, (_, _, spec) in enumerate(REQUESTS):
        kind = next(k for k in ("json_schema", "regex", "grammar") if k in spec)
        options = {k: v for k, v in spec.items() if k != kind}
        params.append(sg_vllm.sampling_params(
            **{kind: spec[kind]}, json_options=options or None, max_tokens=MAX_TOKENS,
            temperature=0.0 if index % 2 == 0 else 0.8, seed=index))
    params.append(vllm.SamplingParams(max_tokens=12, temperature=0.0))  # unconstrained
    conversations = [[{"role": "user", "content": prompt}] for _, prompt, _ in REQUESTS]
    conversations.append([{"role": "user", "content": "Say hello."}])
    outputs = llm.chat(conversations, params)
    for (kind, _, spec), output in zip(REQUESTS, outputs):
        completion = output.outputs[0]
        _check(kind, spec, completion.text, completion.finish_reason)
    assert outputs[-1].outputs[0].text  # the free row generated something
    with pytest.raises(VLLMValidationError, match="structgen refused the json_schema"):
        llm.generate(["x"], vllm.SamplingParams(
            extra_args={sg_vllm.KEY: {"json_schema": {"type": "nonsense"}}}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_server_constrains_concurrent_requests_and_refuses_bad_ones(model_path, tmp_path):
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    server = subprocess.Popen(
        # `vllm serve` would do the same, but vllm-cpu's `vllm` command looks up the version of
        # a distribution named "vllm" and fails; this module runs the same server.
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
         "--port", str(port), "--host", "127.0.0.1", "--max-model-len", "1024",
         "--enforce-eager", "--served-model-name", "default",
         "--logits-processors", "structgen.integrations.vllm:StructgenLogitsProcessor"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError("the server did not start:\n"
                                         + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(2)

        def ask(seed, request):
            _, prompt, spec = request
            return _post(f"{base}/v1/chat/completions", {
                "model": "default", "messages": [{"role": "user", "content": prompt}],
                "max_tokens": MAX_TOKENS, "temperature": 0.7, "seed": seed,
                "vllm_xargs": sg_vllm.request_args(**spec)})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8), REQUESTS * 2))
        for (kind, _, spec), (status, body) in zip(REQUESTS * 2, answers):
            assert status == 200, body
            choice = body["choices"][0]
            _check(kind, spec, choice["message"]["content"], choice["finish_reason"])
        status, body = _post(f"{base}/v1/chat/completions", {
            "model": "default", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 8,
            "vllm_xargs": {sg_vllm.KEY: json.dumps({"json_schema": {"minimum": "zero"}})}})
        assert status == 400 and "structgen" in json.dumps(body), body
        status, _ = _post(f"{base}/v1/chat/completions", {  # the engine is still up
            "model": "default", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4})
        assert status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
