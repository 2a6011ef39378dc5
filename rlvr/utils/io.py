"""Atomic file writes and JSONL helpers shared by every command that writes results.

Every result file rlvr writes goes through `atomic_write_*`: the content lands in a temporary file in
the same folder, is flushed and fsync'd, then renamed over the target, so a killed process leaves
either the old file or the new one, never half of one. Append-style JSONL logs (resumable outputs) use
`append_jsonl`, which writes whole lines and fsyncs; `read_jsonl(..., tolerate_partial_tail=True)`
drops a final line cut by a kill.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append whole lines and fsync; a kill can at worst leave a cut final line (see read_jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def iter_jsonl(path: str | os.PathLike, tolerate_partial_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object). A malformed line raises ValueError naming file and line,
    except a final line without a newline when `tolerate_partial_tail` (a write cut by a kill)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if tolerate_partial_tail and i == len(lines) and not line.endswith("\n"):
                return
            raise ValueError(f"{path}:{i}: not valid JSON ({e.msg}); fix or remove that line") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{i}: expected a JSON object per line, got {type(obj).__name__}")
        yield i, obj


def read_jsonl(path: str | os.PathLike, tolerate_partial_tail: bool = False) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path, tolerate_partial_tail)]


def truncate_partial_tail(path: str | os.PathLike) -> None:
    """Cut a final line that has no newline (left by a kill) so appends start on a clean line."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
