"""A pool of grading worker processes with a per-case wall-clock limit and a memory cap.

Model output is untrusted: a symbolic comparison can run for minutes or eat memory
(`10^{10^{10}}`, factorial towers, deeply nested fractions). Each case therefore runs in a worker
process that has an address-space limit (RLIMIT_AS), and the parent enforces the deadline: a worker
still busy when its case's time is up is killed and replaced, and that case scores 0 with reason
`timeout` (or `error` if the worker died, e.g. from the memory cap). Results come back in input order.

Design choices:
- Cases that are decidable without symbolic maths (both sides plain numbers or identical strings,
  no box at all) are graded in the parent by `fast_grade`, which only runs bounded regexes and
  integer arithmetic on at most 80 characters, so it cannot hang. In training most answers are plain
  integers, so most cases never cross a process boundary.
- Workers are plain subprocesses (`python -m rlvr.reward._worker`) talking JSON lines over pipes:
  nothing is forked from a parent that may hold torch threads or CUDA state, and the caller's
  `__main__` is never re-imported (multiprocessing's spawn/forkserver would do that).
- `workers=0` grades in-process with no time limit: for trusted inputs and debugging only.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass

from rlvr.reward.grade import GradeResult, fast_grade, grade

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 2048
STARTUP_TIMEOUT_S = 60.0


@dataclass(eq=False)  # identity-hashed: workers are kept in sets while waiting
class _Worker:
    proc: subprocess.Popen
    case: int | None = None
    started: float = 0.0
    buf: bytes = b""


class Grader:
    """Persistent grading pool. Use as a context manager, or call `close()`.

    grader = Grader(workers=2, timeout=5.0)
    results = grader.grade_batch([(response, gold), ...], mode="boxed")  # list[GradeResult]
    """

    def __init__(self, workers: int = 2, timeout: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB):
        if workers < 0:
            raise ValueError("workers must be >= 0 (0 grades in-process without a time limit)")
        if timeout <= 0:
            raise ValueError("timeout must be positive (seconds per case)")
        self.n_workers = workers
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self._workers: list[_Worker] = []
        self._sel = selectors.DefaultSelector()
        self.stats = {"cases": 0, "fast": 0, "timeouts": 0, "errors": 0, "restarts": 0}

    # -- worker management -------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlvr.reward._worker", str(self.memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        w = _Worker(proc=proc)
        line = self._readline(w, time.monotonic() + STARTUP_TIMEOUT_S)
        if line != "ready":
            proc.kill()
            raise RuntimeError("a grading worker failed to start (run `python -m rlvr.reward._worker` to see why)")
        return w

    def _readline(self, w: _Worker, deadline: float) -> str | None:
        """Block until `w` prints a full line or `deadline` passes (None then, or on EOF)."""
        fd = w.proc.stdout.fileno()
        while b"\n" not in w.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sel = selectors.DefaultSelector()
            sel.register(fd, selectors.EVENT_READ)
            ready = sel.select(timeout=left)
            sel.close()
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            w.buf += chunk
        line, _, w.buf = w.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _ensure_workers(self) -> None:
        while len(self._workers) < self.n_workers:
            self._workers.append(self._spawn())

    def _kill(self, w: _Worker) -> None:
        try:
            w.proc.kill()
            w.proc.wait(timeout=2.0)
        except Exception:
            pass
        for f in (w.proc.stdin, w.proc.stdout):
            try:
                f.close()
            except Exception:
                pass

    def _replace(self, i: int) -> None:
        self._kill(self._workers[i])
        self._workers[i] = self._spawn()
        self.stats["restarts"] += 1

    def close(self) -> None:
        for w in self._workers:
            try:
                w.proc.stdin.close()  # EOF: the worker loop ends
                w.proc.wait(timeout=1.0)
            except Exception:
                pass
            if w.proc.poll() is None:
                self._kill(w)
        self._workers = []

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- grading -----------------------------------------------------------------------------
    def grade_batch(self, pairs, mode: str = "boxed") -> list[GradeResult]:
        """Grade [(response, gold), ...]; results in input order."""
        pairs = list(pairs)
        results: list[GradeResult | None] = [None] * len(pairs)
        pending: deque[int] = deque()
        for i, (response, gold) in enumerate(pairs):
            r = fast_grade(response, gold, mode)
            if r is not None:
                results[i] = r
                self.stats["fast"] += 1
            else:
                pending.append(i)
        self.stats["cases"] += len(pairs)
        if not pending:
            return results  # type: ignore[return-value]
        if self.n_workers == 0:
            for i in pending:
                results[i] = grade(pairs[i][0], pairs[i][1], mode)
            return results  # type: ignore[return-value]

        self._ensure_workers()
        while pending or any(w.case is not None for w in self._workers):
            for idx, w in enumerate(self._workers):  # hand out work to idle workers
                if w.case is None and pending:
                    i = pending.popleft()
                    msg = json.dumps([i, pairs[i][0], pairs[i][1], mode]) + "\n"
                    try:
                        w.proc.stdin.write(msg.encode("utf-8"))
                        w.proc.stdin.flush()
                    except (BrokenPipeError, OSError):
                        pending.appendleft(i)
                        self._replace(idx)
                        continue
                    w.case, w.started = i, time.monotonic()
            busy = [w for w in self._workers if w.case is not None]
            if not busy:
                continue
            # wait for the first worker to answer, or the earliest deadline
            sel = selectors.DefaultSelector()
            for w in busy:
                if b"\n" not in w.buf:
                    sel.register(w.proc.stdout.fileno(), selectors.EVENT_READ, w)
            timeout = max(0.0, min(w.started + self.timeout for w in busy) - time.monotonic())
            readable = {key.data for key, _ in sel.select(timeout=timeout)} if sel.get_map() else set()
            sel.close()
            for idx, w in enumerate(list(self._workers)):
                if w.case is None:
                    continue
                if w in readable or b"\n" in w.buf:
                    if b"\n" not in w.buf:
                        chunk = os.read(w.proc.stdout.fileno(), 65536)
                        if not chunk:  # the worker died (memory cap, signal)
                            results[w.case] = GradeResult(0.0, False, None, "error")
                            self.stats["errors"] += 1
                            self._replace(idx)
                            continue
                        w.buf += chunk
                    if b"\n" in w.buf:
                        line, _, w.buf = w.buf.partition(b"\n")
                        case_id, score, correct, pred, reason = json.loads(line)
                        results[case_id] = GradeResult(float(score), bool(correct), pred, reason)
                        if reason == "error":
                            self.stats["errors"] += 1
                        w.case = None
                        continue
                if w.case is not None and time.monotonic() >= w.started + self.timeout:
                    results[w.case] = GradeResult(0.0, False, None, "timeout")
                    self.stats["timeouts"] += 1
                    self._replace(idx)
        return results  # type: ignore[return-value]


def grade_batch(pairs, workers: int = 2, timeout: float = DEFAULT_TIMEOUT_S, mode: str = "boxed",
                memory_mb: int = DEFAULT_MEMORY_MB) -> list[GradeResult]:
    """One-shot convenience: start a Grader, grade `pairs`, close it."""
    with Grader(workers=workers, timeout=timeout, memory_mb=memory_mb) as g:
        return g.grade_batch(pairs, mode=mode)
