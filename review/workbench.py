"""The workbench: one page per stage where people take tasks and act on them.

Every action calls the same services as the API. After an action the next task is claimed at
once, so a person never has to press "next" between items. It serves every tier, annotation
included, so it lives in review, which may call annotation's transitions as well as its own.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.models import Item, ItemStatus, Stage
from annotation.permissions import check_project_role
from annotation.workflow import chat
from annotation.workflow import transitions as workflow
from core.errors import ApplicationError, NotAllowed, NotFound
from review.decisions.services import item_review
from review.gold.views import paused_forbidden
from review.models import Decision


def _project_or_404(request, project_id: int):
    try:
        return selectors.project_get_for_user(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404 from None


def _check_stage(request, project, stage: str) -> None:
    if stage not in workflow.STAGES:
        raise Http404
    try:
        check_project_role(user=request.user, project=project, roles=workflow.STAGES[stage].roles)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None


def _held(project, user, stage) -> Item | None:
    return (
        Item.objects.select_related("project", "current_revision__author")
        .filter(project=project, leased_by=user, lease_stage=stage)
        .order_by("pk")
        .first()
    )


@login_required
@paused_forbidden
def workbench(request, project_id: int, stage: str):
    """Show the task the user holds in this stage (claiming one on POST), or say the queue is empty."""
    project = _project_or_404(request, project_id)
    _check_stage(request, project, stage)
    if request.method == "POST":
        workflow.item_claim_next(project=project, user=request.user, stage=stage)
        return redirect("workbench", project.pk, stage)
    item = _held(project, request.user, stage)
    posted_turns = request.session.pop("workbench_turns", None)
    context = {
        "project": project,
        "stage": stage,
        "stage_label": Stage(stage).label,
        "counts": selectors.project_state_counts(project_id=project.pk),
        "task": selectors.item_task(item=item, user=request.user) if item else None,
        "posted_text": request.session.pop("workbench_text", None),
        "decisions": Decision,
    }
    if item is not None:
        task = context["task"]
        context["base_text"] = _base_text(task, stage)
        context["chat"] = _chat(item, edits=_base_turn_edits(task), shown=posted_turns)
        context["metadata"] = chat.metadata_view(item.metadata)
        context["show_changes"] = stage != Stage.ANNOTATE  # reviewers see what was changed at once
    return render(request, "annotation/workbench.html", context)


def _chat(item: Item, *, edits: dict, shown: dict | None = None) -> chat.Chat:
    return chat.conversation_view(
        messages=item.messages,
        system=item.system,
        tools=item.tools,
        edits=edits,
        shown=shown,
        editable=item.project.edit_all_assistant_turns,
        reply_extra=item.reference_extra,
    )


def _base_turn_edits(task: dict) -> dict:
    """The earlier-turn edits the page starts from, as _base_text does for the reply."""
    if task["autosave"] is not None:
        return task["autosave"].turn_edits
    return task["revision"].turn_edits if task["revision"] is not None else {}


def _base_text(task: dict, stage: str) -> str:
    """What the editor starts from: autosaved work, else the answer so far (rework and review),
    else the best draft."""
    if task["autosave"] is not None:
        return task["autosave"].text
    if task["revision"] is not None:
        return task["revision"].text
    return task["drafts"][0].text if task["drafts"] else ""


@login_required
@require_POST
@paused_forbidden
def workbench_act(request, item_id: int):
    """Submit, skip, flag, approve, edit or reject the held item; then on to the next task."""
    try:
        item = selectors.item_get_for_user(user=request.user, item_id=item_id)
    except NotFound:
        raise Http404 from None
    stage = item.lease_stage or request.POST.get("stage", "")
    action = request.POST.get("action", "")
    # Browsers send a textarea's line breaks as CRLF; the conversation's turns hold LF.
    text = request.POST.get("text", "").replace("\r\n", "\n")
    turns = _posted_turns(request.POST)
    version = int(request.POST["version"]) if request.POST.get("version", "").isdigit() else None
    draft_id = int(request.POST["draft_id"]) if request.POST.get("draft_id", "").isdigit() else None
    try:
        if action == "submit":
            workflow.item_submit(
                item_id=item.pk,
                user=request.user,
                text=text,
                version=version,
                draft_id=draft_id,
                turns=turns,
            )
            messages.success(request, _("Submitted. Here is the next task."))
        elif action == "skip":
            workflow.item_release(item_id=item.pk, user=request.user)
            messages.info(request, _("Skipped."))
        elif action == "flag":
            workflow.item_flag_needs_expert(
                item_id=item.pk, user=request.user, version=version, comment=request.POST.get("comment", "")
            )
            messages.info(request, _("Sent to the experts."))
        elif action in Decision.values:
            reviewed = item_review(
                item_id=item.pk,
                user=request.user,
                decision=action,
                version=version,
                text=text,
                comment=request.POST.get("comment", ""),
                # As the reply's text, edited turns count only for an edit.
                turns=turns if action == Decision.EDIT else None,
            )
            if reviewed.status == ItemStatus.ADJUDICATION:
                messages.info(
                    request,
                    _("An earlier tier approved this answer, so your rejection goes to adjudication."),
                )
            messages.success(request, _("Saved. Here is the next task."))
        else:
            raise ApplicationError(_("Unknown action."))
    except ApplicationError as exc:
        # Nothing was written: show why and keep what the person typed.
        messages.error(request, exc.message)
        request.session["workbench_text"] = text
        request.session["workbench_turns"] = turns
        return redirect("workbench", item.project_id, stage)
    if stage and action != "skip":
        workflow.item_claim_next(project=item.project, user=request.user, stage=stage)
    return redirect("workbench", item.project_id, stage)


TURN_FIELD = "turn-"


def _posted_turns(post) -> dict[str, str] | None:
    """The earlier assistant turns the page let the person edit (fields turn-<index>), or None."""
    turns = {
        name[len(TURN_FIELD) :]: value.replace("\r\n", "\n")
        for name, value in post.items()
        if name.startswith(TURN_FIELD) and name[len(TURN_FIELD) :].isdigit()
    }
    return turns or None
