"""Celery tasks of the annotation app; each fetches by id and calls a selector or service."""

import time

from celery import shared_task

from annotation.importing import import_job_run
from annotation.importing import import_jobs_fail_stale as fail_stale
from annotation.selectors import project_state_counts
from annotation.workflow.live_counts import counts_window, counts_window_length
from annotation.workflow.transitions import leases_expire
from core.realtime import project_event_send, window_length_set


@shared_task(ignore_result=True)
def project_state_counts_broadcast(project_id: int) -> None:
    """Push the project's items-per-state counts to every browser watching it, and set the project's
    next counts windows by how long counting took (live_counts.counts_window_length)."""
    started = time.monotonic()
    counts = project_state_counts(project_id=project_id)
    window_length_set(counts_window(project_id), counts_window_length(time.monotonic() - started))
    project_event_send(project_id, "state_counts", {"counts": counts})


@shared_task(ignore_result=True)
def leases_expire_task() -> int:
    """Return items whose lease ran out to their queues (beat, every minute)."""
    return leases_expire()


@shared_task(ignore_result=True)
def import_job_run_task(job_id: int) -> None:
    """Run one import job; a job that is not queued any more (re-delivery, a second send) is left alone."""
    import_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def import_jobs_fail_stale() -> None:
    """Fail imports whose worker stopped sending heartbeats (beat sends this every minute)."""
    fail_stale()
