"""Bradley–Terry strengths checked against a published fit, the score equations and closed forms."""

import math

import numpy as np
import pytest

from review.math.bradley_terry import bradley_terry, elo, wilson_interval, wins_matrix

# Agresti, "Categorical Data Analysis" (2nd ed., 2002), section 10.6: the 1987 American League East, 13
# games per pair; row beat column. Published Bradley–Terry estimates with Baltimore as the baseline:
# Milwaukee 1.58, Detroit 1.44, Toronto 1.29, New York 1.25, Boston 1.11, Cleveland 0.68, Baltimore 0.
TEAMS = ["Milwaukee", "Detroit", "Toronto", "New York", "Boston", "Cleveland", "Baltimore"]
WINS = np.array(
    [
        [0, 7, 9, 7, 7, 9, 11],
        [6, 0, 7, 5, 11, 9, 9],
        [4, 6, 0, 7, 7, 8, 12],
        [6, 8, 6, 0, 6, 7, 10],
        [6, 2, 6, 7, 0, 7, 12],
        [4, 4, 5, 6, 6, 0, 6],
        [2, 4, 1, 3, 1, 7, 0],
    ]
)
PUBLISHED = [1.58, 1.44, 1.29, 1.25, 1.11, 0.68, 0.00]


def test_the_fit_reproduces_agrestis_baseball_estimates():
    fit = bradley_terry(WINS)

    relative = fit.strengths - fit.strengths[TEAMS.index("Baltimore")]
    assert relative == pytest.approx(PUBLISHED, abs=0.005)
    assert fit.converged and not fit.regularised


def test_strengths_are_centred_on_zero_and_solve_the_score_equations():
    # at the maximum, each team's expected wins equal its wins
    fit = bradley_terry(WINS)
    p = np.exp(fit.strengths)
    games = WINS + WINS.T
    expected = (games * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)

    assert fit.strengths.mean() == pytest.approx(0, abs=1e-12)
    assert expected == pytest.approx(WINS.sum(axis=1), rel=1e-8)


def test_two_models_have_the_log_odds_of_their_record_between_them():
    # 30 wins to 10: p_a / p_b = 3
    fit = bradley_terry(np.array([[0, 30], [10, 0]]))

    assert fit.strengths[0] - fit.strengths[1] == pytest.approx(math.log(3))


def test_ties_count_half_a_win_to_each_side():
    # (model a, model b, wins a, wins b, ties): 6 wins, 2 losses and 4 ties is 8 to 4
    wins = wins_matrix(2, [(0, 1, 6, 2, 4)])

    assert wins.tolist() == [[0, 8], [4, 0]]
    assert bradley_terry(wins).strengths[0] - bradley_terry(wins).strengths[1] == pytest.approx(math.log(2))


def test_a_model_that_never_lost_gets_a_finite_strength_under_the_prior_and_the_fit_says_so():
    # given a model that won all its 5 games: the plain maximum is infinite
    fit = bradley_terry(np.array([[0, 5, 3], [0, 0, 4], [0, 2, 0]]))

    assert fit.regularised and "never lost" in fit.reason
    assert np.isfinite(fit.strengths).all()
    assert fit.strengths[0] == max(fit.strengths)


def test_models_without_games_stay_at_the_mean():
    fit = bradley_terry(np.array([[0, 3, 0], [1, 0, 0], [0, 0, 0]]))

    assert fit.strengths[2] == 0
    assert fit.strengths[0] - fit.strengths[1] == pytest.approx(math.log(3))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="square"):
        bradley_terry(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="negative"):
        bradley_terry(np.array([[0, -1], [1, 0]]))


def test_wilson_interval_matches_the_textbook_values():
    # Newcombe (1998), table I, example: 81 of 263 → 0.2553 to 0.3662
    low, high = wilson_interval(81, 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    # 0 of 10 still has an interval above 0 (the normal one would be [0, 0])
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)


def test_elo_scale_puts_ten_times_the_odds_400_points_apart():
    assert elo(math.log(10)) - elo(0) == pytest.approx(400)
    assert elo(0) == 1000
