"""Agreement endpoint vs. values by hand and by krippendorff directly; filters; CSV export; scores."""

import csv
import io
import json
from datetime import timedelta

import krippendorff
import numpy as np
import pytest
from django.utils import timezone

from review.models import Rating, Response
from review.rating.services import DimensionSpec, rating_submit, response_create, rubric_update
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def raters(project):
    users = []
    for name in ("ann", "bob", "cyd", "dee"):
        user = UserFactory(username=name)
        MembershipFactory(project=project, user=user, role="expert")
        users.append(user)
    project.ratings_per_response = 4
    project.save()
    return users


def add_response(project, admin, origin="candidate", model="m1"):
    return response_create(project=project, actor=admin, input="q", text="a", origin=origin, model=model)


def add_matrix(project, admin, raters, matrix, key="accuracy", other=None, origin="candidate", model="m1"):
    """One response per column; a rater's row value (None = not rated) goes to `key`, the rest `other`."""
    responses = []
    for column in range(len(matrix[0])):
        response = add_response(project, admin, origin=origin, model=model)
        responses.append(response)
        for rater, row in zip(raters, matrix, strict=False):
            if row[column] is not None:
                scores = dict({"accuracy": 3, "politeness": 3, "usefulness": 3} if other is None else other)
                scores[key] = row[column]
                rating_submit(response_id=response.pk, rater=rater, scores=scores)
    return responses


def dimension(report, key):
    return next(d for d in report["dimensions"] if d["key"] == key)


def test_nominal_alpha_matches_the_hand_computed_value(api, people, project, raters):
    # given a nominal dimension (weight 0) and 4 units by 2 raters, plus one unit with a single rating
    rubric_update(
        project=project,
        actor=people["admin"],
        dimensions=[
            DimensionSpec(key="category", weight=0, scale_min=1, scale_max=2, level="nominal"),
            DimensionSpec(key="accuracy", weight=1),
        ],
    )
    matrix = [[1, 2, 1, 1, 2], [1, 2, 2, 1, None]]
    add_matrix(project, people["admin"], raters, matrix, key="category", other={"accuracy": 3})
    # when
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/")
    # then: o11=4, o22=2, o12=o21=1, n=8 -> alpha = 1 - 7*2 / (2*5*3) = 8/15
    assert answer.status_code == 200
    category = dimension(answer.json(), "category")
    assert category["alpha"] == pytest.approx(8 / 15)
    assert category["n_units"] == 4
    assert category["n_units_unpairable"] == 1
    assert category["n_raters"] == 2
    assert category["percent_agreement"] == pytest.approx(3 / 4)
    assert category["alpha_ci_low"] <= category["alpha"] <= category["alpha_ci_high"]


def test_ordinal_alpha_with_missing_data_equals_the_library_on_the_same_matrix(api, people, project, raters):
    # given 30 units, 4 raters, about a third of the cells missing
    rng = np.random.default_rng(7)
    truth = rng.integers(1, 6, size=30)
    values = np.clip(truth[None, :] + rng.integers(-1, 2, size=(4, 30)), 1, 5).astype(float)
    values[rng.random((4, 30)) < 0.35] = np.nan
    matrix = [[None if np.isnan(v) else int(v) for v in row] for row in values]
    add_matrix(project, people["admin"], raters, matrix)
    # when
    report = api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/").json()
    # then
    expected = krippendorff.alpha(
        reliability_data=values, value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal"
    )
    accuracy = dimension(report, "accuracy")
    assert accuracy["alpha"] == pytest.approx(expected, abs=1e-12)
    pairable = int(((~np.isnan(values)).sum(axis=0) >= 2).sum())
    assert accuracy["n_units"] == pairable
    assert accuracy["n_units_unpairable"] == int(((~np.isnan(values)).sum(axis=0) == 1).sum())
    assert accuracy["n_raters"] == 4
    assert len(accuracy["pairwise_kappa"]) == 6
    assert [r["rater"] for r in accuracy["rater_deviations"]] == ["ann", "bob", "cyd", "dee"]


def test_pairwise_kappa_matches_a_hand_computed_value(api, people, project, raters):
    # two raters, quadratic weights on 1..5: observed disagreement vs. chance
    matrix = [[1, 2, 3, 4], [1, 2, 3, 5]]
    add_matrix(project, people["admin"], raters, matrix)
    report = api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/").json()
    kappa = dimension(report, "accuracy")["pairwise_kappa"][0]
    # observed: one unit off by 1 -> (1/4)*1; chance: mean over all 16 pairs of squared gaps
    a, b = [1, 2, 3, 4], [1, 2, 3, 5]
    chance = sum((x - y) ** 2 for x in a for y in b) / 16
    assert kappa["rater_a"] == "ann" and kappa["rater_b"] == "bob"
    assert kappa["kappa"] == pytest.approx(1 - 0.25 / chance)


def test_identical_values_give_null_alpha_with_a_reason_and_no_nan(api, people, project, raters):
    add_matrix(project, people["admin"], raters, [[3, 3, 3], [3, 3, 3], [3, 3, None]])
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/")
    assert "NaN" not in answer.content.decode()
    accuracy = dimension(answer.json(), "accuracy")
    assert accuracy["alpha"] is None
    assert "same value" in accuracy["reason"]
    assert accuracy["alpha_ci_low"] is None and accuracy["ci_reason"] == "alpha is undefined"
    assert accuracy["percent_agreement"] == 1.0
    json.loads(answer.content)  # strict JSON


def test_no_ratings_give_an_empty_report(api, people, project):
    report = api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/").json()
    assert report["n_ratings"] == 0
    assert all(d["alpha"] is None and d["n_units"] == 0 for d in report["dimensions"])


def test_a_rater_with_a_single_rating_and_single_rated_units(api, people, project, raters):
    add_matrix(project, people["admin"], raters, [[1, 2, 3, 4], [1, 2, 4, None], [None, None, None, 5]])
    accuracy = dimension(
        api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/").json(), "accuracy"
    )
    assert accuracy["n_units"] == 4 and accuracy["n_units_unpairable"] == 0
    assert accuracy["n_raters"] == 3
    kappas = {(k["rater_a"], k["rater_b"]): k for k in accuracy["pairwise_kappa"]}
    assert kappas[("ann", "cyd")]["kappa"] is None
    assert "fewer than 2 common units" in kappas[("ann", "cyd")]["reason"]


def test_filters_by_origin_model_rater_and_time(api, people, project, raters):
    add_matrix(project, people["admin"], raters, [[1, 2, 3], [1, 2, 3]], origin="candidate", model="m1")
    add_matrix(project, people["admin"], raters, [[5, 5], [1, 1]], origin="draft", model="m2")
    client = api(people["admin"])
    url = f"/api/projects/{project.pk}/agreement/"
    by_origin = client.get(url, {"origin": "candidate"}).json()
    assert dimension(by_origin, "accuracy")["alpha"] == pytest.approx(1.0)
    assert by_origin["n_responses"] == 3
    assert client.get(url, {"model": "m2"}).json()["n_responses"] == 2
    assert client.get(url, {"rater": "ann"}).json()["raters"] == ["ann"]
    assert client.get(url, {"rater": "ann,bob"}).json()["n_ratings"] == 10
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert client.get(url, {"since": future}).json()["n_ratings"] == 0
    assert client.get(url, {"until": future}).json()["n_ratings"] == 10


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"origin": "robot"}, "origin"),
        ({"rater": "nobody"}, "rater: 'nobody' is not a member"),
        ({"since": "yesterday"}, "since"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filters_are_400(api, people, project, params, reason):
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/", params)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]["message"]


def test_agreement_is_for_project_admins(api, people, project):
    assert api(people["expert"]).get(f"/api/projects/{project.pk}/agreement/").status_code == 403
    assert api(people["outsider"]).get(f"/api/projects/{project.pk}/agreement/").status_code == 404


def test_ratings_of_an_older_version_with_another_scale_are_left_out(api, people, project, raters):
    add_matrix(project, people["admin"], raters, [[1, 2, 3], [1, 2, 3]])
    rubric_update(
        project=project,
        actor=people["admin"],
        dimensions=[DimensionSpec(key="accuracy", weight=1, scale_min=1, scale_max=10)],
    )
    add_matrix(project, people["admin"], raters, [[10, 1], [9, 2]], other={})
    accuracy = dimension(
        api(people["admin"]).get(f"/api/projects/{project.pk}/agreement/").json(), "accuracy"
    )
    assert accuracy["n_units"] == 2
    assert accuracy["scale_max"] == 10


def test_csv_export_is_long_format(api, people, project, raters):
    add_matrix(project, people["admin"], raters, [[1, 2], [3, None]])
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/ratings/export/")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert rows[0] == [
        "response_id",
        "rater",
        "dimension",
        "score",
        "rated_at",
        "rubric_version",
        "origin",
        "model",
    ]
    assert len(rows) == 1 + 3 * 3
    first = Response.objects.order_by("pk").first()
    assert rows[1][:4] == [str(first.pk), "ann", "accuracy", "1"]
    assert [r[2] for r in rows[1:4]] == ["accuracy", "politeness", "usefulness"]


def test_scores_compare_origins_and_models_counting_each_response_once(api, people, project, raters):
    other = {"politeness": 3, "usefulness": 3}
    add_matrix(project, people["admin"], raters, [[5, 1], [5, 1], [5, None]], other=other, model="m1")
    add_matrix(project, people["admin"], raters, [[2], [4]], other=other, origin="draft", model="m2")
    answer = api(people["admin"]).get(f"/api/projects/{project.pk}/scores/").json()
    groups = {(g["origin"], g["model"]): g for g in answer["groups"]}
    m1 = groups[("candidate", "m1")]
    assert m1["n_responses"] == 2
    # response means: 0.4*5+1.8 = 3.8 and 0.4*1+1.8 = 2.2 -> 3.0
    assert m1["weighted_score_mean"] == pytest.approx(3.0)
    assert m1["dimension_means"]["accuracy"] == pytest.approx(3.0)
    assert m1["ci_low"] < 3.0 < m1["ci_high"]
    m2 = groups[("draft", "m2")]
    assert m2["weighted_score_mean"] == pytest.approx(0.4 * 3 + 1.8)
    assert m2["ci_low"] is None
    by_origin = api(people["admin"]).get(f"/api/projects/{project.pk}/scores/", {"by": "origin"}).json()
    assert {g["origin"] for g in by_origin["groups"]} == {"candidate", "draft"}


def test_weighted_score_of_every_rating_matches_the_rubric(project, people, raters):
    add_matrix(project, people["admin"], raters, [[2, 4]], other={"politeness": 5, "usefulness": 1})
    assert sorted(Rating.objects.values_list("weighted_score", flat=True)) == pytest.approx(
        [0.8 + 1.5 + 0.3, 1.6 + 1.5 + 0.3]
    )
