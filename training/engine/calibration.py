"""Confidence calibration from judged answers: an isotonic map, ECE, reliability points, and the lowest
threshold whose answered share reaches a precision target (Wilson lower bound). No Django here."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BINS = 10  # equal-width bins for ECE and the reliability diagram
Z95 = 1.959963984540054  # two-sided 95 %


@dataclass(frozen=True)
class CalibrationMap:
    """A monotone map from raw to calibrated confidence: isotonic regression's breakpoints, linearly
    interpolated between them and clipped outside (what `IsotonicRegression.predict` does). Plain lists,
    so the map can be cached and sent as JSON without pickling a scikit-learn object."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __call__(self, confidence: float) -> float:
        return float(np.interp(confidence, self.xs, self.ys))

    def many(self, confidences: Sequence[float]) -> list[float]:
        return np.interp(np.asarray(confidences, dtype=float), self.xs, self.ys).tolist()

    def as_dict(self) -> dict:
        return {"xs": list(self.xs), "ys": list(self.ys)}

    @classmethod
    def from_dict(cls, data: dict) -> "CalibrationMap":
        return cls(tuple(data["xs"]), tuple(data["ys"]))


def isotonic_fit(confidences: Sequence[float], acceptable: Sequence[bool]) -> CalibrationMap:
    """The isotonic (non-decreasing) regression of acceptable (0/1) on confidence, bounded to [0, 1]."""
    if len(confidences) != len(acceptable) or not confidences:
        raise ValueError("confidences and acceptable must be non-empty and of the same length")
    from sklearn.isotonic import IsotonicRegression  # SciPy with it: only processes that fit load it

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(np.asarray(confidences, dtype=float), np.asarray(acceptable, dtype=float))
    return CalibrationMap(tuple(model.X_thresholds_.tolist()), tuple(model.y_thresholds_.tolist()))


def _bin_of(confidence: float, bins: int) -> int:
    return min(bins - 1, max(0, int(confidence * bins)))


def reliability(confidences: Sequence[float], acceptable: Sequence[bool], bins: int = BINS) -> list[dict]:
    """Per non-empty equal-width bin: its range, n, mean confidence and the share acceptable."""
    sums = [[0, 0.0, 0] for _ in range(bins)]  # n, sum of confidence, acceptable
    for c, ok in zip(confidences, acceptable, strict=True):
        cell = sums[_bin_of(c, bins)]
        cell[0] += 1
        cell[1] += c
        cell[2] += int(bool(ok))
    return [
        {"low": i / bins, "high": (i + 1) / bins, "n": n, "confidence": total / n, "accuracy": good / n}
        for i, (n, total, good) in enumerate(sums)
        if n
    ]


def ece(confidences: Sequence[float], acceptable: Sequence[bool], bins: int = BINS) -> float | None:
    """Expected calibration error: the n-weighted mean |accuracy − confidence| over the bins."""
    points = reliability(confidences, acceptable, bins)
    total = sum(p["n"] for p in points)
    if not total:
        return None
    return sum(p["n"] * abs(p["accuracy"] - p["confidence"]) for p in points) / total


def wilson_lower(successes: int, n: int, z: float = Z95) -> float:
    """The Wilson score interval's lower end for a binomial share (0 when n is 0)."""
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float | None  # None: no threshold reaches the target with this evidence
    n: int  # outcomes considered
    answered: int  # outcomes at or above the threshold
    acceptable: int  # of those, acceptable
    precision: float | None  # acceptable / answered
    precision_low: float | None  # its Wilson 95 % lower bound, the figure compared with the target
    handover_rate: float  # the share of outcomes under the threshold: expected to be handed over

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "n": self.n,
            "answered": self.answered,
            "acceptable": self.acceptable,
            "precision": self.precision,
            "precision_low": self.precision_low,
            "handover_rate": self.handover_rate,
        }


def threshold_for_target(
    confidences: Sequence[float], acceptable: Sequence[bool], target: float, z: float = Z95
) -> ThresholdChoice:
    """The lowest threshold t (among the observed confidences) such that the answers with confidence
    ≥ t are acceptable with a Wilson lower bound ≥ target. Lowest, so the most is answered; the lower
    bound rather than the observed share, so a threshold resting on a handful of lucky answers is not
    chosen (the share answered above it is ≥ target with about 97.5 % confidence per candidate)."""
    n = len(confidences)
    order = sorted(zip(confidences, acceptable, strict=True), key=lambda pair: -pair[0])
    best: ThresholdChoice | None = None
    answered = good = 0
    i = 0
    # Walk thresholds from the highest confidence down; a threshold takes all outcomes tied with it.
    while i < n:
        t = order[i][0]
        while i < n and order[i][0] == t:
            answered += 1
            good += int(bool(order[i][1]))
            i += 1
        low = wilson_lower(good, answered, z)
        if low >= target:
            best = ThresholdChoice(t, n, answered, good, good / answered, low, 1 - answered / n)
    if best is not None:
        return best
    return ThresholdChoice(None, n, 0, 0, None, None, 1.0)
