"""What every project page needs first: the project, or the 404 / 403 a browser should see."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotation import selectors
from annotation.models import Role
from annotation.permissions import check_project_role
from core.errors import NotAllowed, NotFound


def project_for_page(request, project_id: int, roles):
    """The project for a page: 404 when it is not visible to the user, 403 without one of `roles`
    (staff count as admin)."""
    try:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_role(user=request.user, project=project, roles=roles)
    except NotFound:
        raise Http404 from None
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    return project


def project_for_admin_page(request, project_id: int):
    """The project, for its admins (and staff); others get 404 (not visible) or 403 (no admin role)."""
    return project_for_page(request, project_id, {Role.ADMIN})
