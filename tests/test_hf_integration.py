"""The transformers integration: ``ConstraintLogitsProcessor`` inside ``model.generate`` (greedy,
sampling, beam search, batches, reuse) and the ``"structured-generation"`` pipeline task.

Most tests use a tiny random Llama over the SmolLM2 tokenizer (no downloads); the last few run the
embedded default model for a few tokens.
"""

from __future__ import annotations

import doctest
import json
import re
from typing import Literal

import jsonschema
import numpy as np
import pydantic
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, pipeline

import structgen as sg
from structgen.integrations import hf
from structgen.integrations.hf import ConstraintLogitsProcessor

EOS = 2  # SmolLM2's <|im_end|>: the tiny model's EOS and padding too
# Rows of one batch finish at different steps: 2 to 6 tokens, then EOS.
PATTERN = r"(\d{3}-\d{2}|(yes|no|maybe)!?|[a-f]{2,4})"
MAX_NEW = 10
PROMPTS = ["Hi", "A much longer prompt than the first one, padded on the left"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Matrices this small gain nothing from threads, and lose much when other processes share
    the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model(smollm2_tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(smollm2_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, eos_token_id=EOS, pad_token_id=EOS)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def processor(smollm2_tokenizer):
    return ConstraintLogitsProcessor(sg.regex(PATTERN), smollm2_tokenizer)


def _encode(tokenizer, prompts):
    return tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")


def _new_tokens(outputs: torch.Tensor, inputs) -> list[list[int]]:
    return outputs[:, inputs["input_ids"].shape[1]:].tolist()


def _assert_complete_matches(pattern: str, sequences: list[list[int]], vocab: sg.Vocabulary):
    """Each sequence is text tokens spelling a full match, then EOS, then only padding."""
    assert sequences
    for ids in sequences:
        assert EOS in ids, ids
        end = ids.index(EOS)
        assert all(t == EOS for t in ids[end:]), ids
        assert all(vocab.is_text(t) for t in ids[:end]), ids
        text = b"".join(vocab.token_bytes(t) for t in ids[:end]).decode()
        assert re.fullmatch(pattern, text), text


def _allowed(scores: torch.Tensor) -> set[int]:
    return set(torch.isfinite(scores).nonzero().view(-1).tolist())


# ------------------------------------------------------------------ the processor, step by step
def test_masks_follow_each_rows_sequence_through_reordering_and_duplication(smollm2_tokenizer):
    """Rows are matched by their generated tokens, not their index: beam search reorders,
    duplicates and drops rows between steps."""
    proc = ConstraintLogitsProcessor(sg.regex(r"\d{3}-\d{2}"), smollm2_tokenizer)
    compiled = proc.token_constraint
    digit = {str(d): smollm2_tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    dash = smollm2_tokenizer.convert_tokens_to_ids("-")
    width = len(smollm2_tokenizer)
    prompt = [7, 8, 9]

    def expected(tokens: list[int]) -> set[int]:
        matcher = compiled.matcher()
        for token in tokens:
            if token == EOS or not matcher.advance(token):
                return {EOS}  # ended: EOS (which is also the padding) only
        bits = np.unpackbits(matcher.mask().view(np.uint8), bitorder="little")
        return set(np.flatnonzero(bits).tolist())

    steps = [
        [[], []],
        [[digit["1"]], [digit["2"]]],
        [[digit["2"], digit["3"]], [digit["2"], digit["5"]]],  # "1" dropped, "2" duplicated
        [[digit["2"], digit["5"], digit["6"]], [digit["2"], digit["3"], digit["4"]]],  # swapped
        [[digit["2"], digit["3"], digit["4"], dash],
         [digit["2"], digit["5"], digit["6"], digit["7"]]],  # a 4th digit: rejected, ended
        [[digit["2"], digit["3"], digit["4"], dash, digit["0"]],
         [digit["2"], digit["5"], digit["6"], digit["7"], EOS]],
    ]
    for rows in steps:
        input_ids = torch.tensor([prompt + row for row in rows])
        scores = proc(input_ids, torch.zeros(len(rows), width))
        for row, tokens in enumerate(rows):
            assert _allowed(scores[row]) == expected(tokens), tokens
    # One token longer, but another prompt: a new generation, whose prompt is all of it.
    input_ids = torch.tensor([[9, 9, 9] + rows[0], [9, 9, 9] + rows[0]])
    scores = proc(input_ids, torch.zeros(2, width))
    assert _allowed(scores[0]) == _allowed(scores[1]) == expected([])
    # Same prompt again, not one token longer: a new generation too.
    scores = proc(torch.tensor([prompt + [digit["4"]]] * 2), torch.zeros(2, width))
    assert _allowed(scores[0]) == expected([])


def test_rows_after_eos_allow_only_eos_and_padding(smollm2_tokenizer):
    proc = ConstraintLogitsProcessor(sg.choice(["yes", "no"]), smollm2_tokenizer)
    yes = smollm2_tokenizer.encode("yes", add_special_tokens=False)
    assert len(yes) == 1
    width = len(smollm2_tokenizer)
    proc(torch.tensor([[5, 6], [5, 6]]), torch.zeros(2, width))
    proc(torch.tensor([[5, 6, yes[0]], [5, 6, yes[0]]]), torch.zeros(2, width))
    scores = proc(torch.tensor([[5, 6, yes[0], EOS], [5, 6, yes[0], EOS]]), torch.zeros(2, width))
    assert _allowed(scores[0]) == _allowed(scores[1]) == {EOS}
    scores = proc(torch.tensor([[5, 6, yes[0], EOS, EOS]] * 2), torch.zeros(2, width))
    assert _allowed(scores[0]) == {EOS}


@pytest.mark.parametrize("vocab_size", [None, "logits width"])
def test_columns_past_the_vocabulary_are_never_allowed(smollm2_tokenizer, vocab_size):
    width = len(smollm2_tokenizer) + 64  # a padded embedding
    proc = ConstraintLogitsProcessor(sg.regex(r"\d+"), smollm2_tokenizer,
                                     vocab_size=width if vocab_size else None)
    scores = torch.zeros(3, width)
    scores[:, len(smollm2_tokenizer):] = 1e9
    scores = proc(torch.tensor([[5, 6]] * 3), scores)
    assert torch.isneginf(scores[:, len(smollm2_tokenizer):]).all()
    one = smollm2_tokenizer.convert_tokens_to_ids("1")
    assert torch.isfinite(scores[:, one]).all()


# ------------------------------------------------------------------ inside model.generate
def test_greedy_batch_with_left_padding(tiny_model, smollm2_tokenizer, smollm2_vocab, processor):
    inputs = _encode(smollm2_tokenizer, PROMPTS + ["Zip code:"])
    outputs = tiny_model.generate(**inputs, logits_processor=[processor], max_new_tokens=MAX_NEW,
                                  do_sample=False)
    _assert_complete_matches(PATTERN, _new_tokens(outputs, inputs), smollm2_vocab)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sampling_with_several_returned_sequences(tiny_model, smollm2_tokenizer, smollm2_vocab,
                                                  processor, seed):
    inputs = _encode(smollm2_tokenizer, PROMPTS)
    torch.manual_seed(seed)
    warpers = [{}, {"temperature": 1.7}, {"top_k": 5}, {"top_p": 0.5}][seed]
    outputs = tiny_model.generate(**inputs, logits_processor=[processor], max_new_tokens=MAX_NEW,
                                  do_sample=True, num_return_sequences=3, **warpers)
    sequences = _new_tokens(outputs, inputs)
    assert len(sequences) == 6
    _assert_complete_matches(PATTERN, sequences, smollm2_vocab)


class _InputRecorder(LogitsProcessor):
    """Keeps the ``input_ids`` of every step, to see how beam search moved the rows."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(input_ids.clone())
        return scores


@pytest.mark.parametrize("settings", [
    {"num_beams": 3},
    {"num_beams": 3, "num_return_sequences": 2},
    {"num_beams": 3, "num_return_sequences": 3, "do_sample": True},
], ids=["beams", "beams-return-2", "beam-sampling"])
def test_beam_search(tiny_model, smollm2_tokenizer, smollm2_vocab, processor, settings):
    torch.manual_seed(0)
    inputs = _encode(smollm2_tokenizer, PROMPTS)
    recorder = _InputRecorder()
    outputs = tiny_model.generate(**inputs, logits_processor=[recorder, processor],
                                  max_new_tokens=MAX_NEW, **settings)
    sequences = _new_tokens(outputs, inputs)
    assert len(sequences) == 2 * settings.get("num_return_sequences", 1)
    _assert_complete_matches(PATTERN, sequences, smollm2_vocab)
    # The search did move rows: some row's prefix is not what that row held a step before.
    assert any(not torch.equal(now[:, :-1], before)
               for before, now in zip(recorder.steps, recorder.steps[1:]))


def test_one_processor_serves_many_generate_calls(tiny_model, smollm2_tokenizer, smollm2_vocab):
    """Interleaved calls with different prompts, batch sizes, strategies and a second processor
    give exactly what fresh processors give."""
    digits = r"\d{3}-\d{2}"
    words = sg.choice(["yes", "no", "maybe"])
    reused = {digits: ConstraintLogitsProcessor(sg.regex(digits), smollm2_tokenizer),
              words: ConstraintLogitsProcessor(words, smollm2_tokenizer)}
    calls = [
        (digits, PROMPTS, {}),
        (words, PROMPTS, {}),
        (digits, ["Zip code:"], {"num_beams": 3}),
        (digits, PROMPTS, {}),  # the first call again
        (digits, PROMPTS[:1], {"num_beams": 2, "num_return_sequences": 2}),
        (words, ["Say yes", "or no", "or maybe"], {}),
    ]
    for key, prompts, settings in calls:
        inputs = _encode(smollm2_tokenizer, prompts)
        got, want = (
            tiny_model.generate(**inputs, logits_processor=[proc], max_new_tokens=MAX_NEW,
                                do_sample=False, **settings)
            for proc in (reused[key], ConstraintLogitsProcessor(
                sg.regex(key) if isinstance(key, str) else key, smollm2_tokenizer))
        )
        assert torch.equal(got, want), (key, prompts, settings)
        pattern = digits if isinstance(key, str) else "(yes|no|maybe)"
        _assert_complete_matches(pattern, _new_tokens(got, inputs), smollm2_vocab)


def test_reset_before_feeding_an_output_back_as_the_prompt(tiny_model, smollm2_tokenizer,
                                                           smollm2_vocab, processor):
    inputs = _encode(smollm2_tokenizer, ["Zip code:"])
    first = tiny_model.generate(**inputs, logits_processor=[processor], max_new_tokens=MAX_NEW,
                                do_sample=False)
    processor.reset()
    second = tiny_model.generate(first, attention_mask=torch.ones_like(first),
                                 logits_processor=[processor], max_new_tokens=MAX_NEW,
                                 do_sample=False)
    _assert_complete_matches(PATTERN, second[:, first.shape[1]:].tolist(), smollm2_vocab)


def test_greedy_generate_equals_structgen_generate(tiny_model, smollm2_tokenizer):
    """Token for token, up to where the two loops stop differently: structgen stops when the
    constraint allows nothing but EOS (without emitting it) and leaves a chosen EOS out of
    ``token_ids``; model.generate emits that EOS. At the token limit both stop."""
    model = sg.from_transformers(tiny_model, smollm2_tokenizer)
    finish_reasons = set()
    for prompt, pattern, max_new in [
        ("Zip code:", r"\d{3}-\d{2}", 12),
        ("Count:", r"\d+", 8),  # EOS is allowed after every digit
        ("Hello", r"(yes|no|maybe)!?", 6),
        ("A", r"\d{1,2}", 2),
        ("Long:", r"[a-z]{20}", 5),
    ]:
        result = sg.generate(model, prompt, sg.regex(pattern), max_tokens=max_new, chat=False,
                             return_result=True)
        finish_reasons.add(result.finish_reason)
        ids = torch.tensor([smollm2_tokenizer.encode(prompt, add_special_tokens=False)])
        proc = ConstraintLogitsProcessor(sg.regex(pattern), smollm2_tokenizer)
        outputs = tiny_model.generate(ids, attention_mask=torch.ones_like(ids),
                                      logits_processor=[proc], max_new_tokens=max_new,
                                      do_sample=False)
        generated = outputs[0, ids.shape[1]:].tolist()
        if result.finish_reason == "length" or len(result.token_ids) == max_new:
            assert generated == result.token_ids, prompt  # no room left for an EOS
        else:
            assert generated == result.token_ids + [EOS], prompt
    assert finish_reasons == {"constraint", "eos", "length"}


@pytest.mark.parametrize(("prompt", "pattern"), [
    ("Codes 123-45, 123-46, 123-47 and", r"( ?\d{3}-\d{2},?){3}"),
    ("yes no yes no yes", r"(yes|no)( (yes|no)){4}"),
])
def test_assisted_generation_keeps_the_constraint_and_the_output(tiny_model, smollm2_tokenizer,
                                                                 smollm2_vocab, prompt, pattern):
    """Prompt lookup and an assistant model make generate score candidate positions one after
    another and go back to the last one kept; masks follow, and greedy outputs equal plain
    decoding's (the assistant here is the model itself, sharing the processor)."""
    ids = torch.tensor([smollm2_tokenizer.encode(prompt, add_special_tokens=False)])
    outputs = []
    for assisted in ({}, {"prompt_lookup_num_tokens": 4}, {"assistant_model": tiny_model}):
        proc = ConstraintLogitsProcessor(sg.regex(pattern), smollm2_tokenizer)
        outputs.append(tiny_model.generate(
            ids, attention_mask=torch.ones_like(ids), logits_processor=[proc],
            max_new_tokens=40, do_sample=False, **assisted))
    for output in outputs:
        assert torch.equal(output, outputs[0])
        _assert_complete_matches(pattern, _new_tokens(output, {"input_ids": ids}), smollm2_vocab)


# ------------------------------------------------------------------ the pipeline task
@pytest.fixture(scope="module")
def pipe(tiny_model, smollm2_tokenizer):
    return pipeline("structured-generation", model=tiny_model, tokenizer=smollm2_tokenizer,
                    device="cpu")


@pytest.fixture(scope="module")
def tiny_sg(tiny_model, smollm2_tokenizer):
    return sg.from_transformers(tiny_model, smollm2_tokenizer)


def test_pipeline_task_is_registered(pipe):
    assert isinstance(pipe, hf.StructuredGenerationPipeline)
    assert pipe.task == "structured-generation"


def test_pipeline_string_prompt_with_regex(pipe, tiny_sg):
    out = pipe("Zip code:", regex=r"\d{3}-\d{2}", max_new_tokens=10)
    assert out == [{"generated_text": sg.generate(tiny_sg, "Zip code:", sg.regex(r"\d{3}-\d{2}"),
                                                  max_tokens=10)}]
    assert re.fullmatch(r"\d{3}-\d{2}", out[0]["generated_text"])
    raw = pipe("Zip code:", regex=r"\d{3}-\d{2}", max_new_tokens=10, chat=False)
    assert raw[0]["generated_text"] == sg.generate(tiny_sg, "Zip code:", sg.regex(r"\d{3}-\d{2}"),
                                                   max_tokens=10, chat=False)


def test_pipeline_conversation_with_constraint(pipe, tiny_sg):
    conversation = [{"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Is it raining?"}]
    constraint = sg.choice(["yes", "no", "maybe"])
    out = pipe(conversation, constraint=constraint, max_new_tokens=6)
    assert out == [{"generated_text": sg.generate(tiny_sg, conversation, constraint,
                                                  max_tokens=6)}]
    assert out[0]["generated_text"] in ("yes", "no", "maybe")


def test_pipeline_list_of_prompts_and_sampling(pipe, tiny_sg):
    conversation = [{"role": "user", "content": "Pick a code."}]
    outs = pipe(["Zip code:", conversation], regex=PATTERN, max_new_tokens=MAX_NEW)
    assert len(outs) == 2 and all(len(out) == 1 for out in outs)
    for out in outs:
        assert re.fullmatch(PATTERN, out[0]["generated_text"])
    sampled = pipe(conversation, regex=PATTERN, max_new_tokens=MAX_NEW, do_sample=True,
                   temperature=0.8, top_p=0.9, top_k=20, num_return_sequences=3, seed=5)
    expected = sg.generate(tiny_sg, [conversation] * 3, sg.regex(PATTERN), max_tokens=MAX_NEW,
                           sampler=sg.Sample(temperature=0.8, top_p=0.9, top_k=20), seed=5)
    assert [out["generated_text"] for out in sampled] == expected


def test_pipeline_defaults_given_at_construction(tiny_model, smollm2_tokenizer):
    pipe = pipeline("structured-generation", model=tiny_model, tokenizer=smollm2_tokenizer,
                    device="cpu", regex=r"\d{3}-\d{2}", max_new_tokens=10)
    assert re.fullmatch(r"\d{3}-\d{2}", pipe("Zip code:")[0]["generated_text"])
    word = pipe("Zip code:", constraint=sg.choice(["yes", "no"]))[0]["generated_text"]
    assert word in ("yes", "no")


# Every value is bounded and a whitespace run is at most 20 characters, so each document has
# fewer than 400 characters: the random model always finishes within JSON_TOKENS.
JSON_TOKENS = 400
SMALL_SCHEMA = {"type": "object", "properties": {
    "answer": {"enum": ["yes", "no", "maybe"]},
    "sure": {"type": "boolean"},
    "score": {"type": "integer", "minimum": 0, "maximum": 99},
}, "required": ["answer", "sure"]}


class SmallAnswer(pydantic.BaseModel):
    answer: Literal["yes", "no", "maybe"]
    sure: bool


@pytest.mark.parametrize("schema", [SMALL_SCHEMA, json.dumps(SMALL_SCHEMA), SmallAnswer],
                         ids=["dict", "json-text", "pydantic"])
def test_pipeline_schema_adds_the_parsed_document(pipe, tiny_sg, schema):
    out = pipe("Answer in JSON.", schema=schema, max_new_tokens=JSON_TOKENS)
    assert len(out) == 1 and set(out[0]) == {"generated_text", "json"}
    expected = sg.generate_json(tiny_sg, "Answer in JSON.", schema, max_tokens=JSON_TOKENS,
                                return_result=True)
    assert out[0]["generated_text"] == expected.text
    assert out[0]["json"] == expected.value
    if schema is SmallAnswer:
        assert isinstance(out[0]["json"], SmallAnswer)
    else:
        jsonschema.validate(out[0]["json"], SMALL_SCHEMA)
        assert set(out[0]["json"]) <= set(SMALL_SCHEMA["properties"])  # extra keys forbidden
    # A ready constraint gives the document too; other constraints do not.
    ready = sg.json_schema(SmallAnswer, whitespace="compact", extra_properties="forbid")
    constrained = pipe("Answer in JSON.", constraint=ready, max_new_tokens=JSON_TOKENS)
    assert isinstance(constrained[0]["json"], SmallAnswer)
    assert "json" not in pipe("Zip code:", regex=r"\d{3}", max_new_tokens=5)[0]


def test_pipeline_drafts_give_the_same_outputs_in_fewer_passes(pipe, tiny_sg):
    """``draft=`` reaches structgen's loop: greedy outputs unchanged, and the forced JSON keys
    are scored several per forward pass."""
    plain = pipe("Answer in JSON.", schema=SmallAnswer, max_new_tokens=JSON_TOKENS)
    drafted = pipe("Answer in JSON.", schema=SmallAnswer, max_new_tokens=JSON_TOKENS,
                   draft=[sg.ForcedDraft(), sg.PromptLookup()], draft_tokens=4)
    assert drafted == plain
    constraint = sg.json_schema(SmallAnswer, extra_properties="forbid")
    result = sg.generate(tiny_sg, "Answer in JSON.", constraint, max_tokens=JSON_TOKENS,
                         draft=[sg.ForcedDraft(), sg.PromptLookup()], draft_tokens=4,
                         return_result=True)
    assert result.text == drafted[0]["generated_text"]
    assert result.statistics["accepted"] > 0
    assert result.statistics["forward_passes"] < len(result.token_ids)


def test_pipeline_schema_cut_by_max_new_tokens_raises_incomplete_output(pipe, tiny_sg):
    with pytest.raises(sg.IncompleteOutput, match="max_new_tokens=3") as caught:
        pipe("Answer in JSON.", schema=SmallAnswer, max_new_tokens=3)
    assert caught.value.partial == sg.generate(tiny_sg, "Answer in JSON.",
                                               sg.json_schema(SmallAnswer,
                                                              extra_properties="forbid"),
                                               max_tokens=3)


def test_pipeline_grammar(pipe, tiny_sg):
    out = pipe("A chess move:", grammar="chess_san", max_new_tokens=12)
    assert out == [{"generated_text": sg.generate(tiny_sg, "A chess move:",
                                                  sg.grammar("chess_san"), max_tokens=12)}]


def test_pipeline_rejects_what_it_cannot_do(pipe):
    with pytest.raises(ValueError, match="one of regex="):
        pipe("Zip code:", regex=r"\d", constraint=sg.choice(["a"]))
    with pytest.raises(TypeError, match="num_beams"):
        pipe("Zip code:", regex=r"\d", num_beams=3)
    with pytest.raises(TypeError, match="constraint="):
        pipe("Zip code:", constraint=r"\d")
    with pytest.raises(ValueError, match="do_sample=True"):
        pipe("Zip code:", regex=r"\d", num_return_sequences=2)
    with pytest.raises(ValueError, match="batch_size"):
        pipe(["a", "b"], regex=r"\d", batch_size=2)


# ------------------------------------------------------------------ the embedded default model
YEAR = r"(19|20)\d\d"


@pytest.fixture(scope="module")
def default_hf():
    from structgen.embedded import load_default_hf

    return load_default_hf()


def test_default_model_through_the_processor(default_hf):
    model, tokenizer = default_hf
    conversations = [[{"role": "user", "content": "In which year did the Berlin Wall fall?"}],
                     [{"role": "user", "content": "When did World War II end? Just the year."}]]
    texts = tokenizer.apply_chat_template(conversations, add_generation_prompt=True,
                                          tokenize=False)
    inputs = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                       add_special_tokens=False)
    proc = ConstraintLogitsProcessor(sg.regex(YEAR), tokenizer,
                                     eos_token_id=model.generation_config.eos_token_id)
    outputs = model.generate(**inputs, logits_processor=[proc], max_new_tokens=6, do_sample=False)
    answers = tokenizer.batch_decode(_new_tokens(outputs, inputs), skip_special_tokens=True)
    assert all(re.fullmatch(YEAR, answer) for answer in answers), answers


def test_default_model_through_the_pipeline(default_hf):
    model, tokenizer = default_hf
    pipe = pipeline("structured-generation", model=model, tokenizer=tokenizer, device="cpu")
    prompt = "In which year did the Berlin Wall fall?"
    out = pipe(prompt, regex=YEAR, max_new_tokens=6)
    assert out == [{"generated_text": sg.generate(sg.from_transformers(model, tokenizer), prompt,
                                                  sg.regex(YEAR), max_tokens=6)}]
    assert re.fullmatch(YEAR, out[0]["generated_text"])


@pytest.mark.parametrize("name", ["ConstraintLogitsProcessor", "StructuredGenerationPipeline"])
def test_docstring_examples_run(name):
    """The docstrings' examples, as transformers writes them (inside Markdown code fences)."""
    docstring = getattr(hf, name).__doc__
    text = "\n".join(line for line in docstring.splitlines()
                     if line.strip() not in ("```", "```python"))
    test = doctest.DocTestParser().get_doctest(text, {}, name, hf.__file__, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
