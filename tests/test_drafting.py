"""Drafting through a real Celery worker and the tiny model's real generate path."""

import time

import pytest

from annotation.dataio.conversation import single_turn
from annotation.models import Draft, Item, ItemStatus
from annotation.services import items_create
from tests.factories import ProjectFactory
from tests.test_drafting_support import version_deploy
from training import model_cache
from training.drafting import generate, item_prompt, project_drafting_request
from training.registry import model_spec

QUESTIONS = ["Where is my order?", "我的订单怎么还没到？", "Can I change my delivery address please?", "退货"]


def wait_until(condition, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_deploy_drafts_new_items_with_confidence_and_version(celery_worker_process):
    # given a project with new items and no model
    project = ProjectFactory(confidence_threshold=0.0)
    items_create(project=project, actor=None, rows=[{"input": q} for q in QUESTIONS])

    # when a version is deployed (nobody asks for drafts)
    version = version_deploy(project)

    # then the worker drafts every item with that version, and the items move to drafted
    assert wait_until(lambda: not Item.objects.filter(project=project, status=ItemStatus.NEW).exists())
    drafts = list(Draft.objects.filter(item__project=project))
    assert len(drafts) == len(QUESTIONS)
    assert {(d.model_version_id, d.rank) for d in drafts} == {(version.pk, 0)}
    assert all(0.0 <= d.confidence <= 1.0 for d in drafts)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_candidates_are_stored_ranked_and_low_confidence_routes_to_experts(celery_worker_process):
    # given a deployed version offering three sampled candidates, routing unsure drafts to the expert tier
    project = ProjectFactory(
        confidence_threshold=1.0, review_tiers=3, draft_candidates=3, route_low_confidence_to_expert=True
    )
    version_deploy(project, temperature=1.0, seed=3)

    # when items are imported afterwards and drafting is requested on commit
    items_create(project=project, actor=None, rows=[{"input": q} for q in QUESTIONS[:2]])
    project_drafting_request(project_id=project.pk)

    # then each has three ranked candidates, and (all under threshold 1) they wait for an expert
    assert wait_until(lambda: Item.objects.filter(project=project, status=ItemStatus.SUBMITTED).count() == 2)
    for item in Item.objects.filter(project=project):
        confidences = list(item.drafts.order_by("rank").values_list("confidence", flat=True))
        assert len(confidences) == 3 and confidences == sorted(confidences, reverse=True)
        assert item.low_confidence and item.needs_expert


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_conversation_is_drafted_from_its_whole_history(celery_worker_process):
    # given a deployed version and an item holding a conversation: a system prompt, an earlier exchange,
    # and the question the reply answers
    project = ProjectFactory(confidence_threshold=0.0)
    version = version_deploy(project)
    row = {
        "system": "You are the shop's assistant.",
        "messages": [
            {"role": "user", "content": "我的订单怎么还没到？"},
            {"role": "assistant", "content": "请提供您的订单号。"},
            {"role": "user", "content": "Order 7731, placed on Monday."},
        ],
    }
    items_create(project=project, actor=None, rows=[row])

    # when the worker drafts it
    project_drafting_request(project_id=project.pk)
    assert wait_until(Draft.objects.filter(item__project=project).exists)

    # then the draft is the model's continuation of the whole conversation, rendered through the chat
    # template, and not of the last question alone
    item = Item.objects.get(project=project)
    prompt = item_prompt(project, messages=item.messages, system=item.system, tools=item.tools)
    with model_cache.lock:
        rendered = model_cache.drafter_for(model_spec(version)).render(prompt)
    assert rendered.startswith("<|bos|><|im_start|>system\nYou are the shop's assistant.<|im_end|>\n")
    assert (
        "<|im_start|>user\n我的订单怎么还没到？<|im_end|>\n<|im_start|>assistant\n请提供您的订单号。"
        in rendered
    )
    draft = item.drafts.get()
    assert draft.text == generate(version, [prompt])[0][0].text
    question_alone = item_prompt(project, messages=single_turn(item.input))
    assert draft.text != generate(version, [question_alone])[0][0].text


@pytest.mark.django_db
def test_seed_demo_deploys_the_demo_model_once(settings, tmp_path):
    settings.HANDOVER_BASE_MODEL = ""
    settings.HANDOVER_MODELS_DIR = tmp_path
    from django.core.management import call_command

    from training.models import ModelVersion

    call_command("seed_demo")
    call_command("seed_demo")

    deployed = ModelVersion.objects.get(status="deployed")
    # the tiny model, warmed up on the demo answers (training/demo.py), built once
    assert deployed.base_model == str(tmp_path / "demo") and (tmp_path / "demo" / "config.json").exists()
    assert ModelVersion.objects.count() == 1
