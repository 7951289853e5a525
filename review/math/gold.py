"""Scoring of answers to gold tasks and the rolling accuracy of a person, Django-free."""

from collections.abc import Mapping, Sequence

from review.math.text_similarity import rouge_l


def annotation_score(answer: str, expected: str, *, min_similarity: float) -> tuple[bool, float]:
    """An annotation is right when its ROUGE-L F1 against the gold answer (CJK characters as words)
    reaches `min_similarity`; returns (right, similarity)."""
    similarity = rouge_l(answer, expected)
    return similarity >= min_similarity, similarity


def decision_correct(decision: str, expected: str) -> bool:
    """A review decision against the expected approve | reject: an edit approves (with the reviewer's
    text), so it counts as an approval."""
    return ("approve" if decision == "edit" else decision) == expected


def within(value: float, bounds: Sequence[float]) -> bool:
    low, high = bounds
    return low <= value <= high


def rating_correct(
    scores: Mapping[str, float],
    weighted: float,
    *,
    expected_scores: Mapping[str, Sequence[float]],
    expected_weighted: Sequence[float] | None,
) -> bool:
    """Right when every dimension with an expected range scores within it (inclusive) and, when a
    weighted range is given, the weighted score is within it too."""
    for key, bounds in expected_scores.items():
        if key not in scores or not within(scores[key], bounds):
            return False
    return expected_weighted is None or within(weighted, expected_weighted)


def rolling_accuracy(outcomes: Sequence[bool], *, window: int) -> tuple[float | None, int]:
    """The share right of the latest `window` outcomes (newest first), and how many were counted;
    None until there are `window` of them."""
    latest = list(outcomes[:window])
    if len(latest) < window:
        return None, len(latest)
    return sum(latest) / len(latest), len(latest)


def ranges_check(expected_scores: object, scales: Mapping[str, tuple[float, float]]) -> dict[str, str]:
    """Problems of expected score ranges {dimension: [low, high]} against the rubric's scales
    {dimension: (min, max)}: unknown dimensions, malformed or reversed ranges, ranges off the scale."""
    if not isinstance(expected_scores, Mapping):
        return {"expected_scores": 'an object such as {"accuracy": [4, 5]}'}
    problems = {}
    for key, bounds in expected_scores.items():
        if key not in scales:
            problems[key] = "not a dimension of the rubric"
        elif not _is_range(bounds):
            problems[key] = "a range [low, high] of numbers"
        elif bounds[0] > bounds[1] or bounds[0] < scales[key][0] or bounds[1] > scales[key][1]:
            problems[key] = f"[low, high] within the scale {scales[key][0]:g}–{scales[key][1]:g}"
    return problems


def _is_range(bounds: object) -> bool:
    return (
        isinstance(bounds, list | tuple)
        and len(bounds) == 2
        and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    )


def weighted_range_check(bounds: object) -> str | None:
    if bounds is None:
        return None
    if not _is_range(bounds) or bounds[0] > bounds[1]:
        return "a range [low, high] of numbers"
    return None
