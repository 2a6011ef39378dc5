"""Example-selection scores computed from a training run's per-example accuracy history.

The history maps an example's pool index to the list of its training accuracies, one entry each
time it was drawn (in the paper's full-pool run, once per epoch; an accuracy is the fraction of that
example's rollouts that were rewarded). This is the format of the paper repo's `acc_step_500.json`
and of the `acc_history.json` that `rlvr train` writes.

Methods (registry `SCORERS`, higher score = ranked first):
- `variance`: historical variance score of the paper (Wang et al. 2025, Sec. 2.2): the standard
  deviation (population std, `np.std`) of the example's accuracy list. Examples whose accuracy moved
  most during training rank first; pi_k is the k-th ranked example.
- `random`: a seeded uniform score, the paper's random-selection baseline.
- `lim`: alignment with the pool's average learning curve (LIMR, Li et al. 2025):
  s_i = 1 - sum_k (a_ik - abar_k)^2 / sum_k (1 - abar_k)^2 over the epochs k all examples share.

Ties keep the history's key order (a stable sort), which is how the paper's ranking was produced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rlvr.errors import UserError, closest

History = Mapping[str, Sequence[float]]


def _check_history(history: History, min_epochs: int = 2) -> None:
    if not history:
        raise UserError("the accuracy history is empty; pass the acc_history.json of a full-pool training run")
    for key, accs in history.items():
        if not isinstance(accs, Sequence) or isinstance(accs, str):
            raise UserError(f"history entry {key!r} is not a list of accuracies (got {type(accs).__name__})")
        if len(accs) < min_epochs:
            raise UserError(
                f"example {key!r} has {len(accs)} recorded accuracies; selection needs at least {min_epochs} "
                "(train the full pool for more epochs before selecting)"
            )
        for a in accs:
            if not isinstance(a, (int, float)) or not 0.0 <= float(a) <= 1.0:
                raise UserError(f"example {key!r} has accuracy {a!r}; accuracies must be numbers in [0, 1]")


def variance_scores(history: History, seed: int = 0) -> dict[str, float]:
    """Population standard deviation of each example's accuracy list (the paper's score)."""
    return {k: float(np.std(np.asarray(v, dtype=np.float64))) for k, v in history.items()}


def random_scores(history: History, seed: int = 0) -> dict[str, float]:
    """A seeded uniform score per example: the random-selection baseline."""
    rng = np.random.default_rng(seed)
    values = rng.random(len(history))
    return {k: float(x) for k, x in zip(history.keys(), values)}


def lim_scores(history: History, seed: int = 0) -> dict[str, float]:
    """LIMR's learning-impact score over the epochs that every example has (the shortest list)."""
    n = min(len(v) for v in history.values())
    acc = np.asarray([list(v)[:n] for v in history.values()], dtype=np.float64)  # (N, K)
    mean_curve = acc.mean(axis=0)  # (K,)
    denom = float(((1.0 - mean_curve) ** 2).sum())
    if denom == 0.0:  # every example already perfect at every epoch: nothing to align with
        return {k: 0.0 for k in history}
    s = 1.0 - ((acc - mean_curve) ** 2).sum(axis=1) / denom
    return {k: float(x) for k, x in zip(history.keys(), s)}


SCORERS: dict[str, Callable[[History, int], dict[str, float]]] = {
    "variance": variance_scores,
    "random": random_scores,
    "lim": lim_scores,
}


def rank_examples(history: History, method: str = "variance", seed: int = 0) -> list[tuple[str, float]]:
    """[(index, score)] best first; ties keep the history's key order. Raises UserError on bad input."""
    if method not in SCORERS:
        raise UserError(f"unknown selection method {method!r}{closest(method, SCORERS)} (valid: {', '.join(SCORERS)})")
    _check_history(history)
    scores = SCORERS[method](history, seed)
    keys = list(history.keys())
    order = sorted(range(len(keys)), key=lambda i: -scores[keys[i]])  # sorted() is stable
    return [(keys[i], scores[keys[i]]) for i in order]
