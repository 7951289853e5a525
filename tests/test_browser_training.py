"""The run page in a real headless Chromium: progress arrives live over the project's websocket."""

import threading

import pytest
from playwright.sync_api import expect

from training.runs.launch import training_run_create
from training.runs.status import _event_send

from .conftest import log_in, shot
from .test_training_support import approve_all

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_loss_curve_and_progress_update_live(page, live_asgi, people, project):
    # given a queued run over a few approved answers (one-tier project), open on the admin's screen
    project.review_tiers = 1
    project.save()
    approve_all(project, 4)
    run = training_run_create(project=project, actor=people["admin"], send=False)
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/training/{run.pk}/")
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length === 1")
    page.wait_for_timeout(500)  # the websocket opens
    points = "() => Object.values(Chart.instances)[0].data.datasets[0].data.length"
    before = page.evaluate(points)
    # when the trainer reports two steps (the event its progress callback sends, through Redis)
    # (from another thread: Playwright's event loop runs in this one, as a worker's would not)
    for step, loss in ((1, 3.25), (2, 2.5)):
        payload = {
            "run": run.pk,
            "step": step,
            "total_steps": 9,
            "loss": loss,
            "learning_rate": 2e-4,
            "tokens_per_s": 800.0,
            "eta_s": 7.0,
        }
        sender = threading.Thread(target=_event_send, args=(project.pk, "training_progress", payload))
        sender.start()
        sender.join()
    # then the page shows them without a reload
    expect(page.locator('#run-progress [data-k="step"]')).to_have_text("2", timeout=10_000)
    expect(page.locator('#run-progress [data-k="loss"]')).to_have_text(
        "2.500"
    )  # shown to 4 significant digits
    assert page.evaluate(points) == before + 2
    shot(page, "training-run-live")
