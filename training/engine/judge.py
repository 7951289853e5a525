"""A model judge's arithmetic (G-Eval): scores and picks from the next token's probabilities, no text parsed.

For a rubric dimension on a scale lo..hi the judge is asked "Score for <label> (lo-hi):" and its
next-token probabilities over the labels "lo".."hi" are read. Renormalised over those labels, the score
is their expected value Σ p(k)·k and the confidence the largest of them. A label the model (or a
server's top-logprobs list) gives no probability counts as 0; when none of them has any, there is no
judgement and the reason says so. For a compare pair the judge is asked for "A" or "B" twice, the
second time with the responses swapped; the probability that the pair's first response is better is
the mean of the two orders, which cancels a preference for a position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

PICK_LABELS = ("A", "B")
# A pick this close to even is a tie: the model cannot tell the two apart.
TIE_MARGIN = 0.05


def scale_labels(scale_min: int, scale_max: int) -> list[str]:
    return [str(k) for k in range(scale_min, scale_max + 1)]


def _renormalised(log_probs: Sequence[float]) -> tuple[list[float], float]:
    probs = [math.exp(lp) if math.isfinite(lp) else 0.0 for lp in log_probs]
    mass = math.fsum(probs)
    return ([p / mass for p in probs] if mass > 0 else probs), mass


@dataclass(frozen=True)
class ScaleJudgement:
    """One dimension's judgement: the expected score, the confidence (the largest renormalised
    probability), the renormalised probability of each label, and the labels' probability before
    renormalising (`mass`: how much of the model's belief the scale held). `error` when undefined."""

    score: float | None
    confidence: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    mass: float = 0.0
    error: str = ""


def scale_judgement(log_probs: Sequence[float], scale_min: int, scale_max: int) -> ScaleJudgement:
    """The judgement from log p of each label scale_min..scale_max (in that order; -inf: absent)."""
    labels = scale_labels(scale_min, scale_max)
    if len(log_probs) != len(labels):
        raise ValueError(f"{len(log_probs)} log-probabilities for the {len(labels)} labels {labels}")
    probs, mass = _renormalised(log_probs)
    if mass <= 0:
        return ScaleJudgement(
            None, None, error=f"none of the score tokens {labels[0]}..{labels[-1]} has any probability"
        )
    score = math.fsum(p * k for p, k in zip(probs, range(scale_min, scale_max + 1), strict=True))
    return ScaleJudgement(
        score=min(float(scale_max), max(float(scale_min), score)),
        confidence=max(probs),
        probabilities=dict(zip(labels, probs, strict=True)),
        mass=mass,
    )


@dataclass(frozen=True)
class PickJudgement:
    """A compare pair's judgement: `p_first` the probability that the pair's first response is the
    better (mean of both orders), the choice ("a", "b" or "tie" within TIE_MARGIN of even), the
    confidence max(p, 1-p), and `position_bias`: how much more the judge gave to whichever response
    was shown first (mean P(first shown) − 0.5)."""

    p_first: float | None
    choice: str = ""
    confidence: float | None = None
    position_bias: float | None = None
    error: str = ""


def pick_judgement(shown_in_order: Sequence[float], shown_swapped: Sequence[float]) -> PickJudgement:
    """From log p("A"), log p("B") with the pair's first response shown as A, then shown as B."""
    (a1, b1), mass1 = _renormalised(shown_in_order)
    (a2, b2), mass2 = _renormalised(shown_swapped)
    if mass1 <= 0 or mass2 <= 0:
        return PickJudgement(None, error="neither A nor B has any probability as the next token")
    p_first = (a1 + b2) / 2
    choice = "tie" if abs(p_first - 0.5) <= TIE_MARGIN else ("a" if p_first > 0.5 else "b")
    return PickJudgement(
        p_first=p_first,
        choice=choice,
        confidence=max(p_first, 1 - p_first),
        position_bias=(a1 + a2) / 2 - 0.5,
    )
