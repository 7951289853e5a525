"""Admins drive runs: REST launch (validated, 409 while active), detail, cancel; pages; `manage.py train`."""

import uuid

import pytest
from django.core.management import call_command

from tests.test_training_support import TRIGGER_CHECK, approve_all, route_named_task, small_model_path
from training.models import RunStatus, TrainingRun


@pytest.fixture
def quiet_queues(settings, monkeypatch):
    settings.HANDOVER_TRAINING_QUEUE = f"nobody-{uuid.uuid4().hex}"
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)


@pytest.mark.django_db
def test_launch_detail_conflict_and_cancel_over_rest(project, people, api, quiet_queues):
    # given approved samples in a one-tier project
    project.review_tiers, project.retrain_threshold = 1, 1000
    project.save()
    approve_all(project, 6)
    admin = api(people["admin"])

    # an annotator may not launch; bad hyper-parameters are a 400 naming the key
    url = f"/api/projects/{project.pk}/training-runs/"
    assert api(people["annotator"]).post(url, {"method": "lora"}, format="json").status_code == 403
    bad = admin.post(url, {"method": "lora", "hyperparameters": {"learning_rate": -1}}, format="json")
    assert bad.status_code == 400 and "learning_rate" in bad.json()["error"]["message"]

    # when the admin launches a run
    created = admin.post(url, {"method": "freeze", "hyperparameters": {"max_steps": 3}}, format="json")

    # then it is queued with its snapshot, and a second launch is a 409 while it is active
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "queued" and body["method"] == "freeze" and body["snapshot"]["n_train"] >= 1
    assert body["hyperparameters"]["max_steps"] == 3
    again = admin.post(url, {"method": "lora"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_active"
    detail = admin.get(f"/api/training-runs/{body['id']}/")
    assert detail.status_code == 200 and detail.json()["progress"]["step"] == 0
    assert api(people["outsider"]).get(f"/api/training-runs/{body['id']}/").status_code == 404
    assert admin.get(url).json()["results"][0]["id"] == body["id"]

    # and cancelling a queued run ends it at once; cancelling again is a 409
    cancelled = admin.post(f"/api/training-runs/{body['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert admin.post(f"/api/training-runs/{body['id']}/cancel/").status_code == 409


@pytest.mark.django_db
def test_pages_show_runs_to_admins(client, project, people, quiet_queues):
    project.review_tiers = 1
    project.save()
    approve_all(project, 4)
    from training.runs.launch import training_run_create

    run = training_run_create(project=project, actor=None)
    client.force_login(people["admin"])
    listing = client.get(f"/projects/{project.pk}/training/")
    assert listing.status_code == 200 and f"/training/{run.pk}/" in listing.content.decode()
    page = client.get(f"/projects/{project.pk}/training/{run.pk}/")
    assert page.status_code == 200 and "loss-chart" in page.content.decode()
    client.force_login(people["outsider"])
    assert client.get(f"/projects/{project.pk}/training/{run.pk}/").status_code == 404


def test_a_run_is_acted_on_only_under_its_own_project(client, project, people, quiet_queues):
    # given a queued run, and its admin also admin of another project
    project.review_tiers = 1
    project.save()
    approve_all(project, 4)
    from training.runs.launch import training_run_create

    from .factories import MembershipFactory, ProjectFactory

    run = training_run_create(project=project, actor=None)
    other = ProjectFactory()
    MembershipFactory(project=other, user=people["admin"], role="admin")
    client.force_login(people["admin"])

    # when they cancel it through the other project's page, then it is not found and stays queued
    assert client.post(f"/projects/{other.pk}/training/{run.pk}/cancel/").status_code == 404
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_manage_py_train_runs_the_loop_in_process(quiet_queues, capsys):
    # given a project with approved samples and no deployed model
    from tests.factories import ProjectFactory

    project = ProjectFactory(review_tiers=1, retrain_threshold=1000, human_eval_size=2)
    approve_all(project, 12)

    # when an admin trains from the command line
    call_command(
        "train", "--project", project.slug, "--method", "lora", "--base-model", str(small_model_path()),
        "--hyperparameters", '{"learning_rate": 0.01, "max_steps": 30, "warmup_ratio": 0, "max_seq_len": 64}',
    )  # fmt: skip

    # then the run trained, was evaluated against the base model, and waits for people (or was gated)
    run = TrainingRun.objects.get(project=project)
    assert run.step == 30 and run.metrics["candidate"]["n"] >= 1
    assert run.status in (RunStatus.HUMAN_EVAL, RunStatus.REJECTED)
    assert f"Run {run.pk}" in capsys.readouterr().out
