from collections import Counter

import pytest

from rlvr.reward import grade, is_equivalent
from rlvr.reward.verify import inequality_to_interval, to_number

from .reward_cases import CASES


def test_case_table_is_large_and_covers_categories():
    cats = Counter(c for _, _, _, c in CASES)
    assert len(CASES) >= 400
    for needed in ["scientific", "interval", "repeating_decimal", "thousands", "units", "text", "percent",
                   "fraction", "mixed_number", "var_prefix", "set_multiple", "tuple", "matrix",
                   "multiple_choice", "false_positive_trap"]:
        assert cats[needed] >= 5, needed
    assert sum(1 for *_, x, _ in [(p, g, x, c) for p, g, x, c in CASES] if not x) >= 80  # many negatives


@pytest.mark.parametrize("pred, gold, expected, category", CASES)
def test_case_table(pred, gold, expected, category):
    assert is_equivalent(pred, gold) is expected


SYMMETRIC = [(p, g, x) for p, g, x, c in CASES if c in ("integer", "decimal", "fraction", "scientific",
                                                            "repeating_decimal", "radical_symbolic", "tuple")]


@pytest.mark.parametrize("pred, gold, expected", SYMMETRIC)
def test_value_comparisons_are_symmetric(pred, gold, expected):
    assert is_equivalent(gold, pred) is expected


def test_to_number_exact_values():
    from fractions import Fraction

    assert to_number("1,234") == 1234
    assert to_number("2\\frac{1}{2}") == Fraction(5, 2)
    assert to_number("0.1\\overline{6}") == Fraction(1, 6)
    assert to_number("4.5\\times10^{33}") == Fraction(45, 10) * 10**33
    assert to_number("10^{100000}") is None  # hostile exponent: not built
    assert to_number("\\frac{1}{0}") is None
    assert to_number("abc") is None


def test_inequality_to_interval():
    assert inequality_to_interval("-2 \\le x < 7") == "[-2,7)"
    assert inequality_to_interval("x \\geq 3") == "[3,\\infty)"
    assert inequality_to_interval("x < 0") == "(-\\infty,0)"
    assert inequality_to_interval("12") is None


@pytest.mark.parametrize(
    "response, gold, reason, score",
    [
        ("... \\boxed{12.8}", "12.8", "correct", 1.0),
        ("... \\boxed{12.7}", "12.8", "wrong", 0.0),  # pi1: the exact answer is not the label
        ("... the answer is 12.8", "12.8", "no_answer", 0.0),  # training mode needs a box
        ("\\boxed{5}", "", "bad_gold", 0.0),  # an empty gold is the data's fault, flagged as such
        ("\\boxed{5}", "\\frac{1}{2", "bad_gold", 0.0),  # unbalanced gold braces
        ("\\boxed{3} \\boxed{4}", "3", "wrong", 0.0),  # the last box decides
    ],
)
def test_grade_reasons(response, gold, reason, score):
    r = grade(response, gold)
    assert (r.reason, r.score) == (reason, score)
    assert r.correct is (score == 1.0)


def test_grade_lenient_mode_uses_fallbacks():
    assert grade("so the answer is 12.8", "12.8", mode="lenient").correct
