"""A new user's first steps on a fresh stack: nothing built by hand, an empty models directory.

A new project trains from the default base model and `ask` answers from it, because whichever process
first needs the default builds it; a model directory that cannot load is refused when it is registered,
deployed or launched, with the path and what is missing.
"""

import json
import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from tests.factories import UserFactory
from tests.test_drafting_support import tiny_model_path
from tests.test_training_support import TOPICS, answer_for, wait_until
from training.engine.model_files import model_dir_problems
from training.models import ModelVersion, RunStatus, TrainingRun
from training.registry import model_version_deploy, model_version_register
from training.runs.execute import training_run_execute
from training.runs.launch import training_run_create


@pytest.fixture
def empty_models_dir():
    """The models directory a fresh `make run` starts with: none. The worker shares it (one var dir)."""
    models = Path(settings.HANDOVER_MODELS_DIR)
    shutil.rmtree(models, ignore_errors=True)
    return models


def wait_for_import(client, job_id: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/imports/{job_id}/").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not end: {job}")


# --- the two flows of a new user, through the API and a real worker -------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_new_projects_threshold_run_trains_and_evaluates_from_nothing(
    celery_worker_process, empty_models_dir, api
):
    # given a new project made through the API, threshold 8 and one tier, as a new user makes it
    staff = api(UserFactory(username="founder", is_staff=True))
    project = staff.post(
        "/api/projects/", {"name": "Fresh", "retrain_threshold": 8, "review_tiers": 1}, format="json"
    ).json()
    annotator = UserFactory(username="first-annotator")
    assert (
        staff.post(
            f"/api/projects/{project['id']}/members/",
            {"username": annotator.username, "role": "annotator"},
            format="json",
        ).status_code
        == 201
    )
    rows = [{"input": f"Question {i} about my {TOPICS[i % 2][0]}?"} for i in range(8)]
    upload = SimpleUploadedFile("q.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    job = staff.post(f"/api/projects/{project['id']}/imports/", {"file": upload}, format="multipart").json()
    assert wait_for_import(staff, job["id"])["counts"]["imported"] == 8

    # when the annotator answers all eight (one tier: each submission approves)
    worker = api(annotator)
    for _ in range(8):
        task = worker.post(f"/api/projects/{project['id']}/tasks/next/", {"stage": "annotate"}, format="json")
        assert task.status_code == 200, task.content
        item = task.json()["item"]
        submitted = worker.post(
            f"/api/items/{item['id']}/submit/",
            {"text": answer_for(item["input"]), "version": item["version"]},
            format="json",
        )
        assert submitted.status_code == 200 and submitted.json()["status"] == "approved"

    # then one run starts on the default base model, which the worker builds, trains and evaluates
    assert wait_until(lambda: TrainingRun.objects.filter(project_id=project["id"]).exists(), timeout=30)
    run = TrainingRun.objects.get(project_id=project["id"])
    assert run.trigger == "threshold" and run.base_model == str(empty_models_dir / "tiny")
    assert wait_until(
        lambda: (
            TrainingRun.objects.get(pk=run.pk).status
            not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.EVALUATING)
        ),
        timeout=240,
    )
    run.refresh_from_db()
    assert run.status != RunStatus.FAILED, run.status_reason
    assert run.step == run.total_steps > 0
    assert {"candidate", "baseline"} <= set(run.metrics) and run.metrics["candidate"]["n"] >= 1
    assert run.candidate is not None and model_dir_problems(empty_models_dir / "tiny") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_ask_answers_after_deploying_a_version_registered_with_no_base_model(
    celery_worker_process, empty_models_dir, api, people, project
):
    # given a project whose admin registers a version naming no base model, and deploys it
    project.confidence_threshold = 0.0  # answer whatever the confidence: this is about the model loading
    project.save(update_fields=["confidence_threshold"])
    admin = api(people["admin"])
    registered = admin.post(f"/api/projects/{project.pk}/model-versions/", {"name": "base"}, format="json")
    assert registered.status_code == 201, registered.content
    version = registered.json()
    assert version["base_model"] == str(empty_models_dir / "tiny")
    assert admin.post(f"/api/model-versions/{version['id']}/promote/").json()["status"] == "deployed"

    # when an application asks
    response = api(people["annotator"]).post(
        f"/api/projects/{project.pk}/ask/", {"question": "Where is my order?"}, format="json"
    )

    # then the deployed default answers, built by the worker that first needed it
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["handed_over"] is False and body["model_version"] == version["id"]
    assert 0.0 < body["confidence"] <= 1.0
    assert model_dir_problems(empty_models_dir / "tiny") == []


# --- model directories that cannot load, refused with the path and the reason ---------------------------


def register(api, people, project, **body):
    return api(people["admin"]).post(
        f"/api/projects/{project.pk}/model-versions/", {"name": "v", **body}, format="json"
    )


@pytest.mark.django_db
def test_a_dangling_base_model_path_is_refused_at_registration(api, people, project):
    response = register(api, people, project, base_model="/nonexistent/model")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "model_files"
    assert error["message"] == "base_model: base model directory /nonexistent/model does not exist."
    assert not ModelVersion.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_a_hub_id_is_refused_with_how_to_point_at_a_local_directory(api, people, project):
    response = register(api, people, project, base_model="Qwen/Qwen2.5-0.5B-Instruct")

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "looks like a Hugging Face Hub id" in message and "cannot be downloaded here" in message
    assert "--local-dir" in message and "HANDOVER_BASE_MODEL" in message


@pytest.mark.django_db
def test_a_directory_without_a_tokenizer_is_refused_naming_what_is_missing(api, people, project, tmp_path):
    no_tokenizer = shutil.copytree(
        tiny_model_path(), tmp_path / "no-tokenizer", ignore=shutil.ignore_patterns("tokenizer*")
    )

    response = register(api, people, project, base_model=str(no_tokenizer))

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith(f"base_model: base model directory {no_tokenizer} has no tokenizer")


@pytest.mark.django_db
def test_an_adapter_directory_without_weights_is_refused(api, people, project, tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))

    response = register(api, people, project, base_model=str(tiny_model_path()), adapter_path=str(tmp_path))

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "adapter_path": [
            f"adapter directory {tmp_path} has no adapter weights "
            "(adapter_model.safetensors or adapter_model.bin)."
        ]
    }


@pytest.mark.django_db
def test_a_base_model_setting_that_points_nowhere_is_named_at_registration(api, people, project, tmp_path):
    with override_settings(HANDOVER_BASE_MODEL=str(tmp_path / "gone")):
        response = register(api, people, project)

    assert response.status_code == 400
    assert "(set by HANDOVER_BASE_MODEL) does not exist" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_a_version_whose_directory_went_away_is_refused_at_deploy(api, people, project, tmp_path):
    model = shutil.copytree(tiny_model_path(), tmp_path / "model")
    version = model_version_register(project=project, actor=None, name="v", base_model=str(model))
    shutil.rmtree(model)

    response = api(people["admin"]).post(f"/api/model-versions/{version.pk}/promote/")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == f"base_model: base model directory {model} does not exist."
    assert ModelVersion.objects.get(pk=version.pk).status == "candidate"


@pytest.mark.django_db
def test_the_default_registers_and_deploys_before_anything_is_built(empty_models_dir, project):
    version = model_version_register(project=project, actor=None, name="v")

    deployed = model_version_deploy(version_id=version.pk, actor=None)

    assert deployed.status == "deployed" and deployed.base_model == str(empty_models_dir / "tiny")
    assert not empty_models_dir.exists()  # the web side never builds it: the worker does, on first use


@pytest.mark.django_db
def test_a_launch_naming_a_missing_base_model_is_400(api, people, project):
    response = api(people["admin"]).post(
        f"/api/projects/{project.pk}/training-runs/", {"base_model": "/nonexistent/model"}, format="json"
    )

    assert response.status_code == 400
    assert "base model directory /nonexistent/model does not exist" in response.json()["error"]["message"]
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_a_run_whose_base_model_cannot_load_fails_with_the_reason_on_its_page(
    people, project, client, tmp_path
):
    # given a queued run over a base model directory that is removed before a worker gets to it
    from tests.test_training_support import approve_all

    project.review_tiers = 1
    project.save(update_fields=["review_tiers"])
    approve_all(project, 3)
    model = shutil.copytree(tiny_model_path(), tmp_path / "model")
    run = training_run_create(project=project, actor=None, base_model=str(model), send=False)
    shutil.rmtree(model)

    # when the worker executes it
    status = training_run_execute(run_id=run.pk)

    # then it fails saying so, in a person's words, on the run page
    run.refresh_from_db()
    assert status == run.status == RunStatus.FAILED
    assert run.status_reason == f"Base model directory {model} does not exist."
    client.force_login(people["admin"])
    page = client.get(f"/projects/{project.pk}/training/{run.pk}/").content.decode()
    assert f"Base model directory {model} does not exist." in page
