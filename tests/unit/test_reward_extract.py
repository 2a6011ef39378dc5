import pytest

from rlvr.reward import extract_answer

# (text, mode, expected extracted answer)
EXTRACT_CASES = [
    ("so the answer is \\boxed{12}.", "boxed", "12"),  # plain box
    ("\\boxed{\\frac{1}{2}}", "boxed", "\\frac{1}{2}"),  # nested braces
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "boxed", "\\frac{\\sqrt{3}}{2}"),  # two levels of nesting
    ("first \\boxed{3} then \\boxed{4}", "boxed", "4"),  # only the last box counts
    ("\\boxed{3} \\boxed{3}", "boxed", "3"),  # a repeated box is still one answer
    ("\\fbox{7}", "boxed", "7"),  # \fbox is a box too
    ("thus $\\boxed 5$", "boxed", "5"),  # \boxed without braces takes the next token
    ("\\boxed{12", "boxed", None),  # half-written box: never closed, no answer
    ("\\boxed{3} and then \\boxed{12", "boxed", None),  # the LAST box is cut: no answer, not the earlier one
    ("The answer is 12.", "boxed", None),  # boxed mode has no fallback
    ("\\boxed{}", "boxed", None),  # empty box
    ("\\boxed{ 7 }", "boxed", "7"),  # surrounding spaces are trimmed
    ("\\boxed{\\{1,2\\}}", "boxed", "\\{1,2\\}"),  # escaped braces inside a box are not structure
    ("\\boxed{\\text{(C)}}", "boxed", "\\text{(C)}"),
    ("The answer is 12.", "lenient", "12"),  # lenient: "the answer is"
    ("Final answer: 3/4\n", "lenient", "3/4"),
    ("we get 3 apples, then 5 more, so 8", "lenient", "8"),  # lenient: last number
    ("no numbers at all", "lenient", None),
    ("\\boxed{9} but the answer is 10", "lenient", "9"),  # a box always wins over fallbacks
    ("", "boxed", None),
]


@pytest.mark.parametrize("text, mode, expected", EXTRACT_CASES)
def test_extract_answer(text, mode, expected):
    assert extract_answer(text, mode) == expected


def test_extract_ignores_absurdly_long_box():
    assert extract_answer("\\boxed{" + "1" * 5000 + "}") is None


def test_extract_deep_nesting_is_linear_and_bounded():
    text = "\\boxed{" + "{" * 10000 + "}" * 10000 + "}"
    assert extract_answer(text) is None  # longer than the answer limit: not an answer


def test_extract_non_string():
    assert extract_answer(None) is None  # type: ignore[arg-type]
