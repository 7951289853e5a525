"""Responses and ratings by API: weighted scores, every bad input, the `rate` queue and blind mode."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from review.models import Rating, RatingAssignment
from review.rating.services import rating_claim_next
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

GOOD = {"accuracy": 4, "politeness": 5, "usefulness": 3}


def make_response(api, people, project, **extra):
    body = {"input": "How do I reset my password?", "text": "Click 'Forgot password'.", "origin": "candidate"}
    answer = api(people["admin"]).post(f"/api/projects/{project.pk}/responses/", body | extra, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def rate(api, user, response_id, scores):
    return api(user).post(f"/api/responses/{response_id}/ratings/", {"scores": scores}, format="json")


def test_a_response_is_created_with_origin_and_model(api, people, project):
    response = make_response(api, people, project, model="tiny-v2")
    assert response["origin"] == "candidate"
    assert response["model"] == "tiny-v2"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"input": "q", "text": "a", "origin": "robot"}, "origin"),
        ({"input": "q", "origin": "human"}, "text"),
        ({"input": "q", "text": "a", "origin": "human", "colour": 1}, "colour"),
    ],
)
def test_bad_responses_are_rejected(api, people, project, body, field):
    answer = api(people["admin"]).post(f"/api/projects/{project.pk}/responses/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(field)


def test_only_admins_add_responses(api, people, project):
    body = {"input": "q", "text": "a", "origin": "external"}
    assert (
        api(people["expert"]).post(f"/api/projects/{project.pk}/responses/", body, format="json").status_code
        == 403
    )
    assert (
        api(people["outsider"])
        .post(f"/api/projects/{project.pk}/responses/", body, format="json")
        .status_code
        == 404
    )


def test_a_rating_stores_its_weighted_score(api, people, project):
    response = make_response(api, people, project)
    answer = rate(api, people["expert"], response["id"], GOOD)
    assert answer.status_code == 201
    assert answer.json()["weighted_score"] == pytest.approx(0.4 * 4 + 0.3 * 5 + 0.3 * 3)
    assert answer.json()["rubric_version"] == 1


def test_the_response_score_is_the_mean_over_raters_with_the_breakdown(api, people, project):
    response = make_response(api, people, project)
    rate(api, people["expert"], response["id"], {"accuracy": 5, "politeness": 5, "usefulness": 5})
    rate(api, people["domain_reviewer"], response["id"], {"accuracy": 1, "politeness": 3, "usefulness": 2})
    detail = api(people["admin"]).get(f"/api/responses/{response['id']}/").json()
    assert detail["score"]["n_ratings"] == 2
    assert detail["score"]["weighted_score_mean"] == pytest.approx((5.0 + (0.4 + 0.9 + 0.6)) / 2)
    assert detail["score"]["dimension_means"] == {"accuracy": 3.0, "politeness": 4.0, "usefulness": 3.5}


@pytest.mark.parametrize(
    "scores, reason",
    [
        ({"accuracy": 6, "politeness": 5, "usefulness": 3}, "scores.accuracy: 6 is outside the scale 1..5"),
        ({"accuracy": 0, "politeness": 5, "usefulness": 3}, "scores.accuracy: 0 is outside the scale 1..5"),
        ({"accuracy": 4, "politeness": 5}, "scores.usefulness: missing"),
        ({**GOOD, "humour": 2}, "scores.humour: not a dimension of this rubric"),
        ({**GOOD, "accuracy": 3.5}, "scores.accuracy: 3.5 is not a whole number"),
        ({**GOOD, "accuracy": "4"}, "scores.accuracy: '4' is not a number"),
        ({**GOOD, "accuracy": True}, "scores.accuracy: True is not a number"),
        ([4, 5, 3], "scores must be an object"),
    ],
)
def test_bad_scores_are_400_with_the_reason(api, people, project, scores, reason):
    response = make_response(api, people, project)
    answer = rate(api, people["expert"], response["id"], scores)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]["message"]
    assert not Rating.objects.exists()


def test_a_second_rating_by_the_same_rater_is_400(api, people, project):
    response = make_response(api, people, project)
    assert rate(api, people["expert"], response["id"], GOOD).status_code == 201
    answer = rate(api, people["expert"], response["id"], GOOD)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "already_rated"
    assert Rating.objects.count() == 1


def test_rating_a_response_you_wrote_is_400(api, people, project):
    # given a human answer sent by the admin, who is therefore its author
    response = make_response(api, people, project, origin="human")
    answer = rate(api, people["admin"], response["id"], GOOD)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "own_response"


def test_annotators_and_outsiders_cannot_rate(api, people, project):
    response = make_response(api, people, project)
    assert rate(api, people["annotator"], response["id"], GOOD).status_code == 403
    assert rate(api, people["outsider"], response["id"], GOOD).status_code == 404


def test_ratings_beyond_the_overlap_are_refused(api, people, project):
    project.ratings_per_response = 2
    project.save()
    response = make_response(api, people, project)
    rate(api, people["expert"], response["id"], GOOD)
    rate(api, people["domain_reviewer"], response["id"], GOOD)
    answer = rate(api, people["admin"], response["id"], GOOD)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "enough_ratings"


# --- the rate queue --------------------------------------------------------------------------------------


def extra_raters(project, n):
    users = []
    for i in range(n):
        user = UserFactory(username=f"rater{i}")
        MembershipFactory(project=project, user=user, role="expert")
        users.append(user)
    return users


def test_the_queue_hands_each_response_to_overlap_many_distinct_raters(api, people, project):
    # given overlap 2, one response, four raters
    project.ratings_per_response = 2
    project.save()
    response = make_response(api, people, project)
    raters = extra_raters(project, 4)
    # when all four ask
    claims = [rating_claim_next(project=project, user=user) for user in raters]
    # then exactly two get it
    assert [c.pk if c else None for c in claims] == [response["id"], response["id"], None, None]
    assert RatingAssignment.objects.count() == 2


def test_the_queue_skips_what_you_rated_and_what_you_wrote(api, people, project):
    rated = make_response(api, people, project)
    make_response(api, people, project, origin="human")  # written by admin
    rate(api, people["admin"], rated["id"], GOOD)
    assert rating_claim_next(project=project, user=people["admin"]) is None


def test_claiming_again_returns_the_response_you_hold(api, people, project):
    make_response(api, people, project)
    make_response(api, people, project)
    first = rating_claim_next(project=project, user=people["expert"])
    assert rating_claim_next(project=project, user=people["expert"]) == first


def test_rating_releases_the_lease_and_the_queue_moves_on(api, people, project):
    one, two = make_response(api, people, project), make_response(api, people, project)
    client = api(people["expert"])
    claimed = client.post(f"/api/projects/{project.pk}/ratings/next/")
    assert claimed.status_code == 200
    assert claimed.json()["id"] == one["id"]
    assert rate(api, people["expert"], one["id"], GOOD).status_code == 201
    assert client.post(f"/api/projects/{project.pk}/ratings/next/").json()["id"] == two["id"]
    rate(api, people["expert"], two["id"], GOOD)
    assert client.post(f"/api/projects/{project.pk}/ratings/next/").status_code == 204


def test_a_held_slot_blocks_a_rater_who_did_not_claim(api, people, project):
    project.ratings_per_response = 1
    project.save()
    response = make_response(api, people, project)
    assert rating_claim_next(project=project, user=people["expert"]).pk == response["id"]
    answer = rate(api, people["domain_reviewer"], response["id"], GOOD)
    assert answer.status_code == 409


def test_claim_locks_with_skip_locked(api, people, project):
    make_response(api, people, project)
    with CaptureQueriesContext(connection) as queries:
        rating_claim_next(project=project, user=people["expert"])
    assert any("FOR UPDATE SKIP LOCKED" in q["sql"] for q in queries.captured_queries)


# --- blind mode --------------------------------------------------------------------------------------------


def test_blind_raters_see_neither_origin_model_nor_other_scores(api, people, project):
    response = make_response(api, people, project, model="tiny-v2")
    rate(api, people["domain_reviewer"], response["id"], GOOD)
    task = api(people["expert"]).post(f"/api/projects/{project.pk}/ratings/next/").json()
    assert task["blind"] is True
    assert "origin" not in task and "model" not in task
    detail = api(people["expert"]).get(f"/api/responses/{response['id']}/").json()
    assert "origin" not in detail and "ratings" not in detail and "score" not in detail


def test_without_blind_mode_raters_see_origin_and_model(api, people, project):
    api(people["admin"]).put(
        f"/api/projects/{project.pk}/rubric/",
        {"dimensions": [{"key": "accuracy", "weight": 1}], "blind": False},
        format="json",
    )
    make_response(api, people, project, model="tiny-v2")
    task = api(people["expert"]).post(f"/api/projects/{project.pk}/ratings/next/").json()
    assert task["blind"] is False
    assert task["origin"] == "candidate" and task["model"] == "tiny-v2"
    assert [d["key"] for d in task["rubric"]["dimensions"]] == ["accuracy"]
