"""The semantic answer cache: an `ask` close in meaning to a question people answered gets their approved
answer, said with its similarity; it follows the item as it changes, like the exact cache.

The embedding model is the tiny model the project builds (any local Hugging Face directory works; a real
team points it at all-MiniLM-L6-v2). Its vectors are random-weight ones, but they still put questions that
share most words close together and others far apart, which is all these tests need; the thresholds below
are set between similarities measured with the same model, never typed in.
"""

import time

import numpy as np
import pytest
from django.test import override_settings

from annotation.dataio.conversation import question_normalise
from annotation.models import Item, ItemStatus, Stage
from annotation.services import items_create
from training import semantic_cache
from training.engine.embedding import embedder_for
from training.models import HandoverTicket, QuestionEmbedding

from .test_answer_cache import ANSWER, approve_all, ask, spot_check_all
from .test_drafting_support import tiny_model_path
from .workflow_helpers import review

QUESTION = "Where is my parcel?"
CLOSE = "Where is my parcel, please?"  # another question for the exact cache
FAR = "Can I pay by invoice?"


@pytest.fixture(autouse=True)
def fresh_indexes():
    semantic_cache.indexes_clear()  # each web process holds its own; ids repeat after a flush
    yield
    semantic_cache.indexes_clear()


def similarity(a: str, b: str) -> float:
    vectors = embedder_for(str(tiny_model_path())).embed([question_normalise(a), question_normalise(b)])
    return float(vectors[0] @ vectors[1])


def semantic_on(project, threshold: float | None = None):
    project.semantic_cache_model = str(tiny_model_path())
    if threshold is None:  # between the close question and the far one, as this model sees them
        close, far = similarity(QUESTION, CLOSE), similarity(QUESTION, FAR)
        assert close > far + 0.2, (close, far)
        threshold = (close + far) / 2
    project.semantic_cache_threshold = threshold
    project.save(update_fields=["semantic_cache_model", "semantic_cache_threshold"])


def approved(project, people, questions=(QUESTION,), text=ANSWER):
    items_create(project=project, actor=None, rows=[{"input": q} for q in questions])
    approve_all(project, people, text)


def test_embeddings_are_unit_vectors_and_a_batch_gives_each_row_as_alone():
    embedder = embedder_for(str(tiny_model_path()))
    texts = [QUESTION, "退货", "How do I return a product I bought last week and get my money back?"]

    batch = embedder.embed(texts)

    assert batch.shape == (3, embedder.dimension) and batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    alone = np.stack([embedder.embed([t])[0] for t in texts])  # no padding at all
    assert np.allclose(batch, alone, atol=1e-5)  # padding is masked out of the mean
    assert embedder.embed([]).shape == (0, embedder.dimension)


@pytest.mark.django_db
def test_a_close_question_gets_the_approved_answer_with_its_similarity(project, people, api):
    # given an approved single question, a multi-turn one, and the semantic cache on
    approved(project, people)
    items_create(
        project=project, actor=None,
        rows=[{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                            {"role": "user", "content": CLOSE}]}],
    )  # fmt: skip
    approve_all(project, people)
    semantic_on(project)
    item = Item.objects.get(project=project, input=QUESTION)

    # when an application asks a question the exact cache does not know, but close to it
    response = ask(api(people["annotator"]), project, CLOSE)

    # then people's answer comes back from the cache, saying which item and how close
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["source"], body["item"], body["answer"], body["handed_over"]) == (
        "cache",
        item.pk,
        ANSWER,
        False,
    )
    assert body["similarity"] == pytest.approx(similarity(QUESTION, CLOSE), abs=1e-4)
    assert not HandoverTicket.objects.exists()
    # only the single question was embedded (a conversation with history is never a cache entry)
    assert list(QuestionEmbedding.objects.values_list("item_id", "question_key")) == [
        (item.pk, item.question_key)
    ]
    # and a question far from it is handed over (no model deployed)
    far = ask(api(people["annotator"]), project, FAR).json()
    assert (far["source"], far["handed_over"]) == ("people", True) and "similarity" not in far


@pytest.mark.django_db
def test_the_exact_cache_answers_first_and_says_no_similarity(project, people, api):
    approved(project, people)
    semantic_on(project)

    body = ask(api(people["annotator"]), project, "where is my PARCEL").json()

    assert body["source"] == "cache" and "similarity" not in body


@pytest.mark.django_db
def test_below_the_threshold_the_semantic_cache_does_not_answer(project, people, api):
    approved(project, people)
    semantic_on(project, threshold=min(1.0, similarity(QUESTION, CLOSE) + 0.01))

    body = ask(api(people["annotator"]), project, CLOSE).json()

    assert (body["source"], body["handed_over"]) == ("people", True)


@pytest.mark.django_db
def test_an_answer_edited_in_a_spot_check_is_the_one_given(project, people, api):
    approved(project, people)
    semantic_on(project)
    client = api(people["annotator"])
    assert ask(client, project, CLOSE).json()["answer"] == ANSWER

    spot_check_all(project)
    review(project, people["domain_reviewer"], Stage.SPOT_CHECK, decision="edit", text="Within two days.")

    assert ask(client, project, CLOSE).json()["answer"] == "Within two days."  # the current revision


@pytest.mark.django_db
def test_an_answer_sent_back_to_rework_is_no_longer_given(project, people, api):
    approved(project, people)
    semantic_on(project)
    client = api(people["annotator"])
    assert ask(client, project, CLOSE).json()["source"] == "cache"  # embedded and held by this process

    spot_check_all(project)
    review(project, people["domain_reviewer"], Stage.SPOT_CHECK, decision="reject", comment="Outdated.")

    assert Item.objects.get(project=project).status == ItemStatus.REWORK
    body = ask(client, project, CLOSE).json()
    assert (body["source"], body["handed_over"]) == ("people", True)


@pytest.mark.django_db
def test_an_item_that_asks_another_question_now_is_passed_over(project, people, api):
    approved(project, people)
    semantic_on(project)
    client = api(people["annotator"])
    assert ask(client, project, CLOSE).json()["source"] == "cache"  # embedded and held by this process

    item = Item.objects.get(project=project)
    Item.objects.filter(pk=item.pk).update(input=FAR, question_key="0" * 64)  # its question changed

    body = ask(client, project, CLOSE).json()
    assert (body["source"], body["handed_over"]) == ("people", True)


@pytest.mark.django_db
def test_with_nothing_approved_or_the_cache_off_the_question_is_handed_over(project, people, api):
    semantic_on(project, threshold=0.0)  # everything would be close enough
    client = api(people["annotator"])
    body = ask(client, project, CLOSE).json()  # a fresh project: nothing approved, nothing embedded
    assert (body["source"], body["handed_over"]) == ("people", True)

    approved(project, people, questions=[QUESTION])
    project.answer_cache = False  # turns both caches off
    project.save(update_fields=["answer_cache"])
    body = ask(client, project, FAR).json()
    assert (body["source"], body["handed_over"]) == ("people", True)


@pytest.mark.django_db
def test_the_embedding_model_must_be_a_model_directory(project, people, api, tmp_path):
    admin = api(people["admin"])
    url = f"/api/projects/{project.pk}/"

    missing = admin.patch(url, {"semantic_cache_model": str(tmp_path / "nowhere")}, format="json")
    not_a_model = admin.patch(url, {"semantic_cache_model": str(tmp_path)}, format="json")
    ok = admin.patch(url, {"semantic_cache_model": str(tiny_model_path())}, format="json")
    by_annotator = api(people["annotator"]).patch(url, {"semantic_cache_model": ""}, format="json")

    assert missing.status_code == 400 and "semantic_cache_model" in missing.json()["error"]["message"]
    assert "not a directory" in missing.json()["error"]["message"]
    assert not_a_model.status_code == 400 and "config.json" in not_a_model.json()["error"]["message"]
    assert ok.status_code == 200 and ok.json()["semantic_cache_model"] == str(tiny_model_path())
    assert by_annotator.status_code == 403


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@override_settings(HANDOVER_SEMANTIC_CACHE_INLINE=0)  # the ask embeds nothing itself here
def test_the_worker_embeds_an_approved_answer_after_its_approval(project, people, api):
    # given the semantic cache on, and a question people approve (the approval sends the trigger task)
    semantic_on(project)
    approved(project, people)
    item = Item.objects.get(project=project)

    # when the real worker has run the approval's task
    deadline = time.monotonic() + 60
    while not QuestionEmbedding.objects.filter(item=item).exists() and time.monotonic() < deadline:
        time.sleep(0.2)

    # then the question is embedded with its key, and a close question is answered from it
    assert QuestionEmbedding.objects.filter(item=item, question_key=item.question_key).exists()
    body = ask(api(people["annotator"]), project, CLOSE).json()
    assert (body["source"], body["item"]) == ("cache", item.pk)
