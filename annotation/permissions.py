"""check_* functions: each raises NotAllowed unless the user may do the thing; views call them."""

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import Project, Role
from annotation.selectors import user_roles
from core.errors import NotAllowed


def check_can_create_project(*, user: AbstractBaseUser) -> None:
    if not user.is_staff:
        raise NotAllowed("Only staff can create projects.")


def check_project_role(*, user: AbstractBaseUser, project: Project, roles: set[str] | frozenset[str]) -> None:
    """The user holds one of `roles` in the project (staff count as admin)."""
    if not user_roles(user=user, project=project) & set(roles):
        names = ", ".join(sorted(roles))
        raise NotAllowed(f"This needs one of these roles in project '{project.slug}': {names}.")


def check_project_admin(*, user: AbstractBaseUser, project: Project) -> None:
    check_project_role(user=user, project=project, roles={Role.ADMIN})
