"""The day's work in a real headless Chromium: annotate, expert review, domain sign-off, and rework."""

import pytest
from playwright.sync_api import expect

from annotation.models import Item, ItemStatus
from annotation.workflow.transitions import DraftCandidate, item_drafts_store

from .conftest import log_in, shot
from .factories import ItemFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

DRAFT = "Your order ships within two days."


@pytest.fixture
def drafted_item(project):
    project.guidelines = "Be polite. Never promise a delivery date."
    project.save()
    item = ItemFactory(
        project=project, input="When will my order arrive?", system="Order 1234, paid yesterday."
    )
    item_drafts_store(
        item_id=item.pk,
        model_version_id=None,
        candidates=[DraftCandidate(DRAFT, 0.82), DraftCandidate("It ships soon.", 0.41)],
    )
    return item


def open_workbench(page, base, project, stage):
    page.goto(f"{base}/projects/{project.pk}/work/{stage}/")
    if page.locator("#take-next").count():
        page.locator("#take-next").click()


def test_annotate_review_sign_off(page, live_asgi, people, project, drafted_item):
    # the annotator edits the draft and submits with the keyboard
    log_in(page, live_asgi, "annotator")
    page.goto(f"{live_asgi}/projects/{project.pk}/work/annotate/")
    shot(page, "workbench-empty")
    page.keyboard.press("n")
    answer = page.locator("#answer")
    expect(answer).to_have_value(DRAFT)
    expect(page.get_by_text("Order 1234, paid yesterday.")).to_be_visible()
    answer.fill("Your order ships within two days. You can follow it on the order page.")
    expect(page.locator("#live-diff ins")).to_contain_text("follow it on the order page")
    page.wait_for_function("document.getElementById('workbench').dataset.autosaved === 'yes'", timeout=10_000)
    shot(page, "workbench-annotate")
    answer.press("Control+Enter")
    expect(page.get_by_text("Submitted. Here is the next task.")).to_be_visible()
    assert Item.objects.get(pk=drafted_item.pk).status == ItemStatus.SUBMITTED

    # the expert sees draft and answer side by side with the diff, and approves
    page.context.clear_cookies()
    log_in(page, live_asgi, "expert")
    open_workbench(page, live_asgi, project, "expert")
    expect(page.locator("#revision-text")).to_contain_text("follow it on the order page")
    expect(page.locator("#review-diff ins")).to_contain_text("follow it on the order page")
    shot(page, "workbench-expert")
    page.locator("#approve-btn").click()
    expect(page.get_by_text("Saved. Here is the next task.")).to_be_visible()

    # the domain reviewer signs it off
    page.context.clear_cookies()
    log_in(page, live_asgi, "domain_reviewer")
    open_workbench(page, live_asgi, project, "domain")
    page.locator("#approve-btn").click()
    expect(page.get_by_text("You hold no task here.")).to_be_visible()

    # and the item shows as approved, with its timeline
    page.goto(f"{live_asgi}/items/{drafted_item.pk}/")
    expect(page.locator("#item-status")).to_have_text("Approved")
    expect(page.locator("#timeline > li")).to_have_count(7)  # drafted, then claim + decision at each tier
    shot(page, "item-approved")
    assert Item.objects.get(pk=drafted_item.pk).status == ItemStatus.APPROVED


def test_reject_rework_resubmit(page, live_asgi, people, project, drafted_item):
    log_in(page, live_asgi, "annotator")
    open_workbench(page, live_asgi, project, "annotate")
    page.locator("#submit-btn").click()
    page.context.clear_cookies()

    # the expert rejects; without a comment the page says why and nothing changes
    log_in(page, live_asgi, "expert")
    open_workbench(page, live_asgi, project, "expert")
    page.locator("#reject-btn").click()
    expect(page.get_by_text("a rejection needs a comment")).to_be_visible()
    page.locator("#comment").fill("Do not promise two days; point to the order page.")
    page.locator("#reject-btn").click()
    assert Item.objects.get(pk=drafted_item.pk).status == ItemStatus.REWORK
    page.context.clear_cookies()

    # the annotator gets it back first, with the comment, and resubmits
    log_in(page, live_asgi, "annotator")
    open_workbench(page, live_asgi, project, "annotate")
    expect(page.locator(".rejection")).to_contain_text("point to the order page")
    expect(page.locator("#answer")).to_have_value(DRAFT)  # their own answer, not the draft list's
    shot(page, "workbench-rework")
    page.locator("#answer").fill("You can follow your parcel on the order page.")
    page.locator("#submit-btn").click()
    item = Item.objects.get(pk=drafted_item.pk)
    assert item.status == ItemStatus.SUBMITTED
    assert item.current_revision.text == "You can follow your parcel on the order page."
    assert item.current_revision.parent.text == DRAFT


def test_autosave_survives_a_reload(page, live_asgi, people, project, drafted_item):
    log_in(page, live_asgi, "annotator")
    open_workbench(page, live_asgi, project, "annotate")
    page.locator("#answer").fill("Half-written answer")
    page.wait_for_function("document.getElementById('workbench').dataset.autosaved === 'yes'", timeout=10_000)
    page.reload()
    expect(page.locator("#answer")).to_have_value("Half-written answer")


def test_dashboard_draws_its_charts(page, live_asgi, people, project, drafted_item):
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/dashboard/")
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length >= 2")
    shot(page, "dashboard")
