"""Calibrated confidence: answered traffic is sampled for review, people's verdicts become outcomes, and
the threshold a precision target implies is shown to admins and, applied, changes what `ask` does."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from playwright.sync_api import expect

from annotation.models import AuditEvent, Item, ItemSource, ItemStatus, Stage
from annotation.services import items_create
from annotation.workflow.transitions import DraftCandidate, item_claim_next, item_submit
from review.models import Response
from review.rating.api import rating_task_next
from review.rating.services import rating_submit
from tests.test_drafting_support import version_deploy
from training import calibration, drafting
from training.handover import ask_answer_log, ticket_open
from training.models import AskAnswer, HandoverTicket, ModelVersion

from .conftest import log_in, shot
from .workflow_helpers import annotate, review

QUESTION = "Where is my order?"
SCORES = ("accuracy", "politeness", "usefulness")  # the default rubric's
REWRITE = "Orders ship from our warehouse in Leipzig and arrive within five working days."


@pytest.fixture(autouse=True)
def fresh_cache():
    """Fits are cached per version id, and ids repeat between tests that flush the database."""
    cache.clear()
    yield
    cache.clear()


def ask(client, project, question=QUESTION, **extra):
    return client.post(f"/api/projects/{project.pk}/ask/", {"question": question, **extra}, format="json")


def settings_set(project, **fields):
    for name, value in fields.items():
        setattr(project, name, value)
    project.save(update_fields=list(fields))


def approve_one(project, annotator, text_for):
    """Claim the next item and answer it with text_for(item) (with one tier, that approves it)."""
    item = item_claim_next(project=project, user=annotator, stage=Stage.ANNOTATE)
    assert item is not None
    return item_submit(item_id=item.pk, user=annotator, text=text_for(item), version=item.version)


def tickets_judged(project, people, version, rows):
    """rows: (confidence, acceptable?) → handed-over tickets of the version, approved by people with the
    model's answer unchanged (acceptable) or rewritten."""
    for i, (confidence, _ok) in enumerate(rows):
        answer = f"Answer number {i}: your parcel leaves the depot today and arrives tomorrow morning."
        ticket_open(
            project=project, actor=people["annotator"], question=f"Question {i}?", version=version,
            candidates=[DraftCandidate(answer, confidence)],
        )  # fmt: skip
    verdict = {f"Question {i}?": ok for i, (_c, ok) in enumerate(rows)}
    for _ in rows:
        approve_one(
            project, people["annotator"],
            lambda item: item.tickets.get().model_answer if verdict[item.input] else REWRITE,
        )  # fmt: skip


# --- sampling answered traffic (a real worker and the tiny model) ---------------------------------------


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120)
def test_answered_traffic_is_logged_and_sampled_at_the_rate_and_review_makes_outcomes(project, people, api):
    settings_set(project, confidence_threshold=0.0, answered_review_rate=0.0)
    version = version_deploy(project)
    client = api(people["annotator"])

    # at rate 0 the answer is logged and nothing goes to people
    body = ask(client, project).json()
    assert (body["source"], body["handed_over"]) == ("model", False)
    logged = AskAnswer.objects.get()
    assert (logged.model_version_id, logged.answer, logged.item) == (version.pk, body["answer"], None)
    assert logged.confidence == body["confidence"]
    assert not Item.objects.filter(project=project, source=ItemSource.PRODUCTION).exists()

    # at rate 1 every answer becomes a production item whose draft is the model's answer; metadata kept
    settings_set(project, answered_review_rate=1.0)
    first = ask(client, project, "Can I change my address?", metadata={"category": "account"}).json()
    second = ask(client, project, "Do you ship abroad?").json()
    sampled = list(AskAnswer.objects.filter(item__isnull=False).select_related("item").order_by("pk"))
    assert [a.answer for a in sampled] == [first["answer"], second["answer"]]
    item = sampled[0].item
    assert (item.source, item.status, item.metadata) == (
        ItemSource.PRODUCTION,
        ItemStatus.DRAFTED,
        {"category": "account"},
    )
    assert item.drafts.get().text == first["answer"]
    assert not HandoverTicket.objects.exists()

    # people review them through the normal workflow (three tiers): one kept as drafted, one rewritten
    assert calibration.outcomes_of(version_id=version.pk) == []  # not judged yet
    for _ in range(2):
        approve_one(
            project, people["annotator"],
            lambda item: first["answer"] if item.input == "Can I change my address?" else REWRITE,
        )  # fmt: skip
    for _ in range(2):
        review(project, people["expert"], Stage.EXPERT)
    for _ in range(2):
        review(project, people["domain_reviewer"], Stage.DOMAIN)

    outcomes = calibration.outcomes_of(version_id=version.pk)
    assert [(o.confidence, o.acceptable, o.source) for o in outcomes] == [
        (first["confidence"], True, "sampled"),
        (second["confidence"], False, "sampled"),
    ]
    assert outcomes[0].metadata == {"category": "account"}


@pytest.mark.django_db
def test_ask_metadata_must_be_an_object_of_short_scalars(project, people, api):
    client = api(people["annotator"])
    response = ask(client, project, metadata={"category": {"nested": 1}})
    assert response.status_code == 400 and "metadata" in response.json()["error"]["details"]
    assert ask(client, project, metadata=["billing"]).status_code == 400


# --- outcomes from tickets ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_approved_ticket_is_an_outcome_and_an_open_one_is_not(project, people):
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    ticket_open(
        project=project, actor=people["annotator"], question="Can I pay by invoice?", version=version,
        candidates=[DraftCandidate("No, we only take cards.", 0.21)],
    )  # fmt: skip
    ticket_open(
        project=project, actor=people["annotator"], question="Is there a phone line?", version=version,
        candidates=[DraftCandidate("Yes, call us any day.", 0.3)],
    )  # fmt: skip
    assert calibration.outcomes_of(version_id=version.pk) == []

    # people answer the first one differently (three tiers, the real workflow)
    annotate(project, people["annotator"], "Yes: business accounts can pay by invoice within 30 days.")
    review(project, people["expert"], Stage.EXPERT)
    review(project, people["domain_reviewer"], Stage.DOMAIN)

    [outcome] = calibration.outcomes_of(version_id=version.pk)
    assert (outcome.confidence, outcome.acceptable, outcome.source) == (0.21, False, "ticket")
    assert outcome.similarity < calibration.ACCEPTABLE_ROUGE_L


@pytest.mark.django_db
def test_an_answer_people_approve_nearly_unchanged_is_acceptable(project, people):
    settings_set(project, review_tiers=1)
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    answer = "Your parcel leaves the depot today and arrives tomorrow morning before noon, as usual."
    ticket_open(
        project=project, actor=people["annotator"], question="When does it come?", version=version,
        candidates=[DraftCandidate(answer, 0.4)],
    )  # fmt: skip
    approve_one(project, people["annotator"], lambda item: answer.replace("as usual.", "as usual!").upper())

    [outcome] = calibration.outcomes_of(version_id=version.pk)
    assert outcome.acceptable and outcome.similarity == 1.0  # case and punctuation aside, unchanged


# --- the endpoint: who may see and apply it -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 200),
        ("staff", 200),
        ("annotator", 403),
        ("domain_reviewer", 403),
        ("outsider", 404),
        (None, 401),
    ],
)
def test_only_admins_see_the_calibration(project, people, api, who, status):
    client = api(people[who] if who else None)
    assert client.get(f"/api/projects/{project.pk}/calibration/").status_code == status
    assert client.post(f"/api/projects/{project.pk}/calibration/apply/").status_code in (
        {status} if status != 200 else {400}  # admins: nothing deployed, nothing to apply
    )


@pytest.mark.django_db
def test_the_report_shows_the_fit_the_suggestion_and_per_value_thresholds(project, people, api):
    settings_set(project, review_tiers=1, answer_target_precision=0.8)
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    # 60 outcomes: acceptable exactly when the raw confidence is 0.5 or more
    rows = [(i / 60, i >= 30) for i in range(60)]
    tickets_judged(project, people, version, rows)
    Item.objects.filter(project=project).update(metadata={"category": "billing"})

    body = api(people["admin"]).get(f"/api/projects/{project.pk}/calibration/").json()

    [report] = body["versions"]
    assert (report["model_version"], report["n_outcomes"], report["n_tickets"]) == (version.pk, 60, 60)
    assert report["calibrated"] and report["ece_after"] < report["ece_before"]
    assert sum(p["n"] for p in report["reliability_before"]) == 60
    suggested = report["suggested"]
    assert suggested["threshold"] == 1.0  # calibrated: every acceptable outcome maps to 1.0
    assert (suggested["answered"], suggested["acceptable"], suggested["handover_rate"]) == (30, 30, 0.5)
    assert suggested["precision_low"] >= 0.8
    [by_value] = report["suggested_by_value"]
    assert (by_value["key"], by_value["value"], by_value["n"]) == ("category", "billing", 60)


@pytest.mark.django_db
def test_per_value_thresholds_pick_the_highest_match(project):
    settings_set(
        project, confidence_threshold=0.5,
        metadata_thresholds={"category": {"billing": 0.8, "shipping": 0.3}, "urgent": {"true": 0.9}},
    )  # fmt: skip
    assert calibration.threshold_for(project=project, metadata={}) == 0.5
    assert calibration.threshold_for(project=project, metadata={"category": "shipping"}) == 0.3
    assert calibration.threshold_for(project=project, metadata={"category": "billing", "urgent": True}) == 0.9
    assert calibration.threshold_for(project=project, metadata={"category": "toys"}) == 0.5


@pytest.mark.django_db
def test_metadata_thresholds_are_validated_naming_the_value(project, people, api):
    response = api(people["admin"]).patch(
        f"/api/projects/{project.pk}/", {"metadata_thresholds": {"category": {"billing": 2}}}, format="json"
    )
    assert response.status_code == 400
    assert "category.billing" in str(response.json())


# --- apply: audited, and it changes what ask does (a real worker and the tiny model) --------------------


@pytest.mark.usefixtures("celery_worker_process")
@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@override_settings(HANDOVER_ASK_TIMEOUT=120)
def test_applying_the_suggestion_is_audited_and_changes_what_ask_does(project, people, api):
    settings_set(
        project,
        review_tiers=1,
        confidence_threshold=0.0,
        answered_review_rate=0.0,
        answer_target_precision=0.8,
    )
    version = version_deploy(project)
    asker = api(people["annotator"])
    raw = ask(asker, project).json()["confidence"]  # the tiny model's own confidence on QUESTION (greedy)
    assert raw < 0.95

    # outcomes say: answers as confident as this one, or less, are never acceptable; far above, always
    high = raw + (1 - raw) / 2
    rows = [(raw * i / 29, False) for i in range(30)] + [
        (high + (1 - high) * i / 30, True) for i in range(30)
    ]
    tickets_judged(project, people, version, rows)
    cache.clear()  # the first ask cached "no fit yet" for this version

    # with a fit, ask compares the calibrated confidence (0 here) with the old threshold (0): answered
    before = ask(asker, project).json()
    assert before["handed_over"] is False and before["confidence"] < 0.01
    assert before["raw_confidence"] == pytest.approx(raw, abs=1e-4)

    admin = api(people["admin"])
    applied = admin.post(f"/api/projects/{project.pk}/calibration/apply/")
    assert applied.status_code == 200, applied.content
    assert applied.json()["confidence_threshold"] == 1.0
    event = AuditEvent.objects.get(action="project.calibration_apply")
    assert event.actor == people["admin"] and event.data["before"]["confidence_threshold"] == 0.0
    assert event.data["suggested"]["handover_rate"] == 0.5 and event.data["model_version"] == version.pk

    after = ask(asker, project).json()
    assert (after["handed_over"], after["source"]) == (True, "people")
    assert HandoverTicket.objects.filter(question=QUESTION).exists()


# --- the page -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_draws_the_reliability_diagram_and_its_button_applies_the_suggestion(
    client, project, people
):
    settings_set(project, review_tiers=1, answer_target_precision=0.8)
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    tickets_judged(project, people, version, [(i / 60, i >= 30) for i in range(60)])
    page = f"/projects/{project.pk}/calibration/"

    client.force_login(people["annotator"])
    assert page not in client.get(f"/projects/{project.pk}/").content.decode()  # no menu entry
    assert client.get(page).status_code == 403
    assert client.post(page).status_code == 403

    client.force_login(people["admin"])
    assert f'href="{page}"' in client.get(f"/projects/{project.pk}/").content.decode()
    html = client.get(page).content.decode()
    assert 'id="reliability-0"' in html and 'id="calibration-data"' in html and "chartjs" in html
    assert "Apply the suggested thresholds" in html and "50 %" in html  # the expected hand-over rate

    response = client.post(page, follow=True)
    assert "Threshold 1.000 applied" in response.content.decode()
    project.refresh_from_db()
    assert project.confidence_threshold == 1.0
    assert project.metadata_thresholds == {}  # no item had metadata
    assert AuditEvent.objects.filter(action="project.calibration_apply", actor=people["admin"]).count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_admin_sees_the_reliability_diagram_and_applies_in_a_browser(page, live_asgi, project, people):
    settings_set(project, review_tiers=1, answer_target_precision=0.8)
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    tickets_judged(project, people, version, [(i / 60, i >= 30) for i in range(60)])

    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/calibration/")
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length >= 1")
    plotted = page.evaluate("""() => {
        const chart = Object.values(Chart.instances)[0];
        return chart.data.datasets.map((d) => [d.label, d.data.length]);
    }""")
    # the diagonal, the raw confidence's bins, and the calibrated confidence's bins
    assert [label for label, _n in plotted] == ["perfect", "raw confidence", "calibrated"]
    assert plotted[1][1] == 10 and plotted[2][1] >= 2
    shot(page, "calibration")

    page.get_by_role("button", name="Apply the suggested thresholds").click()
    expect(page.locator("[data-threshold]")).to_have_text("1.000")
    assert AuditEvent.objects.filter(action="project.calibration_apply").count() == 1


@pytest.mark.django_db
def test_ask_reads_a_cached_fit_and_new_outcomes_reach_it_once_it_goes_stale(project, people):
    settings_set(project, review_tiers=1)
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    assert calibration.version_calibration(version_id=version.pk) is None  # no outcomes: no fit, cached

    tickets_judged(project, people, version, [(i / 60, i >= 30) for i in range(60)])
    assert calibration.version_calibration(version_id=version.pk) is None  # still the cached answer
    assert len(calibration.outcomes_of(version_id=version.pk, limit=10)) == 10  # the latest of each kind

    cache.delete(f"calibration:fit:v{version.pk}:fresh")  # FIT_CACHE_SECONDS later
    fit = calibration.version_calibration(version_id=version.pk)
    assert fit is not None and fit(0.1) == 0.0 and fit(0.9) == 1.0
    assert calibration.confidence_calibrated(version_id=version.pk, confidence=0.9) == 1.0


@pytest.mark.django_db
def test_the_settings_default_to_five_percent_and_ninety_percent_and_are_bounded(project, people, api):
    assert (project.answered_review_rate, project.answer_target_precision) == (0.05, 0.9)
    client = api(people["admin"])
    response = client.patch(f"/api/projects/{project.pk}/", {"answered_review_rate": 1.5}, format="json")
    assert response.status_code == 400 and "answered_review_rate" in response.json()["error"]["details"]
    response = client.patch(
        f"/api/projects/{project.pk}/",
        {"answered_review_rate": 0.2, "answer_target_precision": 0.95},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["answered_review_rate"], response.json()["answer_target_precision"]) == (
        0.2,
        0.95,
    )


@pytest.mark.django_db
def test_a_drafts_low_confidence_mark_follows_the_calibrated_confidence_as_ask_does(project, people):
    # given the tiny model deployed, with a fit from 60 judged tickets, every other one acceptable at any
    # confidence (so the fit maps every confidence to one half), and the threshold on that scale
    settings_set(
        project, review_tiers=1, confidence_threshold=0.45, metadata_thresholds={"category": {"legal": 0.55}}
    )
    version = version_deploy(project)
    tickets_judged(project, people, version, [(i / 60, i % 2 == 1) for i in range(60)])
    assert calibration.confidence_calibrated(version_id=version.pk, confidence=0.2) == pytest.approx(0.5)
    items_create(
        project=project, actor=None,
        rows=[
            {"input": "Where is my order?"},
            {"input": "Where is my order?!", "metadata": {"category": "legal"}},
        ],
    )  # fmt: skip

    # when the drafting task drafts the new items
    drafting.drafts_generate_next(project_id=project.pk)

    # then the item whose raw confidence is under the threshold is not low-confidence: calibrated (0.5)
    # it is over it, as `ask` would judge it; the one whose category's threshold is higher is
    plain, legal = (
        Item.objects.get(project=project, input=q) for q in ("Where is my order?", "Where is my order?!")
    )
    assert plain.drafts.get(rank=0).confidence < 0.45  # the raw comparison would have marked it
    assert (plain.low_confidence, legal.low_confidence) == (False, True)


@pytest.mark.django_db
def test_rated_sampled_answers_are_outcomes_until_people_approve_their_item(project, people):
    # given a project whose raters also score sampled answers (one rating each, one review tier)
    settings_set(project, answered_review_ratings=True, ratings_per_response=1, review_tiers=1)
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    good, poor = (
        ask_answer_log(
            project=project, actor=people["annotator"], question=q, version=version,
            candidates=[DraftCandidate(f"The answer to {q}", c)], metadata={}, review_rate=1.0,
        )
        for q, c in (("First question?", 0.8), ("Second question?", 0.3))
    )  # fmt: skip

    # then each is a draft response of the version in the rating queue, for the item people review
    for logged in (good, poor):
        response = logged.response
        assert (response.origin, response.model_version_id, response.item_id) == (
            "draft",
            version.pk,
            logged.item_id,
        )
        assert response.text == logged.answer and response.input == logged.question
    claimed = rating_task_next(project=project, user=people["expert"])["id"]  # the expert's rate queue has it
    assert claimed in {good.response_id, poor.response_id}
    assert calibration.outcomes_of(version_id=version.pk) == []  # nobody has judged anything yet

    # when raters score them, top marks and twos
    rater = {
        claimed: people["expert"],
        ({good.response_id, poor.response_id} - {claimed}).pop(): people["admin"],
    }
    rating_submit(
        response_id=good.response_id, rater=rater[good.response_id], scores=dict.fromkeys(SCORES, 5)
    )
    rating_submit(
        response_id=poor.response_id, rater=rater[poor.response_id], scores=dict.fromkeys(SCORES, 2)
    )

    # then both are "rated" outcomes: acceptable at a normalised score of 0.75 or more
    rated = {o.confidence: o for o in calibration.outcomes_of(version_id=version.pk)}
    assert {c: (o.source, o.acceptable, o.similarity) for c, o in rated.items()} == {
        0.8: ("rated", True, 1.0),
        0.3: ("rated", False, 0.25),
    }
    # and once people approve one of the items with a rewrite, their approval is the final word on it
    approved = approve_one(project, people["annotator"], lambda item: REWRITE)
    other = poor if approved.pk == good.item_id else good
    outcomes = {o.item: (o.source, o.acceptable) for o in calibration.outcomes_of(version_id=version.pk)}
    assert outcomes == {approved.pk: ("sampled", False), other.item_id: ("rated", other is good)}


@pytest.mark.django_db
def test_without_the_setting_sampled_answers_go_to_reviewers_only(project, people):
    version = ModelVersion.objects.create(
        project=project, name="v1", base_model="/nowhere", status="deployed"
    )
    logged = ask_answer_log(
        project=project, actor=people["annotator"], question="A question?", version=version,
        candidates=[DraftCandidate("An answer.", 0.8)], metadata={}, review_rate=1.0,
    )  # fmt: skip
    assert logged.item is not None and logged.response is None
    assert not Response.objects.exists()
