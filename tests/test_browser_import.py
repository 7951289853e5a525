"""Importing from the browser in a real headless Chromium: upload, a worker imports, the page follows it."""

import json

import pytest
from playwright.sync_api import expect

from annotation.models import Item

from .conftest import log_in, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def test_upload_imports_and_the_page_follows_the_job(
    page, live_asgi, celery_worker_process, people, project, tmp_path
):
    # given a JSONL file with one bad line among good ones
    rows = [{"instruction": f"Question {n}?", "output": f"Answer {n}."} for n in range(30)]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.insert(7, '{"instruction": "broken",')
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/imports/")

    # when the admin uploads it as it is, then the job fails naming the line and imports nothing
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_role("button", name="Upload and import").click()
    status = page.locator("#import-status")
    expect(status).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(status.get_by_role("cell", name="8", exact=True)).to_be_visible()
    shot(page, "import-failed")
    assert not Item.objects.filter(project=project).exists()

    # when they upload it again skipping invalid rows, then the 30 good rows arrive and the bad one is listed
    page.goto(f"{live_asgi}/projects/{project.pk}/imports/")
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_label("Skip invalid rows", exact=False).check()
    page.get_by_role("button", name="Upload and import").click()
    expect(page.locator("#import-status")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(page.locator("#import-status progress")).to_have_attribute("value", "100")
    shot(page, "import-succeeded")
    assert Item.objects.filter(project=project).count() == 30
