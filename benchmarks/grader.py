"""Grader benchmark: accuracy and cases/s of rlvr's grader and of plain math-verify, side by side.

    python benchmarks/grader.py            # writes benchmarks/results/grader.{json,md}

Workloads:
- `table`: the public case table (tests/unit/reward_cases.py), each prediction boxed as a response;
  accuracy = agreement with the table's expected verdicts.
- `pool`: every gold answer of the paper's pool and eval sets (from ../shared/data when present)
  boxed against itself (should be correct) and against a seeded other member (should be wrong
  unless equal in value): a training-like mix, mostly plain numbers.
Single process = rlvr `grade()` in-process / math-verify `parse`+`verify` in-process; workers = rlvr's
time-limited `Grader` pool. Nothing else should run while timing (2 cores).
"""

from __future__ import annotations

import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))


def table_workload():
    from reward_cases import CASES

    return [(f"The answer is $\\boxed{{{p}}}$.", g, x) for p, g, x, _ in CASES]


def pool_workload(seed: int = 0):
    shared = ROOT.parent / "shared" / "data"
    if not shared.exists():
        return None
    golds = [r["gold"] for r in map(json.loads, open(shared / "eval" / "harness_golds.jsonl"))]
    golds += [r["reward_model"]["ground_truth"] for r in map(json.loads, open(shared / "train" / "dsr_sub.jsonl"))]
    golds = [g for g in golds if g.strip() and g.count("{") == g.count("}")]  # drop the 3 unusable golds
    rng = random.Random(seed)
    rows = []
    for g in golds:
        rows.append((f"so $\\boxed{{{g}}}$", g, None))  # expected: correct (filled below)
        other = rng.choice(golds)
        rows.append((f"so $\\boxed{{{other}}}$", g, None))
    return rows


def run_math_verify(rows):
    from math_verify import parse, verify

    out = []
    for resp, gold, _ in rows:
        try:
            out.append(bool(verify(parse(f"${gold}$"), parse(resp))))
        except Exception:
            out.append(False)
    return out


def run_rlvr_inprocess(rows):
    from rlvr.reward import grade

    return [grade(resp, gold).correct for resp, gold, _ in rows]


def run_rlvr_pool(rows, workers):
    from rlvr.reward import Grader

    with Grader(workers=workers, timeout=5.0) as g:
        g.grade_batch([("\\boxed{\\sqrt2}", "\\sqrt2")] * workers)  # start-up outside the timing
        t = time.perf_counter()
        res = g.grade_batch([(r, gold) for r, gold, _ in rows])
        return [r.correct for r in res], time.perf_counter() - t


def timed(fn, rows):
    t = time.perf_counter()
    out = fn(rows)
    return out, time.perf_counter() - t


def main() -> None:
    import math_verify

    from rlvr.reward import extract_answer
    from rlvr.reward.verify import is_equivalent

    results = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                           "math_verify": getattr(math_verify, "__version__", "?")}, "workloads": {}}
    workloads = {"table": table_workload()}
    pool = pool_workload()
    if pool is not None:
        # expected verdicts for the pool workload: self = True; other = equal value (checked by the
        # table-validated rlvr path would be circular), so count only self-pairs and clearly distinct pairs
        workloads["pool"] = pool
    for name, rows in workloads.items():
        res = {}
        mv, mv_s = timed(run_math_verify, rows)
        rl, rl_s = timed(run_rlvr_inprocess, rows)
        rp, rp_s = run_rlvr_pool(rows, workers=2)
        if name == "table":
            expected = [x for *_, x in rows]
        else:
            # self-pairs must be correct; a cross pair is correct only when rlvr's table-validated
            # equivalence says the two golds have the same value
            expected = [i % 2 == 0 or is_equivalent(extract_answer(rows[i][0]), rows[i][1]) for i in range(len(rows))]
        for key, verdicts, secs in [("math_verify_1proc", mv, mv_s), ("rlvr_1proc", rl, rl_s), ("rlvr_pool_2workers", rp, rp_s)]:
            agree = sum(v == e for v, e in zip(verdicts, expected)) / len(rows)
            res[key] = {"cases": len(rows), "agreement": round(agree, 4), "seconds": round(secs, 3),
                        "cases_per_s": round(len(rows) / secs, 1)}
        results["workloads"][name] = res
        print(name, json.dumps(res, indent=1))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "grader.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Grader benchmark", "", "Command: `python benchmarks/grader.py` (2 cores, nothing else running).", "",
             "| workload | grader | cases | agreement | cases/s |", "|---|---|---|---|---|"]
    for name, res in results["workloads"].items():
        for key, r in res.items():
            lines.append(f"| {name} | {key} | {r['cases']} | {r['agreement']:.4f} | {r['cases_per_s']} |")
    lines += ["", "`pool` agreement is against self-pairs (must be correct) and rlvr's own verdict on cross pairs,",
              "so it measures math-verify against rlvr there; `table` is against hand-written verdicts."]
    (out / "grader.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
