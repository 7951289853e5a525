"""Importing from the browser in a real headless Chromium: pick a file, read its preview, confirm, and a
worker imports it while the page follows the job."""

import json

import pytest
from playwright.sync_api import expect

from annotation.models import ImportJob, Item

from .conftest import log_in, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def conversation(n: int) -> dict:
    return {
        "id": f"t-{n}",
        "category": "售后" if n % 2 else "物流",
        "system": "你是网店客服，回答简短。",
        "conversations": [
            {"from": "human", "value": f"订单 {n} 还没到，怎么办?"},
            {"from": "gpt", "value": "请提供订单号，我帮您查询。"},
            {"from": "human", "value": f"订单号是 {1000 + n}。"},
            {"from": "gpt", "value": "已查到：明天送达。"},
        ],
    }


def test_the_preview_shows_what_will_be_stored_and_the_import_waits_for_confirmation(
    page, live_asgi, celery_worker_process, people, project, tmp_path
):
    # given a ShareGPT file of 30 four-turn conversations with one broken line among them
    lines = [json.dumps(conversation(n), ensure_ascii=False) for n in range(30)]
    lines.insert(7, '{"conversations": [{"from": "human", "value": "broken"},')
    path = tmp_path / "support.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/imports/")

    # when the admin picks it, then the preview names the bad line and offers no import yet
    page.locator("input[type=file]").set_input_files(str(path))
    result = page.locator("#import-preview-result")
    expect(result).to_have_attribute("data-format", "sharegpt", timeout=15_000)
    expect(page.locator("#import-preview-errors").get_by_role("cell", name="8", exact=True)).to_be_visible()
    expect(result.get_by_role("button", name="Confirm import")).to_be_disabled()
    shot(page, "import-preview-errors")

    # when they choose to skip invalid rows, then the preview shows the rows as they will be stored
    page.get_by_label("Skip invalid rows", exact=False).check()
    confirm = page.locator("#import-confirm")
    expect(confirm).to_be_enabled(timeout=15_000)
    first = page.locator(".preview-row").first
    expect(first.locator("[data-reply]")).to_contain_text("已查到：明天送达。")
    expect(first.locator("[data-role=user]")).to_have_count(2)
    expect(page.locator("#import-keys")).to_contain_text("metadata.category")
    shot(page, "import-preview")
    assert not ImportJob.objects.exists()

    # when they confirm, then the 30 good conversations arrive whole and the job page says where keys went
    confirm.click()
    status = page.locator("#import-status")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(page.locator("#import-status progress")).to_have_attribute("value", "100")
    expect(status.locator("#import-keys")).to_contain_text("metadata.category")
    shot(page, "import-succeeded")
    items = Item.objects.filter(project=project)
    assert items.count() == 30
    assert all(len(item.messages) == 3 and item.reference_output for item in items)
    assert items.get(external_id="t-3").metadata == {"category": "售后"}
