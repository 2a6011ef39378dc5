"""Metric estimators over graded samples (pure functions; the caller groups samples by problem).

- `avg@k`  mean correctness over all k samples of every problem (= accuracy for k = 1; the paper's
           AIME/AMC figure, which its README calls "pass@8")
- `pass@k` unbiased estimator 1 - C(n-c, k) / C(n, k) per problem (Chen et al. 2021), averaged
- `maj@k`  correctness of the most frequent extracted answer among the first k samples (ties broken
           by first appearance; samples without an answer do not vote)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Is the majority answer correct? answers[i] is sample i's extracted answer (None: no answer)."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == best)  # first to reach the top count
    return any(c for a, c in zip(answers, correct) if a == winner)


def benchmark_metrics(per_problem: dict[str, list[dict]], ks: Sequence[int] = (1, 8)) -> dict[str, float]:
    """Metrics from {problem id: [sample rows with 'score', 'pred', 'n_tokens', 'finish_reason']]}."""
    n_samples = min(len(v) for v in per_problem.values())
    rows = [r for v in per_problem.values() for r in v]
    out: dict[str, float] = {
        "problems": float(len(per_problem)),
        "samples_per_problem": float(n_samples),
        "acc": sum(r["score"] for r in rows) / len(rows),
        "no_answer_rate": sum(r["pred"] is None for r in rows) / len(rows),
        "response_len_mean": sum(r["n_tokens"] for r in rows) / len(rows),
        "truncated_rate": sum(r["finish_reason"] == "length" for r in rows) / len(rows),
    }
    for k in ks:
        if k <= n_samples and k > 1:
            out[f"avg@{k}"] = out["acc"]
            out[f"pass@{k}"] = sum(pass_at_k(len(v), sum(r["score"] > 0 for r in v), k)
                                   for v in per_problem.values()) / len(per_problem)
            out[f"maj@{k}"] = sum(majority_correct([r["pred"] for r in v[:k]], [r["score"] > 0 for r in v[:k]])
                                  for v in per_problem.values()) / len(per_problem)
    return out


def breakdown(per_problem: dict[str, list[dict]], key: str) -> dict[str, float]:
    """Accuracy per value of `key` (e.g. subject, level) over all samples."""
    groups: dict[str, list[float]] = {}
    for rows in per_problem.values():
        for r in rows:
            if r.get(key) is not None:
                groups.setdefault(str(r[key]), []).append(r["score"])
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}
