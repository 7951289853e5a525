"""Operational records: which Celery workers have consumed work, and when."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """Written by a worker each time it runs the heartbeat task; one row per worker host."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()
    tasks_seen = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
