"""Agreement-driven overlap: how many raters a task wants, from how far its raters disagree; Django-free.

A task (a response to rate, a pair to compare) wants the project's base overlap. Where the project sets
a larger maximum, a task whose raters disagree keeps wanting more, up to that maximum:
- ratings disagree when `scores_spread` of their normalised weighted scores is above the threshold;
- judgements of a pair disagree when they are not all the same choice (A, B or tie).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def scores_spread(normalised: Sequence[float]) -> float | None:
    """The population standard deviation of ratings' weighted scores on 0–1; None under two ratings.

    Population (divide by n), so two ratings a and b spread |a − b| / 2: one rater at 0.2 and one at 0.8
    spread 0.3. A spread of 0.5, the largest, is half the raters at each end of the scale.
    """
    if len(normalised) < 2:
        return None
    mean = math.fsum(normalised) / len(normalised)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in normalised) / len(normalised))


def ratings_disagree(spread: float | None, threshold: float) -> bool:
    return spread is not None and spread > threshold


def choices_disagree(choices: Iterable[str]) -> bool:
    """Judgements of one pair disagree when they are not all the same choice."""
    return len(set(choices)) > 1


def overlap_maximum(*, base: int, maximum: int) -> int:
    """The most raters any task gets: the maximum when it is above the base, else the base (off)."""
    return max(base, maximum)


def overlap_wanted(*, base: int, maximum: int, disagree: bool) -> int:
    """How many raters a task wants now: the maximum while its raters disagree, else the base."""
    return overlap_maximum(base=base, maximum=maximum) if disagree else base
