"""Inter-rater agreement on one rubric dimension: Krippendorff's alpha, bootstrap interval, kappas, drift.

Input is long-format ratings `(unit_id, rater_id, value)`: a unit is a rated response, a value a number
(code nominal labels as integers). Every function also accepts the `RatingMatrix` that `ratings_pivot`
returns, so a caller computing several statistics pivots once. Outputs hold no NaN or inf: an undefined
statistic is None with a `reason`, and `as_dict()` gives plain JSON types.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import krippendorff
import numpy as np

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")
Rating = tuple[Hashable, Hashable, float]

DEFAULT_BOOTSTRAP = 1000
# Bounds the (bootstrap samples x value patterns) weight block held at once.
_BOOTSTRAP_BLOCK = 4_000_000


def _plain(value):
    """A JSON-safe Python value: numpy scalars unwrapped, NaN and inf turned into None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class _AsDict:
    def as_dict(self) -> dict:
        return {field.name: _plain(getattr(self, field.name)) for field in fields(self)}


@dataclass(frozen=True, eq=False)
class RatingMatrix:
    """Raters x units values, NaN where a rater did not rate a unit; rows and columns in sorted id order."""

    raters: tuple
    units: tuple
    values: np.ndarray

    @property
    def n_ratings(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))


@dataclass(frozen=True)
class DimensionAgreement(_AsDict):
    """Krippendorff's alpha of one dimension with its bootstrap 95 % interval and raw pairwise agreement."""

    level: str
    alpha: float | None
    reason: str | None
    alpha_ci_low: float | None
    alpha_ci_high: float | None
    ci_reason: str | None
    bootstrap_samples: int
    bootstrap_defined: int
    n_units: int
    n_units_unpairable: int
    n_raters: int
    n_ratings: int
    percent_agreement: float | None


@dataclass(frozen=True)
class PairKappa(_AsDict):
    """Cohen's kappa of two raters on the units both rated; None with a reason when skipped or undefined."""

    rater_a: Hashable
    rater_b: Hashable
    n_common: int
    kappa: float | None
    reason: str | None


@dataclass(frozen=True)
class FleissKappa(_AsDict):
    kappa: float | None
    reason: str | None
    n_units: int
    raters_per_unit: int | None


@dataclass(frozen=True)
class RaterDeviation(_AsDict):
    """How one rater departs from the others on shared units.

    `mean_deviation` is the mean of (this rater's value - mean of the other raters' values) over units
    with at least one other rater: positive means lenient, negative harsh. None on nominal data, where
    only `disagreement_share` (share of pairs with another rater that differ) means anything.
    """

    rater: Hashable
    n_units: int
    mean_deviation: float | None
    mean_abs_deviation: float | None
    disagreement_share: float | None


def _sorted_ids(ids: Iterable[Hashable]) -> list:
    unique = set(ids)
    try:
        return sorted(unique)
    except TypeError:
        # Mixed id types (say 3 and "3") do not compare; order by type, then text, still deterministically.
        return sorted(unique, key=lambda item: (type(item).__name__, repr(item)))


def _id_index(ids: Sequence[Hashable]) -> tuple[list, np.ndarray]:
    """The sorted distinct ids and each id's position among them."""
    # All-int or all-str ids (the usual primary keys) sort in numpy; anything else goes through a dict.
    # Mixed kinds must not reach numpy, which would turn 1 into "1" beside a string id.
    if set(map(type, ids)) in ({int}, {str}):
        as_array = np.asarray(ids)
        if as_array.dtype.kind in "iuU":
            distinct, index = np.unique(as_array, return_inverse=True)
            return distinct.tolist(), index.astype(np.int64)
    distinct = _sorted_ids(ids)
    position = {item: index for index, item in enumerate(distinct)}
    return distinct, np.fromiter((position[item] for item in ids), dtype=np.int64, count=len(ids))


def ratings_pivot(ratings: Iterable[Rating]) -> RatingMatrix:
    """Long-format ratings to a raters x units matrix with NaN for missing.

    Raises ValueError on a malformed rating, a value that is not a finite number, or a rater rating the
    same unit twice (which rating should count is the caller's decision).
    """
    rows = list(ratings)
    # Checks run per distinct type and length, not per row: an ABC isinstance per row would double the cost.
    for kind in set(map(type, rows)):
        if not issubclass(kind, Sequence) or issubclass(kind, str | bytes):
            bad = next(row for row in rows if type(row) is kind)
            raise ValueError(f"a rating is (unit_id, rater_id, value), got {bad!r}")
    if set(map(len, rows)) - {3}:
        bad = next(row for row in rows if len(row) != 3)
        raise ValueError(f"a rating is (unit_id, rater_id, value), got {bad!r}")
    if not rows:
        return RatingMatrix(raters=(), units=(), values=np.empty((0, 0)))
    unit_ids, rater_ids, raw_values = zip(*rows, strict=True)
    for kind in {type(value) for value in raw_values}:
        if not issubclass(kind, numbers.Real) or issubclass(kind, bool | np.bool_):
            bad = next(row for row in rows if type(row[2]) is kind)
            raise ValueError(f"rating value must be a number, got {bad!r}")
    values = np.fromiter(raw_values, dtype=float, count=len(rows))
    if not np.isfinite(values).all():
        bad = rows[int(np.flatnonzero(~np.isfinite(values))[0])]
        raise ValueError(f"rating value must be finite, got {bad!r}")
    units, columns = _id_index(unit_ids)
    raters, lines = _id_index(rater_ids)
    cells = lines * len(units) + columns
    unique_cells, first, seen = np.unique(cells, return_index=True, return_counts=True)
    if unique_cells.size != cells.size:
        cell = unique_cells[np.flatnonzero(seen > 1)[0]]
        unit, rater = units[int(cell % len(units))], raters[int(cell // len(units))]
        raise ValueError(f"rater {rater!r} rated unit {unit!r} more than once")
    matrix = np.full((len(raters), len(units)), np.nan)
    matrix[lines, columns] = values
    return RatingMatrix(raters=tuple(raters), units=tuple(units), values=matrix)


def _as_matrix(ratings: Iterable[Rating] | RatingMatrix) -> RatingMatrix:
    return ratings if isinstance(ratings, RatingMatrix) else ratings_pivot(ratings)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")


def _domain(matrix: RatingMatrix, value_domain: Sequence[float] | None) -> np.ndarray:
    observed = np.unique(matrix.values[~np.isnan(matrix.values)])
    if value_domain is None:
        return observed
    domain = np.unique(np.asarray(value_domain, dtype=float))
    outside = observed[~np.isin(observed, domain)]
    if outside.size:
        raise ValueError(f"value {outside[0]:g} is outside the value domain")
    return domain


def _codes(matrix: RatingMatrix, domain: np.ndarray) -> np.ndarray:
    """Index of each value in the domain, -1 where missing."""
    codes = np.full(matrix.values.shape, -1, dtype=np.int64)
    present = ~np.isnan(matrix.values)
    codes[present] = np.searchsorted(domain, matrix.values[present])
    return codes


def _unit_counts(codes: np.ndarray, n_values: int) -> np.ndarray:
    """units x values: how many raters gave each value to each unit."""
    n_units = codes.shape[1]
    present = codes >= 0
    unit_of = np.broadcast_to(np.arange(n_units), codes.shape)[present]
    flat = np.bincount(unit_of * n_values + codes[present], minlength=n_units * n_values)
    return flat.reshape(n_units, n_values)


def _distances(level: str, domain: np.ndarray, n_v: np.ndarray) -> np.ndarray:
    """Krippendorff's squared distances between domain values; `n_v` (samples x values) matters for ordinal.

    Returns samples x values x values.
    """
    samples, size = n_v.shape
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(size), (samples, size, size))
    if level == "interval":
        return np.broadcast_to((domain[:, None] - domain[None, :]) ** 2, (samples, size, size))
    if level == "ratio":
        total = domain[:, None] + domain[None, :]
        diff = domain[:, None] - domain[None, :]
        ratio = np.divide(diff, total, out=np.zeros_like(diff), where=total != 0)
        return np.broadcast_to(ratio**2, (samples, size, size))
    # Ordinal: the values between two ranks, counting each end as half, squared.
    before = np.concatenate([np.zeros((samples, 1)), np.cumsum(n_v, axis=1)], axis=1)
    low = np.minimum.outer(np.arange(size), np.arange(size))
    high = np.maximum.outer(np.arange(size), np.arange(size))
    between = before[:, high + 1] - before[:, low]
    return (between - (n_v[:, :, None] + n_v[:, None, :]) / 2) ** 2


def _alpha_from_patterns(
    level: str, domain: np.ndarray, patterns: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Krippendorff's alpha per row of `weights` (samples x patterns): how often each unit pattern occurs.

    A pattern is one pairable unit's value counts; a bootstrap sample of units is fully described by how
    many times it drew each pattern, so the work is per pattern, not per unit. NaN where undefined.
    """
    counts = patterns.astype(float)
    per_unit = counts.sum(axis=1)
    size = counts.shape[1]
    n_v = weights @ counts
    # Coincidences o = sum over units of (c c^T - diag c) / (m - 1), built a block of patterns at a time.
    coincidences = np.zeros((weights.shape[0], size * size))
    block = max(1, _BOOTSTRAP_BLOCK // max(1, size * size))
    for start in range(0, counts.shape[0], block):
        part = counts[start : start + block]
        outer = part[:, :, None] * part[:, None, :]
        outer[:, np.arange(size), np.arange(size)] -= part
        outer /= (per_unit[start : start + block] - 1)[:, None, None]
        coincidences += weights[:, start : start + block] @ outer.reshape(len(part), size * size)
    coincidences = coincidences.reshape(-1, size, size)
    distances = _distances(level, domain, n_v)
    observed = (coincidences * distances).sum(axis=(1, 2))
    total = n_v.sum(axis=1)
    expected = np.einsum("si,sj,sij->s", n_v, n_v, distances) / (total - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1.0 - observed / expected, np.nan)


def _patterns(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of `counts` and how often each occurs."""
    base = int(counts.max()) + 1
    if counts.shape[1] * math.log2(base) < 62:
        # One integer per row (the counts as digits in `base`): a 1-D unique is far faster than axis=0.
        keys = counts @ (base ** np.arange(counts.shape[1], dtype=np.int64))
        _, first, frequency = np.unique(keys, return_index=True, return_counts=True)
        return counts[first], frequency
    return np.unique(counts, axis=0, return_counts=True)


def _bootstrap_alpha(
    level: str, domain: np.ndarray, counts: np.ndarray, samples: int, seed: int
) -> np.ndarray:
    """Alpha of `samples` resamples of the pairable units, drawn with replacement; NaN where undefined.

    Drawing n units uniformly with replacement and counting each pattern is a multinomial draw over the
    patterns with their observed frequencies, so the resample is exact without materialising unit indices.
    """
    patterns, frequency = _patterns(counts)
    n_units = counts.shape[0]
    rng = np.random.default_rng(seed)
    # Keeps the samples x patterns weight block bounded when almost every unit is its own pattern.
    per_block = max(1, _BOOTSTRAP_BLOCK // len(patterns))
    alphas = []
    for start in range(0, samples, per_block):
        draws = rng.multinomial(n_units, frequency / n_units, size=min(per_block, samples - start))
        alphas.append(_alpha_from_patterns(level, domain, patterns, draws.astype(float)))
    return np.concatenate(alphas)


def _undefined_reason(counts: np.ndarray) -> str | None:
    if counts.shape[0] < 2:
        return f"fewer than 2 units rated by 2 or more raters ({counts.shape[0]})"
    if np.count_nonzero(counts.sum(axis=0)) < 2:
        return "every pairable rating has the same value, so there is no variation to agree on"
    return None


def dimension_agreement(
    ratings: Iterable[Rating] | RatingMatrix,
    level: Level,
    value_domain: Sequence[float] | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> DimensionAgreement:
    """Krippendorff's alpha at `level`, a percentile bootstrap 95 % interval over units, percent agreement.

    Only pairable units (rated by 2 or more raters) enter; the others are counted in `n_units_unpairable`.
    `value_domain` is the full scale (say 1..5); by default the values observed. The bootstrap resamples
    pairable units with replacement (`seed` makes it repeatable); resamples where alpha is undefined are
    left out and `bootstrap_defined` says how many remained. `percent_agreement` is the share in [0, 1]
    (not x100) of rater pairs within a unit that gave the same value, pooled over pairable units.
    """
    _check_level(level)
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 or more, got {bootstrap}")
    matrix = _as_matrix(ratings)
    domain = _domain(matrix, value_domain)
    counts = _unit_counts(_codes(matrix, domain), len(domain))
    per_unit = counts.sum(axis=1)
    pairable = counts[per_unit >= 2]
    n_pairable = int(pairable.shape[0])

    pairs = (per_unit[per_unit >= 2] * (per_unit[per_unit >= 2] - 1)).sum() / 2
    agreeing = (pairable * (pairable - 1)).sum() / 2
    percent = float(agreeing / pairs) if pairs else None

    alpha: float | None = None
    reason = _undefined_reason(pairable)
    if reason is None:
        alpha = float(
            krippendorff.alpha(value_counts=pairable, value_domain=domain, level_of_measurement=level)
        )
        if not math.isfinite(alpha):
            alpha, reason = None, "the expected disagreement is zero at this level of measurement"

    low = high = None
    defined = 0
    if alpha is None:
        ci_reason = "alpha is undefined"
    elif bootstrap == 0:
        ci_reason = "bootstrap is off"
    else:
        alphas = _bootstrap_alpha(level, domain, pairable, bootstrap, seed)
        alphas = alphas[np.isfinite(alphas)]
        defined = int(alphas.size)
        if defined:
            low, high = (float(bound) for bound in np.quantile(alphas, [0.025, 0.975]))
            ci_reason = None
        else:
            ci_reason = "alpha is undefined in every bootstrap resample"

    return DimensionAgreement(
        level=level,
        alpha=alpha,
        reason=reason,
        alpha_ci_low=low,
        alpha_ci_high=high,
        ci_reason=ci_reason,
        bootstrap_samples=bootstrap,
        bootstrap_defined=defined,
        n_units=n_pairable,
        n_units_unpairable=int(np.count_nonzero(per_unit == 1)),
        n_raters=len(matrix.raters),
        n_ratings=matrix.n_ratings,
        percent_agreement=percent,
    )


def rater_pairwise_kappa(
    ratings: Iterable[Rating] | RatingMatrix,
    level: Level,
    value_domain: Sequence[float] | None = None,
    weights: Literal["linear", "quadratic"] = "quadratic",
) -> list[PairKappa]:
    """Cohen's kappa for every two raters on their common units, in rater order.

    Nominal data get the unweighted kappa; the other levels a weighted kappa with `weights` over value
    differences (on an evenly spaced scale such as 1..5 this is the textbook kappa over category positions).
    A pair with fewer than 2 common units is listed with kappa None and the reason.
    """
    _check_level(level)
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic', got {weights!r}")
    matrix = _as_matrix(ratings)
    domain = _domain(matrix, value_domain)
    codes = _codes(matrix, domain)
    size = len(domain)
    if level == "nominal":
        disagreement = 1.0 - np.eye(size)
    else:
        gap = np.abs(domain[:, None] - domain[None, :])
        disagreement = gap if weights == "linear" else gap**2

    results = []
    for a in range(len(matrix.raters)):
        for b in range(a + 1, len(matrix.raters)):
            common = (codes[a] >= 0) & (codes[b] >= 0)
            n_common = int(np.count_nonzero(common))
            kappa, reason = None, None
            if n_common < 2:
                reason = f"fewer than 2 common units ({n_common})"
            else:
                table = np.bincount(codes[a, common] * size + codes[b, common], minlength=size * size)
                observed = table.reshape(size, size) / n_common
                expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
                chance = float((disagreement * expected).sum())
                if chance <= 0:
                    reason = "no disagreement is expected by chance: both raters used one and the same value"
                else:
                    kappa = 1.0 - float((disagreement * observed).sum()) / chance
            results.append(PairKappa(matrix.raters[a], matrix.raters[b], n_common, kappa, reason))
    return results


def fleiss_kappa(
    ratings: Iterable[Rating] | RatingMatrix, value_domain: Sequence[float] | None = None
) -> FleissKappa:
    """Fleiss' kappa (nominal) over the pairable units, when every one of them has the same number of ratings.

    Units with a single rating are left out, as for alpha; unequal numbers of ratings give None and a reason.
    """
    matrix = _as_matrix(ratings)
    domain = _domain(matrix, value_domain)
    counts = _unit_counts(_codes(matrix, domain), len(domain))
    per_unit = counts.sum(axis=1)
    counts = counts[per_unit >= 2]
    per_unit = per_unit[per_unit >= 2]
    n_units = int(counts.shape[0])
    if n_units == 0:
        return FleissKappa(None, "no unit is rated by 2 or more raters", 0, None)
    if per_unit.min() != per_unit.max():
        reason = (
            f"units have {per_unit.min()} to {per_unit.max()} ratings; "
            "Fleiss' kappa needs the same number on every unit"
        )
        return FleissKappa(None, reason, n_units, None)
    raters = int(per_unit[0])
    unit_agreement = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = counts.sum(axis=0) / (n_units * raters)
    chance = float((shares**2).sum())
    if chance >= 1.0:
        return FleissKappa(None, "every rating has the same value", n_units, raters)
    kappa = (float(unit_agreement.mean()) - chance) / (1.0 - chance)
    return FleissKappa(kappa, None, n_units, raters)


def rater_deviations(ratings: Iterable[Rating] | RatingMatrix, level: Level) -> list[RaterDeviation]:
    """Each rater's departure from the mean of the other raters on the same units, in rater order.

    Sort by `mean_abs_deviation` (or `disagreement_share` on nominal data) to find who needs retraining.
    """
    _check_level(level)
    matrix = _as_matrix(ratings)
    present = ~np.isnan(matrix.values)
    rater_index, unit_index = np.nonzero(present)
    return _deviations(unit_index, rater_index, matrix.values[present], list(matrix.raters), level)


def rater_deviations_long(
    units: np.ndarray, raters: np.ndarray, values: np.ndarray, level: Level
) -> list[RaterDeviation]:
    """`rater_deviations` from three aligned arrays, one element per rating, raters in sorted id order.

    No raters x units matrix is built, so a project's thousand raters over a million responses cost
    memory in proportion to the ratings, not to their product.
    """
    _check_level(level)
    if len(values) == 0:
        return []
    rater_ids, rater_index = np.unique(np.asarray(raters), return_inverse=True)
    _unit_ids, unit_index = np.unique(np.asarray(units), return_inverse=True)
    return _deviations(unit_index, rater_index, np.asarray(values, dtype=float), rater_ids.tolist(), level)


def _deviations(
    unit_index: np.ndarray, rater_index: np.ndarray, values: np.ndarray, raters: list, level: str
) -> list[RaterDeviation]:
    """The deviations of ratings given as (unit position, rater position, value), one per rating."""
    n_raters = len(raters)
    if len(values) == 0:
        return [RaterDeviation(rater, 0, None, None, None) for rater in raters]
    per_unit = np.bincount(unit_index)[unit_index]
    sum_per_unit = np.bincount(unit_index, weights=values)[unit_index]
    shared = per_unit >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        others_mean = (sum_per_unit - values) / (per_unit - 1)
    deviation = np.where(shared, values - others_mean, 0.0)
    # Others on a unit who gave this rater's value: that (unit, value)'s count minus the rater itself.
    _domain_values, codes = np.unique(values, return_inverse=True)
    key = unit_index.astype(np.int64) * (int(codes.max()) + 1) + codes
    _keys, key_index, key_counts = np.unique(key, return_inverse=True, return_counts=True)
    same = np.where(shared, key_counts[key_index] - 1, 0)
    other_pairs = np.where(shared, per_unit - 1, 0)

    def per_rater(weights: np.ndarray) -> np.ndarray:
        return np.bincount(rater_index, weights=weights, minlength=n_raters)

    n_units, pairs, agreeing = per_rater(shared), per_rater(other_pairs), per_rater(same)
    deviation_sum, absolute_sum = per_rater(deviation), per_rater(np.abs(deviation))
    results = []
    for index, rater in enumerate(raters):
        units = int(n_units[index])
        mean = absolute = share = None
        if units:
            share = 1.0 - float(agreeing[index]) / float(pairs[index])
            if level != "nominal":
                mean = float(deviation_sum[index]) / units
                absolute = float(absolute_sum[index]) / units
        results.append(RaterDeviation(rater, units, mean, absolute, share))
    return results
