"""Browser pages of the review layer: the rating page (htmx), agreement, and the project dashboard."""

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError as DrfValidationError

from annotation import selectors
from annotation.models import ItemStatus, Role
from annotation.pages import project_for_page
from annotation.workflow.chat import conversation_view
from core.errors import ApplicationError, NotFound
from review import dashboard as figures
from review.gold.views import paused_forbidden
from review.models import RatingAssignment, ResponseOrigin
from review.rating import selectors as rating_selectors
from review.rating import services as rating
from review.rating.api import report_query


def _dimensions_for_page(rubric) -> list[dict]:
    chinese = (get_language() or "").startswith("zh")
    return [
        {
            "key": d.key,
            "label": (d.label_zh if chinese and d.label_zh else d.label),
            "description": d.description,
            "weight": d.weight,
            "scale_min": d.scale_min,
            "scale_max": d.scale_max,
            "values": list(range(d.scale_min, d.scale_max + 1)),
            "level": d.level,
        }
        for d in rubric.dimensions.all()
    ]


def _task_context(request, project, response, error: str = "", scores: dict | None = None) -> dict:
    rubric = rating.rubric_current(project=project)
    context = {"project": project, "response": None, "error": error, "scores": scores or {}}
    if response is not None:
        view = rating_selectors.response_view(response=response, user=request.user)
        lease = RatingAssignment.objects.filter(response=response, rater=request.user).first()
        context.update(
            response=view,
            chat=_conversation(response),
            dimensions=_dimensions_for_page(rubric),
            rubric_version=rubric.version,
            lease_expires_at=lease.expires_at if lease else None,
            origin_label=ResponseOrigin(view["origin"]).label if view.get("origin") else "",
        )
    return context


def _conversation(response):
    """The conversation a response answers, as a chat, when it is more than one question."""
    messages = response.messages or []
    if len(messages) <= 1 and not response.system:
        return None
    return conversation_view(messages=messages, system=response.system)


@login_required
@paused_forbidden
def rate(request, project_id: int):
    project = project_for_page(request, project_id, rating.RATER_ROLES)
    response = rating.rating_claim_next(project=project, user=request.user)
    return render(request, "review/rate.html", _task_context(request, project, response))


@login_required
@require_POST
@paused_forbidden
def rate_submit(request, project_id: int, response_id: int):
    project = project_for_page(request, project_id, rating.RATER_ROLES)
    scores = {}
    for name, value in request.POST.items():
        if name.startswith("score_") and value != "":
            try:
                number = float(value)
            except ValueError:
                number = value
            scores[name.removeprefix("score_")] = (
                int(number) if isinstance(number, float) and number.is_integer() else number
            )
    try:
        rating.rating_submit(response_id=response_id, rater=request.user, scores=scores)
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        response = rating_selectors.response_get_for_user(user=request.user, response_id=response_id)
        context = _task_context(request, project, response, error=exc.message, scores=scores)
        return render(request, "review/_rate_task.html" if request.htmx else "review/rate.html", context)
    if not request.htmx:
        return redirect("review-rate", project.pk)
    response = rating.rating_claim_next(project=project, user=request.user)
    context = _task_context(request, project, response)
    context["just_rated"] = True
    return render(request, "review/_rate_task.html", context)


@login_required
def agreement(request, project_id: int):
    project = project_for_page(request, project_id, {Role.ADMIN})
    error, report, groups = "", None, []
    params = request.GET.dict()
    try:
        filters, data = report_query(params, project)
        report = rating_selectors.agreement_report(
            project=project, filters=filters, bootstrap=data["bootstrap"]
        )
        groups = rating_selectors.score_comparison(project=project, filters=filters, by="model")
    except ApplicationError as exc:
        error = exc.message
    except DrfValidationError as exc:
        error = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in exc.detail.items())
    chinese = (get_language() or "").startswith("zh")
    if report:
        for d in report["dimensions"]:
            d["display_label"] = d["label_zh"] if chinese and d["label_zh"] else d["label"]
    heatmaps = []
    if report:
        for d in report["dimensions"]:
            raters = report["raters"]
            cells = {(k["rater_a"], k["rater_b"]): k for k in d["pairwise_kappa"]}
            rows = []
            for a in raters:
                row = []
                for b in raters:
                    k = cells.get((a, b)) or cells.get((b, a))
                    row.append(
                        {"self": a == b, "kappa": k["kappa"] if k else None, "n": k["n_common"] if k else 0}
                    )
                rows.append({"rater": a, "cells": row})
            heatmaps.append({"key": d["key"], "label": d["display_label"], "raters": raters, "rows": rows})
    return render(
        request,
        "review/agreement.html",
        {
            "project": project,
            "report": report,
            "groups": groups,
            "heatmaps": heatmaps,
            "error": error,
            "params": params,
            "origins": ResponseOrigin.choices,
            "chart_data": {"report": report, "groups": groups},
        },
    )


@login_required
def dashboard(request, project_id: int):
    project = project_for_page(request, project_id, {Role.ADMIN, Role.EXPERT, Role.DOMAIN_REVIEWER})
    edits = figures.draft_edit_distances(project=project)
    buckets = [0] * 5  # share of the draft changed: 0, ≤10 %, ≤25 %, ≤50 %, more
    for r in edits.pop("relative"):
        buckets[0 if r == 0 else 1 if r <= 0.1 else 2 if r <= 0.25 else 3 if r <= 0.5 else 4] += 1
    charts = {
        "states": selectors.project_state_counts(project_id=project.pk),
        "throughput": figures.throughput_per_day(project=project),
        "edit_buckets": buckets,
    }
    return render(
        request,
        "annotation/dashboard.html",
        {
            "project": project,
            "charts": charts,
            **_metadata_figures(project, request.GET.get("metadata_key", "")),
            "annotators": figures.annotator_quality(project=project),
            "median_seconds": figures.median_task_seconds(project=project),
            "edits": edits,
            "state_labels_json": json.dumps({k: str(v) for k, v in ItemStatus.choices}, ensure_ascii=False),
        },
    )


def _metadata_figures(project, asked: str) -> dict:
    """The dashboard's per-metadata-value table for the key asked for (else `category`, else the first
    key the items carry), with only the states some value has items in as columns."""
    keys = selectors.metadata_keys(project=project)
    key = asked if asked in keys else ("category" if "category" in keys else (keys[0] if keys else ""))
    if not key:
        return {"metadata_keys": keys, "metadata_key": ""}
    breakdown = figures.metadata_breakdown(project=project, key=key)
    states = [s for s in ItemStatus.values if any(v["states"][s] for v in breakdown["values"])]
    for value in breakdown["values"]:
        value["cells"] = [value["states"][s] for s in states]
    return {
        "metadata_keys": keys,
        "metadata_key": key,
        "metadata_breakdown": breakdown,
        "metadata_states": states,
    }
