"""Calibrated confidence: outcomes of judged model answers, a calibration map per model version, and the
confidence threshold a project's precision target implies (overall and per metadata value)."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction

from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record
from core.errors import ApplicationError
from review.math.scoring import rating_normalised_score
from review.models import Rating
from review.rating.services import rubric_dimensions

from .engine import calibration as cal
from .engine.metrics import rouge_l
from .models import AskAnswer, HandoverTicket, ModelVersion
from .selectors import ANSWERED_STATES, model_version_deployed, model_versions_of

# An answer is acceptable when people approved it unchanged or nearly: ROUGE-L F1 of the model's answer
# against the approved one, on `engine.metrics.tokenize`'s tokens (case, spacing and punctuation aside,
# CJK by character), at or above this. 0.9 lets a word or two in a sentence change; a rewrite fails.
ACCEPTABLE_ROUGE_L = 0.9
# A rated answer is acceptable when its raters' mean normalised weighted score (each dimension rescaled
# to [0, 1] by its scale, weighted) reaches this: 4 of 5 on the default rubric.
ACCEPTABLE_RATING = 0.75
# Fewer outcomes than this and a version has no fit: `ask` compares the raw confidence, as before.
MIN_FIT_OUTCOMES = 50
# A metadata value gets its own suggested threshold from this many outcomes with that value.
MIN_VALUE_OUTCOMES = 30
# `ask` reads a version's fit from the cache; new outcomes reach it within this time (apply: at once).
FIT_CACHE_SECONDS = 300
# A refit is one request's work (ROUGE-L is ~0.35 ms per 40-word pair): the latest this many of each kind.
MAX_OUTCOMES_PER_SOURCE = 1000
METADATA_VALUE_MAX_CHARS = 200


@dataclass(frozen=True)
class Outcome:
    confidence: float  # the model's raw confidence when it answered
    acceptable: bool
    similarity: float  # ROUGE-L against people's approved answer; "rated": the mean normalised score
    # "sampled" (answered traffic reviewed) | "ticket" (handed over, then answered by people) | "rated"
    # (answered traffic scored by raters, its item not approved yet)
    source: str
    item: int
    metadata: dict


def _outcome(confidence, answer, item, metadata, approved, source) -> Outcome:
    similarity = rouge_l(answer, approved)
    return Outcome(confidence, similarity >= ACCEPTABLE_ROUGE_L, similarity, source, item, metadata or {})


def outcomes_of(
    *, version_id: int, limit: int = MAX_OUTCOMES_PER_SOURCE, since=None, until=None
) -> list[Outcome]:
    """The answers of the version that people have since judged, read now from the items as they are
    (nothing copied): sampled answered traffic, and handed-over tickets, whose item is approved (or
    under a spot check) with a current revision; the latest `limit` of each. The tickets are the
    low-confidence outcomes. `since` / `until`: only answers given in that window (a canary's)."""
    judged = {"item__status__in": ANSWERED_STATES, "item__current_revision__isnull": False}
    if since is not None:
        judged["created_at__gte"] = since
    if until is not None:
        judged["created_at__lte"] = until
    fields = ("confidence", "item_id", "item__metadata", "item__current_revision__text")
    sampled = AskAnswer.objects.filter(model_version_id=version_id, item__isnull=False, **judged)
    tickets = HandoverTicket.objects.filter(model_version_id=version_id, confidence__isnull=False, **judged)
    return (
        [
            _outcome(c, answer, item, meta, approved, "sampled")
            for c, answer, item, meta, approved in _latest(sampled, "answer", fields, limit)
        ]
        + [
            _outcome(c, answer, item, meta, approved, "ticket")
            for c, answer, item, meta, approved in _latest(tickets, "model_answer", fields, limit)
        ]
        + _rated_outcomes(version_id=version_id, limit=limit, since=since, until=until)
    )


def _rated_outcomes(*, version_id: int, limit: int, since=None, until=None) -> list[Outcome]:
    """Sampled answers raters scored whose item people have not approved yet (an approval is the final
    word, and then the answer is a "sampled" outcome instead): acceptable at ACCEPTABLE_RATING."""
    window = {}
    if since is not None:
        window["created_at__gte"] = since
    if until is not None:
        window["created_at__lte"] = until
    answers = list(
        AskAnswer.objects.filter(model_version_id=version_id, response__ratings__isnull=False, **window)
        .exclude(item__status__in=ANSWERED_STATES, item__current_revision__isnull=False)
        .distinct()
        .order_by("-pk")
        .values_list("response_id", "confidence", "item_id", "item__metadata")[:limit]
    )[::-1]
    scores: dict[int, list[float]] = {}
    ratings = Rating.objects.filter(response_id__in=[a[0] for a in answers]).select_related("rubric")
    dimensions = {}
    for rating in ratings.prefetch_related("rubric__dimensions"):
        if rating.rubric_id not in dimensions:
            dimensions[rating.rubric_id] = rubric_dimensions(rating.rubric)
        score = rating_normalised_score(dimensions[rating.rubric_id], rating.scores)
        scores.setdefault(rating.response_id, []).append(score)
    out = []
    for response_id, confidence, item, metadata in answers:
        mean = sum(scores[response_id]) / len(scores[response_id])
        out.append(Outcome(confidence, mean >= ACCEPTABLE_RATING, mean, "rated", item, metadata or {}))
    return out


def _latest(queryset, answer_field: str, fields: tuple, limit: int) -> list[tuple]:
    rows = queryset.order_by("-pk").values_list(fields[0], answer_field, *fields[1:])[:limit]
    return list(rows)[::-1]


def calibration_fit(outcomes: list[Outcome]) -> cal.CalibrationMap | None:
    if len(outcomes) < MIN_FIT_OUTCOMES:
        return None
    return cal.isotonic_fit([o.confidence for o in outcomes], [o.acceptable for o in outcomes])


def _fit_key(version_id: int) -> str:
    return f"calibration:fit:v{version_id}"


def _fit_store(version_id: int, fit: cal.CalibrationMap | None) -> dict:
    data = fit.as_dict() if fit is not None else {}
    # The map outlives its freshness: while one request refits, the others use the previous map.
    cache.set(_fit_key(version_id), data, FIT_CACHE_SECONDS * 12)
    cache.set(_fit_key(version_id) + ":fresh", 1, FIT_CACHE_SECONDS)
    return data


def version_calibration(*, version_id: int) -> cal.CalibrationMap | None:
    """The version's calibration map (None below MIN_FIT_OUTCOMES), refitted every FIT_CACHE_SECONDS
    by one request at a time (a cache lock); one cache round trip otherwise."""
    key = _fit_key(version_id)
    got = cache.get_many([key, key + ":fresh"])
    data = got.get(key)
    locked = data is not None and key + ":fresh" not in got and cache.add(key + ":refit", 1, 60)
    if data is None or locked:
        try:
            data = _fit_store(version_id, calibration_fit(outcomes_of(version_id=version_id)))
        finally:
            if locked:
                cache.delete(key + ":refit")
    return cal.CalibrationMap.from_dict(data) if data else None


def confidence_calibrated(*, version_id: int, confidence: float) -> float | None:
    """What the confidence means as a chance of an acceptable answer; None when the version has no fit."""
    fit = version_calibration(version_id=version_id)
    return fit(confidence) if fit is not None else None


def metadata_value(value) -> str | None:
    """Metadata values thresholds can key on: short scalars, as text (True → "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float) and len(str(value)) <= METADATA_VALUE_MAX_CHARS:
        return str(value)
    return None


def threshold_for(*, project: Project, metadata: dict | None) -> float:
    """The project's threshold, or the highest per-value threshold the ask's metadata matches."""
    matched = [
        per_value[text]
        for key, per_value in (project.metadata_thresholds or {}).items()
        if metadata and key in metadata
        and (text := metadata_value(metadata[key])) is not None and text in per_value
    ]  # fmt: skip
    return max(matched) if matched else project.confidence_threshold


def below_threshold(*, project: Project, version_id: int, confidence: float, metadata: dict | None) -> bool:
    """Whether `ask` would hand a question with this raw confidence over: the calibrated confidence
    when the version has a fit (a threshold applied from the calibration page is on that scale) against
    the threshold for the metadata. What a draft's low-confidence mark follows too."""
    calibrated = confidence_calibrated(version_id=version_id, confidence=confidence)
    value = confidence if calibrated is None else calibrated
    return value < threshold_for(project=project, metadata=metadata)


def _cross_fitted(outcomes: list[Outcome]) -> list[float]:
    """Each outcome's calibrated confidence from a map fitted on the other half (alternate outcomes),
    so the 'after' ECE is measured on outcomes its map did not see."""
    halves = (outcomes[0::2], outcomes[1::2])
    fits = [cal.isotonic_fit([o.confidence for o in h], [o.acceptable for o in h]) for h in halves]
    out = [0.0] * len(outcomes)
    for i, o in enumerate(outcomes):
        out[i] = fits[1 - i % 2](o.confidence)
    return out


def version_report(*, version: ModelVersion, target: float) -> dict:
    outcomes = outcomes_of(version_id=version.pk)
    raw = [o.confidence for o in outcomes]
    ok = [o.acceptable for o in outcomes]
    fit = calibration_fit(outcomes)
    scored = fit.many(raw) if fit is not None else raw  # what `ask` compares with the threshold
    after = _cross_fitted(outcomes) if fit is not None else None
    by_value = []
    keys = sorted({k for o in outcomes for k in o.metadata})
    for key in keys:
        groups: dict[str, list[int]] = {}
        for i, o in enumerate(outcomes):
            text = metadata_value(o.metadata.get(key)) if key in o.metadata else None
            if text is not None:
                groups.setdefault(text, []).append(i)
        for text, members in sorted(groups.items()):
            if len(members) < MIN_VALUE_OUTCOMES:
                continue
            choice = cal.threshold_for_target([scored[i] for i in members], [ok[i] for i in members], target)
            by_value.append({"key": key, "value": text, **choice.as_dict()})
    return {
        "model_version": version.pk,
        "name": version.name,
        "status": version.status,
        "n_outcomes": len(outcomes),
        "n_sampled": sum(o.source == "sampled" for o in outcomes),
        "n_tickets": sum(o.source == "ticket" for o in outcomes),
        "n_rated": sum(o.source == "rated" for o in outcomes),
        "acceptable_share": sum(ok) / len(ok) if ok else None,
        "calibrated": fit is not None,
        "ece_before": cal.ece(raw, ok),
        "ece_after": cal.ece(after, ok) if after is not None else None,
        "reliability_before": cal.reliability(raw, ok),
        "reliability_after": cal.reliability(after, ok) if after is not None else [],
        "calibration_map": fit.as_dict() if fit is not None else None,
        "suggested": cal.threshold_for_target(scored, ok, target).as_dict(),
        "suggested_by_value": by_value,
        "_fit": fit,
    }


def calibration_report(*, project: Project, actor: AbstractBaseUser) -> dict:
    """Per version with outcomes (and the deployed one): outcomes, ECE before and after, reliability
    points, and the thresholds the project's target implies. Project admins only."""
    check_project_admin(user=actor, project=project)
    return _report(project)


def _report(project: Project) -> dict:
    deployed = model_version_deployed(project_id=project.pk)
    with_outcomes = set(
        AskAnswer.objects.filter(project=project, item__isnull=False).values_list(
            "model_version_id", flat=True
        )
    ) | set(
        HandoverTicket.objects.filter(project=project, confidence__isnull=False).values_list(
            "model_version_id", flat=True
        )
    )
    versions = [v for v in model_versions_of(project_id=project.pk) if v.pk in with_outcomes or v == deployed]
    reports = [version_report(version=v, target=project.answer_target_precision) for v in versions]
    return {
        "project": project.pk,
        "target_precision": project.answer_target_precision,
        "acceptable_rouge_l": ACCEPTABLE_ROUGE_L,
        "min_fit_outcomes": MIN_FIT_OUTCOMES,
        "min_value_outcomes": MIN_VALUE_OUTCOMES,
        "confidence_threshold": project.confidence_threshold,
        "metadata_thresholds": project.metadata_thresholds,
        "deployed_version": deployed.pk if deployed else None,
        "versions": reports,
    }


def report_public(report: dict) -> dict:
    """The report without its internals (the fitted map objects), ready for JSON."""
    return {**report, "versions": [{k: v for k, v in r.items() if k != "_fit"} for r in report["versions"]]}


def calibration_apply(*, project: Project, actor: AbstractBaseUser) -> dict:
    """Set the project's thresholds to what the deployed version's outcomes suggest for its target:
    the overall threshold, and the per-value ones (replacing the earlier per-value thresholds).
    Project admins; audited `project.calibration_apply` with the evidence. Locks the project row."""
    check_project_admin(user=actor, project=project)
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        deployed = model_version_deployed(project_id=project.pk)
        if deployed is None:
            raise ApplicationError(
                "No model version is deployed: there is nothing to calibrate.", code="no_model"
            )
        report = version_report(version=deployed, target=project.answer_target_precision)
        suggested = report["suggested"]
        if suggested["threshold"] is None:
            raise ApplicationError(
                f"answer_target_precision: no threshold reaches {project.answer_target_precision:g} with "
                f"{report['n_outcomes']} outcomes of version {deployed.pk} (95 % lower bound); "
                "review more answers or lower the target.",
                code="no_threshold",
                details={"answer_target_precision": [f"unreachable with {report['n_outcomes']} outcomes"]},
            )
        per_value: dict[str, dict[str, float]] = {}
        for row in report["suggested_by_value"]:
            if row["threshold"] is not None:
                per_value.setdefault(row["key"], {})[row["value"]] = row["threshold"]
        before = {
            "confidence_threshold": project.confidence_threshold,
            "metadata_thresholds": project.metadata_thresholds,
        }
        project.confidence_threshold = suggested["threshold"]
        project.metadata_thresholds = per_value
        project.save(update_fields=["confidence_threshold", "metadata_thresholds"])
        applied = {
            "model_version": deployed.pk,
            "calibrated": report["calibrated"],
            "target_precision": project.answer_target_precision,
            "confidence_threshold": project.confidence_threshold,
            "metadata_thresholds": per_value,
            "suggested": suggested,
            "suggested_by_value": report["suggested_by_value"],
            "ece_before": report["ece_before"],
            "ece_after": report["ece_after"],
        }
        audit_record(
            actor=actor,
            action="project.calibration_apply",
            target=project,
            project=project,
            data={**applied, "before": before},
        )
        fit = report["_fit"]
        # `ask` uses the very map the suggestion was computed on from now on.
        transaction.on_commit(lambda: _fit_store(deployed.pk, fit))
    return applied
