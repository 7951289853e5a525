"""Browser pages of projects; each view checks access, then calls a selector or a service."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from annotation import selectors, services
from annotation.forms import MembershipAddForm
from annotation.models import ItemStatus
from annotation.permissions import check_project_admin
from annotation.workflow import chat
from core.errors import ApplicationError, NotAllowed, NotFound


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


ITEMS_PER_PAGE = 50


@login_required
def project_items(request, project_id: int):
    """The project's items, filtered as the API's item list filters them (state, text or external id,
    metadata: ?metadata.category=it, or the key and value the form's picker sends)."""
    project = _project_or_404(request, project_id)
    metadata = selectors.metadata_filters(request.GET)
    picked_key, picked_value = request.GET.get("key", ""), request.GET.get("value", "")
    if picked_key and picked_value:
        metadata[picked_key] = picked_value
    status = request.GET.get("status", "")
    search = request.GET.get("search", "").strip()
    items = selectors.item_list(project=project, status=status, search=search, metadata=metadata)
    page = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    # The other filters, for the pager's links.
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "annotation/project_items.html",
        {
            "project": project,
            "page": page,
            "rows": [
                {"item": item, "metadata": chat.metadata_view(item.metadata), "turns": len(item.messages) + 1}
                for item in page
            ],
            "status": status,
            "search": search,
            "metadata_filters": sorted(metadata.items()),
            "metadata_keys": selectors.metadata_keys(project=project),
            "statuses": ItemStatus.choices,
            "query": query.urlencode(),
        },
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
