"""Adjudication in a real headless Chromium: the queue of disagreements, a rejection sent back with the
adjudicator's comment, final scores for ratings that stayed far apart."""

import pytest
from playwright.sync_api import expect

from annotation.models import Item, ItemStatus, Role, Stage
from review.models import Adjudication
from review.rating.services import rating_submit, response_create

from .conftest import log_in, shot
from .factories import ItemFactory, MembershipFactory, UserFactory
from .workflow_helpers import annotate, review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def cases(project, people):
    project.adjudicate_disagreements = True
    project.ratings_per_response = 2
    project.ratings_max_per_response = 3
    project.save()
    # the expert approved, the domain reviewer rejected
    ItemFactory(project=project, input="How long do refunds take?")
    annotate(project, people["annotator"], text="Refunds take 30 days.")
    review(project, people["expert"], Stage.EXPERT)
    item = review(
        project, people["domain_reviewer"], Stage.DOMAIN, "reject", comment="Our policy says 14 days."
    )
    # three raters far apart on a response
    response = response_create(
        project=project,
        actor=people["admin"],
        text="You can probably mix them.",
        origin="candidate",
        input="Can I use both cleaning products together?",
    )
    for n, score in enumerate([5, 1, 5]):
        rater = UserFactory(username=f"rater{n}")
        MembershipFactory(project=project, user=rater, role=Role.EXPERT)
        rating_submit(
            response_id=response.pk,
            rater=rater,
            scores={"accuracy": score, "politeness": score, "usefulness": score},
        )
    return Adjudication.objects.get(item=item), Adjudication.objects.get(response=response)


def test_an_admin_decides_the_queue(page, live_asgi, people, project, cases):
    review_case, ratings_case = cases
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/")
    page.get_by_role("link", name="Adjudication").click()

    review_card = page.locator(f"#adjudication-{review_case.pk}")
    ratings_card = page.locator(f"#adjudication-{ratings_case.pk}")
    expect(review_card).to_contain_text("Refunds take 30 days.")
    expect(review_card.locator(".vote-approve")).to_contain_text("expert")
    expect(review_card.locator(".vote-reject")).to_contain_text("Our policy says 14 days.")
    expect(ratings_card).to_contain_text("3 ratings, spread 0.471")
    shot(page, "adjudication")

    # the rejection goes back to the annotator with the adjudicator's words
    review_card.locator("textarea[name=comment]").fill("Policy: 14 days. Please correct the period.")
    review_card.get_by_role("button", name="Reject: back to the annotator").click()
    expect(page.get_by_text("Decided. The decision is final.")).to_be_visible()
    expect(page.locator(f"#adjudication-{review_case.pk}")).to_have_count(0)
    assert Item.objects.get(pk=review_case.item_id).status == ItemStatus.REWORK

    # the ratings get final scores
    card = page.locator(f"#adjudication-{ratings_case.pk}")
    for key, value in (("accuracy", "2"), ("politeness", "4"), ("usefulness", "2")):
        card.locator(f"input[name=score_{key}][value='{value}']").check()
    card.get_by_role("button", name="Record the final scores").click()
    expect(page.get_by_text("No disagreement waits for a decision.")).to_be_visible()
    decided = Adjudication.objects.get(pk=ratings_case.pk)
    assert decided.scores == {"accuracy": 2, "politeness": 4, "usefulness": 2}

    page.get_by_role("link", name="Decided").click()
    expect(page.locator(".adjudication-outcome")).to_have_count(2)
    shot(page, "adjudication-decided")


def test_the_reviewer_who_rejected_sees_the_case_without_a_form(page, live_asgi, people, project, cases):
    review_case, _ratings = cases
    log_in(page, live_asgi, "domain_reviewer")
    page.goto(f"{live_asgi}/projects/{project.pk}/adjudications/")
    card = page.locator(f"#adjudication-{review_case.pk}")
    expect(card.locator(".own-work")).to_be_visible()
    expect(card.locator("form")).to_have_count(0)
