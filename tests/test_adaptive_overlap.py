"""Agreement-driven overlap: extra raters only where ratings (or a pair's judgements) disagree, up to the
project's maximum; agreeing ones stop at the base overlap."""

import pytest

from annotation.models import Role
from core.errors import Conflict
from review.math.overlap import choices_disagree, overlap_wanted, scores_spread
from review.models import Response
from review.rating.services import rating_claim_next, rating_submit, response_create
from tests.factories import MembershipFactory, UserFactory
from tests.test_preference_support import judge, next_pair, pair

pytestmark = pytest.mark.django_db


def same(score: int) -> dict:
    """One score on every default dimension (1–5), so the normalised weighted score is (score − 1) / 4."""
    return {"accuracy": score, "politeness": score, "usefulness": score}


@pytest.fixture
def raters(project):
    users = []
    for n in range(6):
        user = UserFactory(username=f"rater{n}")
        MembershipFactory(project=project, user=user, role=Role.EXPERT)
        users.append(user)
    return users


@pytest.fixture
def adaptive(project):
    project.ratings_per_response = 2
    project.ratings_max_per_response = 4
    project.rating_disagreement_threshold = 0.15
    project.save()
    return project


def make_response(project, people, text="Click 'Forgot password'."):
    return response_create(
        project=project, actor=people["admin"], text=text, origin="candidate", input="How do I reset it?"
    )


def rate_next(project, user, scores):
    """The rater claims from the rate queue and rates what they got; the response, or None."""
    response = rating_claim_next(project=project, user=user)
    if response is not None:
        rating_submit(response_id=response.pk, rater=user, scores=scores)
    return response


# --- the definitions ---------------------------------------------------------------------------------


def test_the_spread_is_the_population_standard_deviation_on_the_0_to_1_scale():
    assert scores_spread([0.75]) is None
    assert scores_spread([0.2, 0.8]) == pytest.approx(0.3)
    assert scores_spread([1.0, 1.0, 0.0, 0.0]) == pytest.approx(0.5)
    assert scores_spread([0.5, 0.5, 0.5]) == 0


def test_the_wanted_overlap_is_the_maximum_only_while_raters_disagree():
    assert overlap_wanted(base=2, maximum=4, disagree=True) == 4
    assert overlap_wanted(base=2, maximum=4, disagree=False) == 2
    # a maximum of 0 (or under the base) is off
    assert overlap_wanted(base=3, maximum=0, disagree=True) == 3
    assert choices_disagree(["a", "a", "a"]) is False
    assert choices_disagree(["a", "tie"]) is True


# --- ratings -------------------------------------------------------------------------------------------


def test_an_agreeing_response_stops_at_the_base_overlap(adaptive, people, raters):
    # given a response two raters scored alike (4 and 4: spread 0)
    response = make_response(adaptive, people)
    rate_next(adaptive, raters[0], same(4))
    rate_next(adaptive, raters[1], same(4))

    # then a third rater is offered nothing, and a rating without a lease is refused
    assert rating_claim_next(project=adaptive, user=raters[2]) is None
    with pytest.raises(Conflict) as refused:
        rating_submit(response_id=response.pk, rater=raters[2], scores=same(4))
    assert refused.value.code == "enough_ratings"
    assert Response.objects.get(pk=response.pk).rating_spread == 0


def test_a_disagreeing_response_gets_extra_raters_up_to_the_maximum(adaptive, people, raters):
    # given a response scored 5 by one rater and 1 by another (spread 0.5, beyond 0.15)
    response = make_response(adaptive, people)
    rate_next(adaptive, raters[0], same(5))
    rate_next(adaptive, raters[1], same(1))
    assert Response.objects.get(pk=response.pk).rating_spread == pytest.approx(0.5)

    # when more raters ask for work: the third and fourth get it, the fifth nothing
    assert rate_next(adaptive, raters[2], same(5)) == response
    assert rate_next(adaptive, raters[3], same(1)) == response
    assert rating_claim_next(project=adaptive, user=raters[4]) is None
    with pytest.raises(Conflict) as refused:
        rating_submit(response_id=response.pk, rater=raters[4], scores=same(3))
    assert refused.value.code == "enough_ratings"
    assert response.ratings.count() == 4


def test_extra_raters_go_only_to_the_responses_that_disagree(adaptive, people, raters):
    # given one response rated alike and one rated far apart
    agreed = make_response(adaptive, people, text="Agreed.")
    disputed = make_response(adaptive, people, text="Disputed.")
    for rater, (first, second) in zip(raters[:2], [(4, 5), (4, 1)], strict=True):
        assert rate_next(adaptive, rater, same(first)) == agreed
        assert rate_next(adaptive, rater, same(second)) == disputed

    # then the next raters are served the disputed one only
    served = [rating_claim_next(project=adaptive, user=rater) for rater in raters[2:5]]
    assert served == [disputed, disputed, None]
    assert agreed.ratings.count() == 2


def test_extra_raters_stop_once_the_ratings_come_to_agree(adaptive, people, raters):
    # given a threshold of 0.22 and a response scored 5 and 3 (spread 0.25)
    adaptive.rating_disagreement_threshold = 0.22
    adaptive.ratings_max_per_response = 5
    adaptive.save()
    response = make_response(adaptive, people)
    rate_next(adaptive, raters[0], same(5))
    rate_next(adaptive, raters[1], same(3))

    # when a third rater scores 4 (spread 0.204, no longer beyond the threshold)
    assert rate_next(adaptive, raters[2], same(4)) == response

    # then it wants no more raters, although the maximum is 5
    assert rating_claim_next(project=adaptive, user=raters[3]) is None


def test_a_spread_at_the_threshold_is_not_beyond_it(adaptive, people, raters):
    adaptive.rating_disagreement_threshold = 0.125
    adaptive.save()
    make_response(adaptive, people)
    rate_next(adaptive, raters[0], same(5))
    rate_next(adaptive, raters[1], same(4))  # normalised 1.0 and 0.75: spread exactly 0.125
    assert rating_claim_next(project=adaptive, user=raters[2]) is None


def test_without_a_maximum_a_disagreeing_response_stops_at_the_base(adaptive, people, raters):
    adaptive.ratings_max_per_response = 0
    adaptive.save()
    make_response(adaptive, people)
    rate_next(adaptive, raters[0], same(5))
    rate_next(adaptive, raters[1], same(1))
    assert rating_claim_next(project=adaptive, user=raters[2]) is None


def test_a_disagreeing_response_is_served_through_tasks_next_too(api, adaptive, people, raters):
    response = make_response(adaptive, people)
    rate_next(adaptive, raters[0], same(5))
    rate_next(adaptive, raters[1], same(1))
    answer = api(raters[2]).post(f"/api/projects/{adaptive.pk}/tasks/next/", {"stage": "rate"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["id"] == response.pk


# --- settings --------------------------------------------------------------------------------------------


def test_the_settings_are_set_and_read_by_the_project_api(api, people, project):
    body = {"ratings_max_per_response": 5, "rating_disagreement_threshold": 0.2}
    answer = api(people["admin"]).patch(f"/api/projects/{project.pk}/", body, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["ratings_max_per_response"] == 5
    assert answer.json()["rating_disagreement_threshold"] == 0.2


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ratings_max_per_response": 2}, "ratings_max_per_response"),  # under the base of 3
        ({"rating_disagreement_threshold": 1.5}, "rating_disagreement_threshold"),
    ],
)
def test_bad_overlap_settings_are_400_naming_the_field(api, people, project, body, field):
    answer = api(people["admin"]).patch(f"/api/projects/{project.pk}/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()["error"]["details"]


# --- compare pairs -------------------------------------------------------------------------------------


def test_a_unanimous_pair_stops_at_the_base_overlap(api, adaptive, people, raters):
    made = pair(adaptive, people["admin"])
    for rater in raters[:2]:
        assert next_pair(api, rater, adaptive).status_code == 200
        assert judge(api, rater, made.pk, "tie").status_code == 201
    assert next_pair(api, raters[2], adaptive).status_code == 204
    refused = judge(api, raters[2], made.pk, "tie")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "enough_judgements"


def test_a_split_pair_gets_extra_judges_up_to_the_maximum(api, adaptive, people, raters):
    # given a pair judged two ways (the stored choice decides, whatever order each judge saw)
    made = pair(adaptive, people["admin"])
    for rater, choice in zip(raters[:2], ["A", "tie"], strict=True):
        next_pair(api, rater, adaptive)
        assert judge(api, rater, made.pk, choice).status_code == 201

    # then two more judges get it, and the fifth does not
    for rater in raters[2:4]:
        task = next_pair(api, rater, adaptive)
        assert task.status_code == 200 and task.json()["id"] == made.pk
        assert judge(api, rater, made.pk, "tie").status_code == 201
    assert next_pair(api, raters[4], adaptive).status_code == 204
    assert judge(api, raters[4], made.pk, "tie").status_code == 409
    assert made.judgements.count() == 4
