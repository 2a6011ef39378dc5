"""`rlvr experiment NAME [--seeds 3]`, `rlvr experiment list`, `rlvr experiment report`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="an experiment (see `rlvr experiment list`), `all` (every one, then `report`), "
                                "`list`, or `report`")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--out", type=Path, default=Path("runs/experiments"), help="experiments folder (re-running resumes)")
    p.add_argument("--jobs", type=int, default=None,
                   help="training runs at once (default: one per CPU core on CPU, each single-threaded; 1 on a GPU)")
    p.add_argument("--gpu", action="store_true", help="the recipe's GPU preset (configs/experiments/gpu/, real models)")
    p.add_argument("--dest", type=Path, default=Path("docs/results.md"), help="`report`: the page to write")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from rlvr.experiments.runner import load_recipe, recipe_names

    console = Console()
    if args.name == "list":
        for n in recipe_names():
            r = load_recipe(n)
            console.print(f"[bold]{n}[/]: {r.title} ({len(r.arms)} arms)")
        gpu = recipe_names(gpu=True)
        if gpu:
            console.print(f"GPU presets (configs/experiments/gpu/): {', '.join(gpu)}")
        return 0
    if args.name == "report":
        from rlvr.experiments.report import gather

        dest = gather(args.out, args.dest)
        console.print(f"wrote {dest}")
        return 0
    if args.seeds < 1 or (args.jobs is not None and args.jobs < 1):
        from rlvr.errors import UserError

        raise UserError("--seeds and --jobs must be >= 1")
    from rlvr.experiments.runner import run_experiment

    if args.name == "all":
        for n in recipe_names(args.gpu):
            exp_dir = run_experiment(n, args.seeds, args.out, console, gpu=args.gpu, jobs=args.jobs)
            console.print(f"{n}: {exp_dir / 'report.md'}")
        from rlvr.experiments.report import gather

        console.print(f"wrote {gather(args.out, args.dest)}")
        return 0
    exp_dir = run_experiment(args.name, args.seeds, args.out, console, gpu=args.gpu, jobs=args.jobs)
    console.print((exp_dir / "report.md").read_text(), markup=False, highlight=False)
    console.print(f"results: {exp_dir}")
    return 0
