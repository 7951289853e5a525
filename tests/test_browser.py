"""Browser flows in a real headless Chromium (Debian's), driven by Playwright."""

import pytest
from playwright.sync_api import expect

from annotation.services import items_create

from .conftest import log_in, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def test_member_logs_in_and_watches_counts_change_live(
    page, live_asgi, celery_worker_process, people, project
):
    # given an annotator on the project's page
    page.goto(f"{live_asgi}/login/")
    shot(page, "login")
    log_in(page, live_asgi, "annotator")
    expect(page.get_by_role("heading", name="Your projects")).to_be_visible()
    shot(page, "home")
    page.get_by_role("link", name=project.name).first.click()
    new_count = page.locator('#state-counts [data-state="new"] .n')
    expect(new_count).to_have_text("0")
    page.wait_for_function("() => document.querySelector('[ws-connect]') && htmx")  # htmx booted
    page.wait_for_timeout(500)  # let the websocket open
    # when items arrive (the worker broadcasts the counts on commit)
    items_create(project=project, actor=people["admin"], rows=[{"input": f"Question {n}"} for n in range(5)])
    # then the page shows them without a reload
    expect(new_count).to_have_text("5", timeout=20_000)
    shot(page, "project-live-counts")
    # and the annotator's menu has no admin entries
    expect(page.get_by_role("link", name="Members")).to_have_count(0)


def test_admin_adds_a_member_and_switches_to_chinese(page, live_asgi, people, project):
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/")
    page.get_by_text("Manage", exact=True).click()
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Username").fill("outsider")
    page.get_by_label("Role").select_option("domain_reviewer")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text("outsider is now Domain reviewer.")).to_be_visible()
    shot(page, "members")
    page.get_by_label("Language").select_option("zh-hans")
    expect(page.get_by_role("heading", name="成员", exact=True)).to_be_visible()
    shot(page, "members-zh")
