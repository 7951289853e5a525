"""Adjudication: reviewers who disagree (a later tier rejects what an earlier one approved) and ratings
that stay far apart go to a queue; an admin or domain reviewer decides once, audited, and the item
moves as a final approval or a rework would. Nobody decides about their own work."""

import random
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import AuditEvent, Item, ItemStatus, Role, Stage
from annotation.selectors import item_task
from annotation.workflow.transitions import item_claim_next
from review.adjudication.services import adjudication_decide
from review.decisions.services import spot_checks_sample
from review.models import Adjudication, AdjudicationKind, ReviewDecision
from review.rating.services import rating_submit, response_create
from tests.factories import PASSWORD, ItemFactory, MembershipFactory, UserFactory
from tests.workflow_helpers import annotate, claim, review

pytestmark = pytest.mark.django_db

ANSWER = "Refunds take 30 days."


@pytest.fixture
def adjudicating(project):
    project.review_tiers = 3
    project.adjudicate_disagreements = True
    project.save()
    return project


def disputed_item(project, people) -> Item:
    """An item the expert approved and the domain reviewer rejected."""
    ItemFactory(project=project, input="How long do refunds take?")
    annotate(project, people["annotator"], text=ANSWER)
    review(project, people["expert"], Stage.EXPERT)
    return review(project, people["domain_reviewer"], Stage.DOMAIN, "reject", comment="It is 14 days.")


def decide(api, user, project, case_id, **body):
    return api(user).post(f"/api/projects/{project.pk}/adjudications/{case_id}/decide/", body, format="json")


# --- what goes to adjudication ---------------------------------------------------------------------------


def test_a_domain_reject_of_an_expert_approval_waits_for_adjudication(adjudicating, people):
    item = disputed_item(adjudicating, people)

    assert item.status == ItemStatus.ADJUDICATION
    case = Adjudication.objects.get(item=item)
    assert case.kind == AdjudicationKind.REVIEW and case.decided_at is None
    assert (case.approval.stage, case.approval.reviewer) == (Stage.EXPERT, people["expert"])
    assert (case.rejection.stage, case.rejection.comment) == (Stage.DOMAIN, "It is 14 days.")
    # not back with the annotator, nor in any review queue
    assert item_claim_next(project=adjudicating, user=people["annotator"], stage=Stage.ANNOTATE) is None
    assert item_task(item=item, user=people["annotator"])["rejection"] is None
    assert AuditEvent.objects.filter(action="adjudication.open", target_id=str(case.pk)).exists()


def test_without_the_setting_a_disagreement_goes_to_rework_as_before(adjudicating, people):
    adjudicating.adjudicate_disagreements = False
    adjudicating.save()
    item = disputed_item(adjudicating, people)
    assert item.status == ItemStatus.REWORK
    assert not Adjudication.objects.exists()


def test_a_reject_of_work_no_tier_approved_is_ordinary_rework(adjudicating, people):
    # two tiers: the domain reviewer is the first to judge the annotator's answer
    adjudicating.review_tiers = 2
    adjudicating.save()
    ItemFactory(project=adjudicating)
    annotate(adjudicating, people["annotator"])
    item = review(adjudicating, people["domain_reviewer"], Stage.DOMAIN, "reject", comment="No.")
    assert item.status == ItemStatus.REWORK
    assert not Adjudication.objects.exists()


def test_a_failed_spot_check_of_an_approved_item_waits_for_adjudication(adjudicating, people):
    ItemFactory(project=adjudicating)
    annotate(adjudicating, people["annotator"])
    review(adjudicating, people["expert"], Stage.EXPERT, "edit", text="Refunds take 14 days.")
    review(adjudicating, people["domain_reviewer"], Stage.DOMAIN)
    adjudicating.spot_check_rate = 1.0
    adjudicating.save()
    spot_checks_sample(project=adjudicating, now=timezone.now() + timedelta(seconds=1), rng=random.Random(1))
    checker = UserFactory(username="checker")
    MembershipFactory(project=adjudicating, user=checker, role=Role.DOMAIN_REVIEWER)

    item = review(adjudicating, checker, Stage.SPOT_CHECK, "reject", comment="Wrong period.")

    assert item.status == ItemStatus.ADJUDICATION and item.approved_at is None
    case = Adjudication.objects.get(item=item)
    assert (case.approval.stage, case.rejection.stage) == (Stage.DOMAIN, Stage.SPOT_CHECK)


def ratings_far_apart(project, people, raters):
    project.ratings_per_response = 2
    project.ratings_max_per_response = 3
    project.save()
    response = response_create(
        project=project, actor=people["admin"], text="Maybe.", origin="candidate", input="Is it safe?"
    )
    for rater, score in zip(raters, [5, 1, 5], strict=True):
        rating_submit(
            response_id=response.pk,
            rater=rater,
            scores={"accuracy": score, "politeness": score, "usefulness": score},
        )
    return response


@pytest.fixture
def raters(project):
    users = [UserFactory(username=f"rater{n}") for n in range(3)]
    for user in users:
        MembershipFactory(project=project, user=user, role=Role.EXPERT)
    return users


def test_ratings_still_far_apart_at_the_maximum_go_to_adjudication(adjudicating, people, raters):
    response = ratings_far_apart(adjudicating, people, raters)
    case = Adjudication.objects.get(response=response)
    assert case.kind == AdjudicationKind.RATINGS
    assert case.evidence["ratings"] == 3
    assert case.evidence["spread"] == pytest.approx(0.4714, abs=1e-4)  # 1, 0, 1 on the 0–1 scale


def test_ratings_that_agree_open_no_case(adjudicating, people, raters):
    adjudicating.ratings_max_per_response = 3
    adjudicating.save()
    response = response_create(
        project=adjudicating, actor=people["admin"], text="Yes.", origin="candidate", input="Is it safe?"
    )
    for rater in raters[:2]:
        rating_submit(
            response_id=response.pk, rater=rater, scores={"accuracy": 4, "politeness": 4, "usefulness": 4}
        )
    assert not Adjudication.objects.exists()


# --- deciding ----------------------------------------------------------------------------------------------


def test_an_approval_is_final_audited_and_approves_the_item(api, adjudicating, people):
    item = disputed_item(adjudicating, people)
    case = Adjudication.objects.get(item=item)

    answer = decide(api, people["admin"], adjudicating, case.pk, decision="approve", comment="30 is right.")

    assert answer.status_code == 200, answer.json()
    assert answer.json()["decision"] == "approve" and answer.json()["decided_by"] == "admin"
    item.refresh_from_db()
    assert item.status == ItemStatus.APPROVED and item.approved_at is not None
    assert item.current_revision.text == ANSWER
    events = AuditEvent.objects.filter(action="item.adjudicate", target_id=str(item.pk))
    assert [(e.from_state, e.to_state, e.actor) for e in events] == [
        (ItemStatus.ADJUDICATION, ItemStatus.APPROVED, people["admin"])
    ]
    assert AuditEvent.objects.get(action="adjudication.decide").data["comment"] == "30 is right."
    # and final: a second decision is refused
    again = decide(api, people["staff"], adjudicating, case.pk, decision="reject", comment="No.")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    assert Item.objects.get(pk=item.pk).status == ItemStatus.APPROVED


def test_a_rejection_sends_the_item_to_its_annotator_with_the_comment(api, adjudicating, people):
    item = disputed_item(adjudicating, people)
    case = Adjudication.objects.get(item=item)

    answer = decide(api, people["admin"], adjudicating, case.pk, decision="reject", comment="Use 14 days.")

    assert answer.status_code == 200, answer.json()
    item.refresh_from_db()
    assert item.status == ItemStatus.REWORK and item.approved_at is None
    claimed = item_claim_next(project=adjudicating, user=people["annotator"], stage=Stage.ANNOTATE)
    assert claimed.pk == item.pk
    assert item_task(item=claimed, user=people["annotator"])["rejection"].comment == "Use 14 days."


def test_a_rejection_needs_a_comment(api, adjudicating, people):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    answer = decide(api, people["admin"], adjudicating, case.pk, decision="reject", comment=" ")
    assert answer.status_code == 400 and answer.json()["error"]["message"].startswith("comment")
    assert Item.objects.get(pk=case.item_id).status == ItemStatus.ADJUDICATION
    assert Adjudication.objects.get(pk=case.pk).decided_at is None


def test_a_ratings_case_is_decided_by_final_scores(api, adjudicating, people, raters):
    response = ratings_far_apart(adjudicating, people, raters)
    case = Adjudication.objects.get(response=response)
    scores = {"accuracy": 4, "politeness": 5, "usefulness": 3}

    wrong = decide(api, people["admin"], adjudicating, case.pk, decision="approve")
    assert wrong.status_code == 400
    bad = decide(api, people["admin"], adjudicating, case.pk, scores={"accuracy": 9})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_scores"
    answer = decide(api, people["admin"], adjudicating, case.pk, scores=scores)

    assert answer.status_code == 200, answer.json()
    case.refresh_from_db()
    assert case.decision == "scores" and case.scores == scores
    assert case.weighted_score == pytest.approx(0.4 * 4 + 0.3 * 5 + 0.3 * 3)


# --- who may decide ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who, status", [("annotator", 403), ("expert", 403), ("outsider", 404)])
def test_annotators_experts_and_outsiders_are_refused(api, adjudicating, people, who, status):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    assert decide(api, people[who], adjudicating, case.pk, decision="approve").status_code == status
    listed = api(people[who]).get(f"/api/projects/{adjudicating.pk}/adjudications/")
    assert listed.status_code == status
    assert Item.objects.get(pk=case.item_id).status == ItemStatus.ADJUDICATION


def test_anonymous_callers_are_401(adjudicating, people):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    answer = Client().post(f"/api/projects/{adjudicating.pk}/adjudications/{case.pk}/decide/", {})
    assert answer.status_code == 401


def test_the_reviewer_who_rejected_cannot_decide_it(api, adjudicating, people):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    answer = decide(api, people["domain_reviewer"], adjudicating, case.pk, decision="reject", comment="x")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "own_work"


def test_an_admin_who_approved_it_as_expert_cannot_decide_it(api, adjudicating, people):
    MembershipFactory(project=adjudicating, user=people["expert"], role=Role.ADMIN)
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    answer = decide(api, people["expert"], adjudicating, case.pk, decision="approve")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "own_work"


def test_an_admin_who_wrote_the_answer_cannot_decide_it(api, adjudicating, people):
    MembershipFactory(project=adjudicating, user=people["annotator"], role=Role.ADMIN)
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    answer = decide(api, people["annotator"], adjudicating, case.pk, decision="approve")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "own_work"


def test_a_rater_of_the_response_cannot_decide_its_ratings(api, adjudicating, people, raters):
    MembershipFactory(project=adjudicating, user=raters[0], role=Role.DOMAIN_REVIEWER)
    case = Adjudication.objects.get(response=ratings_far_apart(adjudicating, people, raters))
    answer = decide(
        api, raters[0], adjudicating, case.pk, scores={"accuracy": 3, "politeness": 3, "usefulness": 3}
    )
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "own_work"


def test_another_domain_reviewer_may_decide(api, adjudicating, people):
    other = UserFactory(username="second-reviewer")
    MembershipFactory(project=adjudicating, user=other, role=Role.DOMAIN_REVIEWER)
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    assert decide(api, other, adjudicating, case.pk, decision="approve").status_code == 200


def test_a_case_of_another_project_is_404(api, adjudicating, people):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    other = MembershipFactory(user=people["admin"], role=Role.ADMIN).project
    assert decide(api, people["admin"], other, case.pk, decision="approve").status_code == 404


def test_the_service_refuses_own_work_too(adjudicating, people):
    from core.errors import NotAllowed

    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    with pytest.raises(NotAllowed):
        adjudication_decide(
            adjudication_id=case.pk,
            project_id=adjudicating.pk,
            user=people["domain_reviewer"],
            decision="approve",
        )


# --- the list: API and page ---------------------------------------------------------------------------


def test_the_api_lists_open_cases_with_what_disagreed(api, adjudicating, people):
    item = disputed_item(adjudicating, people)
    answer = api(people["admin"]).get(f"/api/projects/{adjudicating.pk}/adjudications/")

    assert answer.status_code == 200
    [case] = answer.json()["results"]
    assert case["kind"] == "review" and case["state"] == "open" and case["can_decide"] is True
    assert case["item"]["id"] == item.pk and case["item"]["answer"] == ANSWER
    assert (case["approval"]["reviewer"], case["approval"]["decision"]) == ("expert", "approve")
    assert (case["rejection"]["reviewer"], case["rejection"]["comment"]) == (
        "domain_reviewer",
        "It is 14 days.",
    )
    mine = api(people["domain_reviewer"]).get(f"/api/projects/{adjudicating.pk}/adjudications/").json()
    assert mine["results"][0]["can_decide"] is False and mine["results"][0]["own_work"] is True


def test_decided_cases_leave_the_open_list(api, adjudicating, people):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    decide(api, people["admin"], adjudicating, case.pk, decision="approve")
    url = f"/api/projects/{adjudicating.pk}/adjudications/"
    assert api(people["admin"]).get(url).json()["results"] == []
    decided = api(people["admin"]).get(url, {"state": "decided"}).json()["results"]
    assert [(c["id"], c["decision"]) for c in decided] == [(case.pk, "approve")]
    assert api(people["admin"]).get(url, {"state": "later"}).status_code == 400


def test_the_page_lists_cases_and_its_form_decides(adjudicating, people):
    item = disputed_item(adjudicating, people)
    case = Adjudication.objects.get(item=item)
    browser = Client()
    browser.login(username="admin", password=PASSWORD)

    page = browser.get(f"/projects/{adjudicating.pk}/adjudications/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="adjudication-{case.pk}"' in html and "It is 14 days." in html
    assert "<script" not in html.split("<main", 1)[1]

    posted = browser.post(
        f"/projects/{adjudicating.pk}/adjudications/{case.pk}/decide/", {"decision": "approve"}
    )
    assert posted.status_code == 302
    assert Item.objects.get(pk=item.pk).status == ItemStatus.APPROVED
    assert "Decided" in browser.get(posted["Location"]).content.decode()


@pytest.mark.parametrize("who, status", [("annotator", 403), ("expert", 403), ("outsider", 404)])
def test_the_page_is_for_admins_and_domain_reviewers(adjudicating, people, who, status):
    browser = Client()
    browser.login(username=who, password=PASSWORD)
    assert browser.get(f"/projects/{adjudicating.pk}/adjudications/").status_code == status


def test_the_page_says_own_work_instead_of_a_form(adjudicating, people):
    case = Adjudication.objects.get(item=disputed_item(adjudicating, people))
    browser = Client()
    browser.login(username="domain_reviewer", password=PASSWORD)
    html = browser.get(f"/projects/{adjudicating.pk}/adjudications/").content.decode()
    assert f'id="adjudication-{case.pk}"' in html
    assert f"/adjudications/{case.pk}/decide/" not in html


def test_the_item_history_records_the_dispute_and_the_decision(api, adjudicating, people):
    item = disputed_item(adjudicating, people)
    case = Adjudication.objects.get(item=item)
    decide(api, people["admin"], adjudicating, case.pk, decision="approve")
    history = api(people["admin"]).get(f"/api/items/{item.pk}/history/").json()
    tail = [(e["action"], e["from"], e["to"]) for e in history][-2:]
    assert tail == [
        ("item.reject", ItemStatus.DOMAIN_REVIEW, ItemStatus.ADJUDICATION),
        ("item.adjudicate", ItemStatus.ADJUDICATION, ItemStatus.APPROVED),
    ]
    assert ReviewDecision.objects.filter(item=item).count() == 2  # the adjudication is no review decision


def test_the_workbench_tells_the_reviewer_their_reject_goes_to_adjudication(adjudicating, people):
    ItemFactory(project=adjudicating)
    annotate(adjudicating, people["annotator"])
    review(adjudicating, people["expert"], Stage.EXPERT)
    held = claim(adjudicating, people["domain_reviewer"], Stage.DOMAIN)
    browser = Client()
    browser.login(username="domain_reviewer", password=PASSWORD)

    answer = browser.post(
        f"/items/{held.pk}/act/",
        {"action": "reject", "version": held.version, "comment": "Wrong period."},
        follow=True,
    )

    assert "your rejection goes to adjudication" in answer.content.decode()
    assert Item.objects.get(pk=held.pk).status == ItemStatus.ADJUDICATION
