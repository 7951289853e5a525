"""Gold checks in a real headless Chromium: a paused annotator is told why, an admin sees it and lifts it."""

import pytest
from playwright.sync_api import expect

from annotation.models import ItemStatus
from review.gold.marking import gold_mark_item
from review.models import GoldStanding, GoldStandingState
from tests.workflow_helpers import annotate

from .conftest import log_in, shot
from .factories import ItemFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def paused(people, project):
    """The annotator answered two gold tasks wrong in a project that pauses under 60 %."""
    project.gold_rate, project.gold_window, project.gold_min_accuracy = 1.0, 2, 0.6
    project.gold_action = "pause"
    project.save()
    for question in ("How do I reset my password?", "Where is my invoice?"):
        item = ItemFactory(project=project, input=question)
        gold_mark_item(
            project=project, actor=people["admin"], item_id=item.pk, expected_text="Settings, then Security."
        )
    for _ in range(2):
        annotate(project, people["annotator"], text="No idea.")
    ItemFactory(project=project, input="When do you open?")
    assert GoldStanding.objects.get(user=people["annotator"]).state == GoldStandingState.PAUSED
    return people["annotator"]


def test_a_paused_annotator_is_told_why_and_an_admin_lifts_it(page, live_asgi, people, project, paused):
    # the annotator asks for work and is told they are paused, and why
    log_in(page, live_asgi, "annotator")
    expect(page.locator(".message").first).to_contain_text("is paused")  # the notice on the next page
    page.goto(f"{live_asgi}/projects/{project.pk}/work/annotate/")
    page.locator("#take-next").click()
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("Your work in this project is paused")).to_be_visible()

    # the admin sees who is paused and why on the gold page, and lifts it
    page.context.clear_cookies()
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/gold/")
    row = page.locator(f"#gold-person-{paused.pk}")
    expect(row).to_have_attribute("data-state", "paused")
    expect(row).to_contain_text("0 / 2")
    expect(row).to_contain_text("under the project's 60%")
    expect(page.locator(".gold-tasks tbody tr")).to_have_count(2)
    shot(page, "gold")
    row.get_by_label("Comment").fill("Went through the guidelines together.")
    row.get_by_role("button", name="Lift").click()
    expect(page.get_by_text("Lifted: the person is in good standing again.")).to_be_visible()
    expect(row).to_have_attribute("data-state", "ok")
    expect(row).to_contain_text("lifted by admin")
    shot(page, "gold-lifted")

    # and the annotator gets work again
    page.context.clear_cookies()
    log_in(page, live_asgi, "annotator")
    page.goto(f"{live_asgi}/projects/{project.pk}/work/annotate/")
    page.locator("#take-next").click()
    expect(page.locator("#answer")).to_be_visible()
    assert project.items.filter(leased_by=paused).exclude(status=ItemStatus.NEW).exists()
