"""A real Celery worker consumes tasks through Redis, and what they do reaches the database."""

import time

import pytest

from core.models import WorkerHeartbeat
from core.tasks import worker_heartbeat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_task_runs_in_the_worker_and_writes_the_database(celery_worker_process):
    # given no heartbeat yet
    WorkerHeartbeat.objects.all().delete()
    # when the task goes through the broker (not eager mode)
    result = worker_heartbeat.delay()
    hostname = result.get(timeout=30)
    # then the worker process wrote the row
    beat = WorkerHeartbeat.objects.get(hostname=hostname)
    assert hostname.startswith("test-")
    assert beat.tasks_seen == 1


def test_second_task_updates_the_same_row(celery_worker_process):
    WorkerHeartbeat.objects.all().delete()
    hostname = worker_heartbeat.delay().get(timeout=30)
    first_seen = WorkerHeartbeat.objects.get(hostname=hostname).seen_at
    time.sleep(0.01)
    worker_heartbeat.delay().get(timeout=30)
    beat = WorkerHeartbeat.objects.get(hostname=hostname)
    assert beat.tasks_seen == 2 and beat.seen_at > first_seen
