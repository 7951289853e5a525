"""The canary on the models page in a real headless Chromium: an admin starts one, reads the arms and
promotes it (issue 17)."""

import pytest
from playwright.sync_api import expect

from training.models import Canary, CanaryState, ModelVersion, ModelVersionStatus

from .conftest import log_in, shot
from .test_canary import answers_judged, two_versions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_an_admin_starts_a_canary_reads_its_arms_and_promotes_it(page, live_asgi, people, project):
    # given v1 deployed and v2 registered, on the admin's models page
    v1, v2 = two_versions(project)
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/models/")
    expect(page.locator("#canary")).to_have_count(0)

    # when they start a canary of v2 for 30 % of callers from its row
    row = page.locator("tr", has_text="v2")
    row.get_by_label("Share of callers").fill("0.3")
    row.get_by_label("Outcomes to decide on").fill("3")
    row.get_by_role("button", name="Start a canary").click()

    # then the canary section shows both arms; once answers are reviewed, their figures
    expect(page.locator("#canary h2")).to_contain_text("running")
    expect(page.get_by_role("button", name="Start a canary")).to_have_count(0)  # one canary at a time
    running = Canary.objects.get(state=CanaryState.RUNNING)
    assert (running.candidate_id, running.baseline_id, running.share) == (v2.pk, v1.pk, 0.3)
    answers_judged(project, people, v2, [True, True, False], tag="canary")
    answers_judged(project, people, v1, [True, False], tag="baseline")
    page.reload()
    canary_arm, baseline_arm = page.locator("tr.arm-canary"), page.locator("tr.arm-baseline")
    expect(canary_arm).to_contain_text("v2")
    expect(canary_arm.locator("td").nth(1)).to_have_text("3")  # answers
    expect(canary_arm.locator("td").nth(5)).to_contain_text("0.667")  # acceptable: 2 of 3
    expect(baseline_arm.locator("td").nth(5)).to_contain_text("0.500")
    expect(canary_arm.locator("td").nth(6)).to_have_text("20 / 30")  # latency p50 / p95 of 10, 20, 30 ms
    shot(page, "canary")

    # and promoting by hand deploys v2, keeps the section with its end state, and offers no more buttons
    page.get_by_role("button", name="Promote now").click()
    expect(page.locator("#canary h2")).to_contain_text("promoted")
    expect(page.get_by_role("button", name="Promote now")).to_have_count(0)
    assert ModelVersion.objects.get(status=ModelVersionStatus.DEPLOYED).pk == v2.pk
