"""Rubric: default on first use, weights must sum to 1, a change after ratings makes a new version."""

import pytest

from review.models import Rating, Rubric

pytestmark = pytest.mark.django_db


def test_a_project_gets_the_default_rubric_on_first_use(api, people, project):
    # when
    answer = api(people["annotator"]).get(f"/api/projects/{project.pk}/rubric/")
    # then
    assert answer.status_code == 200
    assert answer.json()["version"] == 1
    dims = {d["key"]: d for d in answer.json()["dimensions"]}
    assert {k: d["weight"] for k, d in dims.items()} == {
        "accuracy": 0.4,
        "politeness": 0.3,
        "usefulness": 0.3,
    }
    assert {(d["scale_min"], d["scale_max"], d["level"]) for d in dims.values()} == {(1, 5, "ordinal")}
    assert dims["accuracy"]["label_zh"] == "准确性"
    assert Rubric.objects.filter(project=project).count() == 1


NEW = [
    {"key": "accuracy", "weight": 0.5, "label": "Accuracy", "label_zh": "准确性"},
    {"key": "usefulness", "weight": 0.5},
]


def test_weights_that_do_not_sum_to_one_are_rejected(api, people, project):
    body = {"dimensions": [{"key": "accuracy", "weight": 0.5}, {"key": "usefulness", "weight": 0.4}]}
    answer = api(people["admin"]).put(f"/api/projects/{project.pk}/rubric/", body, format="json")
    assert answer.status_code == 400
    assert "weights sum to 0.9, not 1" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "dimension, reason",
    [
        ({"key": "a", "weight": 1, "scale_min": 5, "scale_max": 1}, "scale 5..1 is empty"),
        ({"key": "a", "weight": 1, "level": "nominal"}, "nominal dimension cannot carry weight"),
        ({"key": "a", "weight": 1, "colour": "red"}, "colour"),
    ],
)
def test_invalid_dimensions_are_rejected_with_the_reason(api, people, project, dimension, reason):
    answer = api(people["admin"]).put(
        f"/api/projects/{project.pk}/rubric/", {"dimensions": [dimension]}, format="json"
    )
    assert answer.status_code == 400
    assert reason in answer.json()["error"]["message"]


def test_only_a_project_admin_changes_the_rubric(api, people, project):
    answer = api(people["expert"]).put(
        f"/api/projects/{project.pk}/rubric/", {"dimensions": NEW}, format="json"
    )
    assert answer.status_code == 403


def test_a_rubric_nobody_rated_on_is_edited_in_place(api, people, project):
    answer = api(people["admin"]).put(
        f"/api/projects/{project.pk}/rubric/", {"dimensions": NEW}, format="json"
    )
    assert answer.status_code == 200
    assert answer.json()["version"] == 1
    assert [d["key"] for d in answer.json()["dimensions"]] == ["accuracy", "usefulness"]


def test_changing_a_rubric_after_ratings_creates_a_version_and_old_ratings_keep_theirs(api, people, project):
    # given a rating on version 1
    admin = api(people["admin"])
    response = admin.post(
        f"/api/projects/{project.pk}/responses/",
        {"input": "q", "text": "a", "origin": "external"},
        format="json",
    ).json()
    scores = {"accuracy": 5, "politeness": 3, "usefulness": 1}
    rated = api(people["expert"]).post(
        f"/api/responses/{response['id']}/ratings/", {"scores": scores}, format="json"
    )
    assert rated.status_code == 201
    # when
    answer = admin.put(f"/api/projects/{project.pk}/rubric/", {"dimensions": NEW}, format="json")
    # then
    assert answer.json()["version"] == 2
    old = Rating.objects.get()
    assert old.rubric.version == 1
    assert old.weighted_score == pytest.approx(0.4 * 5 + 0.3 * 3 + 0.3 * 1)
    # and the next rating uses version 2
    again = api(people["domain_reviewer"]).post(
        f"/api/responses/{response['id']}/ratings/",
        {"scores": {"accuracy": 4, "usefulness": 2}},
        format="json",
    )
    assert again.status_code == 201
    assert again.json()["rubric_version"] == 2
    assert again.json()["weighted_score"] == pytest.approx(3.0)


def test_blind_mode_can_be_switched_without_a_new_version(api, people, project):
    answer = api(people["admin"]).put(
        f"/api/projects/{project.pk}/rubric/", {"dimensions": NEW, "blind": False}, format="json"
    )
    assert answer.json()["blind"] is False
