"""Calibration maths on synthetic outcomes with a known miscalibration: the true chance that an answer
is acceptable is confidence², so raw confidence overstates it."""

import random

import pytest

from training.engine.calibration import ece, isotonic_fit, reliability, threshold_for_target, wilson_lower


def outcomes(n, seed):
    rng = random.Random(seed)
    confidences = [rng.random() for _ in range(n)]
    return confidences, [rng.random() < c * c for c in confidences]


def test_isotonic_fit_brings_ece_under_005_on_held_out_outcomes():
    fit_conf, fit_ok = outcomes(5000, seed=1)
    test_conf, test_ok = outcomes(5000, seed=2)
    before = ece(test_conf, test_ok)

    calibration = isotonic_fit(fit_conf, fit_ok)
    after = ece(calibration.many(test_conf), test_ok)

    assert before > 0.15  # E|c − c²| = 1/6
    assert after < 0.05
    # the map is monotone and bounded, and a round trip through JSON keeps it
    ys = calibration.many([0.0, 0.25, 0.5, 0.75, 1.0])
    assert ys == sorted(ys) and ys[0] >= 0.0 and ys[-1] <= 1.0
    assert type(calibration).from_dict(calibration.as_dict())(0.6) == calibration(0.6)


@pytest.mark.parametrize("target", [0.6, 0.8, 0.9])
def test_the_chosen_threshold_reaches_the_target_on_held_out_outcomes(target):
    fit_conf, fit_ok = outcomes(4000, seed=3)
    calibration = isotonic_fit(fit_conf, fit_ok)
    choice = threshold_for_target(calibration.many(fit_conf), fit_ok, target)
    assert choice.threshold is not None and choice.precision_low >= target

    test_conf, test_ok = outcomes(20000, seed=4)
    answered = [
        ok for c, ok in zip(calibration.many(test_conf), test_ok, strict=True) if c >= choice.threshold
    ]
    precision = sum(answered) / len(answered)

    assert precision >= target
    # and it does not give away much: the share answered is close to the most the target allows
    # (true p = c², so answering c ≥ s has precision (1 + s + s²) / 3; solve for s)
    s = (-1 + (1 - 4 * (1 - 3 * target)) ** 0.5) / 2
    assert abs((1 - choice.handover_rate) - (1 - s)) < 0.08


def test_an_unreachable_target_chooses_no_threshold_and_hands_everything_over():
    conf, ok = outcomes(300, seed=5)
    choice = threshold_for_target(conf, ok, 0.999)
    assert (choice.threshold, choice.handover_rate, choice.answered) == (None, 1.0, 0)


def test_few_lucky_answers_do_not_set_a_threshold():
    # three acceptable answers at the top: 100 % observed, but the lower bound is ~0.44
    choice = threshold_for_target([0.99, 0.98, 0.97, 0.5, 0.4], [True, True, True, False, False], 0.9)
    assert choice.threshold is None
    assert wilson_lower(3, 3) == pytest.approx(0.4385, abs=1e-3)


def test_reliability_points_and_ece_of_a_small_set():
    points = reliability([0.05, 0.15, 0.12, 0.95, 1.0], [False, True, False, True, True])
    assert [(p["low"], p["n"]) for p in points] == [(0.0, 1), (0.1, 2), (0.9, 2)]
    assert points[1]["accuracy"] == 0.5 and points[1]["confidence"] == pytest.approx(0.135)
    assert ece([0.05, 0.15, 0.12, 0.95, 1.0], [False, True, False, True, True]) == pytest.approx(
        (0.05 + 2 * 0.365 + 2 * 0.025) / 5
    )
    assert ece([], []) is None
