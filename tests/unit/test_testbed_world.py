import random

import pytest

from rlvr.reward import grade
from rlvr.testbed.build import make_datasets
from rlvr.testbed.world import (
    CATEGORIES,
    StyleMix,
    careful_lines,
    gold_of,
    make_problem,
    sample_document,
    solve,
)


def test_generator_is_deterministic():
    a = [make_problem(random.Random(5)).problem for _ in range(1)] + [p["problem"] for p in make_datasets(3)["test"][:50]]
    b = [make_problem(random.Random(5)).problem for _ in range(1)] + [p["problem"] for p in make_datasets(3)["test"][:50]]
    assert a == b


@pytest.mark.parametrize("category", CATEGORIES)
def test_gold_answers_are_right_and_graded_by_rlvr(category):
    rng = random.Random(category)
    for level in range(1, 6):
        for _ in range(20):
            p = make_problem(rng, category, level)
            # a careful solution with no slip ends in the gold answer, and rlvr's grader agrees
            text, right = solve(p, rng, "careful", True, StyleMix(slip=0.0))
            assert right
            assert grade(text, p.answer).correct, (p.problem, text, p.answer)


def test_styles_and_formats_are_all_present():
    rng = random.Random(0)
    docs = [sample_document(make_problem(rng), rng) for _ in range(2000)]
    styles = {s for s, _, _ in docs}
    assert styles == {"careful", "reflect", "guess"}
    unboxed = sum("\\boxed" not in t for _, t, _ in docs) / len(docs)
    assert abs(unboxed - StyleMix().unboxed) < 0.03  # 2,000 draws: sd about 0.01
    assert any("recheck" in t for _, t, _ in docs)


def test_pool_and_test_do_not_overlap_and_have_expected_sizes():
    d = make_datasets(0)
    assert len(d["pool"]) == 1200 and len(d["test"]) == 500
    assert not {r["problem"] for r in d["pool"]} & {r["problem"] for r in d["test"]}
    assert {r["subject"] for r in d["test"]} == set(CATEGORIES)


def test_committed_sets_equal_the_generator():
    from rlvr.data import load

    d = make_datasets(0)
    assert [p.problem for p in load("testbed/test")] == [r["problem"] for r in d["test"]]
    assert [p.answer for p in load("testbed/pool")] == [r["answer"] for r in d["pool"]]
    assert len(load("testbed/test/algebra")) == sum(r["subject"] == "algebra" for r in d["test"])


def test_a_slip_propagates_consistently_and_only_hits_multi_digit_steps():
    """After a slipped step, the next line starts from the slipped value (as a person's working would)."""
    from fractions import Fraction

    rng = random.Random(1)
    seen_slip = 0
    for _ in range(400):
        p = make_problem(rng, "arithmetic", 5)
        exact, gold = careful_lines(p)
        lines, final = careful_lines(p, random.Random(rng.random()), slip=0.5)
        assert len(lines) == len(exact)
        for i, (a, b) in enumerate(zip(lines, exact)):
            if a != b:
                value = Fraction(b.rsplit("= ", 1)[1])
                assert abs(value) >= 10  # one-digit results never slip
                if i + 1 < len(lines):  # the next step reads the shown (wrong) value
                    assert lines[i + 1].startswith(a.rsplit("= ", 1)[1] + " ")
                seen_slip += 1
                break
        if lines == exact:
            assert final == gold
        assert gold == gold_of(p)
    assert seen_slip > 50
