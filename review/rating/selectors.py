"""Reads of rubric scoring: agreement reports, score comparisons, rating exports, one response's scores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import QuerySet

from annotation.models import Project, Role
from annotation.selectors import project_visible_to, user_roles
from core.errors import NotFound
from review.math.agreement import (
    RatingMatrix,
    dimension_agreement,
    fleiss_kappa,
    rater_deviations,
    rater_deviations_long,
    rater_pairwise_kappa,
)
from review.math.scoring import INTEGER_LEVELS, Dimension, response_score_aggregate
from review.models import Rating, Response, Rubric, RubricDimension
from review.rating.services import default_rubric_specs


@dataclass(frozen=True)
class RatingFilters:
    """Which ratings a report covers; empty means no restriction."""

    since: datetime | None = None
    until: datetime | None = None
    origins: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    raters: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "origin": list(self.origins),
            "model": list(self.models),
            "rater": list(self.raters),
        }


@dataclass
class DimensionView:
    key: str
    label: str
    label_zh: str
    description: str
    weight: float
    scale_min: int
    scale_max: int
    level: str
    compatible_rubrics: set[int] = field(default_factory=set)

    def scoring(self) -> Dimension:
        return Dimension(self.key, self.weight, self.scale_min, self.scale_max, self.level)

    def values(self) -> list[int]:
        return list(range(self.scale_min, self.scale_max + 1))


def rubric_current_read(*, project: Project) -> tuple[Rubric | None, list[DimensionView]]:
    """The current rubric version and its dimensions, without writing: the default when none is stored.

    Each dimension lists the rubric versions whose dimension of the same key has the same scale and level,
    so agreement pools ratings across versions that only changed weights or labels.
    """
    rubrics = list(Rubric.objects.filter(project=project).order_by("-version"))
    if not rubrics:
        return None, [
            DimensionView(
                s.key, s.label, s.label_zh, s.description, s.weight, s.scale_min, s.scale_max, s.level
            )
            for s in default_rubric_specs()
        ]
    current = rubrics[0]
    dimensions = [
        DimensionView(d.key, d.label, d.label_zh, d.description, d.weight, d.scale_min, d.scale_max, d.level)
        for d in RubricDimension.objects.filter(rubric=current).order_by("position", "pk")
    ]
    by_key = {d.key: d for d in dimensions}
    for rubric_id, key, low, high, level in RubricDimension.objects.filter(
        rubric__project=project
    ).values_list("rubric_id", "key", "scale_min", "scale_max", "level"):
        view = by_key.get(key)
        if view is not None and (view.scale_min, view.scale_max, view.level) == (low, high, level):
            view.compatible_rubrics.add(rubric_id)
    return current, dimensions


def response_get_for_user(*, user: AbstractBaseUser, response_id: int) -> Response:
    response = Response.objects.select_related("project", "model_version").filter(pk=response_id).first()
    if response is None or not project_visible_to(user=user, project_id=response.project_id):
        raise NotFound("Response not found.")
    return response


def response_view(*, response: Response, user: AbstractBaseUser) -> dict:
    """One response as `user` may see it: blind raters see neither origin, model nor others' scores."""
    rubric, dimensions = rubric_current_read(project=response.project)
    blind = rubric.blind if rubric else True
    is_admin = Role.ADMIN in user_roles(user=user, project=response.project)
    ratings = list(response.ratings.select_related("rater", "rubric").order_by("created_at", "pk"))
    mine = next((r for r in ratings if r.rater_id == user.pk), None)
    data = {
        "id": response.pk,
        "project": response.project_id,
        "input": response.input,
        "text": response.text,
        "created_at": response.created_at,
        "closed_at": response.closed_at,  # no more ratings once its evaluation round has ended
        "blind": blind and not is_admin,
        "my_rating": _rating_dict(mine) if mine else None,
    }
    if is_admin or not blind:
        data.update(
            origin=response.origin,
            model=response.model,
            model_version=response.model_version_id,
            item=response.item_id,
            ratings=[_rating_dict(r) for r in ratings],
            score=_response_score(dimensions, ratings),
        )
    return data


def _rating_dict(rating: Rating) -> dict:
    return {
        "id": rating.pk,
        "response": rating.response_id,
        "rater": rating.rater.username,
        "rubric_version": rating.rubric.version,
        "scores": rating.scores,
        "weighted_score": rating.weighted_score,
        "created_at": rating.created_at.isoformat(),
    }


def _response_score(dimensions: list[DimensionView], ratings: list[Rating]) -> dict:
    """Mean weighted score (each rating's own, on its version) and per-dimension means on current keys."""
    weighted = [r.weighted_score for r in ratings]
    means = {}
    for d in dimensions:
        values = [
            r.scores[d.key] for r in ratings if d.key in r.scores and r.rubric_id in d.compatible_rubrics
        ]
        means[d.key] = sum(values) / len(values) if values else None
    return {
        "n_ratings": len(ratings),
        "weighted_score_mean": sum(weighted) / len(weighted) if weighted else None,
        "dimension_means": means,
    }


def response_score(*, dimensions: list[Dimension], ratings: list[dict]) -> dict:
    """Aggregate of scores all given on one rubric version (a thin use of the pure function)."""
    return response_score_aggregate(dimensions, ratings).as_dict()


# --- long-format ratings out of PostgreSQL -----------------------------------------------------------------


def _where(project: Project, filters: RatingFilters) -> tuple[str, list]:
    clauses, params = ["r.project_id = %s"], [project.pk]
    if filters.since:
        clauses.append("r.created_at >= %s")
        params.append(filters.since)
    if filters.until:
        clauses.append("r.created_at < %s")
        params.append(filters.until)
    if filters.origins:
        clauses.append("p.origin = ANY(%s)")
        params.append(list(filters.origins))
    if filters.models:
        clauses.append("p.model = ANY(%s)")
        params.append(list(filters.models))
    if filters.raters:
        clauses.append("r.rater_id = ANY(%s)")
        params.append(list(filters.raters))
    return " AND ".join(clauses), params


def _ratings_array(project: Project, filters: RatingFilters, keys: list[str]) -> np.ndarray:
    """Columns (response_id, rater_id, rubric_id, score per key...) as floats, NaN where a key is absent.

    PostgreSQL packs each column into one big-endian binary string (`float8send` per row), which numpy
    reads without a Python object per value. Aggregates of one query level are fed the same rows in the
    same order (partial aggregates are combined per row of all columns), so the columns stay aligned.
    """
    where, params = _where(project, filters)
    join = (
        f"JOIN {Response._meta.db_table} p ON p.id = r.response_id"
        if (filters.origins or filters.models)
        else ""
    )
    columns = ["r.response_id::float8", "r.rater_id::float8", "r.rubric_id::float8"] + [
        "coalesce((r.scores ->> %s)::float8, 'NaN')" for _ in keys
    ]
    packed = ", ".join(f"string_agg(float8send({column}), '')" for column in columns)
    sql = f"SELECT count(*), {packed} FROM {Rating._meta.db_table} r {join} WHERE {where}"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(keys) + params)
        count, *blobs = cursor.fetchone()
    if not count:
        return np.empty((0, 3 + len(keys)))
    return np.column_stack([np.frombuffer(bytes(blob), dtype=">f8").astype(float) for blob in blobs])


def _matrix(units: np.ndarray, raters: np.ndarray, values: np.ndarray) -> RatingMatrix:
    unit_ids, columns = np.unique(units.astype(np.int64), return_inverse=True)
    rater_ids, lines = np.unique(raters.astype(np.int64), return_inverse=True)
    matrix = np.full((len(rater_ids), len(unit_ids)), np.nan)
    matrix[lines, columns] = values
    return RatingMatrix(raters=tuple(rater_ids.tolist()), units=tuple(unit_ids.tolist()), values=matrix)


def agreement_report(
    *, project: Project, filters: RatingFilters = RatingFilters(), bootstrap: int = 1000, seed: int = 0
) -> dict:
    """Per dimension: Krippendorff's alpha at its level with a bootstrap 95 % interval, units, raters,
    percent agreement, pairwise weighted kappa, Fleiss' kappa, each rater's deviation, the score
    distribution. Ratings from rubric versions whose dimension has another scale or level are left out
    of that dimension. Undefined figures are None with a reason: the result is plain JSON."""
    rubric, dimensions = rubric_current_read(project=project)
    keys = [d.key for d in dimensions]
    rows = _ratings_array(project, filters, keys)
    rater_ids = set(np.unique(rows[:, 1]).astype(int).tolist()) if len(rows) else set()
    names = dict(get_user_model().objects.filter(pk__in=rater_ids).values_list("pk", "username"))

    def name(rater_id) -> str:
        return names.get(rater_id, str(rater_id))

    report_dimensions = []
    for position, d in enumerate(dimensions):
        values = rows[:, 3 + position]
        mask = ~np.isnan(values) & np.isin(rows[:, 2], list(d.compatible_rubrics))
        matrix = _matrix(rows[mask, 0], rows[mask, 1], values[mask])
        domain = d.values() if d.level in INTEGER_LEVELS else None
        agreement = dimension_agreement(matrix, d.level, value_domain=domain, bootstrap=bootstrap, seed=seed)
        kappas = rater_pairwise_kappa(matrix, d.level, value_domain=domain)
        fleiss = fleiss_kappa(matrix, value_domain=domain)
        deviations = rater_deviations(matrix, d.level)
        scored, counts = np.unique(values[mask], return_counts=True)
        distribution = {
            str(int(v) if float(v).is_integer() else v): int(c) for v, c in zip(scored, counts, strict=True)
        }
        if domain:
            distribution = {str(v): distribution.get(str(v), 0) for v in domain} | distribution
        report_dimensions.append(
            {
                "key": d.key,
                "label": d.label,
                "label_zh": d.label_zh,
                "level": d.level,
                "weight": d.weight,
                "scale_min": d.scale_min,
                "scale_max": d.scale_max,
                **agreement.as_dict(),
                "pairwise_kappa": [
                    {**k.as_dict(), "rater_a": name(k.rater_a), "rater_b": name(k.rater_b)} for k in kappas
                ],
                "fleiss_kappa": fleiss.as_dict(),
                "rater_deviations": [{**r.as_dict(), "rater": name(r.rater)} for r in deviations],
                "distribution": distribution,
            }
        )
    return {
        "project": project.pk,
        "rubric_version": rubric.version if rubric else None,
        "filters": filters.as_dict(),
        "n_ratings": int(len(rows)),
        "n_responses": int(len(np.unique(rows[:, 0]))) if len(rows) else 0,
        "raters": sorted(name(r) for r in rater_ids),
        "bootstrap_samples": bootstrap,
        "dimensions": report_dimensions,
    }


def rater_deviation_summary(*, project: Project, filters: RatingFilters = RatingFilters()) -> dict[int, dict]:
    """Per rater id: how far their scores sit from the other raters' on the same responses, as the
    agreement report's `rater_deviations`, for every rater at once in memory proportional to the ratings.

    `dimensions` has each dimension's figures; `mean_abs_deviation` pools the non-nominal dimensions
    (weighted by shared units), `disagreement_share` every dimension, `n_units` is the most responses
    they shared with another rater on any dimension.
    """
    _rubric, dimensions = rubric_current_read(project=project)
    keys = [d.key for d in dimensions]
    if connection.vendor == "postgresql":
        rows = _ratings_array(project, filters, keys)
    else:  # the embedded database: the same columns through the ORM
        ratings = Rating.objects.filter(project=project)
        if filters.since:
            ratings = ratings.filter(created_at__gte=filters.since)
        if filters.until:
            ratings = ratings.filter(created_at__lt=filters.until)
        rows = np.array(
            [
                [r, u, b] + [float(s[k]) if k in s else np.nan for k in keys]
                for r, u, b, s in ratings.values_list("response_id", "rater_id", "rubric_id", "scores")
            ],
            dtype=float,
        ).reshape(-1, 3 + len(keys))
    summary: dict[int, dict] = {}
    for position, d in enumerate(dimensions):
        values = rows[:, 3 + position]
        mask = ~np.isnan(values) & np.isin(rows[:, 2], list(d.compatible_rubrics))
        deviations = rater_deviations_long(
            rows[mask, 0], rows[mask, 1].astype(np.int64), values[mask], d.level
        )
        for deviation in deviations:
            entry = summary.setdefault(int(deviation.rater), {"dimensions": {}})
            entry["dimensions"][d.key] = {**deviation.as_dict(), "rater": int(deviation.rater)}
    for entry in summary.values():
        figures = entry["dimensions"].values()
        ordered = [f for f in figures if f["mean_abs_deviation"] is not None]
        shares = [f for f in figures if f["disagreement_share"] is not None]
        units = sum(f["n_units"] for f in ordered)
        entry["n_units"] = max((f["n_units"] for f in figures), default=0)
        entry["mean_abs_deviation"] = (
            sum(f["mean_abs_deviation"] * f["n_units"] for f in ordered) / units if units else None
        )
        entry["disagreement_share"] = (
            sum(f["disagreement_share"] for f in shares) / len(shares) if shares else None
        )
    return summary


def score_comparison(
    *, project: Project, filters: RatingFilters = RatingFilters(), by: str = "model"
) -> list[dict]:
    """Mean weighted score per origin (by="origin") or per origin and model (by="model").

    Each response counts once: its score is the mean over its raters, then groups average responses. The
    95 % interval is the normal one over response means (None below 2 responses).
    """
    _rubric, dimensions = rubric_current_read(project=project)
    keys = [d.key for d in dimensions]
    where, params = _where(project, filters)
    model = "p.model" if by == "model" else "''::text"
    inner = "".join(f", avg((r.scores ->> %s)::float8) AS d{i}" for i in range(len(keys)))
    outer = "".join(f", avg(d{i})" for i in range(len(keys)))
    sql = (
        f"WITH per_response AS (SELECT r.response_id, p.origin AS origin, {model} AS model,"
        f" avg(r.weighted_score) AS score{inner}"
        f" FROM {Rating._meta.db_table} r JOIN {Response._meta.db_table} p ON p.id = r.response_id"
        f" WHERE {where} GROUP BY r.response_id, p.origin, p.model)"
        f" SELECT origin, model, count(*), avg(score), stddev_samp(score){outer}"
        " FROM per_response GROUP BY origin, model ORDER BY origin, model"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, keys + params)
        rows = cursor.fetchall()
    groups = []
    for origin, model, n, mean, sd, *means in rows:
        half = 1.96 * sd / n**0.5 if sd is not None and n >= 2 else None
        groups.append(
            {
                "origin": origin,
                "model": model if by == "model" else None,
                "n_responses": n,
                "weighted_score_mean": mean,
                "ci_low": mean - half if half is not None else None,
                "ci_high": mean + half if half is not None else None,
                "dimension_means": dict(zip(keys, means, strict=True)),
            }
        )
    return groups


CSV_HEADER = ["response_id", "rater", "dimension", "score", "rated_at", "rubric_version", "origin", "model"]


def ratings_export_rows(*, project: Project, filters: RatingFilters = RatingFilters()) -> Iterator[list]:
    """Long format: one row per (rating, dimension), in response, rater, rubric-dimension order."""
    ratings: QuerySet[Rating] = Rating.objects.filter(project=project)
    if filters.since:
        ratings = ratings.filter(created_at__gte=filters.since)
    if filters.until:
        ratings = ratings.filter(created_at__lt=filters.until)
    if filters.origins:
        ratings = ratings.filter(response__origin__in=filters.origins)
    if filters.models:
        ratings = ratings.filter(response__model__in=filters.models)
    if filters.raters:
        ratings = ratings.filter(rater_id__in=filters.raters)
    order = {}
    for rubric_id, key, position in RubricDimension.objects.filter(rubric__project=project).values_list(
        "rubric_id", "key", "position"
    ):
        order[(rubric_id, key)] = position
    yield CSV_HEADER
    rows = ratings.order_by("response_id", "rater__username", "pk").values_list(
        "response_id",
        "rater__username",
        "scores",
        "created_at",
        "rubric_id",
        "rubric__version",
        "response__origin",
        "response__model",
    )
    for response_id, rater, scores, created_at, rubric_id, version, origin, model in rows.iterator(2000):
        for key in sorted(scores, key=lambda k: order.get((rubric_id, k), 0)):
            yield [response_id, rater, key, scores[key], created_at.isoformat(), version, origin, model]
