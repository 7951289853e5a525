"""Celery tasks of the platform itself."""

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from .models import WorkerHeartbeat


@shared_task(bind=True, ignore_result=False)
def worker_heartbeat(self) -> str:
    """Record that this worker took a task off the broker; beat sends it every 30 s."""
    hostname = self.request.hostname or "unknown"
    updated = WorkerHeartbeat.objects.filter(hostname=hostname).update(
        seen_at=timezone.now(), tasks_seen=F("tasks_seen") + 1
    )
    if not updated:
        WorkerHeartbeat.objects.get_or_create(
            hostname=hostname, defaults={"seen_at": timezone.now(), "tasks_seen": 1}
        )
    return hostname
