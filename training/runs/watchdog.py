"""Stage 5, when a worker dies: a run whose heartbeat stopped is re-queued (resuming) or failed, never
left running with nobody running it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..engine.config import latest_checkpoint
from ..models import (
    RunStatus,
    TrainingRun,
)
from .launch import training_run_send_on_commit
from .status import _run_lock, _run_write


def training_runs_watchdog(*, now=None) -> dict:
    """Runs whose worker stopped beating: re-queued to resume from their last checkpoint while attempts
    remain, else failed with the reason. A run is never left "running" with nobody running it."""
    now = now or timezone.now()
    stale_before = now - timezone.timedelta(seconds=settings.HANDOVER_TRAINING_HEARTBEAT_TIMEOUT)
    busy = (RunStatus.RUNNING, RunStatus.EVALUATING)
    requeued, failed = [], []
    stale = TrainingRun.objects.filter(status__in=busy, heartbeat_at__lt=stale_before).values_list(
        "pk", flat=True
    )
    for run_id in stale:
        with transaction.atomic():
            run = _run_lock(run_id)
            if run.status not in busy or run.heartbeat_at >= stale_before:
                continue  # it moved on or beat meanwhile
            silent = f"no heartbeat for {int((now - run.heartbeat_at).total_seconds())} s (worker lost)"
            if run.cancel_requested:
                _run_write(run, actor=None, to_status=RunStatus.CANCELLED, reason=f"cancelled; {silent}")
            elif run.attempts >= settings.HANDOVER_TRAINING_MAX_ATTEMPTS:
                _run_write(
                    run,
                    actor=None,
                    to_status=RunStatus.FAILED,
                    reason=f"{silent}; gave up after {run.attempts} attempts",
                )
                failed.append(run_id)
            else:
                # the later stage's first: an SFT-then-preference run resumes in its preference stage
                stages = ("preference", "train") if run.output_dir else ()
                found = (latest_checkpoint(Path(run.output_dir) / stage) for stage in stages)
                checkpoint = next((c for c in found if c is not None), None)
                _run_write(
                    run,
                    actor=None,
                    to_status=RunStatus.QUEUED,
                    reason=f"{silent}; resuming from {checkpoint.name if checkpoint else 'the start'}",
                )
                training_run_send_on_commit(run_id=run.pk)
                requeued.append(run_id)
    return {"requeued": requeued, "failed": failed}
