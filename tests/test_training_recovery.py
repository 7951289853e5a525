"""A worker killed mid-training: the watchdog notices the silent heartbeat, and the run resumes from its
last checkpoint and finishes, or fails with its reason once its attempts are spent; never stuck."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from annotation.services import items_create
from tests import conftest
from tests.factories import ProjectFactory
from tests.test_drafting_support import tiny_model_path
from tests.test_training_support import (
    TRIGGER_CHECK,
    annotators,
    approve_one,
    route_named_task,
    task_rows,
    wait_until,
)
from training.models import RunStatus, TrainingRun
from training.runs import launch, watchdog

SLOW_TRAINING = {"learning_rate": 1e-3, "max_steps": 48, "batch_size": 8, "max_seq_len": 64,
                 "checkpoint_every": 4}  # fmt: skip


def start_worker(queue: str, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "solo",
         "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h", "-l", "info", "--without-mingle", "--without-gossip"],
        cwd=conftest.ROOT, env=conftest.test_database_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def run_on_own_queue(settings, monkeypatch):
    """A queued run whose messages go to a queue only this test's workers read."""
    queue = f"recovery-{uuid.uuid4().hex[:8]}"
    settings.HANDOVER_TRAINING_QUEUE = queue
    settings.HANDOVER_TRAINING_HEARTBEAT_TIMEOUT = 2
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000)
    items_create(project=project, actor=None, rows=task_rows(24))
    (annotator,) = annotators(project, 1)
    for _ in range(24):
        approve_one(project, annotator)
    return queue, project


def kill_mid_training(queue, project, log):
    worker = start_worker(queue, log)
    try:
        run = launch.training_run_create(
            project=project, actor=None, hyperparameters=SLOW_TRAINING, base_model=str(tiny_model_path())
        )
        # when the worker is killed (SIGKILL: no clean-up at all) after a few checkpoints
        assert wait_until(lambda: TrainingRun.objects.get(pk=run.pk).step >= 8, timeout=120), log.name
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    finally:
        conftest.stop_process(worker)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.step < run.total_steps
    return run


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_killed_worker_s_run_resumes_from_its_checkpoint_and_finishes(run_on_own_queue, tmp_path):
    queue, project = run_on_own_queue
    with open(tmp_path / "worker.log", "w") as log:
        run = kill_mid_training(queue, project, log)

        # then once the heartbeat is stale, the watchdog re-queues it
        time.sleep(2.5)
        assert watchdog.training_runs_watchdog() == {"requeued": [run.pk], "failed": []}
        run.refresh_from_db()
        assert run.status == RunStatus.QUEUED and "worker lost" in run.status_reason

        # and a new worker resumes it from the last checkpoint and finishes training
        worker = start_worker(queue, log)
        try:
            assert wait_until(
                lambda: (
                    TrainingRun.objects.get(pk=run.pk).status
                    not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.EVALUATING)
                ),
                timeout=180,
            ), (tmp_path / "worker.log").read_text()[-3000:]
        finally:
            conftest.stop_process(worker)
    run.refresh_from_db()
    assert run.attempts == 2 and len(run.resumed_from) == 1 and "checkpoint-" in run.resumed_from[0]
    assert run.step == run.total_steps == SLOW_TRAINING["max_steps"]
    assert len(run.loss_curve) == run.total_steps
    assert run.status in (RunStatus.HUMAN_EVAL, RunStatus.REJECTED), run.status_reason
    assert run.metrics["candidate"]["n"] >= 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_killed_run_without_attempts_left_fails_with_its_reason(run_on_own_queue, tmp_path, settings):
    queue, project = run_on_own_queue
    settings.HANDOVER_TRAINING_MAX_ATTEMPTS = 1
    with open(tmp_path / "worker.log", "w") as log:
        run = kill_mid_training(queue, project, log)
    time.sleep(2.5)

    assert watchdog.training_runs_watchdog() == {"requeued": [], "failed": [run.pk]}
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "no heartbeat" in run.status_reason and "gave up after 1 attempts" in run.status_reason
