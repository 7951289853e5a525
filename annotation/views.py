"""Browser pages of projects; each view checks access, then calls a selector or a service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from core.errors import ApplicationError, NotAllowed, NotFound

from . import selectors, services
from .forms import MembershipAddForm
from .permissions import check_project_admin


def _project_or_404(request, project_id: int):
    try:
        return selectors.project_get_for_user(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404 from None


@login_required
def home(request):
    projects = selectors.project_list_for_user(user=request.user)
    return render(request, "annotation/home.html", {"projects": projects})


@login_required
def project_detail(request, project_id: int):
    project = _project_or_404(request, project_id)
    counts = selectors.project_state_counts(project_id=project.pk)
    return render(
        request,
        "annotation/project_detail.html",
        {"project": project, "counts": counts},
    )


@login_required
def project_members(request, project_id: int):
    project = _project_or_404(request, project_id)
    try:
        check_project_admin(user=request.user, project=project)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    form = MembershipAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.membership_add(project=project, actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            if result.created:
                messages.success(
                    request,
                    _("%(user)s is now %(role)s.")
                    % {"user": result.membership.user.username, "role": result.membership.get_role_display()},
                )
            else:
                messages.info(request, _("That member already has this role."))
            return redirect("project-members", project.pk)
    members = selectors.project_members(project=project)
    return render(
        request, "annotation/project_members.html", {"project": project, "members": members, "form": form}
    )
