"""Agreement statistics checked against published examples, hand computations and krippendorff.alpha."""

import json
import math

import krippendorff
import numpy as np
import pytest

from review.math.agreement import (
    RatingMatrix,
    dimension_agreement,
    fleiss_kappa,
    rater_deviations,
    rater_pairwise_kappa,
    ratings_pivot,
)

NA = np.nan

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers x 12 units with
# missing values; unit 12 has one value. Published: nominal .743, ordinal .815, interval .849, ratio .797.
PAPER = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
]

# Wikipedia "Fleiss' kappa" worked example: 10 subjects x 14 raters, counts per category (5); kappa 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def long_format(matrix, raters=None):
    """(unit, rater, value) triples from a raters x units list, skipping NaN."""
    raters = raters or [f"r{i}" for i in range(len(matrix))]
    return [
        (unit, raters[row], value)
        for row, line in enumerate(matrix)
        for unit, value in enumerate(line)
        if not (isinstance(value, float) and math.isnan(value))
    ]


def two_raters(a, b):
    return long_format([a, b], raters=["a", "b"])


def noisy_ordinal(n_units, n_raters=3, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=n_units)
    values = np.clip(truth[None, :] + rng.integers(-1, 2, size=(n_raters, n_units)), 1, 5)
    return values.astype(float)


# --- pivot -------------------------------------------------------------------------------------------------


def test_pivot_orders_raters_and_units_by_id_with_nan_for_missing():
    ratings = [("u2", "bob", 3), ("u1", "amy", 4), ("u1", "bob", 5)]

    matrix = ratings_pivot(ratings)

    assert matrix.raters == ("amy", "bob")
    assert matrix.units == ("u1", "u2")
    np.testing.assert_array_equal(matrix.values, [[4, NA], [5, 3]])


def test_pivot_does_not_depend_on_input_order():
    ratings = long_format(PAPER)

    shuffled = ratings_pivot(reversed(ratings))

    np.testing.assert_array_equal(shuffled.values, ratings_pivot(ratings).values)


def test_pivot_of_nothing_is_empty():
    matrix = ratings_pivot([])

    assert (matrix.raters, matrix.units, matrix.values.shape) == ((), (), (0, 0))


def test_pivot_rejects_a_rater_rating_a_unit_twice():
    with pytest.raises(ValueError, match="rater 'a' rated unit 1 more than once"):
        ratings_pivot([(1, "a", 3), (1, "b", 3), (1, "a", 4)])


@pytest.mark.parametrize("value", ["3", None, True])
def test_pivot_rejects_a_value_that_is_not_a_number(value):
    with pytest.raises(ValueError, match="must be a number"):
        ratings_pivot([(1, "a", 3), (1, "b", value)])


def test_pivot_rejects_nan_values():
    with pytest.raises(ValueError, match="must be finite"):
        ratings_pivot([(1, "a", 3), (1, "b", float("nan"))])


def test_pivot_rejects_malformed_ratings():
    with pytest.raises(ValueError, match=r"is \(unit_id, rater_id, value\)"):
        ratings_pivot([(1, "a")])


# --- Krippendorff's alpha ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_matches_krippendorffs_published_example(level, published):
    result = dimension_agreement(long_format(PAPER), level, bootstrap=0)

    assert round(result.alpha, 3) == published


def test_alpha_matches_a_hand_computed_nominal_example():
    # Coincidences o11=2, o12=o21=1, o22=4; n1=3, n2=5, n=8.
    # alpha = 1 - (n-1) * (o12+o21) / (2 * n1 * n2) = 1 - 7*2/30 = 8/15.
    result = dimension_agreement(two_raters([1, 1, 2, 2], [1, 2, 2, 2]), "nominal", bootstrap=0)

    assert result.alpha == pytest.approx(8 / 15, abs=1e-12)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_equals_krippendorff_package_on_the_same_matrix(level):
    values = noisy_ordinal(60, n_raters=4, seed=3)
    values[np.random.default_rng(4).random(values.shape) < 0.3] = NA

    result = dimension_agreement(long_format(values.tolist()), level, bootstrap=0)

    expected = krippendorff.alpha(reliability_data=values, level_of_measurement=level)
    assert result.alpha == pytest.approx(expected, abs=1e-12)


def test_value_domain_wider_than_observed_values_is_accepted():
    result = dimension_agreement(
        long_format(PAPER), "ordinal", value_domain=[1, 2, 3, 4, 5, 6, 7], bootstrap=0
    )

    assert round(result.alpha, 3) == 0.815


def test_value_outside_the_domain_is_rejected():
    with pytest.raises(ValueError, match="value 5 is outside the value domain"):
        dimension_agreement(long_format(PAPER), "ordinal", value_domain=[1, 2, 3, 4])


def test_unknown_level_is_rejected():
    with pytest.raises(ValueError, match="level 'likert'"):
        dimension_agreement(long_format(PAPER), "likert")


def test_identical_values_give_no_alpha_and_a_reason():
    ratings = two_raters([3, 3, 3, 3], [3, 3, 3, 3])

    result = dimension_agreement(ratings, "ordinal", value_domain=[1, 2, 3, 4, 5])

    assert result.alpha is None
    assert "same value" in result.reason
    assert (result.alpha_ci_low, result.alpha_ci_high) == (None, None)


def test_a_single_pairable_unit_gives_no_alpha_and_a_reason():
    ratings = [(1, "a", 1), (1, "b", 2), (2, "a", 3)]

    result = dimension_agreement(ratings, "nominal")

    assert result.alpha is None
    assert result.reason == "fewer than 2 units rated by 2 or more raters (1)"


def test_no_ratings_give_no_alpha_and_zero_counts():
    result = dimension_agreement([], "ordinal")

    assert (result.alpha, result.n_units, result.n_raters, result.n_ratings) == (None, 0, 0, 0)
    assert result.percent_agreement is None


def test_units_with_one_rating_are_left_out_and_counted():
    result = dimension_agreement(long_format(PAPER), "nominal", bootstrap=0)

    assert (result.n_units, result.n_units_unpairable) == (11, 1)
    assert (result.n_raters, result.n_ratings) == (4, 41)


def test_a_rater_with_a_single_rating_still_counts():
    ratings = two_raters([1, 1, 2, 2], [1, 2, 2, 2]) + [(0, "c", 1)]

    result = dimension_agreement(ratings, "nominal", bootstrap=0)

    # Unit 0 now has three values 1, 1, 1: o11 = 2 + 3*2/2 - 2 = 4 (was 2), n1 = 4, n = 9.
    # alpha = 1 - 8 * 2 / (2 * 4 * 5) = 0.6
    assert result.n_raters == 3
    assert result.alpha == pytest.approx(0.6, abs=1e-12)


def test_percent_agreement_is_the_share_of_agreeing_pairs_within_units():
    # unit 0: 1,1,2 -> 1 of 3 pairs agree; unit 1: 2,2 -> 1 of 1; unit 2 has one rating, no pairs.
    ratings = [(0, "a", 1), (0, "b", 1), (0, "c", 2), (1, "a", 2), (1, "b", 2), (2, "a", 5)]

    result = dimension_agreement(ratings, "nominal", bootstrap=0)

    assert result.percent_agreement == pytest.approx(0.5)


def test_results_are_json_safe_when_alpha_is_undefined():
    result = dimension_agreement(two_raters([3, 3], [3, 3]), "interval")

    json.dumps(result.as_dict(), allow_nan=False)
    assert result.as_dict()["alpha"] is None


# --- bootstrap ---------------------------------------------------------------------------------------------


def test_bootstrap_interval_brackets_alpha():
    result = dimension_agreement(long_format(noisy_ordinal(300).tolist()), "ordinal", bootstrap=500)

    assert result.alpha_ci_low < result.alpha < result.alpha_ci_high
    assert result.bootstrap_defined == 500


def test_bootstrap_is_repeatable_with_a_seed():
    ratings = ratings_pivot(long_format(noisy_ordinal(200).tolist()))

    first = dimension_agreement(ratings, "ordinal", bootstrap=200, seed=7)
    again = dimension_agreement(ratings, "ordinal", bootstrap=200, seed=7)
    other = dimension_agreement(ratings, "ordinal", bootstrap=200, seed=8)

    assert (first.alpha_ci_low, first.alpha_ci_high) == (again.alpha_ci_low, again.alpha_ci_high)
    assert (first.alpha_ci_low, first.alpha_ci_high) != (other.alpha_ci_low, other.alpha_ci_high)


@pytest.mark.parametrize("level", ["ordinal", "interval"])
def test_bootstrap_interval_agrees_with_naive_unit_resampling(level):
    # given 150 units, some rated by only two raters
    values = noisy_ordinal(150, seed=11)
    values[2, :40] = NA
    # when resampling units one by one and calling krippendorff.alpha on each resample
    rng = np.random.default_rng(123)
    naive = [
        krippendorff.alpha(
            reliability_data=values[:, rng.integers(0, 150, 150)],
            value_domain=[1, 2, 3, 4, 5],
            level_of_measurement=level,
        )
        for _ in range(1000)
    ]
    low, high = np.quantile(naive, [0.025, 0.975])

    result = dimension_agreement(
        long_format(values.tolist()), level, value_domain=[1, 2, 3, 4, 5], bootstrap=2000
    )

    # then both percentile intervals agree up to Monte Carlo error (each bound's SE is about 0.005 here)
    assert result.alpha_ci_low == pytest.approx(low, abs=0.02)
    assert result.alpha_ci_high == pytest.approx(high, abs=0.02)


def test_bootstrap_off_gives_alpha_without_interval():
    result = dimension_agreement(long_format(PAPER), "ordinal", bootstrap=0)

    assert result.alpha is not None
    assert (result.alpha_ci_low, result.alpha_ci_high, result.ci_reason) == (None, None, "bootstrap is off")


def test_bootstrap_resamples_without_variation_are_left_out():
    # given two units, only one of which disagrees: a resample drawing the agreeing unit twice has no alpha
    ratings = two_raters([1, 2], [1, 1])

    result = dimension_agreement(ratings, "nominal", bootstrap=400)

    assert 0 < result.bootstrap_defined < 400
    json.dumps(result.as_dict(), allow_nan=False)


def test_negative_bootstrap_is_rejected():
    with pytest.raises(ValueError, match="bootstrap must be 0 or more"):
        dimension_agreement(long_format(PAPER), "ordinal", bootstrap=-1)


# --- Cohen's kappa -----------------------------------------------------------------------------------------


def test_unweighted_kappa_on_nominal_matches_hand_value():
    # table a\b: (1,1)=1 (1,2)=1 (2,2)=2; po = 3/4, pe = .5*.25 + .5*.75 = .5, kappa = .25/.5
    [pair] = rater_pairwise_kappa(two_raters([1, 1, 2, 2], [1, 2, 2, 2]), "nominal")

    assert (pair.rater_a, pair.rater_b, pair.n_common) == ("a", "b", 4)
    assert pair.kappa == pytest.approx(0.5, abs=1e-12)


# a = 1,2,3,3,2 and b = 1,3,3,2,2: both marginals (.2, .4, .4); two cells off the diagonal by one step.
# observed disagreement 2/5 under both weightings; chance 0.80 linear, 1.12 quadratic; unweighted .6 vs .36.
ORDINAL_A, ORDINAL_B = [1, 2, 3, 3, 2], [1, 3, 3, 2, 2]


def test_linear_weighted_kappa_matches_hand_value():
    [pair] = rater_pairwise_kappa(two_raters(ORDINAL_A, ORDINAL_B), "ordinal", weights="linear")

    assert pair.kappa == pytest.approx(1 - 0.4 / 0.8, abs=1e-12)


def test_quadratic_weighted_kappa_matches_hand_value():
    [pair] = rater_pairwise_kappa(two_raters(ORDINAL_A, ORDINAL_B), "ordinal", weights="quadratic")

    assert pair.kappa == pytest.approx(9 / 14, abs=1e-12)


def test_nominal_kappa_ignores_weights():
    [pair] = rater_pairwise_kappa(two_raters(ORDINAL_A, ORDINAL_B), "nominal", weights="quadratic")

    assert pair.kappa == pytest.approx((0.6 - 0.36) / 0.64, abs=1e-12)


def test_kappa_uses_only_common_units():
    ratings = two_raters(ORDINAL_A + [NA, 5], ORDINAL_B + [4, NA])

    [pair] = rater_pairwise_kappa(ratings, "ordinal", weights="quadratic")

    assert pair.n_common == 5
    assert pair.kappa == pytest.approx(9 / 14, abs=1e-12)


def test_kappa_weights_use_the_value_gap_not_the_rank_of_observed_values():
    # given values 1, 2 and 5 only: 2 vs 5 is three steps apart, not one
    wide = rater_pairwise_kappa(two_raters([1, 2, 5, 5], [1, 5, 2, 5]), "ordinal", weights="linear")
    full_scale = rater_pairwise_kappa(
        two_raters([1, 2, 5, 5], [1, 5, 2, 5]), "ordinal", value_domain=[1, 2, 3, 4, 5], weights="linear"
    )

    assert wide[0].kappa == pytest.approx(full_scale[0].kappa, abs=1e-12)


def test_pairs_with_fewer_than_two_common_units_are_skipped_with_a_reason():
    ratings = [(1, "a", 1), (2, "a", 2), (1, "b", 1), (2, "b", 3), (2, "c", 2)]

    pairs = {(p.rater_a, p.rater_b): p for p in rater_pairwise_kappa(ratings, "ordinal")}

    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert pairs["a", "c"].kappa is None
    assert pairs["a", "c"].reason == "fewer than 2 common units (1)"
    assert pairs["a", "b"].kappa is not None


def test_kappa_is_none_when_chance_disagreement_is_zero():
    [pair] = rater_pairwise_kappa(two_raters([2, 2, 2], [2, 2, 2]), "ordinal")

    assert pair.kappa is None
    assert "one and the same value" in pair.reason
    json.dumps(pair.as_dict(), allow_nan=False)


def test_unknown_kappa_weights_are_rejected():
    with pytest.raises(ValueError, match="weights must be"):
        rater_pairwise_kappa(two_raters(ORDINAL_A, ORDINAL_B), "ordinal", weights="cubic")


# --- Fleiss' kappa -----------------------------------------------------------------------------------------


def fleiss_ratings(table):
    ratings = []
    for unit, row in enumerate(table):
        values = [category + 1 for category, count in enumerate(row) for _ in range(count)]
        ratings += [(unit, f"r{i}", value) for i, value in enumerate(values)]
    return ratings


def test_fleiss_kappa_matches_the_textbook_table():
    result = fleiss_kappa(fleiss_ratings(FLEISS_TABLE))

    assert round(result.kappa, 3) == 0.210
    assert (result.n_units, result.raters_per_unit) == (10, 14)


def test_fleiss_kappa_matches_hand_value_on_a_small_table():
    # units (1,1,2) and (2,2,2): P_i = 1/3 and 1; P = 2/3; p = (2/6, 4/6); Pe = 5/9; kappa = (1/9)/(4/9)
    ratings = [(0, "a", 1), (0, "b", 1), (0, "c", 2), (1, "a", 2), (1, "b", 2), (1, "c", 2)]

    assert fleiss_kappa(ratings).kappa == pytest.approx(0.25, abs=1e-12)


def test_fleiss_kappa_is_none_when_units_have_different_numbers_of_ratings():
    ratings = [(0, "a", 1), (0, "b", 1), (0, "c", 2), (1, "a", 2), (1, "b", 2)]

    result = fleiss_kappa(ratings)

    assert result.kappa is None
    assert "2 to 3 ratings" in result.reason


def test_fleiss_kappa_leaves_out_units_with_one_rating():
    ratings = fleiss_ratings(FLEISS_TABLE) + [(99, "r0", 3)]

    result = fleiss_kappa(ratings)

    assert round(result.kappa, 3) == 0.210
    assert result.n_units == 10


def test_fleiss_kappa_is_none_when_every_rating_is_the_same():
    result = fleiss_kappa(two_raters([4, 4, 4], [4, 4, 4]))

    assert result.kappa is None
    assert result.reason == "every rating has the same value"


def test_fleiss_kappa_without_pairable_units_is_none():
    result = fleiss_kappa([(0, "a", 1), (1, "b", 2)])

    assert (result.kappa, result.n_units) == (None, 0)


# --- rater deviation ---------------------------------------------------------------------------------------


def test_rater_deviation_is_mean_difference_from_the_other_raters():
    # unit 0: a=5 b=3 c=3; unit 1: a=4 b=2 (c missing); unit 2: only a.
    ratings = [(0, "a", 5), (0, "b", 3), (0, "c", 3), (1, "a", 4), (1, "b", 2), (2, "a", 1)]

    by_rater = {d.rater: d for d in rater_deviations(ratings, "ordinal")}

    # a: (5 - 3) and (4 - 2); b: (3 - 4) and (2 - 4); c: 3 - 4
    assert by_rater["a"].mean_deviation == pytest.approx(2.0)
    assert by_rater["b"].mean_deviation == pytest.approx(-1.5)
    assert by_rater["c"].mean_deviation == pytest.approx(-1.0)
    assert by_rater["b"].mean_abs_deviation == pytest.approx(1.5)
    assert [by_rater[r].n_units for r in "abc"] == [2, 2, 1]


def test_rater_disagreement_share_counts_pairs_with_other_raters():
    # a agrees with b on unit 0, not with c; disagrees with b on unit 1: 2 of 3 pairs differ.
    ratings = [(0, "a", 5), (0, "b", 5), (0, "c", 3), (1, "a", 4), (1, "b", 2)]

    by_rater = {d.rater: d for d in rater_deviations(ratings, "nominal")}

    assert by_rater["a"].disagreement_share == pytest.approx(2 / 3)
    assert by_rater["c"].disagreement_share == pytest.approx(1.0)


def test_rater_deviation_on_nominal_data_has_no_mean():
    deviations = rater_deviations(two_raters([1, 2], [2, 2]), "nominal")

    assert all(d.mean_deviation is None and d.mean_abs_deviation is None for d in deviations)


def test_rater_without_shared_units_has_no_deviation_and_is_json_safe():
    ratings = [(0, "a", 5), (0, "b", 3), (1, "c", 3)]

    [c] = [d for d in rater_deviations(ratings, "ordinal") if d.rater == "c"]

    assert (c.n_units, c.mean_deviation, c.disagreement_share) == (0, None, None)
    json.dumps(c.as_dict(), allow_nan=False)


def test_lenient_rater_stands_out():
    values = noisy_ordinal(500, n_raters=4, seed=5)
    values[2] = np.clip(values[2] + 1, 1, 5)

    deviations = rater_deviations(long_format(values.tolist()), "ordinal")

    worst = max(deviations, key=lambda d: d.mean_abs_deviation)
    assert worst.rater == "r2"
    assert worst.mean_deviation > 0.5


# --- shared input ------------------------------------------------------------------------------------------


def test_every_statistic_accepts_a_pivoted_matrix():
    matrix = ratings_pivot(long_format(PAPER))

    assert isinstance(matrix, RatingMatrix)
    assert round(dimension_agreement(matrix, "interval", bootstrap=0).alpha, 3) == 0.849
    assert len(rater_pairwise_kappa(matrix, "ordinal")) == 6
    assert fleiss_kappa(matrix).reason is not None
    assert len(rater_deviations(matrix, "ordinal")) == 4


def test_pivot_keeps_integer_and_string_ids_apart():
    ratings = [(1, "a", 2), ("1", "a", 3), (1, "b", 2), ("1", "b", 4)]

    matrix = ratings_pivot(ratings)

    assert set(matrix.units) == {1, "1"}
    assert matrix.n_ratings == 4


def test_pivot_returns_plain_python_ids():
    matrix = ratings_pivot([(10, 7, 1), (11, 7, 2)])

    assert matrix.units == (10, 11) and type(matrix.units[0]) is int
    assert matrix.raters == (7,) and type(matrix.raters[0]) is int


def test_bootstrap_handles_units_with_many_raters_and_values():
    # given 30 raters on a 0..20 scale, unit patterns cannot be packed into one integer key
    values = np.random.default_rng(2).integers(0, 21, size=(30, 40)).astype(float)

    result = dimension_agreement(long_format(values.tolist()), "interval", bootstrap=100)

    assert result.bootstrap_defined == 100
    assert result.alpha_ci_low <= result.alpha_ci_high


def test_pivot_rejects_a_rating_that_is_not_a_triple():
    with pytest.raises(ValueError, match=r"is \(unit_id, rater_id, value\), got 'abc'"):
        ratings_pivot([(1, "a", 3), "abc"])
