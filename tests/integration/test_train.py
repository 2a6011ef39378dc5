"""End-to-end training on a tiny random model: metrics, exact resume after SIGKILL, torchrun 2 = 1."""

import gc
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr import metrics as M

VOLATILE = ("timing/", "perf/")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    rows = [{"problem": f"What is {i}+{i}?", "answer": str(2 * i), "index": i} for i in range(6)]
    p = tmp_path_factory.mktemp("data") / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def free_port() -> int:
    """A TCP port nothing listens on now, for torchrun's rendezvous (a fixed port can still be held by an
    earlier run)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def overrides(model_dir, train_file, run_dir, steps=4, extra=()):
    return [f"model.path={model_dir}", f"data.train={train_file}", "data.template=testbed", "optim.prompts_per_step=4",
            "rollout.samples_per_prompt=4", "rollout.max_response_tokens=12", f"steps={steps}", "save_every=2",
            f"run_dir={run_dir}", "optim.lr=1e-3", "optim.micro_batch_seqs=8", "threads=1", "grader_workers=1",
            "tensorboard=false", "rollout.temperature=1.0", *extra]


def read_metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def test_three_steps_change_params_and_log_every_key(tiny_model_dir, train_file, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    cfg = load_config(TrainConfig, None, overrides(tiny_model_dir, train_file, tmp_path / "run", steps=3))
    train(cfg)
    rows = read_metrics(tmp_path / "run")
    assert [r[M.STEP] for r in rows] == [1, 2, 3]
    for r in rows:
        for k in M.TRAIN_KEYS:
            if k != M.TOKENS_PER_S:
                assert k in r and math.isfinite(r[k]), k
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    history = json.loads((tmp_path / "run" / "acc_history.json").read_text())
    assert set(history) <= {str(i) for i in range(6)} and all(len(v) >= 1 for v in history.values())
    assert (tmp_path / "run" / "rollouts" / "step_1.jsonl").exists()
    assert (tmp_path / "run" / "checkpoints" / "step_2" / "policy" / "config.json").exists()


def _cli(args):
    return [sys.executable, "-m", "rlvr.cli", "train", *args]


def test_sigkill_and_resume_gives_identical_metrics(tiny_model_dir, train_file, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cli(overrides(tiny_model_dir, train_file, ref_dir, steps=6)), check=True, env=env,
                   capture_output=True)
    proc = subprocess.Popen(_cli(overrides(tiny_model_dir, train_file, kill_dir, steps=6)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (kill_dir / "checkpoints" / "step_2" / "state.json").exists():
        assert time.time() < deadline and proc.poll() is None, "the run never reached its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = subprocess.run(_cli([*overrides(tiny_model_dir, train_file, kill_dir, steps=6), "--resume"]), env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_metrics(kill_dir) == read_metrics(ref_dir)
    assert json.loads((kill_dir / "acc_history.json").read_text()) == json.loads((ref_dir / "acc_history.json").read_text())


@pytest.mark.parametrize("cap", [0, 90], ids=["rows", "token-cap"])
def test_torchrun_two_processes_match_one(tiny_model_dir, train_file, tmp_path, cap):
    """With a token cap, rank 0 (slots 0, 2: long prompts) needs more passes than rank 1 (short
    prompts); the ranks must agree on one count or the gradient all-reduce would hang."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one, two = tmp_path / "one", tmp_path / "two"
    extra: tuple[str, ...] = ()
    if cap:
        data = tmp_path / "ragged.jsonl"
        data.write_text("".join(json.dumps({"problem": ("Add these numbers: " * (6 if i % 2 == 0 else 0)) + f"{i}+{i}?",
                                            "answer": str(2 * i), "index": i}) + "\n" for i in range(4)))
        extra = (f"data.train={data}", "data.shuffle=false", f"optim.micro_batch_tokens={cap}")
    subprocess.run(_cli(overrides(tiny_model_dir, train_file, one, steps=3, extra=extra)), check=True, env=env,
                   capture_output=True)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={free_port()}", "-m", "rlvr.cli", "train",
                        *overrides(tiny_model_dir, train_file, two, steps=3, extra=extra)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_metrics(one), read_metrics(two)
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-4, abs=1e-6), k


def test_config_typo_fails_before_compute(capsys, tiny_model_dir):
    from rlvr.cli import main

    assert main(["train", "optim.lrr=1e-6"]) == 2
    assert "did you mean 'optim.lr'" in capsys.readouterr().err
    assert main(["train", "model.path=/nonexistent/model"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", f"model.path={tiny_model_dir}", "data.train=no_such_set"]) == 2
    assert "not registered" in capsys.readouterr().err


def test_bf16_rollouts_mixed_precision_custom_reward_and_forced_length(tiny_model_dir, train_file, tmp_path):
    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    run = tmp_path / "bf16"
    cfg = load_config(TrainConfig, None, overrides(tiny_model_dir, train_file, run, steps=2, extra=(
        "model.rollout_dtype=bfloat16", "model.mixed_precision=bf16", "rollout.ignore_eos=true",
        "reward_fn=rlvr.reward.toy:contains_answer")))
    train(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r[M.STEP] for r in rows] == [1, 2]
    for r in rows:
        assert r[M.RESP_LEN_MEAN] == 12 and r[M.RESP_CLIP_RATIO] == 1.0  # every response ran to the limit
        assert "timing/sync" in r and math.isfinite(r[M.PG_LOSS]) and math.isfinite(r[M.KL_LOSS])
    rollouts = [json.loads(line) for line in (run / "rollouts" / "step_1.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rollouts} == {"custom"}
    # the reward is the toy substring reward: 1 exactly when the gold answer string occurs in the response
    answers = {i: str(2 * i) for i in range(6)}
    assert all(r["reward"] == float(answers[r["index"]] in r["response"]) for r in rollouts)


def test_reference_dtype_casts_the_reference_alone(tiny_model_dir, train_file, tmp_path):
    """model.reference_dtype=bfloat16 with fp32 rollouts: the reference runs in bf16 (at step 1 the policy
    equals the reference, so the KL is exactly what the cast adds), the rollout engine is the fp32 policy."""
    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    kl = {}
    for name, extra in (("fp32", ()), ("bf16ref", ("model.reference_dtype=bfloat16",))):
        run = tmp_path / name
        train(load_config(TrainConfig, None, overrides(tiny_model_dir, train_file, run, steps=1, extra=extra)))
        row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
        assert "timing/sync" not in row  # no rollout copy: the engine is the policy itself
        kl[name] = row[M.KL_LOSS]
    assert abs(kl["fp32"]) < 1e-9 < kl["bf16ref"] < 1e-2, kl  # measured: 0.0 and 3.9e-7


def test_cpu_kernels_of_the_training_passes_leave_the_run_unchanged(tiny_model_dir, train_file, tmp_path, capsys):
    """model.fused_layers (C++ RMSNorm/MLP) and model.attention=rlvr against transformers' own modules with SDPA:
    the same run to float rounding (the rollouts come from the decoder either way), and the start says which."""
    from rlvr.config import load_config
    from rlvr.kernels import layers
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    if layers() is None:
        pytest.skip("rlvr's C++ kernels could not be built on this machine")
    runs = {}
    for name, extra in (("kernels", ()), ("torch", ("model.fused_layers=false", "model.attention=sdpa"))):
        run = tmp_path / name
        train(load_config(TrainConfig, None, overrides(tiny_model_dir, train_file, run, steps=2, extra=extra)))
        assert gc.get_freeze_count() == 0  # the loop's frozen objects are collectable again once it returns
        runs[name] = read_metrics(run)
    out = capsys.readouterr().out
    assert "attention of training passes: rlvr; C++ RMSNorm/MLP layers: 7 modules" in out  # 2 layers: 2 x 2 norms + final + 2 MLPs
    assert "attention of training passes: sdpa; C++ RMSNorm/MLP layers: none" in out
    for a, b in zip(runs["kernels"], runs["torch"]):
        assert a[M.SCORE_MEAN] == b[M.SCORE_MEAN]
        for key in (M.PG_LOSS, M.KL_LOSS, M.ENTROPY):
            assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-7), (key, a[key], b[key])


def test_bad_reward_fn_is_a_clear_error(capsys, tiny_model_dir, train_file):
    from rlvr.cli import main

    assert main(["train", f"model.path={tiny_model_dir}", f"data.train={train_file}", "reward_fn=rlvr.reward.toy:nope"]) == 2
    assert "has no function 'nope'" in capsys.readouterr().err
    assert main(["train", f"model.path={tiny_model_dir}", f"data.train={train_file}", "reward_fn=no_colon"]) == 2
    assert "module:function" in capsys.readouterr().err


def test_fsdp_two_processes_match_one_and_resume(tiny_model_dir, train_file, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one, two = tmp_path / "one", tmp_path / "fsdp"
    subprocess.run(_cli(overrides(tiny_model_dir, train_file, one, steps=4)), check=True, env=env, capture_output=True)

    def torchrun(args):
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
                               "-m", "rlvr.cli", "train", *args], env=env, capture_output=True, text=True)

    # 2 of 4 steps, then resume from the sharded checkpoint at step 2 for the rest
    r = torchrun(overrides(tiny_model_dir, train_file, two, steps=2, extra=("strategy=fsdp",)))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (two / "checkpoints" / "step_2" / "sharded" / "policy").is_dir()
    r = torchrun([*overrides(tiny_model_dir, train_file, two, steps=4, extra=("strategy=fsdp",)), "--resume"])
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_metrics(one), read_metrics(two)
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-4, abs=1e-6), k
    # the exported policy is a whole Hugging Face model that loads and matches the single-process run
    import torch
    from transformers import AutoModelForCausalLM

    wa = AutoModelForCausalLM.from_pretrained(one / "final").state_dict()
    wb = AutoModelForCausalLM.from_pretrained(two / "final").state_dict()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
