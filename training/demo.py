"""The demo's model: build the tiny model when no base model is configured, deploy it, draft the items."""

from django.conf import settings
from django.core.management import call_command

from annotation.models import Project

from .selectors import model_version_deployed
from .services import (
    default_base_model,
    model_version_deploy,
    model_version_register,
    project_drafting_request,
    undrafted_items,
)

DEMO_GENERATION = {"max_new_tokens": 48, "temperature": 0.8, "seed": 0}


def demo_model_ensure(*, project: Project, stdout=None) -> None:
    """Idempotent: a second run finds the deployed version and only asks for drafts that are missing."""
    if model_version_deployed(project_id=project.pk) is None:
        if not settings.HANDOVER_BASE_MODEL:
            call_command("build_tiny_model", stdout=stdout)  # a no-op when the model is already there
        version = model_version_register(
            project=project,
            actor=None,
            name="demo base model",
            base_model=default_base_model(),
            generation=DEMO_GENERATION,
        )
        model_version_deploy(version_id=version.pk, actor=None)  # drafting starts on commit
        if stdout is not None:
            stdout.write(f"Deployed '{version.name}' ({version.base_model}); drafting the demo items.")
    elif undrafted_items(project_id=project.pk).exists():
        project_drafting_request(project_id=project.pk)
