"""Browser page of a project's models: versions, deploy / roll back (admins), drafting and hand-overs."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation.models import Role
from annotation.selectors import project_get_for_user, user_roles
from core.errors import ApplicationError, NotAllowed, NotFound

from . import selectors, services
from .models import HandoverTicket


def _project_or_404(request, project_id: int):
    try:
        return project_get_for_user(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404 from None


@login_required
def project_models(request, project_id: int):
    project = _project_or_404(request, project_id)
    tickets = list(
        HandoverTicket.objects.filter(project=project).select_related("item__current_revision")[:20]
    )
    return render(
        request,
        "training/project_models.html",
        {
            "project": project,
            "versions": selectors.model_versions_of(project_id=project.pk),
            "undrafted": services.undrafted_items(project_id=project.pk).count(),
            "tickets": [(t, selectors.ticket_status(t)) for t in tickets],
            "is_admin": Role.ADMIN in user_roles(user=request.user, project=project),
        },
    )


@login_required
@require_POST
def model_version_act(request, project_id: int, version_id: int, action: str):
    project = _project_or_404(request, project_id)
    try:
        if action == "deploy":
            services.model_version_deploy(version_id=version_id, actor=request.user)
        elif action == "rollback":
            services.model_version_rollback(project=project, actor=request.user, to_version_id=version_id)
        else:
            raise Http404
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Deployed. Drafting of new items has started."))
    return redirect("project-models", project.pk)
