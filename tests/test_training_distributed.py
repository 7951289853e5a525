"""Runs trained by two processes under a real Celery worker: progress, heartbeat and the loss curve come
back from rank 0, a cancel stops both ranks, and a killed worker takes its ranks with it while the run
resumes elsewhere from its checkpoint. Also the settings' validation at launch, naming the key."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from annotation.services import items_create
from core.errors import ApplicationError
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
from training.runs import execute, launch, status, watchdog

TWO_PROCESSES = {"num_processes": 2, "batch_size": 4, "learning_rate": 1e-3, "max_seq_len": 64}
BUSY = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.EVALUATING)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"num_processes": 0}, "hyperparameters.num_processes"),
        ({"mixed_precision": "fp8"}, "hyperparameters.mixed_precision: must be one of no, bf16, fp16"),
        ({"qlora": "yes"}, "hyperparameters.qlora"),
        ({"early_stopping_patience": 3}, "hyperparameters.early_stopping_patience: needs eval_every"),
        ({"eval_every": -1}, "hyperparameters.eval_every"),
        ({"gradient_checkpointing": 1}, "hyperparameters.gradient_checkpointing"),
    ],
)
def test_the_new_settings_are_validated_with_the_key_named(values, named):
    with pytest.raises(ApplicationError) as error:
        launch.hyperparameters_validate(method="lora", values=values)
    key = named.split(".")[1].split(":")[0]
    assert error.value.message.startswith(named) and error.value.details == {"hyperparameters": [key]}


@pytest.mark.django_db
def test_qlora_needs_lora_and_bf16_is_the_older_spelling_of_mixed_precision():
    with pytest.raises(ApplicationError, match="hyperparameters.qlora: needs method lora"):
        launch.hyperparameters_validate(method="full", values={"qlora": True})

    values = launch.hyperparameters_validate(method="lora", values={"bf16": True, "num_processes": 2})
    assert values["mixed_precision"] == "bf16" and "bf16" not in values and values["num_processes"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_setting_the_worker_cannot_honour_fails_the_run_with_its_reason(settings, monkeypatch):
    # given a run asking for fp16 on a worker without CUDA
    settings.HANDOVER_TRAINING_QUEUE = f"nobody-{uuid.uuid4().hex}"
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)
    project = approved_project(8)
    run = launch.training_run_create(
        project=project,
        actor=None,
        hyperparameters={"mixed_precision": "fp16", "num_processes": 2},
        send=False,
    )

    # when a worker executes it, then it fails saying which setting and why, before any process started
    assert execute.training_run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert run.status_reason.startswith("mixed_precision: fp16 needs a CUDA GPU")
    assert not (Path(run.output_dir) / "train" / "launch").exists()


def approved_project(n: int):
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000)
    items_create(project=project, actor=None, rows=task_rows(n))
    (annotator,) = annotators(project, 1)
    for _ in range(n):
        approve_one(project, annotator)
    return project


def start_worker(queue: str, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "solo",
         "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h", "-l", "info", "--without-mingle", "--without-gossip"],
        cwd=conftest.ROOT, env=conftest.test_database_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def own_queue(settings, monkeypatch):
    """A project with approved samples whose runs go to a queue only this test's workers read."""
    queue = f"distributed-{uuid.uuid4().hex[:8]}"
    settings.HANDOVER_TRAINING_QUEUE = queue
    settings.HANDOVER_TRAINING_HEARTBEAT_TIMEOUT = 2
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)
    return queue, approved_project(24)


def training_children(worker: subprocess.Popen) -> list[psutil.Process]:
    """The torchrun agent and its ranks under the worker, once all three are there."""
    assert wait_until(lambda: len(psutil.Process(worker.pid).children(recursive=True)) >= 3, timeout=60)
    return psutil.Process(worker.pid).children(recursive=True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_two_process_run_reports_through_the_worker_and_stops_on_cancel(own_queue, tmp_path):
    queue, project = own_queue
    with open(tmp_path / "worker.log", "w") as log:
        worker = start_worker(queue, log)
        try:
            # given a long run on two processes, training under the worker
            hyper = {**TWO_PROCESSES, "max_steps": 100_000, "checkpoint_every": 0}
            run = launch.training_run_create(
                project=project, actor=None, hyperparameters=hyper, base_model=str(tiny_model_path())
            )
            assert wait_until(lambda: TrainingRun.objects.get(pk=run.pk).step >= 5, timeout=120), log.name
            children = training_children(worker)

            # then rank 0's progress reached the row: step, loss curve, heartbeat
            run.refresh_from_db()
            assert run.status == RunStatus.RUNNING and len(run.loss_curve) == run.step
            assert run.tokens_per_s > 0 and run.heartbeat_at is not None

            # when an admin cancels it
            status.training_run_cancel(run_id=run.pk, actor=None)

            # then both ranks stop at one step, save one checkpoint, exit, and the run ends cancelled
            assert wait_until(lambda: TrainingRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED, 60)
            _, alive = psutil.wait_procs(children, timeout=30)
            assert alive == []
            assert worker.poll() is None  # the worker itself carries on
        finally:
            conftest.stop_process(worker)
    checkpoints = list((Path(run.output_dir) / "train").glob("checkpoint-*/state.pt"))
    assert len(checkpoints) == 1 and (checkpoints[0].parent / "rng-rank-1.pt").exists()
    assert (Path(run.output_dir) / "train" / "launch" / "STOP").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_killed_worker_takes_its_ranks_and_the_run_resumes_on_two_processes(own_queue, tmp_path):
    queue, project = own_queue
    hyper = {**TWO_PROCESSES, "max_steps": 48, "checkpoint_every": 4}
    with open(tmp_path / "worker.log", "w") as log:
        worker = start_worker(queue, log)
        try:
            run = launch.training_run_create(
                project=project, actor=None, hyperparameters=hyper, base_model=str(tiny_model_path())
            )
            assert wait_until(lambda: TrainingRun.objects.get(pk=run.pk).step >= 8, timeout=120), log.name
            children = training_children(worker)

            # when the worker is killed outright
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()

            # then its torchrun agent and both ranks die with it: nobody trains into the run's folder
            _, alive = psutil.wait_procs(children, timeout=15)
            assert alive == []
        finally:
            conftest.stop_process(worker)
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING and run.step < run.total_steps

        # and once the heartbeat is stale, the watchdog re-queues it, and a new worker resumes it on two
        # processes from the last checkpoint and finishes
        time.sleep(2.5)
        assert watchdog.training_runs_watchdog() == {"requeued": [run.pk], "failed": []}
        worker = start_worker(queue, log)
        try:
            assert wait_until(lambda: TrainingRun.objects.get(pk=run.pk).status not in BUSY, timeout=240), (
                tmp_path / "worker.log"
            ).read_text()[-3000:]
        finally:
            conftest.stop_process(worker)
    run.refresh_from_db()
    assert run.attempts == 2 and len(run.resumed_from) == 1 and "checkpoint-" in run.resumed_from[0]
    assert run.step == run.total_steps == 48 and len(run.loss_curve) == 48
    assert run.status in (RunStatus.HUMAN_EVAL, RunStatus.REJECTED), run.status_reason
    assert (
        run.metrics["candidate"]["n"] >= 1
        and run.metrics["training"]["stop_reason"] == "trained all 48 steps"
    )
