"""Rubrics and weighted rating scores: validation and arithmetic, free of Django."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

LEVELS = ("nominal", "ordinal", "interval", "ratio")
# Levels whose scores are category positions, so a fractional score is meaningless.
INTEGER_LEVELS = ("nominal", "ordinal")
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Dimension:
    """One rubric dimension: a score on [scale_min, scale_max] that counts `weight` in the weighted score."""

    key: str
    weight: float
    scale_min: int
    scale_max: int
    level: str = "ordinal"

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "weight": self.weight,
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
            "level": self.level,
        }


DEFAULT_RUBRIC: tuple[Dimension, ...] = (
    Dimension(key="accuracy", weight=0.4, scale_min=1, scale_max=5, level="ordinal"),
    Dimension(key="politeness", weight=0.3, scale_min=1, scale_max=5, level="ordinal"),
    Dimension(key="usefulness", weight=0.3, scale_min=1, scale_max=5, level="ordinal"),
)


@dataclass(frozen=True)
class ResponseScore:
    """Scores of one response aggregated over its raters; the means are None when nobody rated it."""

    n_ratings: int
    weighted_score_mean: float | None
    dimension_means: dict[str, float | None]

    def as_dict(self) -> dict:
        return {
            "n_ratings": self.n_ratings,
            "weighted_score_mean": self.weighted_score_mean,
            "dimension_means": dict(self.dimension_means),
        }


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True as a score is a client bug, not a 1.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def rubric_parse(raw: Iterable[Mapping]) -> tuple[Dimension, ...]:
    """A validated rubric from JSON-like mappings (as stored on a project); ValueError names the problem."""
    dimensions = []
    for position, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"dimension #{position}: expected an object, got {type(item).__name__}")
        missing = [name for name in ("key", "weight", "scale_min", "scale_max") if name not in item]
        if missing:
            raise ValueError(f"dimension #{position}: missing {', '.join(missing)}")
        unknown = sorted(set(item) - {"key", "weight", "scale_min", "scale_max", "level"})
        if unknown:
            raise ValueError(f"dimension #{position}: unknown field(s) {', '.join(unknown)}")
        dimensions.append(
            Dimension(
                key=item["key"],
                weight=item["weight"],
                scale_min=item["scale_min"],
                scale_max=item["scale_max"],
                level=item.get("level", "ordinal"),
            )
        )
    rubric = tuple(dimensions)
    rubric_validate(rubric)
    return rubric


def rubric_validate(dimensions: Sequence[Dimension]) -> None:
    """Raise ValueError naming the first problem: key, level, weight, scale, repeated key, weight sum.

    A nominal dimension must weigh 0: the mean of category codes is not a score. It can still be rated and
    have its agreement measured.
    """
    if not dimensions:
        raise ValueError("a rubric needs at least one dimension")
    seen: set[str] = set()
    for dimension in dimensions:
        key = dimension.key
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"dimension key must be a non-empty string, got {key!r}")
        if key in seen:
            raise ValueError(f"dimension {key!r} appears more than once")
        seen.add(key)
        if dimension.level not in LEVELS:
            raise ValueError(
                f"dimension {key!r}: level {dimension.level!r} is not one of {', '.join(LEVELS)}"
            )
        weight = dimension.weight
        if not _is_number(weight) or not math.isfinite(weight):
            raise ValueError(f"dimension {key!r}: weight must be a finite number, got {weight!r}")
        if weight < 0:
            raise ValueError(f"dimension {key!r}: weight {weight} is negative")
        if dimension.level == "nominal" and weight != 0:
            raise ValueError(f"dimension {key!r}: a nominal dimension cannot carry weight (got {weight})")
        low, high = dimension.scale_min, dimension.scale_max
        for name, bound in (("scale_min", low), ("scale_max", high)):
            if not isinstance(bound, int) or isinstance(bound, bool):
                raise ValueError(f"dimension {key!r}: {name} must be an integer, got {bound!r}")
        if low >= high:
            raise ValueError(
                f"dimension {key!r}: scale {low}..{high} is empty (scale_min must be below scale_max)"
            )
    total = math.fsum(dimension.weight for dimension in dimensions)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights sum to {total:.6g}, not 1")


def scores_validate(dimensions: Sequence[Dimension], scores: Mapping[str, object]) -> dict[str, str]:
    """Problems with one rater's scores, keyed by dimension; empty when the scores are valid.

    Reports every missing and unknown dimension, every non-number, every fractional score on a nominal or
    ordinal dimension, and every score outside its scale. Assumes a valid rubric.
    """
    if not isinstance(scores, Mapping):
        return {"__all__": f"scores must be an object keyed by dimension, got {type(scores).__name__}"}
    errors: dict[str, str] = {}
    known = {dimension.key for dimension in dimensions}
    for dimension in dimensions:
        key = dimension.key
        if key not in scores:
            errors[key] = "missing"
            continue
        value = scores[key]
        if not _is_number(value) or not math.isfinite(value):
            errors[key] = f"{value!r} is not a number"
        elif dimension.level in INTEGER_LEVELS and value != int(value):
            errors[key] = f"{value!r} is not a whole number"
        elif not dimension.scale_min <= value <= dimension.scale_max:
            errors[key] = f"{value!r} is outside the scale {dimension.scale_min}..{dimension.scale_max}"
    for key in scores:
        if key not in known:
            errors[str(key)] = "not a dimension of this rubric"
    return errors


def _scores_check(
    dimensions: Sequence[Dimension], scores: Mapping[str, object], label: str = "scores"
) -> None:
    errors = scores_validate(dimensions, scores)
    if errors:
        detail = "; ".join(f"{key}: {message}" for key, message in errors.items())
        raise ValueError(f"invalid {label}: {detail}")


def rating_weighted_score(dimensions: Sequence[Dimension], scores: Mapping[str, float]) -> float:
    """Weighted mean on the original scale: sum(weight x score), the weights summing to 1.

    On a rubric whose dimensions share one scale (the default, 1..5) the result lies on that scale, so
    "4.2" reads like a rating. Use `rating_normalised_score` when the scales differ. Raises ValueError on
    invalid scores.
    """
    _scores_check(dimensions, scores)
    return math.fsum(dimension.weight * scores[dimension.key] for dimension in dimensions)


def rating_normalised_score(dimensions: Sequence[Dimension], scores: Mapping[str, float]) -> float:
    """Weighted mean of each score rescaled to [0, 1] by its scale: comparable across rubrics."""
    _scores_check(dimensions, scores)
    return math.fsum(
        dimension.weight
        * (scores[dimension.key] - dimension.scale_min)
        / (dimension.scale_max - dimension.scale_min)
        for dimension in dimensions
    )


def response_score_aggregate(
    dimensions: Sequence[Dimension], ratings: Sequence[Mapping[str, float]]
) -> ResponseScore:
    """Mean weighted score of one response over its raters, with the mean of every dimension.

    The mean of weighted scores equals the weighted sum of the dimension means, so the two never disagree.
    Raises ValueError naming the rating (by position) whose scores are invalid.
    """
    for position, scores in enumerate(ratings):
        _scores_check(dimensions, scores, label=f"rating #{position}")
    if not ratings:
        return ResponseScore(
            n_ratings=0,
            weighted_score_mean=None,
            dimension_means={dimension.key: None for dimension in dimensions},
        )
    count = len(ratings)
    weighted = [rating_weighted_score(dimensions, scores) for scores in ratings]
    return ResponseScore(
        n_ratings=count,
        weighted_score_mean=math.fsum(weighted) / count,
        dimension_means={
            dimension.key: math.fsum(float(scores[dimension.key]) for scores in ratings) / count
            for dimension in dimensions
        },
    )
