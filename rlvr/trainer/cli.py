"""`rlvr train CONFIG.yaml [key=value ...] [--resume]` (also under torchrun)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML preset (e.g. configs/testbed/pi1-grpo.yaml)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algo.kl_coef=0 optim.lr=1e-6")
    p.add_argument("--resume", action="store_true", help="continue the run in run_dir from its newest checkpoint")
    p.add_argument("--run-dir", help="output folder (same as run_dir=...)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from rlvr.config import load_config, to_yaml
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import check_config_inputs, train

    overrides = list(args.overrides)
    if args.config and "=" in args.config:  # `rlvr train key=value` without a preset
        overrides.insert(0, args.config)
        args.config = None
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    cfg = load_config(TrainConfig, args.config, overrides)
    if args.print_config:
        print(to_yaml(cfg))
        check_config_inputs(cfg)
        return 0
    train(cfg, resume=args.resume)
    return 0
