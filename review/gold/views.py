"""Browser page of gold checks (project admins): who is paused or warned and why, lifting it, the gold
tasks with how often they were answered right, and a form to mark an item gold."""

import functools

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation.pages import project_for_admin_page
from core.errors import ApplicationError, NotAllowed
from review.gold import marking, selectors, services


def paused_forbidden(view):
    """A page that claims work answers a paused person with the 403 page saying why."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotAllowed as exc:
            if exc.code != "gold_paused":
                raise
            raise PermissionDenied(exc.message) from None

    return wrapped


@login_required
def gold(request, project_id: int):
    project = project_for_admin_page(request, project_id)
    return render(
        request,
        "review/gold.html",
        {
            "project": project,
            "people": selectors.gold_people(project=project),
            "tasks": selectors.gold_tasks(project=project),
        },
    )


@login_required
@require_POST
def gold_lift(request, project_id: int, user_id: int):
    project = project_for_admin_page(request, project_id)
    try:
        services.gold_standing_lift(
            project=project, actor=request.user, user_id=user_id, comment=request.POST.get("comment", "")
        )
        messages.success(request, _("Lifted: the person is in good standing again."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("review-gold", project.pk)


@login_required
@require_POST
def gold_mark(request, project_id: int):
    project = project_for_admin_page(request, project_id)
    item_id = request.POST.get("item", "")
    try:
        if not item_id.isdigit():
            raise ApplicationError(_("Give the item's number."))
        marking.gold_mark_item(
            project=project,
            actor=request.user,
            item_id=int(item_id),
            expected_text=request.POST.get("expected_text", ""),
            expected_decision=request.POST.get("expected_decision", ""),
            stage=request.POST.get("stage", "expert") or "expert",
        )
        messages.success(request, _("Item #%(id)s is a gold task now.") % {"id": item_id})
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("review-gold", project.pk)
