from pathlib import Path

import pytest

from rlvr.config import iter_fields, load_config
from rlvr.errors import UserError
from rlvr.trainer.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_field_has_help():
    missing = [name for name, f, _ in iter_fields(TrainConfig) if not f.metadata.get("help")]
    assert missing == []


def test_overrides_are_typed():
    cfg = load_config(TrainConfig, None, ["optim.lr=3e-6", "algo.kl_coef=0", "data.indices=[1, 2]", "log_rollouts=false",
                                          "algo.dual_clip_c=null"])
    assert cfg.optim.lr == 3e-6 and cfg.algo.kl_coef == 0.0 and cfg.data.indices == [1, 2]
    assert cfg.log_rollouts is False and cfg.algo.dual_clip_c is None


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "did you mean 'optim.lr'"),
    ("algo.adv_estimator=grop", "did you mean 'grpo'"),
    ("steps=ten", "must be an integer"),
    ("log_rollouts=2", "true or false"),
    ("optim=3", "must be a mapping"),
    ("nokey", "key.sub=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(UserError, match=message):
        load_config(TrainConfig, None, [override])


def test_validation_names_the_fix():
    with pytest.raises(UserError, match="mini_batches_per_step"):
        load_config(TrainConfig, None, ["optim.prompts_per_step=3", "rollout.samples_per_prompt=3",
                                        "optim.mini_batches_per_step=2"])
    with pytest.raises(UserError, match="samples_per_prompt >= 2"):
        load_config(TrainConfig, None, ["rollout.samples_per_prompt=1"])
    with pytest.raises(UserError, match="micro_batch_tokens >= 0"):
        load_config(TrainConfig, None, ["optim.micro_batch_tokens=-1"])


def test_yaml_inheritance(tmp_path):
    (tmp_path / "a.yaml").write_text("optim:\n  lr: 1.0e-5\nsteps: 5\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nsteps: 7\n")
    cfg = load_config(TrainConfig, tmp_path / "b.yaml", ["optim.prompts_per_step=4"])
    assert (cfg.optim.lr, cfg.steps, cfg.optim.prompts_per_step) == (1e-5, 7, 4)


@pytest.mark.parametrize("preset", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml")
                                           if "experiments" not in p.parts))  # recipes: test_experiments.py
def test_every_preset_loads(preset):
    cfg = load_config(TrainConfig, ROOT / preset)
    assert cfg.steps >= 1


def test_paper_preset_has_the_paper_recipe():
    cfg = load_config(TrainConfig, ROOT / "configs/paper/qwen2.5-math-1.5b-pi1-grpo.yaml")
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.grad_clip) == (1e-6, 0.01, 1.0)
    assert (cfg.optim.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.optim.mini_batches_per_step) == (128, 8, 1)
    assert (cfg.algo.kl_coef, cfg.algo.kl_kind, cfg.algo.entropy_coef, cfg.algo.clip_low) == (0.001, "low_var_kl", 0.001, 0.2)
    assert (cfg.rollout.temperature, cfg.rollout.max_response_tokens, cfg.steps) == (0.6, 3072, 2000)
