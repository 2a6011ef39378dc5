"""`rlvr select --history FILE --out ranking.json [--method variance] [--build train.parquet]`.

The history is a training run's `acc_history.json` (written by `rlvr train`) or a file in the paper
repository's format, `{"<pool index>": [acc_1, acc_2, ...]}`; `--history paper` uses the paper's own
record of its DSR-sub run (vendored), which ranks index 124 first (pi1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlvr.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", required=True, help="acc_history.json of a full-pool run, or `paper`")
    p.add_argument("--pool", default="dsr_sub", help="the pool the history's indices refer to (default dsr_sub)")
    p.add_argument("--method", default="variance", help="variance (the paper's) | random | lim")
    p.add_argument("--seed", type=int, default=0, help="seed for --method random")
    p.add_argument("--out", type=Path, required=True, help="ranking file to write (JSON)")
    p.add_argument("--top", type=int, default=10, help="rows of the ranking to print")
    p.add_argument("--build", type=Path, help="also write the 1-shot training file of the top example here")
    p.add_argument("--build-top", type=int, default=1, help="with --build: how many top examples to include")
    p.add_argument("--repeat", type=int, default=128, help="with --build: total rows after duplication")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def load_history(spec: str) -> dict[str, list[float]]:
    if spec == "paper":
        from rlvr.data import paper_accuracy_history

        return paper_accuracy_history()
    path = Path(spec)
    if not path.exists():
        raise UserError(f"history file {path} does not exist (a full-pool `rlvr train` run writes acc_history.json)")
    text = path.read_text().strip()
    if not text:
        raise UserError(f"history file {path} is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must map example index -> list of accuracies")
    return data


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rlvr import data
    from rlvr.select.scores import rank_examples
    from rlvr.utils.io import atomic_write_json

    console = Console()
    history = load_history(args.history)
    ranking = rank_examples(history, args.method, args.seed)
    problems = {str(p.index): p for p in data.load(args.pool)}
    missing = [k for k, _ in ranking if k not in problems]
    if missing:
        raise UserError(f"{len(missing)} history indices are not in pool {args.pool!r} (e.g. {missing[:3]}); "
                        "pass the --pool the run trained on")
    rows = [{"rank": i + 1, "index": int(k), "score": s, "history": list(history[k]),
             "problem": problems[k].problem, "answer": problems[k].answer} for i, (k, s) in enumerate(ranking)]
    if args.out.exists() and not args.force:
        raise UserError(f"{args.out} already exists; pass --force to overwrite it")
    atomic_write_json(args.out, {"method": args.method, "pool": args.pool, "history": str(args.history), "ranking": rows})
    t = Table(title=f"top examples by {args.method}")
    for col in ("rank", "index", "score", "mean acc", "answer", "problem"):
        t.add_column(col)
    for r in rows[: args.top]:
        mean = sum(r["history"]) / len(r["history"])
        t.add_row(f"pi{r['rank']}", str(r["index"]), f"{r['score']:.4f}", f"{mean:.2f}", r["answer"],
                  r["problem"][:60] + ("..." if len(r["problem"]) > 60 else ""))
    console.print(t)
    console.print(f"wrote {args.out} ({len(rows)} examples)")
    if args.build:
        picks = [r["index"] for r in rows[: args.build_top]]
        built = data.build_rows(args.pool, picks, repeat=args.repeat)
        data.write_verl(built, args.build, force=args.force)
        console.print(f"wrote {args.build}: {len(built)} rows of pool indices {picks}")
    return 0
