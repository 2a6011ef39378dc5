import pytest

from rlvr.analysis.response import analyse_responses, reflection_counts
from rlvr.eval.metrics import benchmark_metrics, breakdown, majority_correct, pass_at_k


def test_pass_at_k_hand_computed():
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 8, 8) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)
    # 1 - C(6,2)/C(8,2) = 1 - 15/28
    assert pass_at_k(8, 2, 2) == pytest.approx(13 / 28)
    assert pass_at_k(8, 1, 8) == 1.0  # with k = n any correct sample counts
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 8)


def test_majority_vote():
    assert majority_correct(["3", "4", "3", None], [True, False, True, False])
    assert not majority_correct(["4", "4", "3"], [False, False, True])
    assert majority_correct(["3", "4"], [True, False])  # a tie goes to the first answer to reach the top
    assert not majority_correct([None, None], [False, False])


def _rows(scores, preds, subject="A", level=1):
    return [{"score": s, "pred": p, "n_tokens": 10, "finish_reason": "stop", "subject": subject, "level": level}
            for s, p in zip(scores, preds)]


def test_benchmark_metrics_hand_computed():
    per_problem = {
        "p1": _rows([1, 0, 1, 0], ["5", "6", "5", "6"]),  # 2/4 correct, majority tie -> "5" (first) correct
        "p2": _rows([0, 0, 0, 0], [None, "1", "1", "2"], subject="B", level=2),
    }
    m = benchmark_metrics(per_problem, ks=(1, 4))
    assert m["acc"] == pytest.approx(2 / 8)
    assert m["avg@4"] == pytest.approx(2 / 8)
    assert m["pass@4"] == pytest.approx(0.5)
    assert m["maj@4"] == pytest.approx(0.5)
    assert m["no_answer_rate"] == pytest.approx(1 / 8)
    assert breakdown(per_problem, "subject") == {"A": 0.5, "B": 0.0}


def test_response_analysis():
    texts = ["Let me recheck: 5 is right.\nThe answer is \\boxed{5}.", "The answer is 5.", "Wait, RECALCULATE \\boxed{3"]
    a = analyse_responses(texts)
    assert a["format_error_rate"] == pytest.approx(2 / 3)  # an unboxed and a half-written box
    assert a["reflection_rate"] == pytest.approx(2 / 3)
    assert reflection_counts(texts[2])["wait"] == 1 and reflection_counts(texts[2])["recalculate"] == 1
    assert reflection_counts("prerecheck")["recheck"] == 0  # whole words only
