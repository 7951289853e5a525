"""Create (or refresh) the demo project and one user per role; safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.demo import DEMO_PASSWORD_SUFFIX, DEMO_PROJECT, DEMO_PROMPTS, DEMO_USERS
from annotation.models import ItemSource, Membership, Project
from annotation.services import items_create, project_create


def demo_logins() -> list[tuple[str, str, str]]:
    return [(username, f"{username}{DEMO_PASSWORD_SUFFIX}", role) for username, role, _ in DEMO_USERS]


class Command(BaseCommand):
    help = "Create the demo project, its users (one per role) and a few dozen prompts."

    @transaction.atomic
    def handle(self, *args, **options):
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
        from training.demo import demo_model_ensure

        demo_model_ensure(project=project, stdout=self.stdout)
