"""Celery tasks of the model side, all on the `gpu` queue; each fetches by id and calls a service."""

from celery import shared_task

from annotation.dataio.conversation import single_turn
from annotation.models import Project
from core.realtime import project_event_send

from . import (
    drafting,
    model_cache,
    trigger,  # noqa: F401  (registers the loop's default-queue tasks in every worker)
    versus,
)
from .judging import dispatch  # noqa: F401  (registers the default-queue task new responses send)
from .judging import services as judging
from .models import ModelVersion
from .runs import execute


@shared_task
def project_drafts_generate(project_id: int) -> dict:
    """Draft one chunk of the project's undrafted items, report progress, and send itself for the rest.

    One chunk per task keeps the gpu queue fair: an `ask` waits for at most one chunk, not a whole import.
    When the version's server fails (down, overloaded, circuit open), the items it could not draft stay
    undrafted and the task sends itself again after the server's Retry-After (or the circuit's cooldown),
    so no worker waits on a dead server and nothing is lost.
    """
    progress = drafting.drafts_generate_next(project_id=project_id)
    if progress.model_version is None:
        return {"drafted": 0, "remaining": progress.remaining}
    payload = {"drafted": progress.drafted, "remaining": progress.remaining}
    if progress.retry_after is not None:
        payload["retry_after"] = progress.retry_after
    if progress.drafted or progress.remaining or progress.retry_after is not None:  # else no news to tell
        project_event_send(project_id, "drafting", {**payload, "model_version": progress.model_version})
    if progress.retry_after is not None:
        project_drafts_generate.apply_async((project_id,), countdown=progress.retry_after)
    elif progress.remaining and progress.drafted:
        project_drafts_generate.delay(project_id)
    return payload


@shared_task
def ask_generate(model_version_id: int, question: str) -> dict:
    """The candidates (best first) of one version for one question; the web process applies the threshold.
    (A version on a server is asked by the web process itself, `handover.ask_model`.)"""
    version = ModelVersion.objects.select_related("project").get(pk=model_version_id)
    prompt = drafting.item_prompt(version.project, messages=single_turn(question))
    candidates = drafting.generate(version, [prompt])[0]
    return {
        "model_version": version.pk,
        "candidates": [{"text": c.text, "confidence": c.confidence} for c in candidates],
    }


@shared_task
def model_cache_info() -> dict:
    """What the worker that runs this holds in memory: base models (by object identity) and adapters."""
    return model_cache.cache_info()


@shared_task(acks_late=True)
def training_run_execute(run_id: int) -> str | None:
    """Train, evaluate and open the human round of one run; a run this worker cannot claim is left alone."""
    return execute.training_run_execute(run_id=run_id)


@shared_task
def versions_compare_run(
    project_id: int, version_a: int, version_b: int, n: int, actor_id: int | None, prompts: str, task_id: str
) -> dict:
    """Two versions answer the same prompts and each prompt's answers become a pair (`versus`)."""
    from django.contrib.auth import get_user_model

    project = Project.objects.get(pk=project_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    return versus.versions_compare(
        project=project,
        version_a=version_a,
        version_b=version_b,
        n=n,
        actor=actor,
        prompts=prompts,
        task_id=task_id,
    )


@shared_task
def judge_run(judge_id: int) -> dict:
    """Judge one chunk of the project's open responses (and pairs) the judge has not judged, and send
    itself for the rest; after the server's Retry-After when the judge's server failed (`judging`)."""
    progress = judging.judge_run_next(judge_id=judge_id)
    if progress.retry_after is not None:
        judge_run.apply_async((judge_id,), countdown=progress.retry_after)
    elif progress.remaining and (progress.judged or progress.failed or progress.picked):
        judge_run.delay(judge_id)
    return progress.as_dict()
