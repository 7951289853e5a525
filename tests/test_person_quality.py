"""Per-person quality: the figures on a project worked through the real services, the API, the CSV, the
page, who sees which rows, and a bounded number of queries whatever the number of people."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import AuditEvent, Revision, Stage
from annotation.workflow.transitions import (
    DraftCandidate,
    item_claim_next,
    item_drafts_store,
    item_release,
    item_submit,
)
from review.models import ReviewDecision
from review.quality import scans
from review.quality import selectors as quality

from .factories import ItemFactory, ProjectFactory, UserFactory
from .quality_helpers import DRAFT, decide, member, submit_answer, worked_project
from .workflow_helpers import claim

pytestmark = pytest.mark.django_db


@pytest.fixture
def worked(db):
    return worked_project()


def _rows(report):
    return {person["username"]: person for person in report["people"]}


def test_figures_of_a_worked_project(worked):
    project, people = worked

    # when the table is read for the last 30 days
    rows = _rows(quality.person_quality(window=quality.window_for(project=project)))

    # then everyone who is a member has a row, the project's creator (no role, no work) none
    assert set(rows) == {"adm", "ann", "bea", "exa", "dom"}
    ann, bea, exa, dom, adm = (rows[name] for name in ("ann", "bea", "exa", "dom", "adm"))
    # throughput: answers (rework included), review decisions, ratings
    assert (ann["tasks"], ann["annotated"], ann["reviewed"]) == (4, 4, 0)
    assert (exa["tasks"], exa["reviewed"], exa["rated"]) == (7, 5, 2)
    assert (dom["reviewed"], dom["rated"], dom["tasks"]) == (7, 2, 9)
    assert (adm["tasks"], adm["rated"]) == (2, 2)
    # rejected at the next tier: one of ann's four reviewed answers was sent back at its first review,
    # and one failed its spot check; bea's one answer passed
    assert (ann["answers_reviewed"], ann["answers_rejected"], ann["spot_checks_failed"]) == (4, 0.25, 1)
    assert (bea["answers_reviewed"], bea["answers_rejected"], bea["spot_checks_failed"]) == (1, 0.0, 0)
    # exa's four approvals all went on to domain review, which rejected one (q3); dom's three domain
    # approvals were all spot-checked, and one (q1) failed
    assert (exa["approvals_checked"], exa["approvals_overturned"]) == (4, 0.25)
    assert dom["approvals_checked"] == 3 and dom["approvals_overturned"] == pytest.approx(1 / 3)
    assert (ann["approvals_checked"], ann["approvals_overturned"]) == (0, None)
    # draft edits: ann's four answers all came from the draft, one unchanged; distances 0, 1, 4, 1
    assert (ann["from_drafts"], ann["drafts_unchanged"], ann["draft_edit_median"]) == (4, 0.25, 1)
    assert ann["draft_edit_relative"] == pytest.approx(1 / len(DRAFT))
    assert bea["from_drafts"] == 0 and bea["draft_edit_median"] is None
    # agreement: adm scored the first response 1 where the others gave 4 (deviation 3), then agreed
    assert adm["rating_deviation"] == pytest.approx(1.5)
    assert exa["rating_deviation"] == pytest.approx(0.75) and dom["rating_deviation"] == pytest.approx(0.75)
    assert adm["rating_disagreement"] == pytest.approx(0.5)
    assert exa["rating_disagreement"] == pytest.approx(0.25)
    assert adm["rated_with_others"] == 2
    # time per task: every claimed task that ended in a submit or a decision
    assert (ann["timed_tasks"], exa["timed_tasks"], dom["timed_tasks"]) == (4, 5, 7)
    assert ann["median_seconds"] >= 0
    assert bea["rating_deviation"] is None and bea["timed_tasks"] == 1


def test_annotator_figures_agree_with_the_dashboard(worked):
    from review.dashboard import annotator_quality

    project, _people = worked

    rows = _rows(quality.person_quality(window=quality.window_for(project=project)))
    dashboard = {row["annotator"]: row for row in annotator_quality(project=project)}

    assert set(dashboard) == {"ann", "bea"}
    for name in ("ann", "bea"):
        assert dashboard[name]["reviewed"] == rows[name]["answers_reviewed"]
        assert dashboard[name]["rework_rate"] == rows[name]["answers_rejected"]
        assert dashboard[name]["spot_check_failed"] == rows[name]["spot_checks_failed"]


def test_work_before_the_window_is_left_out(worked):
    project, people = worked
    # given ann's first answer and exa's decisions on it written 40 days ago
    old = timezone.now() - timedelta(days=40)
    first = Revision.objects.filter(author=people["ann"], item__input="q1").get()
    Revision.objects.filter(pk=first.pk).update(created_at=old)
    ReviewDecision.objects.filter(revision=first, reviewer=people["exa"]).update(created_at=old)

    # when the table covers 30 days, then 90
    recent = _rows(quality.person_quality(window=quality.window_for(project=project, days=30)))
    longer = _rows(quality.person_quality(window=quality.window_for(project=project, days=90)))

    # then the old answer and the old decision count only in the longer window
    assert (recent["ann"]["annotated"], longer["ann"]["annotated"]) == (3, 4)
    assert (recent["ann"]["answers_reviewed"], longer["ann"]["answers_reviewed"]) == (3, 4)
    assert (recent["exa"]["reviewed"], longer["exa"]["reviewed"]) == (4, 5)
    assert (recent["exa"]["approvals_checked"], longer["exa"]["approvals_checked"]) == (3, 4)


def test_median_time_per_task_runs_from_claim_to_submit_and_skips_count_not(project):
    # given an annotator who took 30 s, 90 s and 10 min over three answers and skipped a fourth item
    annotator = member(project, "ann", "annotator")
    ItemFactory.create_batch(4, project=project)
    submitted = []
    for _ in range(3):
        held = claim(project, annotator, Stage.ANNOTATE)
        done = item_submit(item_id=held.pk, user=annotator, text="An answer.", version=held.version)
        submitted.append(done)
    skipped = item_claim_next(project=project, user=annotator, stage=Stage.ANNOTATE)
    item_release(item_id=skipped.pk, user=annotator)
    for item, seconds in zip(submitted, (30, 90, 600), strict=True):
        done = AuditEvent.objects.get(target_id=str(item.pk), action="item.submit")
        AuditEvent.objects.filter(target_id=str(item.pk), action="item.claim").update(
            created_at=done.created_at - timedelta(seconds=seconds)
        )

    # when the figures are read
    since = timezone.now() - timedelta(days=1)
    by_stage = scans.task_medians(project=project, since=since, by="stage")
    [row] = quality.person_quality(window=quality.window_for(project=project))["people"]

    # then the median is the middle duration, over the three answers, per person and per stage
    assert row["timed_tasks"] == 3 and row["median_seconds"] == pytest.approx(90)
    assert by_stage == {"annotate": pytest.approx(90)}


def test_on_a_large_project_tasks_are_timed_on_a_uniform_sample_of_items(project, monkeypatch):
    # given six answered items, on a project counted as large from two items on
    annotator = member(project, "ann", "annotator")
    ItemFactory.create_batch(6, project=project)
    answered = [submit_answer(project, annotator, "An answer.", with_draft=False).pk for _ in range(6)]
    monkeypatch.setattr(scans, "TIMING_ITEMS", 2)

    # when the time per task is read
    [row] = quality.person_quality(window=quality.window_for(project=project))["people"]

    # then it is taken over the items whose id is a multiple of 3 (6 items / 2), and says so
    assert row["timed_tasks"] == sum(1 for pk in answered if pk % 3 == 0)
    assert row["annotated"] == 6


def test_an_empty_project_lists_its_members_with_no_figures(api, people, project):
    body = api(people["admin"]).get(f"/api/projects/{project.pk}/quality/").json()

    assert body["scope"] == "everyone" and body["days"] == 30
    assert [p["username"] for p in body["people"]] == sorted(
        ["admin", "annotator", "domain_reviewer", "expert"]
    )
    row = body["people"][0]
    assert row["roles"] == ["admin"]
    assert row["tasks"] == 0 and row["answers_reviewed"] == 0
    assert row["median_seconds"] is None and row["rating_deviation"] is None
    assert [c["key"] for c in body["columns"]][:2] == ["tasks", "annotated"]


def test_the_figures_take_the_same_number_of_queries_for_more_people():
    def queries_for(n_annotators):
        project = ProjectFactory(review_tiers=3)
        expert = member(project, f"exp-{n_annotators}", "expert")
        annotators = [member(project, f"a{n_annotators}-{n}", "annotator") for n in range(n_annotators)]
        ItemFactory.create_batch(n_annotators, project=project)
        for item in project.items.all():
            item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate(DRAFT, 0.9)])
        for annotator in annotators:
            submit_answer(project, annotator, "Ships in 4 days.")
            decide(project, expert, Stage.EXPERT, {})
        with CaptureQueriesContext(connection) as captured:
            report = quality.person_quality(window=quality.window_for(project=project))
        assert sum(1 for p in report["people"] if p["annotated"] == 1) == n_annotators
        return len(captured.captured_queries)

    assert queries_for(2) == queries_for(12)


# --- API, CSV and page: who sees what ---------------------------------------------------------------


def test_admins_and_staff_see_everyone_others_their_own_row(api, worked):
    project, people = worked
    staff = UserFactory(username="staff", is_staff=True)
    url = f"/api/projects/{project.pk}/quality/"

    admin = api(people["adm"]).get(url).json()
    as_staff = api(staff).get(url).json()
    mine = api(people["ann"]).get(url).json()

    assert admin["scope"] == "everyone" and {p["username"] for p in admin["people"]} == set(_rows(admin))
    assert len(admin["people"]) == 5 and len(as_staff["people"]) == 5
    assert mine["scope"] == "self"
    assert [p["username"] for p in mine["people"]] == ["ann"]
    assert mine["people"][0]["answers_rejected"] == 0.25


def test_outsiders_get_404_and_anonymous_401(api, worked):
    project, _people = worked
    outsider = UserFactory(username="outsider")
    for url in (f"/api/projects/{project.pk}/quality/", f"/api/projects/{project.pk}/quality/csv/"):
        assert api(outsider).get(url).status_code == 404
        assert api(None).get(url).status_code == 401


def test_a_window_outside_its_range_is_a_400_naming_days(api, worked):
    project, people = worked

    response = api(people["adm"]).get(f"/api/projects/{project.pk}/quality/?days=0")

    assert response.status_code == 400
    assert "days" in response.json()["error"]["details"]


def test_csv_holds_the_rows_the_caller_may_see(api, worked):
    project, people = worked
    url = f"/api/projects/{project.pk}/quality/csv/?days=7"

    admin = api(people["adm"]).get(url)
    annotator = api(people["bea"]).get(url)

    assert admin["Content-Type"] == "text/csv"
    assert f"{project.slug}-quality-7d.csv" in admin["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(admin.streaming_content).decode())))
    assert [r["username"] for r in rows] == ["adm", "ann", "bea", "dom", "exa"]
    ann = next(r for r in rows if r["username"] == "ann")
    assert (ann["roles"], ann["annotated"], ann["answers_rejected"], ann["approvals_overturned"]) == (
        "annotator",
        "4",
        "0.25",
        "",
    )
    assert rows[0]["gold_accuracy"] == ""  # a column for everyone; nobody here answered a gold task
    own = list(csv.DictReader(io.StringIO(b"".join(annotator.streaming_content).decode())))
    assert [r["username"] for r in own] == ["bea"]


def test_the_page_shows_the_table_charts_and_csv_link(client, worked):
    project, people = worked
    client.force_login(people["adm"])

    page = client.get(f"/projects/{project.pk}/quality/?days=90").content.decode()

    assert 'id="person-quality"' in page and 'data-person="dom"' in page
    assert 'id="chart-tasks"' in page and "review/quality.js" in page and "vendor/chartjs" in page
    assert f"/api/projects/{project.pk}/quality/csv/?days=90" in page
    assert '<td data-column="answers_rejected">25 %</td>' in page
    assert f'href="/projects/{project.pk}/quality/"' in page  # in the project's menu


def test_a_member_sees_only_their_own_row_on_the_page(client, worked):
    project, people = worked
    client.force_login(people["ann"])

    page = client.get(f"/projects/{project.pk}/quality/").content.decode()

    assert 'data-person="ann"' in page and 'data-person="dom"' not in page
    assert "project admins see everyone" in page
    assert f'href="/projects/{project.pk}/quality/"' in page


def test_the_page_needs_login_and_hides_the_project_from_outsiders(client, worked):
    project, _people = worked
    response = client.get(f"/projects/{project.pk}/quality/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    client.force_login(UserFactory(username="outsider"))
    assert client.get(f"/projects/{project.pk}/quality/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_scans_on_their_own_connections_give_the_figures_of_one_connection():
    from django.db import transaction

    # given committed work (a request's view: no transaction of the caller's around the figures)
    project, _people = worked_project()
    window = quality.window_for(project=project)

    # when the table is read from outside a transaction (the scans run side by side) and inside one
    with CaptureQueriesContext(connection) as main:
        side_by_side = quality.person_quality(window=window)
    with transaction.atomic():
        in_order = quality.person_quality(window=window)

    # then both give the same figures
    assert any("pg_export_snapshot" in q["sql"] for q in main.captured_queries)
    assert side_by_side["people"] == in_order["people"]
    assert _rows(side_by_side)["ann"]["answers_rejected"] == 0.25
