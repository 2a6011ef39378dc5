"""`rlvr analyse eval DIR`: format errors, self-reflection words and length per benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlvr.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="analyse_command", metavar="WHAT")
    e = sub.add_parser("eval", help="analyse the samples of an `rlvr eval` output folder")
    e.add_argument("dir", type=Path, help="the --out folder of `rlvr eval`")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rlvr.analysis.response import analyse_responses
    from rlvr.utils.io import read_jsonl

    if args.analyse_command != "eval":
        raise UserError("say what to analyse: `rlvr analyse eval DIR`")
    files = sorted(args.dir.glob("*/samples.jsonl"))
    if not files:
        raise UserError(f"{args.dir} holds no */samples.jsonl: give the --out folder of `rlvr eval`")
    t = Table(title=f"responses in {args.dir}")
    for col in ("benchmark", "responses", "accuracy", "format errors", "reflection rate", "reflection words/resp",
                "mean tokens"):
        t.add_column(col)
    for f in files:
        rows = read_jsonl(f, tolerate_partial_tail=True)
        a = analyse_responses([r["response"] for r in rows], [r["n_tokens"] for r in rows])
        acc = sum(r["score"] for r in rows) / max(len(rows), 1)
        t.add_row(f.parent.name.replace("__", "/"), str(len(rows)), f"{acc:.3f}", f"{a['format_error_rate']:.3f}",
                  f"{a['reflection_rate']:.3f}", f"{a['reflection_words_per_response']:.3f}", f"{a['length_mean']:.1f}")
    Console().print(t)
    return 0
