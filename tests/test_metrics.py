"""GET /metrics: who may scrape it, and that its figures follow what happens (asks, drafts) and what is
stored (queues, runs, tickets, the deployed version)."""

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from annotation.models import ItemStatus
from annotation.services import items_create
from tests.factories import ProjectFactory
from tests.test_drafting_support import version_deploy
from training import drafting
from training.models import ModelVersion

pytestmark = pytest.mark.django_db


def scrape(client) -> dict:
    """{(sample name, frozenset of labels): value} of one scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def ask(client, project, question="Where is my parcel?"):
    return client.post(f"/api/projects/{project.pk}/ask/", {"question": question}, format="json")


def test_nobody_but_staff_or_the_scrape_token_reads_metrics(people, api):
    assert Client().get("/metrics").status_code == 401
    assert api(people["admin"]).get("/metrics").status_code == 403  # a project admin is no operator
    assert api(people["staff"]).get("/metrics").status_code == 200
    with override_settings(HANDOVER_METRICS_TOKEN="scrape-secret"):
        assert Client(HTTP_AUTHORIZATION="Bearer scrape-secret").get("/metrics").status_code == 200
        assert Client(HTTP_AUTHORIZATION="Bearer guess").get("/metrics").status_code == 403
    assert Client(HTTP_AUTHORIZATION="Bearer scrape-secret").get("/metrics").status_code == 401  # unset


def test_queues_tickets_and_asks_are_counted(project, people, api):
    staff = api(people["staff"])
    items_create(project=project, actor=None, rows=[{"input": f"q{i}"} for i in range(3)])
    other = ProjectFactory()
    items_create(project=other, actor=None, rows=[{"input": "elsewhere"}])
    before = scrape(staff)

    # when a question comes in while no model is deployed: it is handed over
    response = ask(api(people["annotator"]), project)
    assert response.json()["handed_over"] is True
    after = scrape(staff)

    p = str(project.pk)
    assert value(after, "handover_items", project=p, status=ItemStatus.NEW) == 4  # 3 imported + the question
    assert value(after, "handover_items", project=str(other.pk), status=ItemStatus.NEW) == 1
    assert (
        value(after, "handover_tickets_total", project=p)
        == value(before, "handover_tickets_total", project=p) + 1
    )
    assert (
        value(after, "handover_ask_total", project=p, outcome="handed_over", arm="none")
        == value(before, "handover_ask_total", project=p, outcome="handed_over", arm="none") + 1
    )
    latency = value(after, "handover_ask_latency_seconds_count", outcome="handed_over", arm="none")
    assert (
        latency == value(before, "handover_ask_latency_seconds_count", outcome="handed_over", arm="none") + 1
    )


@override_settings(HANDOVER_ASK_QUEUE="nobody-consumes-this", HANDOVER_ASK_TIMEOUT=0.5)
def test_an_ask_nobody_answers_in_time_counts_as_unavailable(project, people, api):
    ModelVersion.objects.create(project=project, name="v1", base_model="/nowhere", status="deployed")
    before = scrape(api(people["staff"]))

    assert ask(api(people["annotator"]), project).status_code == 503

    after = scrape(api(people["staff"]))
    p = str(project.pk)
    assert grew(before, after, "handover_ask_total", project=p, outcome="unavailable", arm="none") == 1
    assert value(after, "handover_deployed_version", project=p) == ModelVersion.objects.get().pk


def test_drafts_written_by_the_drafting_task_are_counted(project, people, api):
    items_create(project=project, actor=None, rows=[{"input": f"question {i}"} for i in range(3)])
    version_deploy(project)
    before = scrape(api(people["staff"]))

    progress = drafting.drafts_generate_next(project_id=project.pk)  # the task's body, the real model

    after = scrape(api(people["staff"]))
    p = str(project.pk)
    assert progress.drafted == 3
    assert (
        value(after, "handover_drafts_total", project=p)
        == value(before, "handover_drafts_total", project=p) + 3
    )
    assert value(after, "handover_items", project=p, status=ItemStatus.DRAFTED) == 3
