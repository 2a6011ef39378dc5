"""`rlvr grade`: grade a JSONL file of responses against gold answers, resumably.

Each input line is a JSON object with a response field and a gold field (names set by
--response-key / --gold-key). Each output line is the input object plus `pred`, `score` and
`reason`. Output is appended in chunks and fsync'd; a re-run after a kill keeps the finished prefix
and continues after it. The final summary is printed and written next to the output.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from rlvr.errors import UserError

CHUNK = 256


def example_path() -> Path:
    return Path(str(resources.files("rlvr.reward") / "examples" / "responses.jsonl"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, help="JSONL file of responses (one JSON object per line)")
    p.add_argument("--output", type=Path, help="graded JSONL to write (default: INPUT with .graded.jsonl)")
    p.add_argument("--example", action="store_true", help="grade the small example file shipped with rlvr")
    p.add_argument("--response-key", default="response", help="field holding the model response (default: response)")
    p.add_argument("--gold-key", default="gold", help="field holding the gold answer (default: gold)")
    p.add_argument("--mode", choices=["boxed", "lenient"], default="boxed",
                   help="boxed: last \\boxed{} only (the training reward); lenient: add fallbacks for unboxed answers")
    p.add_argument("--workers", type=int, default=2, help="grading worker processes (0 = in-process, no time limit)")
    p.add_argument("--timeout", type=float, default=5.0, help="wall-clock limit per case, seconds")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT instead of resuming it")


def _load_input(path: Path, response_key: str, gold_key: str) -> list[dict]:
    from rlvr.utils.io import iter_jsonl

    if not path.exists():
        raise UserError(f"input file {path} does not exist")
    rows = []
    try:
        for lineno, obj in iter_jsonl(path):
            for key in (response_key, gold_key):
                if key not in obj:
                    raise UserError(
                        f"{path}:{lineno}: no field {key!r} (fields: {', '.join(obj) or 'none'}); "
                        f"set --{'response' if key == response_key else 'gold'}-key"
                    )
            rows.append(obj)
    except ValueError as e:
        raise UserError(str(e)) from None
    return rows


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rlvr.reward import Grader
    from rlvr.utils.io import append_jsonl, atomic_write_json, read_jsonl, truncate_partial_tail

    console = Console()
    if args.example:
        args.input = example_path()
        if args.output is None:
            args.output = Path("graded_example.jsonl")
    if args.input is None:
        raise UserError("give --input FILE.jsonl (or --example to grade the shipped example file)")
    out = args.output or args.input.with_suffix(".graded.jsonl")
    rows = _load_input(args.input, args.response_key, args.gold_key)

    done: list[dict] = []
    if out.exists() and not args.force:
        truncate_partial_tail(out)
        done = read_jsonl(out)
        for i, d in enumerate(done):
            if i >= len(rows) or {k: d.get(k) for k in rows[i]} != rows[i]:
                raise UserError(f"{out} holds rows that do not match {args.input} (row {i + 1}); use --force to regrade")
        if done:
            console.print(f"resuming: {len(done)} of {len(rows)} rows already graded in {out}")
    elif out.exists():
        out.unlink()

    todo = rows[len(done):]
    with Grader(workers=args.workers, timeout=args.timeout) as grader, Progress(
        TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.0f} cases/s"), TimeRemainingColumn(), console=console,
    ) as bar:
        import time

        task = bar.add_task("grade", total=len(rows), completed=len(done), rate=0.0)
        t0, n = time.monotonic(), 0
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            results = grader.grade_batch(
                [(str(r[args.response_key]), str(r[args.gold_key])) for r in chunk], mode=args.mode
            )
            append_jsonl(out, [dict(r, pred=g.pred, score=g.score, reason=g.reason) for r, g in zip(chunk, results)])
            n += len(chunk)
            bar.update(task, advance=len(chunk), rate=n / max(time.monotonic() - t0, 1e-9))

    graded = read_jsonl(out)
    reasons: dict[str, int] = {}
    for r in graded:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    summary = {
        "input": str(args.input), "output": str(out), "mode": args.mode, "cases": len(graded),
        "accuracy": sum(r["score"] for r in graded) / max(len(graded), 1),
        "no_answer": reasons.get("no_answer", 0), "timeouts": reasons.get("timeout", 0),
        "errors": reasons.get("error", 0), "bad_gold": reasons.get("bad_gold", 0), "reasons": reasons,
    }
    atomic_write_json(out.with_suffix(".summary.json"), summary)
    console.print(
        f"accuracy {summary['accuracy']:.3f} on {len(graded)} cases | no answer {summary['no_answer']} | "
        f"timeouts {summary['timeouts']} | errors {summary['errors']} | bad gold {summary['bad_gold']}\n"
        f"wrote {out} and {out.with_suffix('.summary.json')}"
    )
    return 0
