"""Bradley–Terry strengths and Wilson intervals for a leaderboard of models from pairwise judgements.

The model: P(i beats j) = p_i / (p_i + p_j). Given W[i, j], the games i won against j (a tie counts
half a win to each side), the maximum-likelihood strengths solve, for every i,

    W_i = sum_j N_ij * p_i / (p_i + p_j)        (W_i = sum_j W[i, j], N_ij = W[i, j] + W[j, i])

Zermelo's iteration, which Hunter (2004, "MM algorithms for generalized Bradley-Terry models") showed to
be a minorise-maximise algorithm that increases the likelihood at every step, solves it:

    p_i <- W_i / sum_j N_ij / (p_i + p_j),   then rescale so that the geometric mean of p is 1.

The maximum exists and is unique exactly when the "i won a game against j" graph is strongly connected
(Zermelo 1929; Ford 1957): otherwise some group of models never lost to the rest and its strength grows
without bound. Then every model also plays two virtual games against a fixed anchor of strength 1, one
won and one lost (a weak prior, Whelan 2017), which keeps every estimate finite and pulls models that
played few games towards the middle; the fit says so (`regularised`). Strengths are reported on the log
scale (`beta_i = log p_i`, mean 0), where beta_i - beta_j is the log-odds that i beats j.

No Django: plain numpy, unit-tested in tests/review_math/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
# Elo's scale: 400 points are a factor of 10 in the odds, centred on 1000 (as Chatbot Arena shows it).
ELO_SCALE = 400 / math.log(10)
ELO_CENTRE = 1000.0


@dataclass(frozen=True)
class Fit:
    strengths: np.ndarray  # beta, log scale, mean 0
    iterations: int
    converged: bool
    regularised: bool
    reason: str | None  # why the prior was needed, when it was


def wins_matrix(n_models: int, games) -> np.ndarray:
    """W[i, j] from (i, j, wins of i, wins of j, ties) tuples, ties counting half to each side; the same
    pair may come more than once, in either order."""
    wins = np.zeros((n_models, n_models))
    for i, j, wins_i, wins_j, ties in games:
        if i == j:
            continue
        wins[i, j] += wins_i + ties / 2
        wins[j, i] += wins_j + ties / 2
    return wins


def _strongly_connected(beats: np.ndarray) -> bool:
    """Every model reaches every other along "won a game against" edges (and back)."""
    n = beats.shape[0]
    if n <= 1:
        return True
    for adjacency in (beats, beats.T):
        seen = np.zeros(n, dtype=bool)
        seen[0] = True
        frontier = [0]
        while frontier:
            nxt = np.flatnonzero(adjacency[frontier].any(axis=0) & ~seen)
            seen[nxt] = True
            frontier = nxt.tolist()
        if not seen.all():
            return False
    return True


def bradley_terry(wins: np.ndarray, *, max_iterations: int = 10_000, tolerance: float = 1e-10) -> Fit:
    """Strengths from W (n x n, W[i, j] = games i won against j, ties as halves), by Zermelo's iteration.

    Models with no games at all get strength 0 (the mean) and take no part in the fit.
    """
    wins = np.asarray(wins, dtype=float)
    n = wins.shape[0]
    if wins.shape != (n, n):
        raise ValueError(f"wins must be a square matrix, got shape {wins.shape}")
    if (wins < 0).any():
        raise ValueError("wins must not be negative")
    wins = wins.copy()
    np.fill_diagonal(wins, 0)
    games = wins + wins.T
    played = games.sum(axis=1) > 0
    beta = np.zeros(n)
    if played.sum() < 2:
        return Fit(beta, 0, True, False, None)
    w, g = wins[np.ix_(played, played)], games[np.ix_(played, played)]
    regularised = not _strongly_connected(w > 0)
    reason = (
        "some models never lost (or never won) against the rest, so the plain maximum-likelihood "
        "strengths are infinite; each model also played one virtual win and one virtual loss against "
        "an anchor of strength 1"
        if regularised
        else None
    )
    won = w.sum(axis=1)
    p = np.ones(len(won))
    converged, iteration = False, 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (the count is reported)
        denominator = (g / (p[:, None] + p[None, :])).sum(axis=1)
        if regularised:
            new = (won + 1) / (denominator + 2 / (p + 1))
        else:
            new = won / denominator
            new = new / np.exp(np.log(new).mean())
        change = np.max(np.abs(np.log(new) - np.log(p)))
        p = new
        if change < tolerance:
            converged = True
            break
    log_p = np.log(p)
    beta[played] = log_p - log_p.mean()
    return Fit(beta, iteration, converged, regularised, reason)


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson's score interval for a proportion; (None, None) with no trials. `successes` may be
    fractional (ties count half a win)."""
    if n <= 0:
        return None, None
    phat = successes / n
    denominator = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def elo(beta: float) -> float:
    """A strength on Elo's familiar scale (1000 at the mean, +400 for ten times the odds)."""
    return ELO_CENTRE + ELO_SCALE * beta
