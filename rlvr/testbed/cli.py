"""`rlvr testbed build | info`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="testbed_command", metavar="ACTION")
    b = sub.add_parser("build", help="regenerate the datasets and pre-train the base model from scratch")
    b.add_argument("--out", type=Path, default=Path("testbed-build"),
                   help="output folder (model/ and data/); default ./testbed-build")
    b.add_argument("--seed", type=int, default=0, help="seed of the world and of the model (default 0)")
    b.add_argument("--steps", type=int, help="pre-training steps (default: the committed model's 2,400)")
    b.add_argument("--threads", type=int, default=2, help="torch threads (fixed for determinism)")
    sub.add_parser("info", help="where the committed model is, its size and how it was made")


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from rlvr.testbed import model_path
    from rlvr.testbed.build import PretrainConfig, make_datasets, pretrain, write_datasets

    console = Console()
    if args.testbed_command == "build":
        cfg = PretrainConfig(seed=args.seed, threads=args.threads)
        if args.steps:
            cfg.steps = args.steps
        write_datasets(make_datasets(cfg.seed), args.out / "data")
        info = pretrain(cfg, args.out / "model", log=console.print)
        console.print(f"pre-trained {info['params'] / 1e6:.2f} M parameters on {info['tokens'] / 1e6:.1f} M tokens in "
                      f"{info['minutes']} min; final loss {info['final_loss']}\nwrote {args.out}/model and {args.out}/data")
        return 0
    path = model_path()
    log = path / "pretrain_log.json"
    console.print(f"committed testbed model: {path}")
    if log.exists():
        info = json.loads(log.read_text())
        console.print(f"{info['params'] / 1e6:.2f} M parameters, {info['tokens'] / 1e6:.1f} M pre-training tokens, "
                      f"{info['minutes']} min, final loss {info['final_loss']}")
    card = path / "README.md"
    if card.exists():
        console.print(card.read_text(), markup=False, highlight=False)
    return 0
