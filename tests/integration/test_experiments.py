"""`rlvr experiment` on a tiny model: selection by a history run, arms x seeds, resume, report."""

import json
import math

import pytest

from rlvr.experiments.report import mean_ci, verdict
from rlvr.experiments.runner import load_recipe, plan, resolve


def test_mean_ci_matches_hand_computed_t_interval():
    m, h = mean_ci([0.1, 0.2, 0.3])
    assert m == pytest.approx(0.2)
    assert h == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # t(0.975, 2) * s / sqrt(n)
    assert math.isnan(mean_ci([0.5])[1])


def test_placeholders_resolve_and_fail_clearly():
    sel = {"pi1": 124, "pi13": 682, "top:algebra": 7}
    assert resolve("data.indices=[{pi1},{pi13}]", sel, 1000) == "data.indices=[124,682]"
    assert resolve("[{top:algebra}]", sel, 1000) == "[7]"
    assert resolve("{random1}", sel, 1000) == resolve("{random1}", sel, 1000)  # seeded
    from rlvr.errors import UserError

    with pytest.raises(UserError, match="pi2"):
        resolve("{pi2}", sel, 1000)


def test_every_shipped_recipe_plans_valid_training_configs(tmp_path):
    from rlvr.config import load_config
    from rlvr.experiments.runner import recipe_names
    from rlvr.trainer.config import TrainConfig

    sel = {f"pi{k}": k for k in range(1, 20)}
    sel.update({f"top:{c}": i for i, c in enumerate(["arithmetic", "algebra", "number_theory", "counting",
                                                      "fractions", "geometry"])})
    for gpu in (False, True):
        for name in recipe_names(gpu):
            r = load_recipe(name, gpu)
            for job in plan(r, tmp_path, [0, 1], sel):
                load_config(TrainConfig, r.preset, job["overrides"])  # raises on a bad key or value


def test_arms_with_the_same_resolved_config_share_one_run(tmp_path):
    sel = {f"pi{k}": 100 + k for k in range(1, 20)}
    sel.update({f"top:{c}": i for i, c in enumerate(["arithmetic", "number_theory", "geometry"])})
    one = {j["arm"]: j["run_dir"] for j in plan(load_recipe("one-shot"), tmp_path, [0], sel)}
    abl = {j["arm"]: j["run_dir"] for j in plan(load_recipe("loss-ablation"), tmp_path, [0], sel)}
    # the ablation's "full" arm spells out the preset's own loss values: the same config, so the same run
    assert abl["full"].name.split("-", 1)[1] == one["pi1"].name.split("-", 1)[1]
    assert len({abl[a] for a in abl}) == len(abl) and abl["pg-only"] != one["pi1"]
    one["pi1"].mkdir(parents=True)  # once a run folder exists, another experiment's identical arm reuses it
    assert {j["arm"]: j["run_dir"] for j in plan(load_recipe("loss-ablation"), tmp_path, [0], sel)}["full"] == one["pi1"]
    seed1 = {j["arm"]: j["run_dir"] for j in plan(load_recipe("one-shot"), tmp_path, [1], sel)}
    assert seed1["pi1"] != one["pi1"]


def test_verdict_rules_follow_the_numbers():
    arms = {"pi1": {"gain": (0.2, 0.05)}, "full-pool": {"gain": (0.22, 0.05)}}
    assert verdict("one-shot", arms, (0.3, 0.01))["verdict"] == "reproduces"
    arms["pi1"]["gain"] = (0.05, 0.02)
    assert verdict("one-shot", arms, (0.3, 0.01))["verdict"] == "partly reproduces"
    arms["pi1"]["gain"] = (0.01, 0.05)
    assert verdict("one-shot", arms, (0.3, 0.01))["verdict"] == "contradicts"
    abl = {"pg-only": {"gain": (0.11, 0.02)}, "pg+wd": {"gain": (0.11, 0.02)}, "pg+wd+kl": {"gain": (0.12, 0.02)},
           "entropy-only": {"gain": (-0.09, 0.02)}}
    v = verdict("loss-ablation", abl, (0.3, 0.01))
    assert v["verdict"] == "partly reproduces" and v["fails"] == "entropy alone gains"
    abl["entropy-only"]["gain"] = (0.05, 0.02)
    assert verdict("loss-ablation", abl, (0.3, 0.01))["verdict"] == "reproduces"
    abl["pg+wd"]["gain"] = (0.03, 0.02)  # weight decay changes the gain beyond the intervals
    assert verdict("loss-ablation", abl, (0.3, 0.01))["fails"].startswith("weight decay not needed")
    abl["pg-only"]["gain"] = (0.01, 0.02)
    assert verdict("loss-ablation", abl, (0.3, 0.01))["verdict"] == "contradicts"


def test_tiny_experiment_runs_resumes_and_reports(tiny_model_dir, tmp_path):
    from rlvr.experiments.report import gather
    from rlvr.experiments.runner import run_experiment, weights_digest

    preset = tmp_path / "tiny.yaml"
    preset.write_text(f"""model: {{path: {tiny_model_dir}}}
data: {{train: testbed/pool, template: testbed, indices: [0, 1, 2, 3]}}
rollout: {{samples_per_prompt: 4, max_response_tokens: 12, temperature: 1.0}}
optim: {{prompts_per_step: 4, micro_batch_seqs: 16, lr: 1.0e-3}}
eval: {{benchmarks: [testbed/test], every: 2, limit: 6, n_samples: 1}}
steps: 2
threads: 1
grader_workers: 1
tensorboard: false
log_rollouts: false
""")
    recipe = tmp_path / "tiny-one-shot.yaml"
    recipe.write_text(f"""title: tiny
finding: a test
preset: {preset}
history: {{preset: {preset}, overrides: [steps=2, "eval.benchmarks=[]"]}}
arms:
  pi1: ["data.indices=[{{pi1}}]"]
  pi1+pi2: ["data.indices=[{{pi1}},{{pi2}}]"]
""")
    out = tmp_path / "exp"
    exp_dir = run_experiment(str(recipe), seeds=2, out=out, jobs=2)  # two worker processes
    assert len(list(out.glob("history-*/acc_history.json"))) == 1
    assert all((d / "train.log").stat().st_size > 0 for d in (out / "runs").iterdir())
    results = json.loads((exp_dir / "results.json").read_text())
    assert set(results["arms"]) == {"pi1", "pi1+pi2"}
    for a in results["arms"].values():
        assert len(a["runs"]) == 2 and all(r["final_acc"] is not None and r["base_acc"] is not None for r in a["runs"])
    assert "## tiny-one-shot" in (exp_dir / "report.md").read_text()
    assert list(exp_dir.glob("*.png"))
    # a re-run skips every finished run and gives the same results
    mtimes = {p: p.stat().st_mtime for p in (out / "runs").glob("*/final/config.json")}
    run_experiment(str(recipe), seeds=2, out=out, jobs=1)
    assert {p: p.stat().st_mtime for p in (out / "runs").glob("*/final/config.json")} == mtimes
    assert json.loads((exp_dir / "results.json").read_text()) == results
    page = gather(out, tmp_path / "docs" / "results.md")
    assert "tiny-one-shot" in page.read_text() and (tmp_path / "docs" / "results").is_dir()
    assert results["model_weights"] == weights_digest(str(tiny_model_dir)) and "Stale" not in page.read_text()
    # hand-written notes survive regeneration, in their experiment's section
    note = "<!-- notes:tiny-one-shot -->\nOn the testbed this is a test.\n<!-- /notes -->"
    page.write_text(page.read_text() + "\n" + note + "\n")
    text = gather(out, page).read_text()
    assert text.count(note) == 1 and text.index(note) > text.index("## tiny-one-shot")


def test_a_failing_run_stops_the_experiment_with_its_error(tiny_model_dir, tmp_path):
    from rlvr.errors import UserError
    from rlvr.experiments.runner import run_experiment

    preset = tmp_path / "tiny.yaml"
    preset.write_text(f"""model: {{path: {tiny_model_dir}}}
data: {{train: testbed/pool, template: testbed, indices: [0]}}
rollout: {{samples_per_prompt: 2, max_response_tokens: 4}}
optim: {{prompts_per_step: 2, micro_batch_seqs: 4}}
steps: 1
threads: 1
grader_workers: 1
tensorboard: false
log_rollouts: false
""")
    recipe = tmp_path / "bad.yaml"  # the built set is invalid (repeat smaller than the set): the worker raises
    recipe.write_text(f"""title: bad
finding: a test
preset: {preset}
arms:
  bad: {{build: {{indices: [0, 1, 2], repeat: 2}}}}
""")
    with pytest.raises(UserError, match="repeat 2 is smaller"):
        run_experiment(str(recipe), seeds=2, out=tmp_path / "exp", jobs=2)
    assert not list((tmp_path / "exp" / "runs").glob("*/final"))


def test_experiment_all_runs_every_recipe_then_writes_the_page(tmp_path, monkeypatch):
    import rlvr.experiments.runner as runner
    from rlvr.cli import main

    ran = []

    def fake_run(name, seeds, out, console, gpu=False, jobs=None):
        ran.append((name, seeds, jobs))
        return out / name

    monkeypatch.setattr(runner, "run_experiment", fake_run)
    dest = tmp_path / "docs" / "results.md"
    assert main(["experiment", "all", "--seeds", "2", "--jobs", "2", "--out", str(tmp_path / "exp"), "--dest", str(dest)]) == 0
    assert [r[0] for r in ran] == runner.recipe_names() and all(r[1:] == (2, 2) for r in ran)
    assert dest.read_text().startswith("# rlvr on the testbed")


def test_a_changed_model_is_a_new_run(tiny_model_dir, tmp_path):
    import shutil

    from rlvr.experiments.runner import run_identity, weights_digest

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    preset = tmp_path / "p.yaml"
    preset.write_text(f"model: {{path: {model}}}\ndata: {{train: testbed/pool, indices: [0]}}\n")
    before = run_identity(preset, ["seed=0"], None)
    assert run_identity(preset, ["seed=0", "threads=1"], None) == before  # threads are not part of a run
    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")  # the same model folder, other weights
    weights_digest.cache_clear()
    assert run_identity(preset, ["seed=0"], None) != before


def test_results_of_other_weights_are_marked_stale(tiny_model_dir, tmp_path):
    import shutil

    from rlvr.experiments.report import model_mismatch
    from rlvr.experiments.runner import weights_digest

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights_digest.cache_clear()
    results = {"name": "one-shot", "model": str(model), "model_weights": weights_digest(str(model))}
    assert model_mismatch(results) == ""
    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\1\1\1\1")  # the model is rebuilt in place
    weights_digest.cache_clear()
    msg = model_mismatch(results)
    assert results["model_weights"] in msg and weights_digest(str(model)) in msg and "rlvr experiment one-shot" in msg
    old = {k: v for k, v in results.items() if k != "model_weights"}  # written before rlvr recorded the weights
    assert "do not record" in model_mismatch(old)
    assert model_mismatch({**results, "model": str(tmp_path / "elsewhere")}) == ""  # not here: nothing to compare
