import json
from pathlib import Path

import pytest

from rlvr.errors import UserError
from rlvr.select.scores import lim_scores, rank_examples, variance_scores

# A small history with hand-computed population stds:
#  "a": [0, 1]        mean .5, std .5
#  "b": [.5, .5]      std 0
#  "c": [0, .5, 1]    mean .5, var (.25+0+.25)/3 = 1/6, std .408248...
#  "d": [1, 0]        std .5 (ties with "a"; "a" comes first in key order)
HISTORY = {"a": [0.0, 1.0], "b": [0.5, 0.5], "c": [0.0, 0.5, 1.0], "d": [1.0, 0.0]}


def test_variance_scores_hand_computed():
    s = variance_scores(HISTORY)
    assert s["a"] == pytest.approx(0.5)
    assert s["b"] == pytest.approx(0.0)
    assert s["c"] == pytest.approx((1 / 6) ** 0.5)
    assert s["d"] == pytest.approx(0.5)


def test_rank_is_descending_and_stable_on_ties():
    ranked = [k for k, _ in rank_examples(HISTORY, "variance")]
    assert ranked == ["a", "d", "c", "b"]


def test_lim_hand_computed():
    # Two examples over 2 epochs: mean curve = [.25, .75]; denom = .75^2 + .25^2 = .625
    h = {"x": [0.0, 1.0], "y": [0.5, 0.5]}
    s = lim_scores(h)
    # x: 1 - ((0-.25)^2 + (1-.75)^2)/.625 = 1 - .125/.625 = .8 ; y: same distances -> .8
    assert s["x"] == pytest.approx(0.8)
    assert s["y"] == pytest.approx(0.8)


def test_random_is_seeded():
    a = rank_examples(HISTORY, "random", seed=3)
    b = rank_examples(HISTORY, "random", seed=3)
    c = rank_examples(HISTORY, "random", seed=4)
    assert a == b
    assert [k for k, _ in a] != [k for k, _ in c] or a != c


@pytest.mark.parametrize(
    "history, message",
    [
        ({}, "empty"),
        ({"1": [0.5]}, "at least 2"),
        ({"1": [0.5, 1.5]}, "[0, 1]"),
        ({"1": "0.5"}, "not a list"),
    ],
)
def test_bad_history_errors(history, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rank_examples(history)


def test_unknown_method_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'variance'"):
        rank_examples(HISTORY, "varience")


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train" / "acc_step_500.json"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present (only in the dev checkout)")
def test_paper_history_gives_paper_ranking():
    history = json.loads(SHARED.read_text())
    ranked = [k for k, _ in rank_examples(history, "variance")]
    assert ranked[0] == "124"  # pi1
    assert ranked[1] == "267"  # pi2
    assert ranked[12] == "682"  # pi13
    assert ranked[-1] == "789"  # pi1209


def test_cli_ranks_the_vendored_paper_history_and_builds_pi1(tmp_path):
    from rlvr import data
    from rlvr.cli import main

    out, built = tmp_path / "ranking.json", tmp_path / "pi1.parquet"
    assert main(["select", "--history", "paper", "--out", str(out), "--build", str(built)]) == 0
    ranking = json.loads(out.read_text())["ranking"]
    assert [ranking[i]["index"] for i in (0, 1, 12)] == [124, 267, 682]
    assert ranking[0]["answer"] == "12.8" and len(ranking[0]["history"]) >= 2
    rows = data.read_verl(built)
    assert len(rows) == 128 and all(r == data.pool_verl_row(124) for r in rows)
    # the ranking file feeds `rlvr data build --ranking`
    assert data.resolve_picks("dsr_sub", ranking=str(out), top=2) == [124, 267]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ('{"124": [0.5]}', "at least 2"),
    ('{"99999": [0.5, 1.0]}', "not in pool"),
    ("[1, 2]", "must map"),
])
def test_cli_history_errors(tmp_path, capsys, content, message):
    from rlvr.cli import main

    h = tmp_path / "h.json"
    h.write_text(content)
    assert main(["select", "--history", str(h), "--out", str(tmp_path / "r.json")]) == 2
    assert message in capsys.readouterr().err
