"""Create (or refresh) the demo project, one user per role and its model; safe to run again.

It lives in training, the top layer, because the demo spans every app down to a deployed model.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.demo import DEMO_PASSWORD_SUFFIX, DEMO_PROJECT, DEMO_PROMPTS, DEMO_USERS
from annotation.models import ItemSource, Membership, Project
from annotation.services import items_create, project_create
from training.demo import demo_model_ensure


def demo_logins() -> list[tuple[str, str, str]]:
    return [(username, f"{username}{DEMO_PASSWORD_SUFFIX}", role) for username, role, _ in DEMO_USERS]


class Command(BaseCommand):
    help = "Create the demo project, its users (one per role) and a few dozen prompts."

    def add_arguments(self, parser):
        parser.add_argument("--logins", action="store_true", help="only print the demo logins")

    @transaction.atomic
    def handle(self, *args, logins: bool = False, **options):
        if logins:
            for username, password, role in demo_logins():
                self.stdout.write(f"  {username:<16} {password:<28} {role}")
            return
        User = get_user_model()
        users = {}
        for username, role, is_staff in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": is_staff})
            if created:
                user.set_password(f"{username}{DEMO_PASSWORD_SUFFIX}")
                user.is_superuser = is_staff
                user.save()
            users[role] = user

        project = Project.objects.filter(slug=DEMO_PROJECT["slug"]).first()
        if project is None:
            project = project_create(created_by=users["admin"], **DEMO_PROJECT)
        for role, user in users.items():
            Membership.objects.get_or_create(project=project, user=user, role=role)
        created = items_create(
            project=project,
            actor=users["admin"],
            source=ItemSource.DEMO,
            rows=[{"input": text, "external_id": f"demo-{n:03d}"} for n, text in enumerate(DEMO_PROMPTS, 1)],
        )
        self.stdout.write(f"Demo project '{project.name}' ready ({created} new items).")
        # The demo's model (issue 6): the tiny model unless one is configured, deployed, drafting the items.
        demo_model_ensure(project=project, stdout=self.stdout)
