"""Grading one response: extraction + equivalence, as a small result record.

`grade()` has no time limit (trusted inputs, worker processes); `fast_grade()` decides only the
cases that need no symbolic maths and returns None otherwise (safe to run in the trainer process).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvr.reward.extract import extract_answer
from rlvr.reward.verify import is_equivalent, normalize, to_number

REASONS = ("correct", "wrong", "no_answer", "timeout", "error", "bad_gold")


@dataclass(frozen=True)
class GradeResult:
    """score is 1.0 or 0.0; pred the extracted answer (None when absent); reason one of REASONS."""

    score: float
    correct: bool
    pred: str | None
    reason: str


def _bad_gold(gold) -> bool:
    """An empty gold, or one whose braces do not balance, cannot be answered by any response."""
    if gold is None or not str(gold).strip():
        return True
    depth = 0
    for c in str(gold):
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return True
    return depth != 0


def grade(response: str, gold: str, mode: str = "boxed") -> GradeResult:
    """Grade one response against its gold answer (no time limit: see `rlvr.reward.Grader`)."""
    if _bad_gold(gold):
        return GradeResult(0.0, False, None, "bad_gold")
    pred = extract_answer(response if isinstance(response, str) else "", mode)  # type: ignore[arg-type]
    if pred is None:
        return GradeResult(0.0, False, None, "no_answer")
    ok = is_equivalent(pred, str(gold))
    return GradeResult(1.0 if ok else 0.0, ok, pred, "correct" if ok else "wrong")


def fast_grade(response: str, gold: str, mode: str = "boxed") -> GradeResult | None:
    """The verdict when it needs no symbolic comparison (bounded work), else None."""
    if _bad_gold(gold):
        return GradeResult(0.0, False, None, "bad_gold")
    pred = extract_answer(response if isinstance(response, str) else "", mode)  # type: ignore[arg-type]
    if pred is None:
        return GradeResult(0.0, False, None, "no_answer")
    if len(pred) > 80 or len(str(gold)) > 80:
        return None
    p, g = normalize(pred), normalize(str(gold))
    if p == g and p:
        return GradeResult(1.0, True, pred, "correct")
    pn, gn = to_number(p), to_number(g)
    if pn is not None and gn is not None:
        ok = is_equivalent(pred, str(gold))  # numbers only: no symbolic path is reached
        return GradeResult(1.0 if ok else 0.0, ok, pred, "correct" if ok else "wrong")
    return None
