"""The import path through a real Celery worker, and the guards that keep a job from running twice."""

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotation.importing import import_job_create, import_job_run, import_jobs_fail_stale
from annotation.models import ImportJob, ImportStatus, Item
from tests.import_helpers import jsonl


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_uploaded_file_is_imported_by_the_worker(celery_worker_process, api, people, project):
    # given a worker that shares MEDIA_ROOT with the web process (both from HANDOVER_VAR_DIR)
    client = api(people["admin"])
    content = jsonl({"input": "one", "external_id": "1"}, {"input": "two", "external_id": "2"})
    # when
    response = client.post(
        f"/api/projects/{project.pk}/imports/",
        {"file": SimpleUploadedFile("q.jsonl", content)},
        format="multipart",
    )
    job = _wait(client, response.json()["id"])
    # then
    assert job["status"] == "succeeded", job
    assert job["counts"]["imported"] == 2
    assert Item.objects.filter(project=project).count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_worker_imports_conversations_whole(celery_worker_process, api, people, project):
    # given a ShareGPT file of four-turn conversations with an id and a category
    turns = [{"from": "human", "value": "问题"}, {"from": "gpt", "value": "回答"},
             {"from": "human", "value": "还有呢?"}, {"from": "gpt", "value": "没有了。"}]  # fmt: skip
    records = [{"id": n, "category": "it", "conversations": turns} for n in range(3)]
    client = api(people["admin"])
    # when the worker runs the upload
    response = client.post(
        f"/api/projects/{project.pk}/imports/",
        {"file": SimpleUploadedFile("chat.jsonl", jsonl(*records))},
        format="multipart",
    )
    job = _wait(client, response.json()["id"])
    # then each conversation arrived whole, and the job says where its keys went
    assert (job["status"], job["counts"]["imported"]) == ("succeeded", 3), job
    assert job["key_report"]["category"] == {"to": "metadata.category", "rows": 3}
    item = Item.objects.get(project=project, external_id="0")
    assert ([turn["role"] for turn in item.messages], item.reference_output) == (
        ["user", "assistant", "user"], "没有了。")  # fmt: skip
    assert item.metadata == {"category": "it"}


def _wait(client, job_id: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/imports/{job_id}/").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    return job


def _job(project, content: bytes) -> ImportJob:
    return import_job_create(
        project=project,
        actor=None,
        filename="q.jsonl",
        file=SimpleUploadedFile("q.jsonl", content),
        enqueue=False,
    )


@pytest.mark.django_db
def test_a_finished_job_is_not_run_again(project):
    job = _job(project, jsonl({"input": "one"}))
    import_job_run(job_id=job.pk)
    Item.objects.all().delete()
    again = import_job_run(job_id=job.pk)
    assert again.status == ImportStatus.SUCCEEDED and not Item.objects.exists()


@pytest.mark.django_db
def test_a_running_job_with_a_fresh_heartbeat_is_left_alone(project):
    job = _job(project, jsonl({"input": "one"}))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, heartbeat_at=timezone.now())
    assert import_job_run(job_id=job.pk).status == ImportStatus.RUNNING
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_a_redelivered_job_whose_worker_died_is_failed_with_the_reason(project, settings):
    job = _job(project, jsonl({"input": "one"}))
    stale = timezone.now() - timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT + 1)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, heartbeat_at=stale)
    result = import_job_run(job_id=job.pk)
    assert result.status == ImportStatus.FAILED and "no heartbeat" in result.message


@pytest.mark.django_db
def test_stale_running_jobs_are_failed_by_the_periodic_check(project, settings):
    job = _job(project, jsonl({"input": "one"}))
    stale = timezone.now() - timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT + 1)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, heartbeat_at=stale)
    assert import_jobs_fail_stale() == 1
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_commit_hook_fails_still_says_what_it_imported(project, monkeypatch):
    # given a hook sent on the import's commit that fails, as a send to a broker that is down does
    from django.db import transaction

    from annotation import services

    def arrived_then_fail(*, project_id):
        transaction.on_commit(lambda: (_ for _ in ()).throw(ConnectionError("broker down")))

    monkeypatch.setattr(services, "items_arrived", arrived_then_fail)
    job = _job(project, jsonl({"input": "one"}))

    # when
    result = import_job_run(job_id=job.pk)

    # then the committed import is reported as it is
    assert (result.status, result.rows_imported) == (ImportStatus.SUCCEEDED, 1)
    assert Item.objects.filter(project=project).count() == 1
