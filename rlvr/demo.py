"""`rlvr demo`: the paper's 1-shot RLVR pipeline end to end on the embedded testbed.

Steps (each resumable: a finished step is skipped on re-run, an interrupted training run resumes
from its last checkpoint):
  1. pool      GRPO on a sub-pool of the testbed pool, recording each example's accuracy history
               (8 samples per example per epoch, as the paper's full-set run: 4 were too noisy to rank by)
  2. select    rank the sub-pool by historical variance; pi1 is the top example
  3. pi1       1-shot GRPO on pi1 duplicated to fill the batch
  4. random    1-shot GRPO on a random pool example (the paper's control)
  5. eval      base, full-pool, pi1 and random policies on the held-out test set
  6. report    a markdown table (overall and per category, gain over base) and PNG plots
Every step's command line is written to the report so it can be reproduced by hand.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
from pathlib import Path

DEFAULT_OUT = Path("runs/demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="demo folder (re-running it resumes)")
    p.add_argument("--seed", type=int, default=0, help="seed of every step")
    p.add_argument("--pool-size", type=int, default=64, help="sub-pool examples for the history run")
    p.add_argument("--pool-epochs", type=int, default=4, help="epochs of the history run over the sub-pool")
    p.add_argument("--steps", type=int, default=120, help="1-shot training steps")
    p.add_argument("--eval-samples", type=int, default=4, help="samples per test problem at T=0.6")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def _overrides_common(args, run_dir: Path) -> list[str]:
    return ["model.path=testbed", "data.train=testbed/pool", "data.template=testbed", f"seed={args.seed}",
            f"run_dir={run_dir}", f"threads={args.threads}", "eval.benchmarks=[]", "log_rollouts=false"]


def _train(overrides: list[str], preset: str, console, commands: list[str]) -> None:
    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    commands.append("rlvr train " + preset + " " + " ".join(shlex.quote(o) for o in overrides))
    cfg = load_config(TrainConfig, preset, overrides)
    run_dir = Path(cfg.run_dir)
    if (run_dir / "final" / "config.json").exists():
        console.print(f"[dim]{run_dir}: done, skipped[/]")
        return
    train(cfg, resume=run_dir.exists(), console=console)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from rlvr.data import load
    from rlvr.select.scores import rank_examples
    from rlvr.utils.io import atomic_write_json, atomic_write_text

    console = Console()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    preset = str(Path(__file__).resolve().parents[1] / "configs" / "testbed" / "pi1-grpo.yaml")
    if not Path(preset).exists():
        from rlvr.errors import UserError

        raise UserError(f"{preset} is missing: run the demo from an rlvr checkout (pip install -e .)")
    commands: list[str] = []
    pool = load("testbed/pool")
    sub = [p.index for p in pool[: args.pool_size]]

    console.rule("1/6 full-pool GRPO with accuracy history")
    P = 8
    pool_steps = max(2, args.pool_epochs * len(sub) // P)
    _train(_overrides_common(args, out / "pool") + [f"data.indices={sub}", f"steps={pool_steps}", "save_every=8"],
           preset, console, commands)

    console.rule("2/6 select pi1 by historical variance")
    history = json.loads((out / "pool" / "acc_history.json").read_text())
    ranking = rank_examples(history, "variance")
    pi1 = int(ranking[0][0])
    rnd = random.Random(args.seed).choice([i for i in sub if i != pi1])
    atomic_write_json(out / "ranking.json", [{"rank": i + 1, "index": int(k), "score": s, "history": history[k]}
                                             for i, (k, s) in enumerate(ranking)])
    commands.append(f"rlvr select --history {out / 'pool' / 'acc_history.json'} --pool testbed/pool "
                    f"--out {out / 'ranking.json'}")
    console.print(f"pi1 = pool index {pi1} (score {ranking[0][1]:.3f}); random control = index {rnd}")

    console.rule("3/6 1-shot GRPO on pi1")
    _train(_overrides_common(args, out / "pi1") + [f"data.indices=[{pi1}]", f"steps={args.steps}", "save_every=20"],
           preset, console, commands)
    console.rule("4/6 1-shot GRPO on a random example")
    _train(_overrides_common(args, out / "random") + [f"data.indices=[{rnd}]", f"steps={args.steps}", "save_every=20"],
           preset, console, commands)

    console.rule("5/6 evaluate on the held-out test set")
    results = {}
    from rlvr.eval import EvalConfig, evaluate
    from rlvr.models import load_model_and_tokenizer

    for name, path in [("base", "testbed"), ("full-pool", out / "pool" / "final"), ("pi1", out / "pi1" / "final"),
                       ("random", out / "random" / "final")]:
        dest = out / "eval" / name
        commands.append(f"rlvr eval --model {path} --benchmarks testbed/test --n-samples {args.eval_samples} "
                        f"--seed {args.seed} --out {dest}")
        if (dest / "summary.json").exists():
            results[name] = json.loads((dest / "summary.json").read_text())["benchmarks"]["testbed/test"]
            continue
        model, tok = load_model_and_tokenizer(path)
        res = evaluate(model, tok, ["testbed/test"], EvalConfig(n_samples=args.eval_samples, seed=args.seed),
                       out_dir=dest, console=console, model_name=str(path))
        results[name] = res["benchmarks"]["testbed/test"]

    console.rule("6/6 report")
    from rlvr.analysis.report import demo_report

    md = demo_report(out, results, {"pi1": pi1, "random": rnd}, commands)
    atomic_write_text(out / "report.md", md)
    console.print(md, markup=False, highlight=False)
    console.print(f"report: {out / 'report.md'} (plots in {out / 'plots'})")
    return 0
