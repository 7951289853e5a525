"""`ask`: answer or hand over, bounded waiting, limits and who may call it."""

import pytest
from django.core.cache import cache
from django.test import override_settings

from annotation.models import Item, ItemSource, ItemStatus
from tests.test_drafting_support import lora_adapter_path, tiny_model_path, version_deploy
from training.models import HandoverTicket, ModelVersion
from training.registry import model_version_register, model_version_rollback
from training.tasks import model_cache_info

QUESTION = "Where is my order?"


def ask(client, project, question=QUESTION):
    return client.post(f"/api/projects/{project.pk}/ask/", {"question": question}, format="json")


def set_threshold(project, value):
    project.confidence_threshold = value
    project.save(update_fields=["confidence_threshold"])


# --- with a real worker and the tiny model ------------------------------------------------------------


@pytest.mark.parametrize("role", ["annotator", "staff"])
@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120)
def test_threshold_zero_answers_with_the_model(project, people, api, role):
    set_threshold(project, 0.0)
    project.answered_review_rate = 0.0  # no review sample (that is tests/test_calibration.py's)
    project.save(update_fields=["answered_review_rate"])
    version = version_deploy(project)

    response = ask(api(people[role]), project)

    assert response.status_code == 200
    body = response.json()
    assert body["handed_over"] is False and "ticket" not in body
    assert body["model_version"] == version.pk and 0.0 <= body["confidence"] <= 1.0
    assert body["answer"] and body["answer"] != project.fallback_message
    assert not Item.objects.filter(project=project, source=ItemSource.PRODUCTION).exists()


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120)
def test_threshold_one_hands_over_with_a_ticket_and_a_priority_item(project, people, api):
    set_threshold(project, 1.0)
    version = version_deploy(project)

    body = ask(api(people["annotator"]), project).json()

    assert body["handed_over"] is True and body["answer"] == project.fallback_message
    ticket = HandoverTicket.objects.get(pk=body["ticket"])
    item = ticket.item
    assert (item.input, item.source, item.priority) == (QUESTION, ItemSource.PRODUCTION, 100)
    # the model's attempt is kept as the item's draft, so people start from it
    assert item.status == ItemStatus.DRAFTED and item.low_confidence
    assert item.drafts.get().model_version_id == version.pk
    status = api(people["annotator"]).get(f"/api/tickets/{ticket.pk}/").json()
    assert status["status"] == "open" and status["answer"] is None


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120)
def test_deploying_an_adapter_changes_answers_without_reloading_the_base(project, people, api):
    # given the base model deployed and answering
    set_threshold(project, 0.0)
    client = api(people["annotator"])
    base = version_deploy(project, name="base")
    base_answer = ask(client, project).json()["answer"]
    before = model_cache_info.delay().get(timeout=60)

    # when a version with a LoRA adapter is deployed
    tuned = version_deploy(project, name="tuned", adapter_path=lora_adapter_path())
    tuned_answer = ask(client, project).json()["answer"]
    after = model_cache_info.delay().get(timeout=60)

    # then the answer changes, while the worker kept the very same base model object
    assert tuned_answer != base_answer
    key = str(tiny_model_path().resolve())
    assert after[key]["base_model_id"] == before[key]["base_model_id"]
    assert after[key]["active_adapter"] == f"mv{tuned.pk}"
    # and rolling back switches back to the plain base, again without reloading
    model_version_rollback(project=project, actor=None, to_version_id=base.pk)
    assert ask(client, project).json()["answer"] == base_answer
    assert model_cache_info.delay().get(timeout=60)[key]["base_model_id"] == before[key]["base_model_id"]


# --- without a worker ---------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(HANDOVER_ASK_QUEUE="nobody-consumes-this", HANDOVER_ASK_TIMEOUT=0.5)
def test_no_worker_in_time_is_503_with_retry_after(project, people, api):
    ModelVersion.objects.create(project=project, name="v1", base_model="/nowhere", status="deployed")

    response = ask(api(people["annotator"]), project)

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "model_unavailable"
    assert not HandoverTicket.objects.exists()


@pytest.mark.django_db
@override_settings(HANDOVER_ASK_MAX_CHARS=20)
def test_question_over_the_limit_is_413(project, people, api):
    response = ask(api(people["annotator"]), project, "x" * 21)

    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"max_chars": 20, "chars": 21}


@pytest.mark.django_db
@override_settings(HANDOVER_ASK_RATE="2/min", HANDOVER_ASK_MAX_CHARS=5)
def test_asking_too_often_is_429_per_token(project, people, api):
    cache.delete_many([f"throttle_ask_{people[r].pk}" for r in ("annotator", "expert")])
    client = api(people["annotator"])
    assert [ask(client, project, "too long").status_code for _ in range(2)] == [413, 413]

    response = ask(client, project, "too long")

    assert response.status_code == 429 and "Retry-After" in response
    assert ask(api(people["expert"]), project, "too long").status_code == 413  # another token's own budget


@pytest.mark.django_db
def test_outsiders_get_404_and_anonymous_401(project, people, api):
    assert ask(api(people["outsider"]), project).status_code == 404
    assert ask(api(None), project).status_code == 401


@pytest.mark.django_db
def test_without_a_deployed_model_every_question_is_handed_over(project, people, api):
    model_version_register(project=project, actor=None, name="candidate only")

    body = ask(api(people["annotator"]), project).json()

    assert body["handed_over"] is True and body["confidence"] is None
    assert HandoverTicket.objects.get(pk=body["ticket"]).item.status == ItemStatus.NEW
