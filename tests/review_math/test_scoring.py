"""Rubric validation, score validation and weighted-score arithmetic, against values worked by hand."""

import math

import pytest

from review.math.scoring import (
    DEFAULT_RUBRIC,
    Dimension,
    rating_normalised_score,
    rating_weighted_score,
    response_score_aggregate,
    rubric_parse,
    rubric_validate,
    scores_validate,
)

GOOD = {"accuracy": 5, "politeness": 3, "usefulness": 4}


def dims(*specs):
    return [Dimension(key=k, weight=w, scale_min=lo, scale_max=hi, level=lvl) for k, w, lo, hi, lvl in specs]


# --- rubric_validate ---------------------------------------------------------------------------------------


def test_default_rubric_is_valid_and_ordinal_one_to_five():
    rubric_validate(DEFAULT_RUBRIC)

    assert [(d.key, d.weight, d.scale_min, d.scale_max, d.level) for d in DEFAULT_RUBRIC] == [
        ("accuracy", 0.4, 1, 5, "ordinal"),
        ("politeness", 0.3, 1, 5, "ordinal"),
        ("usefulness", 0.3, 1, 5, "ordinal"),
    ]


def test_weights_summing_to_one_within_tolerance_pass():
    rubric = dims(("a", 0.5 + 5e-7, 1, 5, "ordinal"), ("b", 0.5, 1, 5, "ordinal"))

    rubric_validate(rubric)


def test_weights_not_summing_to_one_are_rejected():
    rubric = dims(("a", 0.5, 1, 5, "ordinal"), ("b", 0.4, 1, 5, "ordinal"))

    with pytest.raises(ValueError, match="weights sum to 0.9, not 1"):
        rubric_validate(rubric)


def test_repeated_key_is_rejected():
    rubric = dims(("a", 0.5, 1, 5, "ordinal"), ("a", 0.5, 1, 5, "ordinal"))

    with pytest.raises(ValueError, match="'a' appears more than once"):
        rubric_validate(rubric)


@pytest.mark.parametrize(("low", "high"), [(5, 1), (3, 3)])
def test_empty_scale_is_rejected(low, high):
    rubric = dims(("a", 1.0, low, high, "ordinal"))

    with pytest.raises(ValueError, match=rf"'a': scale {low}..{high} is empty"):
        rubric_validate(rubric)


def test_negative_weight_is_rejected_even_when_weights_sum_to_one():
    rubric = dims(("a", 1.2, 1, 5, "ordinal"), ("b", -0.2, 1, 5, "ordinal"))

    with pytest.raises(ValueError, match="'b': weight -0.2 is negative"):
        rubric_validate(rubric)


def test_unknown_level_is_rejected():
    rubric = dims(("a", 1.0, 1, 5, "likert"))

    with pytest.raises(ValueError, match="level 'likert' is not one of"):
        rubric_validate(rubric)


def test_weighted_nominal_dimension_is_rejected():
    rubric = dims(("topic", 0.5, 1, 4, "nominal"), ("a", 0.5, 1, 5, "ordinal"))

    with pytest.raises(ValueError, match="nominal dimension cannot carry weight"):
        rubric_validate(rubric)


def test_nominal_dimension_with_zero_weight_is_allowed():
    rubric = dims(("topic", 0.0, 1, 4, "nominal"), ("a", 1.0, 1, 5, "ordinal"))

    rubric_validate(rubric)


def test_empty_rubric_is_rejected():
    with pytest.raises(ValueError, match="at least one dimension"):
        rubric_validate([])


def test_blank_key_is_rejected():
    with pytest.raises(ValueError, match="non-empty string"):
        rubric_validate(dims((" ", 1.0, 1, 5, "ordinal")))


def test_non_numeric_weight_is_rejected():
    with pytest.raises(ValueError, match="weight must be a finite number"):
        rubric_validate(dims(("a", "1", 1, 5, "ordinal")))


def test_fractional_scale_bound_is_rejected():
    with pytest.raises(ValueError, match="scale_max must be an integer"):
        rubric_validate(dims(("a", 1.0, 1, 5.5, "ordinal")))


def test_rubric_parse_builds_dimensions_from_json():
    raw = [d.as_dict() for d in DEFAULT_RUBRIC]

    assert rubric_parse(raw) == DEFAULT_RUBRIC


def test_rubric_parse_names_missing_fields():
    with pytest.raises(ValueError, match="dimension #0: missing weight, scale_max"):
        rubric_parse([{"key": "a", "scale_min": 1}])


def test_rubric_parse_names_unknown_fields():
    with pytest.raises(ValueError, match="unknown field"):
        rubric_parse([{"key": "a", "weight": 1, "scale_min": 1, "scale_max": 5, "colour": "red"}])


def test_rubric_parse_validates_the_result():
    with pytest.raises(ValueError, match="weights sum to"):
        rubric_parse([{"key": "a", "weight": 0.3, "scale_min": 1, "scale_max": 5}])


# --- scores_validate ---------------------------------------------------------------------------------------


def test_valid_scores_have_no_errors():
    assert scores_validate(DEFAULT_RUBRIC, GOOD) == {}


@pytest.mark.parametrize("value", [0, 6, -1])
def test_score_outside_scale_is_an_error(value):
    errors = scores_validate(DEFAULT_RUBRIC, {**GOOD, "accuracy": value})

    assert errors == {"accuracy": f"{value!r} is outside the scale 1..5"}


def test_missing_dimension_is_an_error():
    scores = {"accuracy": 5, "politeness": 3}

    assert scores_validate(DEFAULT_RUBRIC, scores) == {"usefulness": "missing"}


def test_unknown_dimension_is_an_error():
    errors = scores_validate(DEFAULT_RUBRIC, {**GOOD, "humour": 3})

    assert errors == {"humour": "not a dimension of this rubric"}


@pytest.mark.parametrize("value", ["4", None, True, [4], float("nan"), float("inf")])
def test_non_number_is_an_error(value):
    errors = scores_validate(DEFAULT_RUBRIC, {**GOOD, "politeness": value})

    assert errors == {"politeness": f"{value!r} is not a number"}


def test_fractional_score_on_ordinal_dimension_is_an_error():
    errors = scores_validate(DEFAULT_RUBRIC, {**GOOD, "usefulness": 3.5})

    assert errors == {"usefulness": "3.5 is not a whole number"}


def test_whole_float_on_ordinal_dimension_is_accepted():
    assert scores_validate(DEFAULT_RUBRIC, {**GOOD, "usefulness": 3.0}) == {}


def test_fractional_score_on_interval_dimension_is_accepted():
    rubric = dims(("latency", 1.0, 0, 10, "interval"))

    assert scores_validate(rubric, {"latency": 2.75}) == {}


def test_every_problem_is_reported_at_once():
    errors = scores_validate(DEFAULT_RUBRIC, {"accuracy": 9, "politeness": "x", "extra": 1})

    assert set(errors) == {"accuracy", "politeness", "usefulness", "extra"}


def test_scores_that_are_not_a_mapping_are_an_error():
    assert set(scores_validate(DEFAULT_RUBRIC, [5, 3, 4])) == {"__all__"}


# --- weighted scores ---------------------------------------------------------------------------------------


def test_weighted_score_is_the_weighted_mean_on_the_original_scale():
    # 0.4 * 5 + 0.3 * 3 + 0.3 * 4 = 2.0 + 0.9 + 1.2
    assert rating_weighted_score(DEFAULT_RUBRIC, GOOD) == pytest.approx(4.1, abs=1e-12)


def test_weighted_score_of_all_top_marks_is_the_scale_top():
    scores = {"accuracy": 5, "politeness": 5, "usefulness": 5}

    assert rating_weighted_score(DEFAULT_RUBRIC, scores) == pytest.approx(5.0, abs=1e-12)


def test_weighted_score_rejects_invalid_scores():
    with pytest.raises(ValueError, match="accuracy: 7 is outside the scale"):
        rating_weighted_score(DEFAULT_RUBRIC, {**GOOD, "accuracy": 7})


def test_normalised_score_rescales_each_dimension_to_unit_interval():
    # (0.4 * 4/4 + 0.3 * 2/4 + 0.3 * 3/4) = 0.4 + 0.15 + 0.225
    assert rating_normalised_score(DEFAULT_RUBRIC, GOOD) == pytest.approx(0.775, abs=1e-12)


def test_normalised_score_handles_different_scales():
    rubric = dims(("a", 0.5, 1, 5, "ordinal"), ("b", 0.5, 0, 10, "interval"))

    # 0.5 * (3-1)/4 + 0.5 * 2.5/10
    assert rating_normalised_score(rubric, {"a": 3, "b": 2.5}) == pytest.approx(0.375, abs=1e-12)


def test_response_aggregate_means_weighted_scores_and_dimensions():
    ratings = [GOOD, {"accuracy": 3, "politeness": 3, "usefulness": 2}]  # 4.1 and 2.7

    result = response_score_aggregate(DEFAULT_RUBRIC, ratings)

    assert result.n_ratings == 2
    assert result.weighted_score_mean == pytest.approx(3.4, abs=1e-12)
    assert result.dimension_means == pytest.approx({"accuracy": 4.0, "politeness": 3.0, "usefulness": 3.0})


def test_response_aggregate_equals_weighted_sum_of_dimension_means():
    ratings = [
        GOOD,
        {"accuracy": 1, "politeness": 2, "usefulness": 5},
        {"accuracy": 4, "politeness": 4, "usefulness": 1},
    ]

    result = response_score_aggregate(DEFAULT_RUBRIC, ratings)

    recombined = math.fsum(d.weight * result.dimension_means[d.key] for d in DEFAULT_RUBRIC)
    assert result.weighted_score_mean == pytest.approx(recombined, abs=1e-12)


def test_response_aggregate_without_ratings_has_no_means():
    result = response_score_aggregate(DEFAULT_RUBRIC, [])

    assert result.as_dict() == {
        "n_ratings": 0,
        "weighted_score_mean": None,
        "dimension_means": {"accuracy": None, "politeness": None, "usefulness": None},
    }


def test_response_aggregate_names_the_invalid_rating():
    with pytest.raises(ValueError, match="rating #1: usefulness: missing"):
        response_score_aggregate(DEFAULT_RUBRIC, [GOOD, {"accuracy": 3, "politeness": 3}])
