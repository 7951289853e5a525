"""Browser pages of adjudication: the queue of disagreements and a plain form per case to decide it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation.models import Stage
from annotation.pages import project_for_page
from core.errors import ApplicationError, NotFound
from review.adjudication import selectors, services
from review.models import AdjudicationDecision
from review.rating.services import rubric_current


@login_required
def adjudications(request, project_id: int):
    project = project_for_page(request, project_id, services.ADJUDICATOR_ROLES)
    state = request.GET.get("state", "open")
    if state not in selectors.STATES:
        state = "open"
    rubric = rubric_current(project=project)
    dimensions = [
        {"key": d.key, "label": d.label, "values": list(range(d.scale_min, d.scale_max + 1))}
        for d in rubric.dimensions.all()
    ]
    cases = selectors.adjudications_list(project=project, user=request.user, state=state)
    for case in cases:
        case["decision_label"] = AdjudicationDecision(case["decision"]).label if case["decision"] else ""
        for side in ("approval", "rejection"):
            if case.get(side):
                case[side]["stage_label"] = dict(Stage.choices).get(case[side]["stage"], case[side]["stage"])
    return render(
        request,
        "review/adjudications.html",
        {"project": project, "state": state, "cases": cases, "dimensions": dimensions},
    )


@login_required
@require_POST
def adjudication_decide(request, project_id: int, adjudication_id: int):
    project = project_for_page(request, project_id, services.ADJUDICATOR_ROLES)
    scores = None
    if any(name.startswith("score_") for name in request.POST):
        scores = {}
        for name, value in request.POST.items():
            if name.startswith("score_") and value != "":
                scores[name.removeprefix("score_")] = int(value) if value.lstrip("-").isdigit() else value
    try:
        services.adjudication_decide(
            adjudication_id=adjudication_id,
            project_id=project.pk,
            user=request.user,
            decision=request.POST.get("decision", ""),
            comment=request.POST.get("comment", ""),
            scores=scores,
        )
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Decided. The decision is final."))
    return redirect(reverse("review-adjudications", args=[project.pk]))
