"""The per-person quality page: the table, two charts and the CSV link, for every member of a project
(admins and staff see everyone, others their own row)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from rest_framework.exceptions import ValidationError as DrfValidationError

from annotation.models import Role
from annotation.selectors import project_get_for_user
from core.errors import NotFound
from review.quality import selectors as quality
from review.quality.api import quality_days

# Window lengths offered on the page (any 1–3650 works in the query string).
DAY_CHOICES = (7, 30, 90, 365)


def cell_text(value, kind: str) -> str:
    """A figure as the table shows it: shares as percentages, durations in s / min / h, "–" for none."""
    if value is None:
        return "–"
    if kind == "share":
        return f"{value * 100:.0f} %"
    if kind == "seconds":
        if value < 120:
            return f"{value:.0f} s"
        return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"
    if kind == "count":
        return str(value)
    return f"{value:.2f}"


@login_required
def person_quality(request, project_id: int):
    try:
        project = project_get_for_user(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404 from None
    error = ""
    try:
        days = quality_days(request.GET.dict())
    except DrfValidationError as exc:
        error = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in exc.detail.items())
        days = quality.DEFAULT_DAYS
    report = quality.person_quality_for(user=request.user, project=project, days=days)
    chart_data = {"columns": report["columns"], "people": [dict(person) for person in report["people"]]}
    for person in report["people"]:
        person["role_labels"] = [str(Role(role).label) for role in person["roles"]]
        person["cells"] = [
            {"key": column["key"], "text": cell_text(person[column["key"]], column["kind"])}
            for column in report["columns"]
        ]
    return render(
        request,
        "review/quality.html",
        {
            "project": project,
            "report": report,
            "days": days,
            "since": datetime.fromisoformat(report["since"]),
            "day_choices": DAY_CHOICES,
            "error": error,
            "chart_data": chart_data,
        },
    )
