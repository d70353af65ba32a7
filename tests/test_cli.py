"""The `structgen` command: check and generate, on the embedded default model."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

import structgen as sg
from structgen import cli


@pytest.fixture(scope="module")
def default_model():
    return sg.load_model()


@pytest.fixture
def one_model_load(monkeypatch, default_model):
    """`structgen generate` loads its model on every call: give it the module's one."""
    monkeypatch.setattr(sg, "load_model", lambda name=None: default_model)


def test_check_traces_a_sample_token_by_token(capsys):
    assert cli.main(["check", "--regex", r"\d{3}-\d{4}", "--text", "555-1234"]) == 0
    out = capsys.readouterr().out
    assert "DFA states" in out and "sample text matches in full" in out


def test_check_reports_a_rejected_token(capsys):
    assert cli.main(["check", "--grammar", "chess_san", "--text", "Nxe9"]) == 1
    assert "REJECTED" in capsys.readouterr().out


def test_check_names_a_bad_regex(capsys):
    assert cli.main(["check", "--regex", "a(b"]) == 2
    assert "position" in capsys.readouterr().err


def test_generate_prints_an_output_in_the_language(capsys, one_model_load):
    assert cli.main(["generate", "--regex", "(yes|no)", "--json", "Is water wet?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] in ("yes", "no") and result["finish_reason"] == "constraint"
    assert cli.main(["generate", "--grammar", "chess_san", "Give a chess opening move."]) == 0
    move = capsys.readouterr().out.strip()
    assert re.fullmatch(r"[KQRBN]?[a-h]?[1-8]?x?[a-h][1-8](=[QRBN])?[+#]?|O-O(-O)?[+#]?", move)


@pytest.mark.parametrize("sampler", ["awrs", "smc"])
def test_generate_with_the_awrs_and_smc_samplers(capsys, one_model_load, sampler):
    assert cli.main(["generate", "--regex", "(yes|no)", "--sampler", sampler, "--particles",
                     "3", "--seed", "0", "--json", "Is water wet?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] in ("yes", "no")
    assert result["statistics"]["checks"] >= 1
    if sampler == "smc":
        assert result["statistics"]["particles"] == 3
        assert result["log_marginal_likelihood"] <= 0


def test_generate_refuses_a_temperature_for_greedy(one_model_load):
    with pytest.raises(SystemExit, match="temperature"):
        cli.main(["generate", "--regex", "a", "--sampler", "greedy", "--temperature", "0.5",
                  "x"])


PERSON_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40},
    "born": {"type": "integer", "minimum": 1000, "maximum": 2100},
}, "required": ["name", "born"]}
PERSON_PROMPT = "Extract the person as JSON: Ada Lovelace was born in 1815."


def test_generate_with_a_schema_file_pretty_prints_the_document(capsys, tmp_path,
                                                                one_model_load):
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON_SCHEMA))
    assert cli.main(["generate", "--schema", str(path), "--max-tokens", "64",
                     PERSON_PROMPT]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    jsonschema.validate(document, PERSON_SCHEMA)
    assert set(document) == {"name", "born"}  # only declared properties
    assert out == json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def test_generate_with_inline_schema_and_json_output(capsys, one_model_load):
    assert cli.main(["generate", "--schema", json.dumps(PERSON_SCHEMA), "--whitespace",
                     "compact", "--max-tokens", "64", "--json", PERSON_PROMPT]) == 0
    result = json.loads(capsys.readouterr().out)
    jsonschema.validate(result["json"], PERSON_SCHEMA)
    assert json.loads(result["text"]) == result["json"]
    assert " " not in result["text"].replace(result["json"]["name"], "")  # compact
    assert result["finish_reason"] in ("eos", "constraint") and result["tokens"] > 0


def test_check_and_generate_name_a_bad_schema(capsys, tmp_path):
    assert cli.main(["check", "--schema", '{"type": "boolean"}', "--text", "true"]) == 0
    assert "sample text matches in full" in capsys.readouterr().out
    assert cli.main(["check", "--schema", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["check", "--schema", '{"type": "object",']) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_model_path_prints_a_folder_transformers_and_vllm_can_load(capsys):
    assert cli.main(["model-path"]) == 0
    folder = capsys.readouterr().out.strip()
    files = {p.name for p in Path(folder).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
