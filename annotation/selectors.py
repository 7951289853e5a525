"""Reads of projects and memberships; every read is scoped to what the user may see."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet

from core.errors import NotFound

from .models import Item, ItemStatus, Membership, Project, Role


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Staff see every project; everyone else the projects they hold a role in."""
    projects = Project.objects.all()
    if not user.is_staff:
        projects = projects.filter(memberships__user=user).distinct()
    return projects.order_by("name", "pk")


def project_visible_to(*, user: AbstractBaseUser, project_id: int) -> bool:
    return project_list_for_user(user=user).filter(pk=project_id).exists()


def project_get_for_user(*, user: AbstractBaseUser, project_id: int) -> Project:
    """The project, or NotFound when it does not exist or the user may not see it (no existence leak)."""
    try:
        return project_list_for_user(user=user).get(pk=project_id)
    except Project.DoesNotExist:
        raise NotFound("Project not found.") from None


def user_roles(*, user: AbstractBaseUser, project: Project) -> set[str]:
    """The user's roles in the project; staff act as the project's admin as well."""
    roles = set(Membership.objects.filter(project=project, user=user).values_list("role", flat=True))
    if user.is_staff:
        roles.add(Role.ADMIN)
    return roles


def roles_by_project(*, user: AbstractBaseUser) -> dict[int, set[str]]:
    """All of a user's roles, keyed by project id, in one query (navigation on every page)."""
    result: dict[int, set[str]] = {}
    for project_id, role in Membership.objects.filter(user=user).values_list("project_id", "role"):
        result.setdefault(project_id, set()).add(role)
    return result


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username", "role")


def project_state_counts(*, project_id: int) -> dict[str, int]:
    """Items per state, every state present (zero where none), in the order of the workflow."""
    counts = dict(
        Item.objects.filter(project_id=project_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in ItemStatus.values}
