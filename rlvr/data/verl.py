"""verl parquet (and JSONL) in and out.

A verl row: `data_source` (str), `prompt` (list of chat messages {content, role}), `ability` ("math"),
`reward_model` ({ground_truth, style: "rule"}), `extra_info` ({index, split, ...}). Files of the
paper's repository read back field for field; what rlvr writes, verl's RLHFDataset and
`datasets.load_dataset("parquet", ...)` read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rlvr.data.registry import Problem
from rlvr.data.templates import DEEPSCALER_SUFFIX, get_template
from rlvr.errors import UserError

VERL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")


def verl_row_from_problem(problem: Problem, template: str = "deepscaler", split: str = "train") -> dict:
    msgs = get_template(template).messages(problem.problem)
    return {
        "data_source": problem.data_source,
        "prompt": [{"content": m["content"], "role": m["role"]} for m in msgs],
        "ability": "math",
        "reward_model": {"ground_truth": problem.answer, "style": "rule"},
        "extra_info": {"index": problem.index, "split": split},
    }


def check_verl_row(row: dict, where: str = "row", require_gold: bool = True) -> None:
    missing = [c for c in VERL_COLUMNS if c not in row]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}; a verl row needs {', '.join(VERL_COLUMNS)}")
    if not isinstance(row["prompt"], list) or not row["prompt"] or "content" not in row["prompt"][-1]:
        raise UserError(f"{where}: `prompt` must be a non-empty list of chat messages with `content`")
    gt = (row.get("reward_model") or {}).get("ground_truth")
    if require_gold and (gt is None or not str(gt).strip()):
        raise UserError(f"{where}: no gold answer (reward_model.ground_truth is empty); fix or drop the row")
    if not require_gold and gt is None:
        raise UserError(f"{where}: reward_model has no ground_truth field")


def problem_from_verl_row(row: dict, where: str = "row") -> Problem:
    check_verl_row(row, where, require_gold=False)  # the pool itself has one empty label (index 265)
    content = row["prompt"][-1]["content"]
    problem = content[: -len(DEEPSCALER_SUFFIX)] if content.endswith(DEEPSCALER_SUFFIX) else content
    info = row.get("extra_info") or {}
    index = info.get("index")
    ds = row.get("data_source", "unknown")
    return Problem(
        id=f"{ds}/{index}" if index is not None else f"{ds}/{abs(hash(content)) % 10**12}",
        problem=problem, answer=str(row["reward_model"]["ground_truth"]), data_source=ds,
        index=int(index) if index is not None else None,
        subject=info.get("subject"), level=int(info["level"]) if str(info.get("level", "")).isdigit() else None,
        extra={"verl_row": row},
    )


def _read_rows(path: str | os.PathLike) -> list[dict]:
    """Plain dict rows of a .parquet or .jsonl/.json file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file {path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix in (".jsonl", ".json"):
        from rlvr.utils.io import read_jsonl

        try:
            rows = read_jsonl(path)
        except ValueError as e:
            raise UserError(str(e)) from None
    else:
        raise UserError(f"{path}: unknown data format {path.suffix!r}; use .parquet or .jsonl")
    for r in rows:
        r.pop("__index_level_0__", None)  # the pandas index some parquet files carry
    return rows


def read_verl(path: str | os.PathLike) -> list[dict]:
    """Rows of a verl parquet or JSONL file, as plain dicts."""
    rows = _read_rows(path)
    for i, r in enumerate(rows):
        check_verl_row(r, f"{path} row {i}")
    return rows


def write_verl(rows: list[dict], path: str | os.PathLike, force: bool = False) -> Path:
    """Write verl rows to .parquet or .jsonl atomically (temp file + rename)."""
    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; pass --force (force=True) to overwrite it")
    if not rows:
        raise UserError("nothing to write: the selection is empty")
    for i, r in enumerate(rows):
        check_verl_row(r, f"output row {i}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    elif path.suffix == ".jsonl":
        from rlvr.utils.io import atomic_write_jsonl

        atomic_write_jsonl(path, rows)
    else:
        raise UserError(f"{path}: unknown output format {path.suffix!r}; use .parquet or .jsonl")
    return path


def load_problems_from_file(path: str | os.PathLike) -> list[Problem]:
    """Problems from a user file: verl rows, or simple {problem, answer} rows (JSONL or parquet)."""
    path = Path(path)
    raw = _read_rows(path)
    out = []
    for i, r in enumerate(raw):
        where = f"{path} row {i}"
        if "prompt" in r and "reward_model" in r:
            check_verl_row(r, where)
            out.append(problem_from_verl_row(r, where))
        elif "problem" in r:
            ans = r.get("answer", r.get("ground_truth"))
            if ans is None or not str(ans).strip():
                raise UserError(f"{where}: no gold answer (field `answer`); add it or drop the row")
            out.append(Problem(id=str(r.get("id", f"{path.stem}/{i}")), problem=r["problem"], answer=str(ans),
                               data_source=r.get("data_source", path.stem), index=r.get("index"),
                               subject=r.get("subject"), level=r.get("level")))
        else:
            raise UserError(f"{where}: neither a verl row (prompt, reward_model) nor a {{problem, answer}} row; "
                            f"fields: {', '.join(r)}")
    return out
