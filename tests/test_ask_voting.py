"""Voting (issue 17): when the model's sampled answers to a question disagree, `ask` hands it over even if
the model is confident. The model here is a scripted OpenAI-compatible server whose sampled answers agree
or not, so the vote is the only thing that differs between the cases."""

import itertools

import pytest

from tests.model_servers import Stub, chat_route, models_route
from training.engine import remote
from training.handover import answers_agreement
from training.models import HandoverTicket
from training.registry import model_version_deploy, model_version_register

pytestmark = pytest.mark.django_db

SAME = "Parcels arrive within three working days."
DIFFERENT = ["Parcels arrive within three working days.", "We do not ship abroad.", "Call us on Monday."]


@pytest.fixture(autouse=True)
def fresh_circuits():
    remote.BREAKER.reset()
    yield
    remote.BREAKER.reset()


def served(project, texts):
    """A server whose successive sampled answers cycle through `texts`, deployed for `project`."""
    answers = itertools.cycle(texts)

    def chat(body):
        text = next(answers) if body["max_tokens"] > 1 else "ok"  # registration's probe asks for 1 token
        return chat_route(text, logprobs=[-0.01, -0.02])(body)

    stub = Stub({("GET", "/v1/models"): models_route("m"), ("POST", "/v1/chat/completions"): chat})
    stub.__enter__()
    version = model_version_register(
        project=project, actor=None, name="sampled", backend="openai", server_url=stub.url, server_model="m",
        generation={"temperature": 1.0, "max_new_tokens": 16, "seed": 1},
    )  # fmt: skip
    model_version_deploy(version_id=version.pk, actor=None)
    return stub


def ask(client, project):
    return client.post(f"/api/projects/{project.pk}/ask/", {"question": "Where is my parcel?"}, format="json")


def setup_project(project, *, vote):
    project.draft_candidates, project.confidence_threshold = 3, 0.5
    project.vote_min_agreement, project.answered_review_rate = vote, 0.0
    project.save()


def test_agreement_is_the_mean_rouge_l_of_the_best_answer_against_the_others():
    assert answers_agreement([SAME, SAME, SAME]) == 1.0
    assert answers_agreement(DIFFERENT) < 0.3
    assert answers_agreement([SAME]) is None  # one answer: nothing to vote


@pytest.mark.parametrize(("texts", "handed_over"), [([SAME], False), (DIFFERENT, True)])
def test_confident_answers_that_disagree_are_handed_over(project, people, api, texts, handed_over):
    setup_project(project, vote=0.6)
    stub = served(project, texts)
    try:
        body = ask(api(people["annotator"]), project).json()
    finally:
        stub.__exit__()

    assert body["confidence"] > 0.9  # the model was sure each time
    assert body["handed_over"] is handed_over
    assert body["agreement"] == pytest.approx(1.0 if not handed_over else answers_agreement(DIFFERENT))
    assert HandoverTicket.objects.exists() is handed_over
    # three sampled answers were asked for, one request each
    assert len([r for r in stub.calls("/v1/chat/completions") if r[2]["max_tokens"] > 1]) == 3


def test_without_voting_the_same_disagreeing_answers_are_given(project, people, api):
    setup_project(project, vote=0.0)
    stub = served(project, DIFFERENT)
    try:
        body = ask(api(people["annotator"]), project).json()
    finally:
        stub.__exit__()

    assert body["handed_over"] is False and "agreement" not in body


def test_the_setting_is_checked(project, people, api):
    response = api(people["admin"]).patch(
        f"/api/projects/{project.pk}/", {"vote_min_agreement": 1.5}, format="json"
    )
    assert response.status_code == 400
    assert "vote_min_agreement" in response.json()["error"]["details"]
