"""The answer cache: an `ask` repeating a question people already answered gets their approved answer,
without the model, and the cache follows the item as it changes (nothing is copied, nothing goes stale)."""

import random

import pytest
from django.core.management import call_command
from django.test import override_settings

from annotation.dataio.conversation import question_key, question_normalise, single_turn
from annotation.models import Item, ItemStatus, Stage
from annotation.services import items_create
from review.decisions.services import spot_checks_sample
from training.models import HandoverTicket, ModelVersion

from .workflow_helpers import annotate, review

pytestmark = pytest.mark.django_db
ANSWER = "Parcels arrive within three working days; the tracking link is in your confirmation e-mail."


def ask(client, project, question):
    return client.post(f"/api/projects/{project.pk}/ask/", {"question": question}, format="json")


def approve_all(project, people, text=ANSWER):
    """Every new item of the project through the three tiers, with the real workflow services."""
    n = Item.objects.filter(project=project, status=ItemStatus.NEW).count()
    for _ in range(n):
        annotate(project, people["annotator"], text)
    for _ in range(n):
        review(project, people["expert"], Stage.EXPERT)
    for _ in range(n):
        review(project, people["domain_reviewer"], Stage.DOMAIN)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Where is my parcel?", " where  is my PARCEL "),
        ("Where is my parcel?", "Where is my parcel？"),  # a full-width question mark
        ("Ｗｈｅｒｅ is my parcel", "where is my parcel?!"),  # full-width letters
        ("我的包裹在哪里？", "我的包裹在哪里"),
    ],
)
def test_questions_that_differ_in_case_spacing_or_final_punctuation_are_one(a, b):
    assert question_normalise(a) == question_normalise(b)
    assert question_key(system="", messages=single_turn(a)) == question_key(
        system="", messages=single_turn(b)
    )


def test_other_words_a_system_prompt_tools_or_history_are_never_the_same_question():
    key = question_key(system="", messages=single_turn("Where is my parcel?"))
    assert question_key(system="", messages=single_turn("Where is my parcel, please?")) != key
    assert question_key(system="You are terse.", messages=single_turn("Where is my parcel?")) == ""
    assert question_key(system="", messages=single_turn("Where is my parcel?"), tools=[{"name": "t"}]) == ""
    history = [
        *single_turn("Hi"),
        {"role": "assistant", "content": "Hello!"},
        *single_turn("Where is my parcel?"),
    ]
    assert question_key(system="", messages=history) == ""


@override_settings(HANDOVER_ASK_QUEUE="nobody-consumes-this", HANDOVER_ASK_TIMEOUT=0.5)
def test_a_question_people_answered_is_answered_from_the_cache_without_the_model(project, people, api):
    # given an approved imported question, and a deployed model that no worker would ever answer for
    items_create(project=project, actor=None, rows=[{"input": "Where is my parcel?"}])
    approve_all(project, people)
    ModelVersion.objects.create(project=project, name="v1", base_model="/nowhere", status="deployed")
    item = Item.objects.get(project=project)

    # when an application asks the same question, spelt differently
    response = ask(api(people["annotator"]), project, "where is my PARCEL")

    # then people's approved answer comes back at once, saying where it came from, and nothing is handed over
    assert response.status_code == 200, response.content
    assert response.json() == {
        "answer": ANSWER,
        "confidence": None,
        "model_version": None,
        "handed_over": False,
        "source": "cache",
        "item": item.pk,
    }
    assert not HandoverTicket.objects.exists()
    # and a question nobody answered yet still goes to the model (here: no worker, so 503)
    assert ask(api(people["annotator"]), project, "Can I pay by invoice?").status_code == 503


def test_a_handed_over_question_is_answered_from_the_cache_once_people_approved_it(project, people, api):
    client = api(people["annotator"])
    first = ask(client, project, "Can I pay by invoice?").json()  # no model deployed: handed over
    assert (first["handed_over"], first["source"]) == (True, "people")

    approve_all(project, people, "Yes: business accounts can pay by invoice within 30 days.")

    again = ask(client, project, "can I pay by invoice").json()
    assert again["source"] == "cache" and again["answer"].startswith("Yes: business accounts")
    assert HandoverTicket.objects.count() == 1  # the repeat opened no second ticket


def spot_check_all(project):
    project.spot_check_rate = 1.0
    project.save(update_fields=["spot_check_rate"])
    assert spot_checks_sample(project=project, rng=random.Random(0)) == 1


def test_an_answer_edited_in_a_spot_check_is_the_next_cached_answer(project, people, api):
    items_create(project=project, actor=None, rows=[{"input": "Where is my parcel?"}])
    approve_all(project, people)
    client = api(people["annotator"])

    spot_check_all(project)
    assert ask(client, project, "Where is my parcel?").json()["answer"] == ANSWER  # it stands while checked
    review(project, people["domain_reviewer"], Stage.SPOT_CHECK, decision="edit", text="Within two days.")

    assert ask(client, project, "Where is my parcel?").json()["answer"] == "Within two days."


def test_an_answer_a_spot_check_sends_back_is_no_longer_given(project, people, api):
    items_create(project=project, actor=None, rows=[{"input": "Where is my parcel?"}])
    approve_all(project, people)

    spot_check_all(project)
    review(project, people["domain_reviewer"], Stage.SPOT_CHECK, decision="reject", comment="Outdated.")
    assert Item.objects.get(project=project).status == ItemStatus.REWORK

    body = ask(api(people["annotator"]), project, "Where is my parcel?").json()
    assert (body["source"], body["handed_over"]) == ("people", True)


def test_a_project_can_turn_the_cache_off(project, people, api):
    items_create(project=project, actor=None, rows=[{"input": "Where is my parcel?"}])
    approve_all(project, people)
    response = api(people["admin"]).patch(
        f"/api/projects/{project.pk}/", {"answer_cache": False}, format="json"
    )
    assert response.status_code == 200 and response.json()["answer_cache"] is False

    body = ask(api(people["annotator"]), project, "Where is my parcel?").json()

    assert (body["source"], body["handed_over"]) == ("people", True)  # no model deployed: people get it


def test_items_imported_from_a_file_are_keyed_as_created_ones_are(project, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "Where is my parcel?"}]}\n'
        '{"messages": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"}]}\n'
    )
    call_command("import_items", str(path), project=project.slug, verbosity=0)  # COPY into staging

    keys = dict(Item.objects.filter(project=project).values_list("input", "question_key"))
    assert keys["Where is my parcel?"] == question_key(system="", messages=single_turn("where is my parcel"))
    assert keys["Hi"] == ""


@pytest.mark.django_db(transaction=True)
def test_the_migration_keys_the_questions_stored_before_it():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("annotation", "0011_project_objective_human_eval_mode")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    owner = old.get_model("auth", "User").objects.create(username="owner")
    project = old.get_model("annotation", "Project").objects.create(name="Old", slug="old", created_by=owner)
    OldItem = old.get_model("annotation", "Item")
    OldItem.objects.create(
        project=project, input="Where is my parcel?", messages=single_turn("Where is my parcel?")
    )
    OldItem.objects.create(project=project, input="Hi", system="Terse.", messages=single_turn("Hi"))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    keys = dict(Item.objects.filter(project_id=project.pk).values_list("input", "question_key"))
    assert keys == {
        "Where is my parcel?": question_key(system="", messages=single_turn("where is my parcel")),
        "Hi": "",
    }
