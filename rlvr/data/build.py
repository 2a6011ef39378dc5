"""The 1-/few-shot training-set builder (`rlvr data build`).

Pick examples from a pool (by paper name `pi<k>`, pool index, a ranking file's top K, or a seeded
random draw), optionally edit them (label noise, a wrong label, prompt edits), and duplicate them
to fill a batch: `repeat=128` means 128 rows in all, each example in a contiguous block of
128 / K rows (the first `128 % K` examples get one extra), which is how the paper's files are laid
out (e.g. merge_pi1_pi13_r128 = 64 x index 124, then 64 x index 682). Duplicates keep the
example's `extra_info.index`, so per-example accuracy and selection see one example.
"""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction
from pathlib import Path

from rlvr.data.registry import load, pool_verl_row
from rlvr.errors import UserError


def resolve_picks(pool: str, pick: list[str] | None = None, index: list[int] | None = None,
                  ranking: str | None = None, top: int | None = None, random_k: int | None = None,
                  seed: int = 0) -> list[int]:
    """Pool indices of the selected examples, in order."""
    chosen = [x for x in (pick, index, ranking, random_k) if x]
    if len(chosen) != 1:
        raise UserError("choose the examples with exactly one of --pick, --index, --ranking/--top, --random")
    if pool != "dsr_sub" and pick:
        raise UserError("--pick names (pi1, pi13, ...) refer to the paper's dsr_sub pool; use --index for other pools")
    if pick:
        out = []
        for name in pick:
            m = re.fullmatch(r"pi(\d+)", name.strip())
            if not m:
                raise UserError(f"--pick {name!r}: example names look like pi1, pi13 (the k-th by historical variance)")
            out.append(load(name.strip())[0].index)
        return out
    n = len(_pool_problems(pool))
    if index:
        for i in index:
            if not 0 <= i < n:
                raise UserError(f"--index {i} is out of range: pool {pool!r} has indices 0..{n - 1}")
        return list(index)
    if ranking:
        path = Path(ranking)
        if not path.exists():
            raise UserError(f"ranking file {path} does not exist (write one with `rlvr select`)")
        rows = json.loads(path.read_text())
        rows = rows.get("ranking", rows) if isinstance(rows, dict) else rows
        if not rows:
            raise UserError(f"ranking file {path} is empty")
        k = top or 1
        return [int(r["index"]) if isinstance(r, dict) else int(r) for r in rows[:k]]
    if random_k > n:
        raise UserError(f"--random {random_k} is more than the pool's {n} examples")
    return random.Random(seed).sample(range(n), random_k)


def _pool_problems(pool: str):
    return load(pool)


def _pool_row(pool: str, index: int) -> dict:
    if pool == "dsr_sub":
        return pool_verl_row(index)
    from rlvr.data.verl import verl_row_from_problem

    problems = {p.index: p for p in _pool_problems(pool)}
    if index not in problems:
        raise UserError(f"pool {pool!r} has no example with index {index}")
    return verl_row_from_problem(problems[index], template="testbed" if pool.startswith("testbed") else "deepscaler")


def plausible_wrong_label(label: str, rng: random.Random, others: list[str]) -> str:
    """A wrong answer of the same kind: an integer nudged, a fraction's numerator changed, or
    (anything else) another pool member's different answer."""
    s = label.strip()
    if re.fullmatch(r"-?\d+", s):
        v = int(s)
        d = rng.choice([-1, 1]) * rng.randint(1, max(2, abs(v) // 10))
        return str(v + d)
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", s)
    if m:
        sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        a2 = a + rng.choice([-1, 1]) if a > 1 else a + 1
        if Fraction(a2, b) == Fraction(a, b):
            a2 += 1
        return f"{sign}\\frac{{{a2}}}{{{b}}}"
    if re.fullmatch(r"-?\d+\.\d+", s):
        return f"{float(s) + rng.choice([-1, 1]) * 0.1 * max(1.0, abs(float(s))):.{len(s.split('.')[1])}f}"
    candidates = [o for o in others if o.strip() and o.strip() != s]
    return rng.choice(candidates)


def build_rows(pool: str, indices: list[int], repeat: int = 128, label_noise: float = 0.0,
               wrong_label: str | None = None, prompt_edits: dict[int, str] | None = None, seed: int = 0) -> list[dict]:
    """verl rows for `indices`, edited and duplicated (see module docstring)."""
    if not indices:
        raise UserError("the selection is empty: nothing to build")
    if repeat < len(indices):
        raise UserError(f"--repeat {repeat} is smaller than the {len(indices)} selected examples")
    if wrong_label is not None and len(indices) != 1:
        raise UserError("--wrong-label applies to a single example; use --label-noise for a set")
    if not 0.0 <= label_noise <= 1.0:
        raise UserError(f"--label-noise {label_noise} must be a fraction in [0, 1]")
    rng = random.Random(seed)
    base = [_pool_row(pool, i) for i in indices]
    for row in base:
        if not str(row["reward_model"]["ground_truth"]).strip():
            raise UserError(f"pool example {row['extra_info']['index']} has no gold answer; pick another example")
    if prompt_edits:
        for row in base:
            idx = row["extra_info"]["index"]
            if idx in prompt_edits:
                old = row["prompt"][-1]["content"]
                from rlvr.data.templates import DEEPSCALER_SUFFIX

                suffix = DEEPSCALER_SUFFIX if old.endswith(DEEPSCALER_SUFFIX) else ""
                row["prompt"][-1]["content"] = prompt_edits[idx] + suffix
                row["extra_info"]["prompt_edited"] = True
        unknown = set(prompt_edits) - {r["extra_info"]["index"] for r in base}
        if unknown:
            raise UserError(f"prompt edits name indices that are not selected: {sorted(unknown)}")
    if wrong_label is not None:
        base[0]["extra_info"]["original_ground_truth"] = base[0]["reward_model"]["ground_truth"]
        base[0]["reward_model"]["ground_truth"] = wrong_label
        base[0]["extra_info"]["label_noise"] = True
    if label_noise > 0:
        others = [p.answer for p in _pool_problems(pool)]
        n_noisy = round(label_noise * len(base))
        for j in rng.sample(range(len(base)), n_noisy):
            row = base[j]
            row["extra_info"]["original_ground_truth"] = row["reward_model"]["ground_truth"]
            row["reward_model"]["ground_truth"] = plausible_wrong_label(row["reward_model"]["ground_truth"], rng, others)
            row["extra_info"]["label_noise"] = True
    out = []
    k = len(base)
    for j, row in enumerate(base):
        copies = repeat // k + (1 if j < repeat % k else 0)
        out.extend(json.loads(json.dumps(row)) for _ in range(copies))
    return out
