"""Navigation for every page: the project switcher and the menu the user's roles allow."""

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .models import Role
from .selectors import project_list_for_user, roles_by_project

# (label, url name, roles that see it); each later feature adds its entry here.
PROJECT_MENU = [
    (_("Overview"), "project-detail", {Role.ANNOTATOR, Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Members"), "project-members", {Role.ADMIN}),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    projects = list(project_list_for_user(user=user))
    roles = roles_by_project(user=user)
    match = getattr(request, "resolver_match", None)
    project_id = match.kwargs.get("project_id") if match else None
    current = next((p for p in projects if p.pk == project_id), None)
    menu = []
    if current is not None:
        my_roles = roles.get(current.pk, set()) | ({Role.ADMIN} if user.is_staff else set())
        menu = [
            {"label": label, "url": reverse(name, args=[current.pk]), "active": match.url_name == name}
            for label, name, allowed in PROJECT_MENU
            if my_roles & allowed
        ]
        current.my_roles = [Role(role).label for role in sorted(my_roles)]
    return {"nav_projects": projects, "nav_project": current, "nav_menu": menu}
