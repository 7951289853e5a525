"""Navigation for every page: the project switcher and the menu the user's roles allow."""

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from annotation.models import Role
from annotation.selectors import project_list_for_user, roles_by_project
from core.hooks import PAGE_NOTICES, hook

# (label, url name, roles that see it[, extra url kwargs]); each feature adds its entries here.
PROJECT_MENU = [
    (_("Overview"), "project-detail", {Role.ANNOTATOR, Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Annotate"), "workbench", {Role.ANNOTATOR}, {"stage": "annotate"}),
    (_("Expert review"), "workbench", {Role.EXPERT}, {"stage": "expert"}),
    (_("Domain review"), "workbench", {Role.DOMAIN_REVIEWER}, {"stage": "domain"}),
    (_("Spot checks"), "workbench", {Role.DOMAIN_REVIEWER}, {"stage": "spot_check"}),
    (_("Dashboard"), "project-dashboard", {Role.ADMIN, Role.EXPERT, Role.DOMAIN_REVIEWER}),
    (_("Quality"), "review-quality", {Role.ANNOTATOR, Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Items"), "project-items", {Role.ADMIN, Role.EXPERT, Role.DOMAIN_REVIEWER}),
    (_("Members"), "project-members", {Role.ADMIN}),
    (_("Models"), "project-models", {Role.ANNOTATOR, Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Training"), "training-runs", {Role.ADMIN}),
    (_("Calibration"), "training-calibration", {Role.ADMIN}),
    (_("Model judge"), "training-judge", {Role.ADMIN}),
    (_("Import"), "dataio-imports", {Role.ADMIN}),
    (_("Export"), "dataio-export", {Role.ADMIN}),
    (_("Rate"), "review-rate", {Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Agreement"), "review-agreement", {Role.ADMIN}),
    (_("Compare"), "review-compare", {Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Rank"), "review-rank", {Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Leaderboard"), "review-leaderboard", {Role.ADMIN}),
    (_("Adjudication"), "review-adjudications", {Role.DOMAIN_REVIEWER, Role.ADMIN}),
    (_("Gold checks"), "review-gold", {Role.ADMIN}),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    notices = hook(PAGE_NOTICES)  # e.g. review's gold checks: a warning owed since the last page
    if notices:
        notices(request)
    projects = list(project_list_for_user(user=user))
    roles = roles_by_project(user=user)
    match = getattr(request, "resolver_match", None)
    # Pages under a project name it in the URL; others (an item's timeline) say which on the request.
    project_id = match.kwargs.get("project_id") if match else None
    project_id = project_id or getattr(request, "nav_project_id", None)
    current = next((p for p in projects if p.pk == project_id), None)
    menu: list[dict] = []
    if current is not None:
        my_roles = roles.get(current.pk, set()) | ({Role.ADMIN} if user.is_staff else set())
        menu = []
        for label, name, allowed, *extra in PROJECT_MENU:
            kwargs = extra[0] if extra else {}
            if my_roles & allowed:
                active = match.url_name == name and all(match.kwargs.get(k) == v for k, v in kwargs.items())
                url = reverse(name, kwargs={"project_id": current.pk, **kwargs})
                # Admin-only pages go under one "Manage" menu so the bar stays readable.
                menu.append({"label": label, "url": url, "active": active, "manage": allowed == {Role.ADMIN}})
        current.my_roles = [Role(role).label for role in sorted(my_roles)]
    return {
        "nav_projects": projects,
        "nav_project": current,
        "nav_menu": [entry for entry in menu if not entry["manage"]],
        "nav_manage": [entry for entry in menu if entry["manage"]],
    }
