"""The `structgen` command: check and generate, on the embedded default model."""

import json
import re

from structgen import cli


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


def test_generate_prints_an_output_in_the_language(capsys):
    assert cli.main(["generate", "--regex", "(yes|no)", "--json", "Is water wet?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] in ("yes", "no") and result["finish_reason"] == "constraint"
    assert cli.main(["generate", "--grammar", "chess_san", "Give a chess opening move."]) == 0
    move = capsys.readouterr().out.strip()
    assert re.fullmatch(r"[KQRBN]?[a-h]?[1-8]?x?[a-h][1-8](=[QRBN])?[+#]?|O-O(-O)?[+#]?", move)
