"""Pairwise judgements as figures: nominal agreement, how a pair's votes resolve, the standings."""

import krippendorff
import numpy as np
import pytest

from review.math.preference import (
    Games,
    head_to_head,
    implied_choices,
    judgement_agreement,
    pair_outcome,
    position_bias,
    standings,
    win_rate,
)


def test_agreement_is_krippendorffs_nominal_alpha_over_pairs():
    # given three raters on five pairs, choices a / b / tie
    choices = {
        1: ["a", "a", "a"],
        2: ["b", "b", "tie"],
        3: ["tie", "tie", "tie"],
        4: ["a", "b", "a"],
        5: ["b", "b"],
    }
    rows = [(pair, rater, c) for pair, cs in choices.items() for rater, c in enumerate(cs)]

    result = judgement_agreement(rows, bootstrap=200)

    code = {"a": 0, "tie": 1, "b": 2}
    matrix = np.full((3, 5), np.nan)
    for pair, rater, c in rows:
        matrix[rater, pair - 1] = code[c]
    assert result.alpha == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    )
    assert result.level == "nominal" and result.n_units == 5
    assert result.alpha_ci_low <= result.alpha <= result.alpha_ci_high


def test_a_pair_judged_once_is_unpairable_and_alpha_is_undefined_with_a_reason():
    result = judgement_agreement([(1, "ann", "a"), (2, "bob", "b")], bootstrap=10)

    assert result.alpha is None
    assert result.n_units_unpairable == 2
    assert "fewer than 2 units" in result.reason


@pytest.mark.parametrize(
    "votes, outcome",
    [
        ((1, 0, 0), "a"),  # one judgement decides alone
        ((2, 1, 0), "a"),
        ((0, 2, 1), "b"),
        ((1, 1, 0), None),  # split evenly
        ((1, 0, 1), None),  # as many ties as votes for a
        ((0, 0, 2), None),  # a tie
        ((2, 1, 1), "a"),
    ],
)
def test_a_pair_is_decided_by_a_strict_plurality(votes, outcome):
    assert pair_outcome(*votes) == outcome


def test_standings_rank_by_strength_with_win_rates_ties_half_and_wilson_intervals():
    games = [Games("v2", "v1", 30, 10, 0), Games("v1", "v0", 20, 10, 10), Games("v2", "v0", 25, 5, 0)]

    board = standings(games)

    assert [m["model"] for m in board["models"]] == ["v2", "v1", "v0"]
    v1 = next(m for m in board["models"] if m["model"] == "v1")
    # v1: 10 wins + 20 against v0, 30 + 10 losses, 10 ties → (30 + 5) / 80
    assert (v1["wins"], v1["losses"], v1["ties"], v1["n_judgements"]) == (30, 40, 10, 80)
    assert v1["win_rate"] == pytest.approx(35 / 80)
    assert v1["win_rate_ci_low"] < 35 / 80 < v1["win_rate_ci_high"]
    assert board["n_judgements"] == 110
    assert [m["rank"] for m in board["models"]] == [1, 2, 3]


def test_judgements_of_a_model_against_itself_are_counted_but_not_ranked():
    board = standings([Games("v1", "v1", 3, 2, 1), Games("v1", "v2", 1, 1, 0)])

    assert board["same_model_judgements"] == 6
    assert board["n_judgements"] == 2
    assert {m["model"]: m["n_judgements"] for m in board["models"]} == {"v1": 2, "v2": 2}


def test_head_to_head_pools_both_orders_of_a_pair():
    cells = head_to_head([Games("b", "a", 3, 1, 0), Games("a", "b", 2, 2, 1)])

    assert cells == [{"model_a": "a", "model_b": "b", "wins_a": 3, "wins_b": 5, "ties": 1}]


def test_win_rate_counts_ties_half():
    rate = win_rate(6, 2, 2)
    assert rate["win_rate"] == pytest.approx(0.7)
    assert rate["ci_low"] < 0.7 < rate["ci_high"]
    assert win_rate(0, 0, 0)["win_rate"] is None


def test_position_bias_is_the_share_of_decided_judgements_won_by_the_first_shown():
    assert position_bias(30, 40)["share"] == pytest.approx(0.75)
    assert position_bias(0, 0)["share"] is None


def test_a_ranking_implies_the_better_placed_response_wins_each_pair():
    assert implied_choices([12, 10, 11], [(10, 11), (10, 12), (11, 12)]) == ["a", "b", "b"]
