"""The work queue through the REST API: claim, submit, review, history, and who may do what."""

import pytest

from annotation.models import ItemStatus

from .factories import ItemFactory

pytestmark = pytest.mark.django_db


def next_task(client, project, stage):
    return client.post(f"/api/projects/{project.pk}/tasks/next/", {"stage": stage}, format="json")


def test_next_gives_the_task_or_204(api, people, project):
    client = api(people["annotator"])
    assert next_task(client, project, "annotate").status_code == 204
    item = ItemFactory(project=project, input="Where is my order?")
    response = next_task(client, project, "annotate")
    assert response.status_code == 200
    task = response.json()
    assert task["item"]["id"] == item.pk and task["item"]["status"] == "annotating"
    assert task["item"]["input"] == "Where is my order?" and task["item"]["lease_expires_at"]
    assert task["drafts"] == [] and task["revision"] is None and task["rejection"] is None


@pytest.mark.parametrize(
    "name, expected", [("anonymous", 401), ("outsider", 404), ("expert", 403), ("admin", 403)]
)
def test_next_needs_membership_and_role(api, people, project, name, expected):
    ItemFactory(project=project)
    user = None if name == "anonymous" else people[name]
    assert next_task(api(user), project, "annotate").status_code == expected


def test_bad_stage_is_named(api, people, project):
    response = next_task(api(people["annotator"]), project, "cook")
    assert response.status_code == 400 and "stage" in response.json()["error"]["details"]


def test_full_round_through_the_api(api, people, project):
    ItemFactory(project=project)
    annotator, expert, domain = (api(people[r]) for r in ("annotator", "expert", "domain_reviewer"))
    task = next_task(annotator, project, "annotate").json()
    item_id, version = task["item"]["id"], task["item"]["version"]
    submitted = annotator.post(
        f"/api/items/{item_id}/submit/", {"text": "It ships today.", "version": version}, format="json"
    )
    assert submitted.status_code == 200 and submitted.json()["status"] == "submitted"

    task = next_task(expert, project, "expert").json()
    assert task["revision"]["text"] == "It ships today." and task["revision"]["author"] == "annotator"
    edited = expert.post(
        f"/api/items/{item_id}/review/",
        {"decision": "edit", "text": "It ships today by courier.", "version": task["item"]["version"]},
        format="json",
    )
    assert edited.json()["status"] == "domain_review"

    task = next_task(domain, project, "domain").json()
    approved = domain.post(
        f"/api/items/{item_id}/review/",
        {"decision": "approve", "version": task["item"]["version"]},
        format="json",
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["answer"] == "It ships today by courier."

    history = annotator.get(f"/api/items/{item_id}/history/").json()
    actions = [(e["action"], e["actor"], e["from"], e["to"]) for e in history]
    assert actions == [
        ("item.claim", "annotator", "new", "annotating"),
        ("item.submit", "annotator", "annotating", "submitted"),
        ("item.claim", "expert", "submitted", "expert_review"),
        ("item.edit", "expert", "expert_review", "domain_review"),
        ("item.claim", "domain_reviewer", "domain_review", "domain_review"),
        ("item.approve", "domain_reviewer", "domain_review", "approved"),
    ]
    edit = history[3]
    assert ["insert", " by courier"] in edit["diff"] and edit["revision"]["author"] == "expert"


def test_reject_without_comment_is_400_and_changes_nothing(api, people, project):
    ItemFactory(project=project)
    annotator, expert = api(people["annotator"]), api(people["expert"])
    task = next_task(annotator, project, "annotate").json()
    annotator.post(
        f"/api/items/{task['item']['id']}/submit/",
        {"text": "x", "version": task["item"]["version"]},
        format="json",
    )
    task = next_task(expert, project, "expert").json()
    response = expert.post(
        f"/api/items/{task['item']['id']}/review/",
        {"decision": "reject", "version": task["item"]["version"]},
        format="json",
    )
    assert response.status_code == 400 and "comment" in response.json()["error"]["details"]
    assert expert.get(f"/api/items/{task['item']['id']}/").json()["item"]["status"] == "expert_review"


def test_stale_version_is_409_naming_who(api, people, project):
    ItemFactory(project=project)
    client = api(people["annotator"])
    task = next_task(client, project, "annotate").json()
    response = client.post(
        f"/api/items/{task['item']['id']}/submit/", {"text": "x", "version": 1}, format="json"
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "stale_version" and error["details"]["changed_by"] == "annotator"


def test_outsiders_cannot_see_items(api, people, project):
    item = ItemFactory(project=project)
    assert api(people["outsider"]).get(f"/api/items/{item.pk}/").status_code == 404
    assert api(people["outsider"]).get(f"/api/items/{item.pk}/history/").status_code == 404
    assert api(people["outsider"]).post(f"/api/items/{item.pk}/skip/").status_code == 404


def test_skip_flag_autosave_and_renew(api, people, project):
    ItemFactory.create_batch(2, project=project)
    client = api(people["annotator"])
    task = next_task(client, project, "annotate").json()
    item_id = task["item"]["id"]
    assert client.post(f"/api/items/{item_id}/autosave/", {"text": "half"}, format="json").status_code == 204
    assert client.get(f"/api/items/{item_id}/").json()["autosave"]["text"] == "half"
    assert client.post(f"/api/items/{item_id}/lease/").status_code == 200
    assert client.post(f"/api/items/{item_id}/skip/").json()["status"] == "new"
    task = next_task(client, project, "annotate").json()
    assert task["item"]["id"] != item_id
    flagged = client.post(
        f"/api/items/{task['item']['id']}/flag/",
        {"version": task["item"]["version"], "comment": "legal"},
        format="json",
    ).json()
    assert flagged["status"] == ItemStatus.SUBMITTED and flagged["needs_expert"] is True


def test_items_list_filters(api, people, project):
    ItemFactory(project=project, input="refund for shoes")
    ItemFactory(project=project, input="delivery time", external_id="ext-9")
    client = api(people["annotator"])
    assert client.get(f"/api/projects/{project.pk}/items/?search=refund").json()["count"] == 1
    assert client.get(f"/api/projects/{project.pk}/items/?search=ext-9").json()["count"] == 1
    assert client.get(f"/api/projects/{project.pk}/items/?status=new").json()["count"] == 2
    assert client.get(f"/api/projects/{project.pk}/items/?status=approved").json()["count"] == 0


def test_rate_stage_goes_through_the_same_queue(api, people, project):
    # given a response to score, added by the admin
    created = api(people["admin"]).post(
        f"/api/projects/{project.pk}/responses/",
        {"input": "Where is my parcel?", "text": "It left the depot.", "origin": "external"},
        format="json",
    )
    assert created.status_code == 201, created.content
    # when an expert asks for the next task of stage "rate", then they get that response
    task = next_task(api(people["expert"]), project, "rate")
    assert task.status_code == 200
    assert task.json()["id"] == created.json()["id"] and task.json()["rubric"]
    # and annotators cannot rate
    assert next_task(api(people["annotator"]), project, "rate").status_code == 403
