"""The judge page (project admins): the project's model judges, their settings, a run button, and each
judge's report against people."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation.permissions import check_project_admin
from annotation.selectors import project_get_for_user
from core.errors import ApplicationError, NotAllowed, NotFound
from training import selectors as training_selectors

from . import prompts, selectors, services


def _admin_project(request, project_id: int):
    try:
        project = project_get_for_user(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404 from None
    try:
        check_project_admin(user=request.user, project=project)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    return project


def _float(value: str, name: str):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ApplicationError(f"{name}: a number from 0 to 1.") from None


def _settings_from(post) -> dict:
    return {
        "prompt_template": post.get("prompt_template", ""),
        "enabled": post.get("enabled") == "on",
        "judge_pairs": post.get("judge_pairs") == "on",
        "prescore": post.get("prescore") == "on",
        "prescore_min_confidence": _float(post.get("prescore_min_confidence"), "prescore_min_confidence"),
        "prescore_min_score": _float(post.get("prescore_min_score"), "prescore_min_score"),
    }


@login_required
def judge_page(request, project_id: int):
    project = _admin_project(request, project_id)
    if request.method == "POST":
        try:
            version = request.POST.get("model_version", "")
            judge = services.judge_create(
                project=project, actor=request.user,
                model_version_id=int(version) if version.isdigit() else None,
                **_settings_from(request.POST),
            )  # fmt: skip
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Judge %(id)s is added.") % {"id": judge.pk})
        return redirect("training-judge", project.pk)
    judges = selectors.judges_of(project=project, actor=request.user)
    return render(
        request,
        "training/judge.html",
        {
            "project": project,
            "judges": [(j, selectors.judge_report(judge=j, actor=request.user)) for j in judges],
            "versions": training_selectors.model_versions_of(project_id=project.pk),
            "default_template": prompts.DEFAULT_PROMPT_TEMPLATE,
        },
    )


@login_required
@require_POST
def judge_act(request, project_id: int, judge_id: int, action: str):
    project = _admin_project(request, project_id)
    try:
        judge = services.judge_get(project=project, judge_id=judge_id)
    except NotFound:
        raise Http404 from None
    try:
        if action == "run":
            pending = services.judge_run_request(judge=judge, actor=request.user)
            messages.success(
                request,
                _("The judge is scoring %(n)d responses and %(p)d pairs; the report fills as it goes.")
                % {"n": pending["responses"], "p": pending["pairs"]},
            )
        elif action == "settings":
            services.judge_update(judge=judge, actor=request.user, **_settings_from(request.POST))
            messages.success(request, _("Judge %(id)s is saved.") % {"id": judge.pk})
        else:
            raise Http404
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("training-judge", project.pk)
