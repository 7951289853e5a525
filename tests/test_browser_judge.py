"""The model judge page in a real headless Chromium: an admin adds a judge, runs it on the gpu worker,
and reads it against people as one more rater."""

import time

import pytest
from playwright.sync_api import expect

from review.rating.services import rating_submit
from training.models import JudgeRating, ModelJudge

from .conftest import log_in, shot
from .test_model_judge import DIMENSIONS, responses_make, tiny_version

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.usefixtures("celery_worker_process"),
]


def test_an_admin_adds_a_judge_runs_it_and_reads_its_report(page, live_asgi, people, project):
    # given six responses people rated, and a tiny-model version
    responses = responses_make(project, people["admin"], n=6)
    for n, response in enumerate(responses):
        rating_submit(
            response_id=response.pk, rater=people["expert"], scores=dict.fromkeys(DIMENSIONS, 1 + n % 5)
        )
        rating_submit(
            response_id=response.pk,
            rater=people["domain_reviewer"],
            scores=dict.fromkeys(DIMENSIONS, 1 + (n + 1) % 5),
        )
    tiny_version(project)
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/judge/")
    expect(page.get_by_text("No judge yet.")).to_be_visible()

    # when the admin adds a judge on it and runs it
    page.get_by_label("Model version").select_option(label="judge-v1 (Candidate, In-process (transformers))")
    page.get_by_role("button", name="Add the judge").click()
    judge = ModelJudge.objects.get()
    article = page.locator(f"article[data-judge='{judge.pk}']")
    expect(article.locator("[data-waiting]")).to_have_text("6")
    article.get_by_role("button", name="Judge the open responses now").click()
    expect(page.get_by_text("The judge is scoring 6 responses")).to_be_visible()

    # then the worker judges them, and the page reports the judge against the people
    deadline = time.monotonic() + 120
    while JudgeRating.objects.filter(judge=judge).count() < 6 and time.monotonic() < deadline:
        time.sleep(0.5)
    page.reload()
    expect(article.locator("[data-judged]")).to_have_text("6")
    expect(article.locator("[data-waiting]")).to_have_text("0")
    for key in (*DIMENSIONS, "weighted"):
        expect(article.locator(f"tr[data-dimension='{key}'] [data-n]")).to_have_text("6")
    expect(article.locator("tr[data-dimension='accuracy'] [data-alpha]")).not_to_have_text("")
    shot(page, "judge")
