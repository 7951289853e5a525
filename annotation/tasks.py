"""Celery tasks of the annotation app; each fetches by id and calls a selector or service."""

from celery import shared_task

from core.realtime import project_event_send

from .selectors import project_state_counts


@shared_task(ignore_result=True)
def project_state_counts_broadcast(project_id: int) -> None:
    """Push the project's items-per-state counts to every browser watching it."""
    project_event_send(project_id, "state_counts", {"counts": project_state_counts(project_id=project_id)})
