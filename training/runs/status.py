"""A run's state changes, each one locked, audited write; what every stage of a run uses.

A run's transitions lock the run row and re-check its status. A run that ends cancelled, rejected or
failed takes its candidate version with it; a run leaving its human round closes the round's responses.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.permissions import check_project_admin
from annotation.services import audit_record
from core.errors import Conflict, NotFound

from ..models import (
    FINISHED_RUN_STATES,
    HumanEvalPair,
    ModelVersion,
    ModelVersionStatus,
    RunStatus,
    TrainingRun,
)
from ..versions import model_version_write

logger = logging.getLogger(__name__)


def _run_lock(run_id: int) -> TrainingRun | None:
    return (
        TrainingRun.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(pk=run_id)
        .first()
    )


def _run_write(
    run: TrainingRun, *, actor, to_status: str, reason: str = "", data: dict | None = None, **values
):
    """Apply a transition to a locked run, with its audit event and a live event on commit. A run that
    ends cancelled, rejected or failed takes its candidate version with it (rejected, same reason)."""
    from_status = run.status
    if from_status == RunStatus.HUMAN_EVAL and to_status != RunStatus.HUMAN_EVAL:
        _human_eval_close(run)
    if to_status in (RunStatus.CANCELLED, RunStatus.REJECTED, RunStatus.FAILED):  # it ends unpromoted
        _version_reject(run.candidate, actor=actor, reason=reason)
    run.status = to_status
    run.status_reason = reason
    if to_status in FINISHED_RUN_STATES or to_status == RunStatus.AWAITING_DECISION:
        run.finished_at = run.finished_at or timezone.now()
    for name, value in values.items():
        setattr(run, name, value)
    run.save(update_fields=["status", "status_reason", "finished_at", *values])
    audit_record(
        actor=actor,
        action=f"training_run.{to_status}",
        target=run,
        project=run.project,
        from_state=from_status,
        to_state=to_status,
        data={"reason": reason, **(data or {})} if reason or data else None,
    )
    project_id, payload = run.project_id, {"run": run.pk, "status": to_status, "reason": reason}
    transaction.on_commit(lambda: _event_send(project_id, "training_status", payload))
    return run


def _human_eval_close(run: TrainingRun) -> None:
    """The run's blind round is over (concluded, cancelled, rejected, failed): its responses leave the
    rate queue and its pairs the compare queue, so nobody spends time judging outputs that no longer
    decide anything. Ratings and judgements already given are kept."""
    from review.models import Response
    from review.preference.services import preference_close

    pairs = HumanEvalPair.objects.filter(round__run=run)
    ids = [
        *pairs.values_list("candidate_response", flat=True),
        *pairs.values_list("baseline_response", flat=True),
    ]
    Response.objects.filter(pk__in=ids, closed_at__isnull=True).update(closed_at=timezone.now())
    preference_close(pair_ids=pairs.filter(pair__isnull=False).values_list("pair", flat=True))


def _event_send(project_id: int, event: str, payload: dict) -> None:
    from core.realtime import project_event_send

    try:
        project_event_send(project_id, event, payload)
    except Exception:  # a live update is a nicety; never let it stop a run
        logger.warning("could not send %s for project %s", event, project_id, exc_info=True)


def _version_reject(version: ModelVersion | None, *, actor, reason: str) -> None:
    if version is None or version.status in (ModelVersionStatus.DEPLOYED, ModelVersionStatus.RETIRED):
        return
    model_version_write(
        version,
        to_status=ModelVersionStatus.REJECTED,
        actor=actor,
        action="model_version.reject",
        data={"reason": reason},
    )


def training_run_cancel(*, run_id: int, actor: AbstractBaseUser | None) -> TrainingRun:
    """Cancel a run. A queued run, or one waiting for people, ends at once; a training or evaluating run
    is flagged and its worker stops within a step (the watchdog ends it if the worker is gone)."""
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is None:
            raise NotFound("Training run not found.")
        if actor is not None:
            check_project_admin(user=actor, project=run.project)
        if run.status in FINISHED_RUN_STATES:
            raise Conflict(f"The run is already {run.get_status_display().lower()}.", code="run_finished")
        if run.status in (RunStatus.RUNNING, RunStatus.EVALUATING):
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
            audit_record(
                actor=actor,
                action="training_run.cancel_requested",
                target=run,
                project=run.project,
                from_state=run.status,
                to_state=run.status,
            )
            return run
        return _run_write(
            run,
            actor=actor,
            to_status=RunStatus.CANCELLED,
            reason="cancelled by an admin",
            cancel_requested=True,
        )


def training_run_reject(*, run_id: int, actor: AbstractBaseUser) -> TrainingRun:
    """The admin's decision against a waiting candidate: the run and its version are rejected."""
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is None:
            raise NotFound("Training run not found.")
        check_project_admin(user=actor, project=run.project)
        if run.status not in (RunStatus.HUMAN_EVAL, RunStatus.AWAITING_DECISION):
            raise Conflict("Only a run waiting for a decision can be rejected.", code="illegal_transition")
        return _run_write(run, actor=actor, to_status=RunStatus.REJECTED, reason="rejected by an admin")


def runs_mark_promoted(*, version: ModelVersion, actor) -> None:
    """A deploy of a run's candidate ends that run as promoted (called by model_version_deploy, which
    holds the project lock)."""
    waiting = (RunStatus.HUMAN_EVAL, RunStatus.AWAITING_DECISION)
    for run in (
        TrainingRun.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(candidate=version, status__in=waiting)
    ):
        _run_write(run, actor=actor, to_status=RunStatus.PROMOTED, reason="promoted")


def _heartbeat(run_id: int, **values) -> None:
    TrainingRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now(), **values)
