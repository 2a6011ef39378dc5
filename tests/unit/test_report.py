import json

from rlvr.analysis.report import demo_report, plot_runs


def _run(tmp_path, name, rewards):
    d = tmp_path / name
    d.mkdir()
    rows = [{"step": i + 1, "critic/score/mean": r, "response_length/mean": 40 + i, "train/no_answer_rate": 0.1,
             "train/reflection_rate": 0.05, "actor/entropy": 0.2, "train/frac_zero_std_groups": 0.5}
            for i, r in enumerate(rewards)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_plots_and_report_from_run_folders(tmp_path):
    for name in ("pool", "pi1", "random"):
        _run(tmp_path, name, [0.1, 0.3, 0.6])
    assert plot_runs({"pi1": tmp_path / "pi1"}, tmp_path / "plots")[0].exists()
    m = {"acc": 0.1, "no_answer_rate": 0.1, "response_len_mean": 40.0, "by_subject": {"a": 0.1, "b": 0.1}}
    better = dict(m, acc=0.25, by_subject={"a": 0.3, "b": 0.2})
    md = demo_report(tmp_path, {"base": m, "pi1": better}, {"pi1": 3, "random": 5}, ["rlvr train x"])
    assert "Gain of pi1 over base: **+0.150**" in md and "a +0.200" in md
    assert (tmp_path / "plots" / "accuracy_by_category.png").exists()
