"""Browser pages of preferences: compare two responses, rank candidates (both htmx, keyboard first), and
the leaderboard with agreement, the pair sources and the exports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError as DrfValidationError

from annotation.models import Role
from annotation.pages import project_for_page
from annotation.workflow.chat import conversation_view
from core.errors import ApplicationError, NotFound
from review.gold.views import paused_forbidden
from review.models import Pair, PairSource, RankSet
from review.preference import importing, judging, queue, services
from review.preference import selectors as preference
from review.preference.api import report_query
from review.preference.formats import PAIR_FORMATS
from review.rating.services import RATER_ROLES

STRENGTHS = (("slightly", "S"), ("clearly", "C"))


def _chat(task: dict):
    """The conversation a task answers, as a chat, when it is more than one question."""
    if len(task["messages"] or []) <= 1 and not task["system"]:
        return None
    return conversation_view(messages=task["messages"], system=task["system"])


def _compare_context(request, project, claimed, *, error: str = "", posted: dict | None = None) -> dict:
    context = {
        "project": project,
        "task": None,
        "error": error,
        "posted": posted or {},
        "strengths": STRENGTHS,
    }
    if claimed is not None:
        pair, assignment = claimed
        task = preference.pair_task(pair=pair, assignment=assignment, user=request.user)
        context.update(task=task, chat=_chat(task), sides=[("A", "1", task["A"]), ("B", "2", task["B"])])
    return context


@login_required
@paused_forbidden
def compare(request, project_id: int):
    project = project_for_page(request, project_id, RATER_ROLES)
    claimed = queue.compare_claim_next(project=project, user=request.user)
    return render(request, "review/compare.html", _compare_context(request, project, claimed))


@login_required
@require_POST
@paused_forbidden
def compare_submit(request, project_id: int, pair_id: int):
    project = project_for_page(request, project_id, RATER_ROLES)
    posted = {key: request.POST.get(key, "") for key in ("choice", "strength", "reason")}
    try:
        judging.judgement_submit(pair_id=pair_id, rater=request.user, **posted)
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        pair = Pair.objects.filter(pk=pair_id, project=project).first()
        if pair is None:
            raise Http404 from None
        assignment = pair.assignments.filter(rater=request.user).first()
        context = _compare_context(request, project, (pair, assignment), error=exc.message, posted=posted)
        return render(
            request, "review/_compare_task.html" if request.htmx else "review/compare.html", context
        )
    if not request.htmx:
        return redirect("review-compare", project.pk)
    context = _compare_context(request, project, queue.compare_claim_next(project=project, user=request.user))
    context["just_judged"] = True
    return render(request, "review/_compare_task.html", context)


_LABELS = "ABCDE"


def _rank_context(request, project, claimed, *, error: str = "") -> dict:
    context = {"project": project, "task": None, "error": error}
    if claimed is not None:
        rank_set, assignment = claimed
        task = preference.rank_task(rank_set=rank_set, assignment=assignment, user=request.user)
        for label, candidate in zip(_LABELS, task["candidates"], strict=False):
            candidate["label"] = label
        context.update(task=task, chat=_chat(task), order=",".join(str(c["id"]) for c in task["candidates"]))
    return context


@login_required
def rank(request, project_id: int):
    project = project_for_page(request, project_id, RATER_ROLES)
    claimed = queue.rank_claim_next(project=project, user=request.user)
    return render(request, "review/rank.html", _rank_context(request, project, claimed))


@login_required
@require_POST
def rank_submit(request, project_id: int, rank_set_id: int):
    project = project_for_page(request, project_id, RATER_ROLES)
    raw = request.POST.get("order", "")
    try:
        order = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        order = raw  # ranking_submit names what is wrong with it
    try:
        judging.ranking_submit(
            rank_set_id=rank_set_id, rater=request.user, order=order, reason=request.POST.get("reason", "")
        )
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        rank_set = RankSet.objects.filter(pk=rank_set_id, project=project).first()
        if rank_set is None:
            raise Http404 from None
        assignment = rank_set.assignments.filter(rater=request.user).first()
        context = _rank_context(request, project, (rank_set, assignment), error=exc.message)
        return render(request, "review/_rank_task.html" if request.htmx else "review/rank.html", context)
    if not request.htmx:
        return redirect("review-rank", project.pk)
    context = _rank_context(request, project, queue.rank_claim_next(project=project, user=request.user))
    context["just_ranked"] = True
    return render(request, "review/_rank_task.html", context)


@login_required
def leaderboard(request, project_id: int):
    project = project_for_page(request, project_id, {Role.ADMIN})
    params = request.GET.dict()
    error, board, agreement = "", None, None
    try:
        filters, data = report_query(params, project)
        board = preference.leaderboard(project=project, filters=filters, metadata_key=data["metadata_key"])
        agreement = preference.preference_agreement(
            project=project, filters=filters, bootstrap=data["bootstrap"]
        )
    except ApplicationError as exc:
        error = exc.message
    except DrfValidationError as exc:
        error = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in exc.detail.items())
    query = request.GET.urlencode()
    return render(
        request,
        "review/leaderboard.html",
        {
            "project": project,
            "board": board,
            "agreement": agreement,
            "error": error,
            "params": params,
            "counts": preference.preference_counts(project=project),
            "metadata_keys": preference.pair_metadata_keys(project=project),
            "sources": PairSource.choices,
            "formats": PAIR_FORMATS,
            "query": query,
            "chart_data": {"board": board},
        },
    )


@login_required
@require_POST
def pairs_make(request, project_id: int):
    """The leaderboard page's buttons: pairs from drafts vs answers, rank sets of candidates, an import."""
    project = project_for_page(request, project_id, {Role.ADMIN})
    what = request.POST.get("source", "")
    try:
        if what == PairSource.DRAFT_VS_ANSWER:
            made = services.pairs_from_drafts_vs_answers(project=project, actor=request.user)
        elif what == PairSource.CANDIDATES:
            made = services.candidates_from_items(project=project, actor=request.user, as_rank=True)
        elif what == PairSource.IMPORTED and request.FILES.get("file"):
            upload = request.FILES["file"]
            made = importing.pairs_import(
                project=project,
                actor=request.user,
                stream=upload.file,
                size=upload.size,
                fmt=request.POST.get("format") or None,
            )
        else:
            raise ApplicationError(_("Choose what to make pairs from (and a file to import)."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("review-leaderboard", project.pk)
    messages.success(
        request,
        _("%(pairs)s pairs and %(sets)s rank sets made.")
        % {"pairs": made.get("pairs_created", 0), "sets": made.get("rank_sets_created", 0)},
    )
    return redirect("review-leaderboard", project.pk)
