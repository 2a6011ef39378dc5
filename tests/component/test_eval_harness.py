import json

import pytest

from rlvr.data import Problem, register_dataset
from rlvr.errors import UserError
from rlvr.eval import EvalConfig, evaluate

TINY = [Problem(id=f"tiny/{i}", problem=f"What is {i}+{i}?", answer=str(2 * i), data_source="tiny", subject="s",
                level=1 + i % 2) for i in range(6)]
register_dataset("tiny/test", lambda: list(TINY), "eval", "test", 6, "six tiny problems")

CFG = EvalConfig(protocol="paper", n_samples=3, temperature=1.0, max_new_tokens=12, template="testbed", seed=7,
                 workers=1, batch_size=4)


def test_evaluate_in_memory(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    res = evaluate(model, tok, ["tiny/test"], CFG)
    m = res["benchmarks"]["tiny/test"]
    assert m["problems"] == 6 and m["samples_per_problem"] == 3
    assert {"acc", "pass@3", "maj@3", "no_answer_rate", "response_len_mean", "by_level"} <= set(m)
    assert 0 < m["response_len_mean"] <= 12


def test_killed_evaluation_resumes_to_the_same_summary(tiny_model_and_tokenizer, tmp_path):
    model, tok = tiny_model_and_tokenizer
    full = evaluate(model, tok, ["tiny/test"], CFG, out_dir=tmp_path / "full")
    # an evaluation that died after 7 samples, mid-way through writing the 8th line
    path = tmp_path / "full" / "tiny__test" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    part = tmp_path / "part" / "tiny__test"
    part.mkdir(parents=True)
    (part / "samples.jsonl").write_text("".join(lines[:7]) + lines[7][:20])
    resumed = evaluate(model, tok, ["tiny/test"], CFG, out_dir=tmp_path / "part")
    a = {k: v for k, v in full["benchmarks"]["tiny/test"].items()}
    b = {k: v for k, v in resumed["benchmarks"]["tiny/test"].items()}
    assert a == b
    rows_full = sorted(map(json.loads, path.read_text().splitlines()), key=lambda r: (r["id"], r["sample"]))
    rows_part = sorted(map(json.loads, (part / "samples.jsonl").read_text().splitlines()), key=lambda r: (r["id"], r["sample"]))
    assert [r["response"] for r in rows_full] == [r["response"] for r in rows_part]
    assert (tmp_path / "part" / "summary.md").exists()


def test_greedy_is_deterministic(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    cfg = EvalConfig(protocol="greedy", template="testbed", max_new_tokens=8, workers=0, limit=3)
    a = evaluate(model, tok, ["tiny/test"], cfg)
    b = evaluate(model, tok, ["tiny/test"], cfg)
    assert a["benchmarks"] == b["benchmarks"]


def test_cli_errors(capsys, tmp_path):
    from rlvr.cli import main

    assert main(["eval", "--model", str(tmp_path / "nope"), "--benchmarks", "tiny/test"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "--model", "testbed", "--benchmarks", "math50"]) == 2
    assert "did you mean 'math500'" in capsys.readouterr().err


def test_paper_protocol_table():
    from rlvr.eval import settings_for

    assert settings_for("paper", "math500").temperature == 0.0
    s = settings_for("paper", "aime24")
    assert (s.n_samples, s.temperature, s.top_p, s.max_new_tokens, s.template) == (8, 0.6, 1.0, 3072, "qwen25-math-cot")
    assert settings_for("paper", "testbed/test/algebra").template == "testbed"
    # the most specific pattern wins: the greedy protocol's "*" must not catch testbed sets
    assert settings_for("greedy", "testbed/test").template == "testbed"
    assert settings_for("greedy", "math500").template == "qwen25-math-cot"


def test_vllm_backend_names_the_extra():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm installed")
    from rlvr.eval.backends import require_vllm

    with pytest.raises(UserError, match=r"rlvr\[gpu\]"):
        require_vllm()
