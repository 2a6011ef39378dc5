import json

from rlvr.cli import COMMANDS, main


def test_help_lists_every_available_command(capsys):
    from rlvr.cli import build_parser

    text = build_parser().format_help()
    for name in ("grade", "data", "eval", "train", "select", "testbed", "analyse", "demo"):
        assert name in text and name in COMMANDS


def test_grade_example_runs_and_summarises(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["grade", "--example", "--workers", "1"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "graded_example.jsonl").read_text().splitlines()]
    assert len(rows) == 20
    by_id = {r["id"]: r for r in rows}
    assert by_id["r1"]["reason"] == "correct"  # pi1's label
    assert by_id["r9"]["reason"] == "no_answer"  # unboxed
    assert by_id["r11"]["reason"] == "wrong"  # two boxes, the last is wrong
    assert by_id["r18"]["reason"] == "no_answer"  # half-written box
    assert "accuracy" in capsys.readouterr().out


def test_unknown_command_is_an_error():
    import pytest

    with pytest.raises(SystemExit):
        main(["frobnicate"])
