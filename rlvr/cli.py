"""`rlvr` command line: one entry point, one subcommand per capability.

Each subcommand lives in its own module as `add_arguments(parser)` + `run(args) -> int`, and is imported
only when invoked, so `rlvr --help` stays instant and `rlvr grade` never imports torch.
Flags use kebab-case everywhere.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rlvr.errors import UserError

# name -> (module, one-line help). Order is the order shown by `rlvr --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rlvr.demo", "run the whole 1-shot RLVR pipeline on the embedded testbed"),
    "grade": ("rlvr.reward.cli", "grade a JSONL file of responses against gold answers"),
    "data": ("rlvr.data.cli", "list, show and build datasets (verl parquet, 1-/few-shot sets)"),
    "eval": ("rlvr.eval.cli", "evaluate a model on benchmarks with the paper's protocol"),
    "train": ("rlvr.trainer.cli", "train with GRPO or PPO from a YAML config"),
    "select": ("rlvr.select.cli", "rank training examples (historical variance, random)"),
    "testbed": ("rlvr.testbed.cli", "rebuild the embedded synthetic math world and its base model"),
    "analyse": ("rlvr.analysis.cli", "analyse evaluation or training outputs (format, reflection, length)"),
    "experiment": ("rlvr.experiments.cli", "run the paper's experiments on the testbed"),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _available(name: str) -> bool:
    module, _ = COMMANDS[name]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr",
        description="RL with verifiable rewards for math reasoning, from one training example.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        if not _available(name):
            continue
        p = sub.add_parser(name, help=help_line, description=help_line, formatter_class=_Formatter)
        if name == only:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.version:
        from rlvr import __version__

        print(__version__)
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if command is None else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as e:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {e}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
