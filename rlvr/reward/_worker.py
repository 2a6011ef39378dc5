"""Grading worker process: `python -m rlvr.reward._worker MEMORY_MB`.

Reads one JSON array per line on stdin, `[case_id, response, gold, mode]`, and writes one per line
on stdout, `[case_id, score, correct, pred, reason]`. A plain subprocess (not multiprocessing) so it
never re-imports the caller's `__main__` and works the same from scripts, notebooks and torchrun.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if memory_mb > 0:
        try:
            import resource

            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):  # not Linux, or not allowed: run uncapped
            pass
    from rlvr.reward.grade import grade

    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            case_id, response, gold, mode = json.loads(line)
        except (ValueError, TypeError):
            continue
        try:
            r = grade(response, gold, mode)
            row = [case_id, r.score, r.correct, r.pred, r.reason]
        except MemoryError:
            row = [case_id, 0.0, False, None, "error"]
        except Exception:  # a grading bug must not take the worker down
            row = [case_id, 0.0, False, None, "error"]
        out.write(json.dumps(row) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
