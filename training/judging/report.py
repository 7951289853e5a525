"""A judge against people, as one more rater: per dimension (and for the weighted score) the agreement
of its scores with the human consensus, its bias, and n. Plain functions over numbers, no ORM.

The consensus of a response is the mean of its human raters' scores. Krippendorff's alpha (interval)
treats the judge and the consensus as two raters of every response both scored; Cohen's weighted kappa
(quadratic) compares the two rounded to the scale's whole points (halves up). Bias is the mean of
judge − consensus: positive, the judge is more lenient than people.
"""

import math
from collections.abc import Mapping, Sequence

from review.math.agreement import dimension_agreement, rater_pairwise_kappa

JUDGE, PEOPLE = "judge", "people"


def _round_half_up(value: float, low: int, high: int) -> int:
    return int(min(high, max(low, math.floor(value + 0.5))))


def rater_against_consensus(
    judge: Mapping, people: Mapping[object, Sequence[float]], *, scale_min: int, scale_max: int,
    bootstrap: int = 1000,
) -> dict:  # fmt: skip
    """`judge`: {response: the judge's score}; `people`: {response: the human raters' scores}."""
    units = sorted(u for u in judge if people.get(u))
    consensus = {u: math.fsum(people[u]) / len(people[u]) for u in units}
    figures = {
        "n": len(units),
        "n_human_ratings": sum(len(people[u]) for u in units),
        "judge_mean": None, "human_mean": None, "bias": None, "mean_abs_difference": None,
        "alpha": None, "alpha_ci_low": None, "alpha_ci_high": None, "alpha_reason": None,
        "kappa": None, "kappa_reason": None,
    }  # fmt: skip
    if not units:
        figures["alpha_reason"] = figures["kappa_reason"] = "no response is scored by the judge and by people"
        return figures
    differences = [judge[u] - consensus[u] for u in units]
    figures.update(
        judge_mean=math.fsum(judge[u] for u in units) / len(units),
        human_mean=math.fsum(consensus.values()) / len(units),
        bias=math.fsum(differences) / len(units),
        mean_abs_difference=math.fsum(abs(d) for d in differences) / len(units),
    )
    pairs = [(u, JUDGE, float(judge[u])) for u in units] + [(u, PEOPLE, consensus[u]) for u in units]
    alpha = dimension_agreement(pairs, "interval", bootstrap=bootstrap, seed=0)
    figures.update(
        alpha=alpha.alpha, alpha_ci_low=alpha.alpha_ci_low, alpha_ci_high=alpha.alpha_ci_high,
        alpha_reason=alpha.reason,
    )  # fmt: skip
    rounded = [(u, r, _round_half_up(v, scale_min, scale_max)) for u, r, v in pairs]
    (kappa,) = rater_pairwise_kappa(
        rounded, "interval", value_domain=range(scale_min, scale_max + 1), weights="quadratic"
    )
    figures.update(kappa=kappa.kappa, kappa_reason=kappa.reason)
    return figures


def picks_against_people(judge: Mapping[object, str], people: Mapping[object, Sequence[str]]) -> dict:
    """The judge's picks ({pair: a | b | tie}) against the human majority of each pair (plurality of
    a / b / tie; an even split has none and is left out): how often they are the same."""
    compared = agreeing = 0
    for pair, choice in judge.items():
        votes = list(people.get(pair) or [])
        if not votes:
            continue
        counts = {c: votes.count(c) for c in set(votes)}
        top = max(counts.values())
        winners = [c for c, n in counts.items() if n == top]
        if len(winners) != 1:
            continue
        compared += 1
        agreeing += winners[0] == choice
    return {
        "n": compared,
        "agreement": agreeing / compared if compared else None,
        "n_judged": len(judge),
    }
