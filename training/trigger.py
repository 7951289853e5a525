"""The training trigger (approval → on commit → count → at most one queued run) and the loop's beat tasks.

These tasks live outside `training.tasks` on purpose: `training.tasks.*` routes to the gpu queue, and
counting, the watchdog and concluding human rounds are cheap database work for the default queue.
"""

import logging

from celery import shared_task
from django.db import transaction

from annotation.models import Project
from core.errors import ApplicationError

from . import canary, semantic_cache, snapshots
from .runs import human_eval, launch, watchdog

logger = logging.getLogger(__name__)


def training_trigger_evaluate(*, project_id: int):
    """Create one queued run (trigger "threshold") when the project's approved samples in no snapshot
    reach its retrain threshold and no run is active. The cheap check runs without a lock; the run is
    created under the project's row lock, where training_run_create checks again, so concurrent
    approvals never start two runs. Returns the run, or None."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None or launch.training_run_active(project_id=project_id) is not None:
        return None
    if snapshots.approved_unsnapshotted(project_id=project_id).count() < project.retrain_threshold:
        return None
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=project_id)
        if launch.training_run_active(project_id=project_id) is not None:
            return None
        if snapshots.approved_unsnapshotted(project_id=project_id).count() < project.retrain_threshold:
            return None  # a run started meanwhile took these samples into its snapshot
        try:
            return launch.training_run_create(project=project, actor=None, trigger="threshold")
        except ApplicationError as exc:
            if exc.code != "no_pairs":
                raise
            # a preference project whose pairs are not judged yet: the next approval asks again
            logger.info("project %s reached its threshold but has no pairs to train on", project_id)
            return None


@shared_task
def training_trigger_check(project_id: int) -> int | None:
    """After an approval: maybe start a run; embed the new answers for the semantic cache (when on)."""
    semantic_cache.embeddings_refresh_for(project_id)
    run = training_trigger_evaluate(project_id=project_id)
    return run.pk if run is not None else None


@shared_task
def training_watchdog() -> dict:
    return watchdog.training_runs_watchdog()


@shared_task
def human_eval_check() -> list[int]:
    return human_eval.human_eval_check_all()


@shared_task
def canaries_decide() -> dict[int, str]:
    """Promote, roll back or cancel the running canaries whose evidence says so (training/canary.py)."""
    return canary.canaries_decide_all()
