import json
from pathlib import Path

import pytest

from rlvr import data
from rlvr.errors import UserError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present beside the checkout")

# Row counts from shared/data/SOURCES.md
ROWS = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva_math": 272, "olympiadbench": 675,
        "math500_verl": 500, "dsr_sub": 1209, "pi1": 1, "pi2": 1, "pi13": 1, "pi1209": 1}


@pytest.mark.parametrize("name, rows", list(ROWS.items()))
def test_registry_row_counts(name, rows):
    problems = data.load(name)
    assert len(problems) == rows
    assert all(p.problem and isinstance(p.answer, str) for p in problems)


def test_named_examples_resolve_to_pool_rows():
    assert [data.load(n)[0].index for n in ("pi1", "pi2", "pi13", "pi1209")] == [124, 267, 682, 789]
    pi1 = data.load("pi1")[0]
    assert pi1.answer == "12.8" and "sail" in pi1.problem
    assert data.load("pi5")[0].index == 212  # any pi<k> resolves through the ranking
    with pytest.raises(UserError, match="pi1210 does not exist"):
        data.load("pi1210")


def test_golds_follow_the_paper_evaluation():
    m = data.load("math500")
    assert m[0].answer == "(3,\\frac{\\pi}{2})"  # the evaluation kit's parsed gold
    assert m[97].answer == "\\text{east}"  # the kit parses this one to "": the boxed solution is used
    assert data.load("amc23")[0].answer == "27"  # "27.0" in the file
    assert data.load("aime24")[0].answer.lstrip("0") == data.load("aime24")[0].answer  # no zero padding
    assert all(p.answer.strip() for name in data.SIX for p in data.load(name))


def test_subject_and_level():
    m = data.load("math500")
    assert {p.subject for p in m} >= {"Algebra", "Geometry", "Number Theory"}
    assert {p.level for p in m} == {1, 2, 3, 4, 5}


def test_unknown_dataset_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'math500'"):
        data.load("math50")


def test_templates_exact_strings():
    assert data.render_prompt("What is 1+1?", "deepscaler") == (
        "What is 1+1? Let's think step by step and output the final answer within \\boxed{}.")
    assert data.render_prompt("What is 1+1?", "qwen25-math-cot") == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert data.render_prompt("x", "plain") == "x"
    assert data.render_prompt("x", "testbed") == "Q: x\nA: "
    with pytest.raises(UserError, match="did you mean 'qwen25-math-cot'"):
        data.get_template("qwen25-math")


def test_template_renders_through_chat_template(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    # the tiny tokenizer's chat template renders system turns first, the user turn as "Q: ...\nA: "
    assert data.render_prompt("1+1?", "testbed", tok) == "Q: 1+1?\nA: "
    assert data.render_prompt("1+1?", "qwen25-math-cot", tok) == (
        "Please reason step by step, and put your final answer within \\boxed{}.\nQ: 1+1?\nA: ")


@needs_shared
def test_build_pi1_equals_the_paper_file(tmp_path):
    out = tmp_path / "pi1.parquet"
    rows = data.build_rows("dsr_sub", data.resolve_picks("dsr_sub", pick=["pi1"]), repeat=128)
    data.write_verl(rows, out)
    shared = json.loads((SHARED / "train" / "pi1.jsonl").read_text())
    back = data.read_verl(out)
    assert len(back) == 128 and all(r == shared for r in back)  # field for field


@needs_shared
def test_build_two_shot_matches_the_paper_block_layout(tmp_path):
    rows = data.build_rows("dsr_sub", data.resolve_picks("dsr_sub", pick=["pi1", "pi13"]), repeat=128)
    shared = [json.loads(line) for line in (SHARED / "train" / "merge_pi1_pi13.jsonl").read_text().splitlines()]
    assert rows == [shared[0]] * 64 + [shared[1]] * 64


@needs_shared
def test_paper_parquet_reads_back_exactly():
    rows = data.read_verl(SHARED / "train" / "pi13.jsonl")
    assert rows[0]["extra_info"]["index"] == 682


def test_written_file_loads_with_datasets_and_has_verl_schema(tmp_path):
    import datasets

    out = data.write_verl(data.build_rows("dsr_sub", [124, 682], repeat=8), tmp_path / "two.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert ds.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert ds[0]["reward_model"] == {"ground_truth": "12.8", "style": "rule"}
    assert ds[0]["prompt"][0]["role"] == "user"
    assert [r["extra_info"]["index"] for r in ds] == [124] * 4 + [682] * 4


def test_jsonl_round_trip(tmp_path):
    rows = data.build_rows("dsr_sub", [5], repeat=3)
    out = data.write_verl(rows, tmp_path / "x.jsonl")
    assert data.read_verl(out) == rows


def test_label_noise_is_seeded_recorded_and_wrong():
    idx = list(range(20))
    a = data.build_rows("dsr_sub", idx, repeat=20, label_noise=0.25, seed=1)
    b = data.build_rows("dsr_sub", idx, repeat=20, label_noise=0.25, seed=1)
    assert a == b
    noisy = [r for r in a if r["extra_info"].get("label_noise")]
    assert len(noisy) == 5
    from rlvr.reward import is_equivalent

    for r in noisy:
        assert not is_equivalent(r["reward_model"]["ground_truth"], r["extra_info"]["original_ground_truth"])


def test_wrong_label_for_a_single_example():
    rows = data.build_rows("dsr_sub", [124], repeat=4, wrong_label="12.7")
    assert {r["reward_model"]["ground_truth"] for r in rows} == {"12.7"}
    assert rows[0]["extra_info"]["original_ground_truth"] == "12.8"


def test_prompt_edits():
    rows = data.build_rows("dsr_sub", [124], repeat=2, prompt_edits={124: "What is 2+2?"})
    assert rows[0]["prompt"][0]["content"].startswith("What is 2+2? Let's think step by step")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pick": ["pi0"]}, "pi0 does not exist"),
        ({"pick": ["p1"]}, "look like pi1"),
        ({"index": [5000]}, "out of range"),
        ({}, "exactly one of"),
        ({"pick": ["pi1"], "index": [3]}, "exactly one of"),
        ({"ranking": "/nonexistent.json"}, "does not exist"),
    ],
)
def test_selection_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        data.resolve_picks("dsr_sub", **kwargs)


def test_build_errors(tmp_path):
    with pytest.raises(UserError, match="empty"):
        data.build_rows("dsr_sub", [])
    with pytest.raises(UserError, match="no gold answer"):
        data.build_rows("dsr_sub", [265])  # the pool's one empty label
    out = tmp_path / "x.parquet"
    data.write_verl(data.build_rows("dsr_sub", [1], repeat=2), out)
    with pytest.raises(UserError, match="--force"):
        data.write_verl(data.build_rows("dsr_sub", [1], repeat=2), out)
    assert not list(tmp_path.glob(".*tmp"))  # no partial files left behind


def test_reading_bad_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"data_source": "x", "prompt": [{"content": "q", "role": "user"}]}) + "\n")
    with pytest.raises(UserError, match="missing column"):
        data.read_verl(bad)
    nogold = tmp_path / "nogold.jsonl"
    nogold.write_text(json.dumps({"problem": "1+1?"}) + "\n")
    with pytest.raises(UserError, match="row 0: no gold answer"):
        data.load_problems_from_file(nogold)
    simple = tmp_path / "simple.jsonl"
    simple.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    assert data.load_problems_from_file(simple)[0].answer == "2"


def test_cli_list_and_build(tmp_path, capsys):
    from rlvr.cli import main

    assert main(["data", "list"]) == 0
    assert "dsr_sub" in capsys.readouterr().out
    out = tmp_path / "pi1.parquet"
    assert main(["data", "build", "--pick", "pi1", "--out", str(out)]) == 0
    assert len(data.read_verl(out)) == 128
    assert main(["data", "build", "--pick", "pi1", "--out", str(out)]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
