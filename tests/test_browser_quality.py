"""The per-person quality page in a real headless Chromium: the table, its charts drawn from the same
figures, the window picker and the CSV download."""

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import log_in, shot
from .quality_helpers import worked_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_admin_reads_everyones_quality_with_charts_and_downloads_the_csv(page, live_asgi):
    # given a project worked through every tier, with ratings
    project, _people = worked_project()

    # when its admin opens the quality page from the project's menu
    log_in(page, live_asgi, "adm")
    page.goto(f"{live_asgi}/projects/{project.pk}/")
    page.get_by_role("link", name="Quality").click()
    expect(page.locator("h1")).to_have_text("Per-person quality")

    # then everyone has a row, with their figures
    table = page.locator("#person-quality")
    expect(table.locator("tbody tr")).to_have_count(5)
    ann = table.locator('tr[data-person="ann"]')
    expect(ann.locator('td[data-column="answers_rejected"]')).to_have_text("25 %")
    expect(ann.locator('td[data-column="spot_checks_failed"]')).to_have_text("1")
    expect(table.locator('tr[data-person="exa"] td[data-column="approvals_overturned"]')).to_have_text("25 %")

    # and both charts are drawn from the same figures: dom's stacked bar adds up to dom's tasks
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length >= 2")
    drawn = page.evaluate("""() => {
        const charts = Object.values(Chart.instances);
        const tasks = charts.find((c) => c.canvas.id === "chart-tasks");
        const rejected = charts.find((c) => c.canvas.id === "chart-rejected");
        const at = tasks.data.labels.indexOf("dom");
        return {
            first: tasks.data.labels[0],
            dom: tasks.data.datasets.reduce((sum, d) => sum + d.data[at], 0),
            answers: rejected.data.datasets[0].data.map((p) => [p.person, p.y]),
        };
    }""")
    assert drawn["first"] == "dom" and drawn["dom"] == 9  # the busiest person first
    assert sorted(drawn["answers"]) == [["ann", 0.25], ["bea", 0.0]]
    expect(table.locator('tr[data-person="dom"] td[data-column="tasks"]')).to_have_text("9")
    shot(page, "quality")

    # and a shorter window is one choice away, and the CSV holds the table
    page.locator("#quality-days").select_option("7")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{live_asgi}/projects/{project.pk}/quality/?days=7")
    with page.expect_download() as download:
        page.locator("#quality-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert [r["username"] for r in rows] == ["adm", "ann", "bea", "dom", "exa"]
    assert next(r for r in rows if r["username"] == "dom")["tasks"] == "9"
