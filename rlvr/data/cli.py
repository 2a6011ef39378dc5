"""`rlvr data list | show NAME | build ...`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlvr.errors import UserError


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in _csv(s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of integers") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.add_parser("list", help="list registered datasets (name, rows, kind, source)")
    show = sub.add_parser("show", help="print a few rows of a dataset")
    show.add_argument("name", help="dataset name, e.g. math500, dsr_sub, pi1, testbed/test")
    show.add_argument("--n", type=int, default=3, help="rows to show (default 3)")
    b = sub.add_parser("build", help="build a 1-/few-shot verl training file")
    b.add_argument("--pool", default="dsr_sub", help="pool dataset to pick from (default dsr_sub)")
    b.add_argument("--pick", type=_csv, help="paper example names, e.g. pi1,pi13")
    b.add_argument("--index", type=_ints, help="pool indices, e.g. 124,682")
    b.add_argument("--ranking", help="ranking file written by `rlvr select`")
    b.add_argument("--top", type=int, help="with --ranking: take the top K (default 1)")
    b.add_argument("--random", type=int, dest="random_k", help="a seeded random draw of K pool examples")
    b.add_argument("--seed", type=int, default=0, help="seed for --random and --label-noise")
    b.add_argument("--repeat", type=int, default=128, help="total rows after duplication (default 128, the paper's)")
    b.add_argument("--label-noise", type=float, default=0.0, help="fraction of examples given a plausible wrong label")
    b.add_argument("--wrong-label", help="replace the single example's gold label with this value")
    b.add_argument("--prompt-edits", type=Path, help="JSON or YAML file mapping pool index -> new problem text")
    b.add_argument("--out", type=Path, required=True, help="output .parquet (or .jsonl)")
    b.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rlvr import data

    console = Console()
    cmd = args.data_command
    if cmd in (None, "list"):
        t = Table(title="registered datasets")
        for col in ("name", "rows", "kind", "description", "source"):
            t.add_column(col)
        for info in data.list_datasets():
            t.add_row(info.name, str(len(data.load(info.name))), info.kind, info.description, info.source)
        console.print(t)
        return 0
    if cmd == "show":
        rows = data.load(args.name)
        for p in rows[: args.n]:
            console.print(f"[bold]{p.id}[/]  answer: [green]{p.answer}[/]  subject: {p.subject}  level: {p.level}  "
                          f"index: {p.index}", highlight=False)
            console.print(p.problem, highlight=False, markup=False)
            console.print()
        console.print(f"{len(rows)} rows")
        return 0
    # build
    edits = None
    if args.prompt_edits:
        if not args.prompt_edits.exists():
            raise UserError(f"prompt-edits file {args.prompt_edits} does not exist")
        import yaml

        raw = yaml.safe_load(args.prompt_edits.read_text())
        if not isinstance(raw, dict):
            raise UserError(f"{args.prompt_edits}: expected a mapping of pool index -> problem text")
        edits = {int(k): str(v) for k, v in raw.items()}
    indices = data.resolve_picks(args.pool, args.pick, args.index, args.ranking, args.top, args.random_k, args.seed)
    rows = data.build_rows(args.pool, indices, args.repeat, args.label_noise, args.wrong_label, edits, args.seed)
    if args.out.exists() and not args.force:
        raise UserError(f"{args.out} already exists; pass --force to overwrite it")
    data.write_verl(rows, args.out, force=args.force)
    console.print(f"wrote {len(rows)} rows ({len(indices)} example(s): indices {indices}) to {args.out}")
    return 0
