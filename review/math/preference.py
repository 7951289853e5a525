"""Pairwise judgements as figures: agreement (nominal alpha), how a pair's votes resolve, the standings.

A judgement is "a" (the pair's first response is better), "b" or "tie", always in the pair's stored
order, whatever order the rater saw. No Django: the selectors feed these plain values.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from review.math.agreement import DEFAULT_BOOTSTRAP, DimensionAgreement, dimension_agreement
from review.math.bradley_terry import bradley_terry, elo, wilson_interval, wins_matrix

CHOICES = ("a", "tie", "b")
# Nominal codes: the order carries no meaning at this level, it only has to be fixed.
CHOICE_CODES = {choice: code for code, choice in enumerate(CHOICES)}


def judgement_agreement(
    judgements: Iterable[tuple[Hashable, Hashable, str]], *, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> DimensionAgreement:
    """Krippendorff's alpha (nominal: A, B and tie are three categories) over (pair, rater, choice),
    with its bootstrap 95 % interval over pairs; pairs judged once are counted as unpairable."""
    coded = [(pair, rater, CHOICE_CODES[choice]) for pair, rater, choice in judgements]
    return dimension_agreement(
        coded, "nominal", value_domain=list(CHOICE_CODES.values()), bootstrap=bootstrap, seed=seed
    )


def pair_outcome(votes_a: int, votes_b: int, ties: int) -> str | None:
    """What a pair's judgements decide: "a" or "b" when that side has strictly more votes than each of
    the others (a plurality; one judgement decides alone), else None: the raters found it a tie, or
    split evenly, and the pair makes no training example."""
    if votes_a > votes_b and votes_a > ties:
        return "a"
    if votes_b > votes_a and votes_b > ties:
        return "b"
    return None


@dataclass(frozen=True)
class Games:
    """Judgements between two contestants, `a` and `b` in that order."""

    a: str
    b: str
    wins_a: int
    wins_b: int
    ties: int


def standings(games: Sequence[Games]) -> dict:
    """The leaderboard of the contestants in `games`: Bradley–Terry strength (log scale and Elo scale),
    wins, losses and ties, the win rate (ties count half) with its Wilson 95 % interval, and the fit.

    Games of a contestant against itself carry no information about the order and are only counted
    (`same_model_judgements`). Ranked by strength, then by name.
    """
    names = sorted({g.a for g in games} | {g.b for g in games})
    index = {name: i for i, name in enumerate(names)}
    same = sum(g.wins_a + g.wins_b + g.ties for g in games if g.a == g.b)
    between = [g for g in games if g.a != g.b]
    wins = wins_matrix(len(names), ((index[g.a], index[g.b], g.wins_a, g.wins_b, g.ties) for g in between))
    fit = bradley_terry(wins)
    tally = {name: [0, 0, 0] for name in names}  # wins, losses, ties
    for g in between:
        tally[g.a][0] += g.wins_a
        tally[g.a][1] += g.wins_b
        tally[g.b][0] += g.wins_b
        tally[g.b][1] += g.wins_a
        tally[g.a][2] += g.ties
        tally[g.b][2] += g.ties
    rows = []
    for name in names:
        won, lost, tied = tally[name]
        n = won + lost + tied
        if not n:
            continue
        low, high = wilson_interval(won + tied / 2, n)
        beta = float(fit.strengths[index[name]])
        rows.append(
            {
                "model": name,
                "strength": beta,
                "elo": elo(beta),
                "wins": won,
                "losses": lost,
                "ties": tied,
                "n_judgements": n,
                "win_rate": (won + tied / 2) / n,
                "win_rate_ci_low": low,
                "win_rate_ci_high": high,
            }
        )
    rows.sort(key=lambda row: (-row["strength"], row["model"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {
        "models": rows,
        "n_judgements": sum(g.wins_a + g.wins_b + g.ties for g in between),
        "same_model_judgements": same,
        "fit": {
            "method": "bradley_terry_mm",
            "iterations": fit.iterations,
            "converged": fit.converged,
            "regularised": fit.regularised,
            "reason": fit.reason,
        },
    }


def head_to_head(games: Sequence[Games]) -> list[dict]:
    """Each pair of distinct contestants once (names in sorted order), their games pooled."""
    pooled: dict[tuple[str, str], list[int]] = {}
    for g in games:
        if g.a == g.b:
            continue
        if g.a < g.b:
            key, won_first, won_second = (g.a, g.b), g.wins_a, g.wins_b
        else:
            key, won_first, won_second = (g.b, g.a), g.wins_b, g.wins_a
        cell = pooled.setdefault(key, [0, 0, 0])
        cell[0] += won_first
        cell[1] += won_second
        cell[2] += g.ties
    return [
        {"model_a": a, "model_b": b, "wins_a": wa, "wins_b": wb, "ties": t}
        for (a, b), (wa, wb, t) in sorted(pooled.items())
    ]


def win_rate(wins: int, losses: int, ties: int) -> dict:
    """One side's win rate against the other (ties half) with its Wilson 95 % interval: what a pairwise
    round gates on (the lower bound says how sure the win is)."""
    n = wins + losses + ties
    low, high = wilson_interval(wins + ties / 2, n)
    return {
        "wins": wins,
        "losses": losses,
        "ties": ties,
        "n_judgements": n,
        "win_rate": (wins + ties / 2) / n if n else None,
        "ci_low": low,
        "ci_high": high,
    }


def position_bias(first_won: int, decided: int) -> dict:
    """How often the response shown first won, among decided judgements; about 0.5 when order does not
    sway raters (the order is randomised per assignment, so this measures the raters, not the data)."""
    low, high = wilson_interval(first_won, decided)
    return {
        "decided": decided,
        "first_shown_won": first_won,
        "share": first_won / decided if decided else None,
        "ci_low": low,
        "ci_high": high,
    }


def choice_counts(choices: Mapping[str, int]) -> dict[str, int]:
    return {choice: int(choices.get(choice, 0)) for choice in CHOICES}


def implied_choices(order: Sequence[Hashable], pairs: Iterable[tuple[Hashable, Hashable]]) -> list[str]:
    """A ranking (best first) as the choice it implies for each (a, b) pair of its members."""
    place = {member: position for position, member in enumerate(order)}
    return ["a" if place[a] < place[b] else "b" for a, b in pairs]


def as_array(values: Iterable[float]) -> np.ndarray:
    return np.fromiter(values, dtype=float)
