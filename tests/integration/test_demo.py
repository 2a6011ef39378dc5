"""The demo pipeline end to end on a tiny budget (slow: ~1.5 min on 2 cores), and its resume."""

import pytest

from rlvr.testbed import model_path


@pytest.mark.slow
@pytest.mark.skipif(not (model_path() / "config.json").exists(), reason="testbed model not built")
def test_demo_runs_and_resumes(tmp_path, capsys):
    from rlvr.cli import main

    args = ["demo", "--out", str(tmp_path / "demo"), "--pool-size", "16", "--pool-epochs", "2", "--steps", "4",
            "--eval-samples", "1"]
    assert main(args) == 0
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| pi1 |" in report and "| base |" in report and "rlvr train" in report
    assert (tmp_path / "demo" / "plots" / "training_curves.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(args) == 0  # every step is found finished and skipped
    assert capsys.readouterr().out.count("skipped") == 3
