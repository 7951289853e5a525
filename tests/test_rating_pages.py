"""Browser pages of rubric scoring: the rating page (htmx) and the agreement dashboard."""

import pytest
from django.test import Client

from review.models import Rating
from review.rating.services import rating_submit, response_create

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add(project, admin, n=2):
    return [
        response_create(
            project=project, actor=admin, input=f"q{i}", text=f"a{i}", origin="candidate", model="m1"
        )
        for i in range(n)
    ]


def test_the_rating_page_shows_one_control_per_dimension_and_is_blind(people, project):
    add(project, people["admin"])
    page = client_for(people["expert"]).get(f"/projects/{project.pk}/rate/")
    html = page.content.decode()
    assert page.status_code == 200
    for key in ("accuracy", "politeness", "usefulness"):
        assert f'name="score_{key}"' in html
    assert 'data-weight="0.4"' in html
    assert "m1" not in html  # blind: no model
    assert "rate.js" in html


def test_submitting_by_htmx_saves_the_rating_and_shows_the_next_response(people, project):
    first, second = add(project, people["admin"])
    client = client_for(people["expert"])
    client.get(f"/projects/{project.pk}/rate/")
    answer = client.post(
        f"/projects/{project.pk}/rate/{first.pk}/",
        {"score_accuracy": "5", "score_politeness": "4", "score_usefulness": "3"},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200
    assert Rating.objects.get().weighted_score == pytest.approx(2.0 + 1.2 + 0.9)
    assert f'data-response="{second.pk}"' in answer.content.decode()


def test_a_bad_submission_shows_the_reason(people, project):
    (response,) = add(project, people["admin"], 1)
    answer = client_for(people["expert"]).post(
        f"/projects/{project.pk}/rate/{response.pk}/", {"score_accuracy": "5"}, HTTP_HX_REQUEST="true"
    )
    assert "scores.politeness: missing" in answer.content.decode()
    assert not Rating.objects.exists()


def test_the_page_is_in_chinese(people, project):
    add(project, people["admin"], 1)
    client = client_for(people["expert"])
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    html = client.get(f"/projects/{project.pk}/rate/").content.decode()
    assert "准确性" in html


def test_the_dashboard_shows_agreement_and_charts(people, project):
    responses = add(project, people["admin"], 3)
    for response, values in zip(responses, [(1, 1), (3, 4), (5, 5)], strict=True):
        for user, value in zip((people["expert"], people["domain_reviewer"]), values, strict=True):
            rating_submit(
                response_id=response.pk,
                rater=user,
                scores={"accuracy": value, "politeness": 3, "usefulness": 3},
            )
    page = client_for(people["admin"]).get(f"/projects/{project.pk}/agreement/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="chart-alpha"' in html and "chart.umd.min.js" in html
    assert 'id="agreement-data"' in html
    assert 'table class="heatmap"' in html
    assert "every pairable rating has the same value" in html  # politeness: alpha undefined, said so


def test_the_dashboard_is_for_admins(people, project):
    assert client_for(people["expert"]).get(f"/projects/{project.pk}/agreement/").status_code == 403
    assert client_for(people["outsider"]).get(f"/projects/{project.pk}/agreement/").status_code == 404
    assert client_for(people["annotator"]).get(f"/projects/{project.pk}/rate/").status_code == 403
