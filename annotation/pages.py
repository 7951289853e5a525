"""What every project page needs first: the project, or the 404 / 403 a browser should see."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotation import selectors
from annotation.permissions import check_project_admin
from core.errors import NotAllowed, NotFound


def project_for_admin_page(request, project_id: int):
    """The project, for its admins (and staff); others get 404 (not visible) or 403 (no admin role)."""
    try:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
    except NotFound:
        raise Http404 from None
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    return project
