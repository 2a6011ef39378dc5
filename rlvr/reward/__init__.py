"""The verifiable reward: a 0/1 verdict on whether a response's final answer equals the gold answer.

One grader for training and evaluation (`mode` only switches the extraction fallbacks):
- `extract_answer(text, mode)`           last `\\boxed{}` (or lenient fallbacks)     [extract.py]
- `is_equivalent(pred, gold)`            value equality, math-verify + normalisation [verify.py]
- `grade(response, gold, mode)`          -> GradeResult, in-process, no time limit   [grade.py]
- `Grader(workers, timeout, memory_mb)`  time- and memory-limited worker pool       [pool.py]
- `compute_score(...)`                   verl's custom-reward signature
- `accuracy_reward(...)`                 TRL's reward-function signature

There is deliberately no format bonus: a reward for boxing alone is easy to game, and the paper's
reward is answer correctness only.
"""

from __future__ import annotations

from rlvr.reward.extract import extract_answer
from rlvr.reward.grade import REASONS, GradeResult, fast_grade, grade
from rlvr.reward.pool import Grader, grade_batch
from rlvr.reward.verify import is_equivalent

__all__ = [
    "REASONS", "GradeResult", "Grader", "accuracy_reward", "compute_score", "extract_answer", "fast_grade",
    "grade", "grade_batch", "is_equivalent",
]

_shared_grader: Grader | None = None


def _grader() -> Grader:
    global _shared_grader
    if _shared_grader is None:
        _shared_grader = Grader(workers=1)
    return _shared_grader


def compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float:
    """verl custom reward: 1.0 when the last box of `solution_str` equals `ground_truth`, else 0.0.

    Point verl's `custom_reward_function.path` at this module and `.name` at `compute_score`.
    Grading runs in a time-limited worker (a hostile answer scores 0 instead of hanging the run).
    """
    return _grader().grade_batch([(solution_str, ground_truth)])[0].score


def _completion_text(c) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, dict):
        return str(c.get("content", ""))
    if isinstance(c, (list, tuple)):  # chat format: [{"role": "assistant", "content": ...}, ...]
        return "".join(_completion_text(m) for m in c if not isinstance(m, dict) or m.get("role", "assistant") == "assistant")
    return str(c)


def accuracy_reward(completions, ground_truth, **kwargs) -> list[float]:
    """TRL reward function: `GRPOTrainer(reward_funcs=[accuracy_reward])` with a `ground_truth` column.

    Accepts plain-text or chat-format completions. Rows whose gold answer is empty give None, which
    TRL skips, rather than a 0 the model did not earn.
    """
    texts = [_completion_text(c) for c in completions]
    results = _grader().grade_batch(list(zip(texts, ground_truth)))
    return [None if r.reason == "bad_gold" else r.score for r in results]  # type: ignore[misc]
