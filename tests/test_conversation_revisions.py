"""Revisions of conversations: edits of earlier assistant turns (allowed only by the project's setting),
kept cumulatively, through submit, autosave and a reviewer's edit, and named turn by turn in the history."""

import pytest

from annotation.models import Autosave, Item, Revision, Stage
from annotation.services import item_fields
from annotation.workflow import sql as workflow_sql

from .workflow_helpers import claim

pytestmark = pytest.mark.django_db

# u, a, u, a, u: turns 2 and 4 (indexes 1 and 3) are earlier assistant turns; the reply is turn 6.
FIVE_TURNS = [
    {"role": "user", "content": "我的路由器一直闪红灯。"},
    {"role": "assistant", "content": "Unplug it for ten seconds, then plug it back in."},
    {"role": "user", "content": "Done. Still red."},
    {"role": "assistant", "content": "Is the cable from the wall socket firmly in the WAN port?"},
    {"role": "user", "content": "Yes. What now?"},
]


def chat_item(project, messages=FIVE_TURNS, **extra):
    return Item.objects.create(project=project, **item_fields({"messages": messages, **extra}))


@pytest.fixture
def editable(project):
    project.edit_all_assistant_turns = True
    project.save()
    return project


def next_task(client, project, stage):
    response = client.post(f"/api/projects/{project.pk}/tasks/next/", {"stage": stage}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def submit(client, task, **body):
    item = task["item"]
    return client.post(
        f"/api/items/{item['id']}/submit/", {"version": item["version"], **body}, format="json"
    )


def test_turn_edits_are_refused_when_the_project_does_not_allow_them(api, people, project):
    # given a conversation held by the annotator, in a project that lets them write the reply only
    item = chat_item(project)
    client = api(people["annotator"])
    task = next_task(client, project, "annotate")

    # when they submit an edit of turn 2 with their answer
    response = submit(client, task, text="Try another cable.", turns={"1": "Unplug it for a minute."})

    # then it is a 400 naming `turns`, and nothing was written
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "turns_not_editable" and "turns" in error["details"]
    assert Revision.objects.filter(item=item).count() == 0
    assert Item.objects.get(pk=item.pk).status == "annotating"


def test_the_annotator_edits_an_earlier_turn_with_the_reply(api, people, editable):
    # given a conversation in a project that lets people edit every assistant turn
    item = chat_item(editable)
    client = api(people["annotator"])
    task = next_task(client, editable, "annotate")

    # when the annotator rewrites turn 2 and writes the reply
    response = submit(client, task, text="Try another cable.", turns={"1": "Unplug it for a full minute."})

    # then the revision keeps the reply as its text and the edited turn by its index
    assert response.status_code == 200, response.content
    revision = Item.objects.get(pk=item.pk).current_revision
    assert revision.text == "Try another cable."
    assert revision.turn_edits == {"1": "Unplug it for a full minute."}
    # and the item's own turns are untouched
    assert Item.objects.get(pk=item.pk).messages == FIVE_TURNS


@pytest.mark.parametrize(
    ("turns", "named"),
    [
        ({"2": "A user turn is not the model's to rewrite."}, "turn 2"),
        ({"9": "There is no such turn."}, "turn 9"),
        ({"3": "   "}, "turn 3"),
        ({"first": "Not a number."}, "turn 'first'"),
    ],
)
def test_a_bad_turn_edit_is_a_400_naming_the_turn(api, people, editable, turns, named):
    item = chat_item(editable)
    client = api(people["annotator"])
    task = next_task(client, editable, "annotate")

    response = submit(client, task, text="An answer.", turns=turns)

    assert response.status_code == 400
    assert named in response.json()["error"]["message"]
    assert Revision.objects.filter(item=item).count() == 0


def test_a_submission_with_turns_is_left_to_the_service(people, editable):
    # the single statement cannot check turns against the setting and the conversation
    chat_item(editable)
    held = claim(editable, people["annotator"], Stage.ANNOTATE)
    statement = workflow_sql.submit_statement(
        item_id=held.pk, user_id=people["annotator"].pk, text="x", version=held.version, turns={"1": "y"}
    )
    assert statement is None


def test_edits_accumulate_and_a_turn_given_back_its_text_is_no_longer_edited(api, people, editable):
    # given an answer whose annotator rewrote turn 2
    item = chat_item(editable)
    annotator, expert, domain = (api(people[r]) for r in ("annotator", "expert", "domain_reviewer"))
    task = next_task(annotator, editable, "annotate")
    submit(annotator, task, text="Try another cable.", turns={"1": "Unplug it for a full minute."})

    # when the expert edits turn 4 only
    task = next_task(expert, editable, "expert")
    edited = expert.post(
        f"/api/items/{item.pk}/review/",
        {
            "decision": "edit",
            "version": task["item"]["version"],
            "text": "Try another cable, then call us.",
            "turns": {"3": "Is the cable firmly in the yellow WAN port?"},
        },
        format="json",
    )

    # then the expert's revision carries the annotator's edit forward with their own
    assert edited.status_code == 200, edited.content
    revision = Item.objects.get(pk=item.pk).current_revision
    assert revision.turn_edits == {
        "1": "Unplug it for a full minute.",
        "3": "Is the cable firmly in the yellow WAN port?",
    }

    # and when the domain reviewer gives turn 2 back its imported text, only turn 4 stays edited
    task = next_task(domain, editable, "domain")
    domain.post(
        f"/api/items/{item.pk}/review/",
        {
            "decision": "edit",
            "version": task["item"]["version"],
            "text": "Try another cable, then call us.",
            "turns": {"1": FIVE_TURNS[1]["content"]},
        },
        format="json",
    )
    assert Item.objects.get(pk=item.pk).current_revision.turn_edits == {
        "3": "Is the cable firmly in the yellow WAN port?"
    }


def test_a_plain_resubmission_keeps_the_edits_of_its_lineage(api, people, editable):
    # given an answer with an edited turn, sent back to its annotator
    item = chat_item(editable)
    annotator, expert = api(people["annotator"]), api(people["expert"])
    submit(annotator, next_task(annotator, editable, "annotate"), text="First.", turns={"1": "Edited."})
    task = next_task(expert, editable, "expert")
    expert.post(
        f"/api/items/{item.pk}/review/",
        {"decision": "reject", "version": task["item"]["version"], "comment": "Say more."},
        format="json",
    )

    # when the annotator resubmits the reply alone (the single-statement path serves it)
    task = next_task(annotator, editable, "annotate")
    assert task["revision"]["turn_edits"] == {"1": "Edited."}
    assert submit(annotator, task, text="Second, longer.").status_code == 200

    # then the new revision still stands for the edited conversation
    revision = Item.objects.get(pk=item.pk).current_revision
    assert (revision.text, revision.turn_edits, revision.parent.text) == (
        "Second, longer.",
        {"1": "Edited."},
        "First.",
    )


def test_approving_with_turns_is_refused(api, people, editable):
    item = chat_item(editable)
    annotator, expert = api(people["annotator"]), api(people["expert"])
    submit(annotator, next_task(annotator, editable, "annotate"), text="An answer.")
    task = next_task(expert, editable, "expert")

    response = expert.post(
        f"/api/items/{item.pk}/review/",
        {"decision": "approve", "version": task["item"]["version"], "turns": {"1": "Changed."}},
        format="json",
    )

    assert response.status_code == 400 and "turns" in response.json()["error"]["message"]
    assert Item.objects.get(pk=item.pk).status == "expert_review"


def test_autosave_keeps_edited_turns_on_top_of_the_answer_so_far(api, people, editable):
    # given a rework whose answer edited turn 2
    item = chat_item(editable)
    annotator, expert = api(people["annotator"]), api(people["expert"])
    submit(annotator, next_task(annotator, editable, "annotate"), text="First.", turns={"1": "Edited."})
    task = next_task(expert, editable, "expert")
    expert.post(
        f"/api/items/{item.pk}/review/",
        {"decision": "reject", "version": task["item"]["version"], "comment": "Fix turn 4 too."},
        format="json",
    )
    task = next_task(annotator, editable, "annotate")

    # when the annotator's page autosaves an edit of turn 4
    saved = annotator.post(
        f"/api/items/{item.pk}/autosave/", {"text": "Half", "turns": {"3": "Which port?"}}, format="json"
    )

    # then the autosave holds both edits, and the task hands them back
    assert saved.status_code == 204
    assert Autosave.objects.get(item=item).turn_edits == {"1": "Edited.", "3": "Which port?"}
    assert annotator.get(f"/api/items/{item.pk}/").json()["autosave"]["turn_edits"] == {
        "1": "Edited.",
        "3": "Which port?",
    }


def test_autosaving_turns_is_refused_when_the_project_does_not_allow_them(api, people, project):
    item = chat_item(project)
    client = api(people["annotator"])
    next_task(client, project, "annotate")

    response = client.post(
        f"/api/items/{item.pk}/autosave/", {"text": "Half", "turns": {"1": "x"}}, format="json"
    )

    assert response.status_code == 400 and "turns" in response.json()["error"]["details"]
    assert not Autosave.objects.filter(item=item).exists()


def test_the_history_names_each_turn_a_revision_changed(api, people, editable):
    # given an annotator's answer that also rewrote turn 2, then an expert's edit of turn 4 only
    item = chat_item(editable)
    annotator, expert = api(people["annotator"]), api(people["expert"])
    submit(annotator, next_task(annotator, editable, "annotate"), text="Try another cable.",
           turns={"1": "Unplug it for a full minute."})  # fmt: skip
    task = next_task(expert, editable, "expert")
    expert.post(
        f"/api/items/{item.pk}/review/",
        {
            "decision": "edit",
            "version": task["item"]["version"],
            "text": "Try another cable.",
            "turns": {"3": "Is the cable firmly in the yellow WAN port?"},
        },
        format="json",
    )

    # when anyone in the project reads the history
    history = annotator.get(f"/api/items/{item.pk}/history/").json()

    # then the submission names turn 2 (assistant) and the reply (turn 6), each with its diff
    submitted = next(e for e in history if e["action"] == "item.submit")
    assert [(t["number"], t["role"], t["reply"]) for t in submitted["turns"]] == [
        (2, "assistant", False),
        (6, "assistant", True),
    ]
    assert submitted["turns"][0]["diff"] == [
        ["equal", "Unplug it for "],
        ["delete", "ten seconds, then plug it back in"],
        ["insert", "a full minute"],
        ["equal", "."],
    ]
    # and the expert's edit names turn 4 alone: it carried turn 2 forward and kept the reply
    edit = next(e for e in history if e["action"] == "item.edit")
    assert [(t["number"], t["role"]) for t in edit["turns"]] == [(4, "assistant")]
    assert ["insert", "yellow "] in edit["turns"][0]["diff"]
    assert edit["revision"]["turn_edits"]["1"] == "Unplug it for a full minute."


def test_the_project_setting_is_set_through_the_project_api(api, people, project):
    response = api(people["admin"]).patch(
        f"/api/projects/{project.pk}/", {"edit_all_assistant_turns": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["edit_all_assistant_turns"] is True
    project.refresh_from_db()
    assert project.edit_all_assistant_turns is True
