"""The item workflow through its services: every transition, who may do it, and what it leaves behind."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import AuditEvent, Autosave, ItemSource, ItemStatus, Revision, Stage
from annotation.workflow.transitions import (
    DraftCandidate,
    autosave_store,
    item_claim_next,
    item_drafts_store,
    item_flag_needs_expert,
    item_release,
    item_submit,
    leases_expire,
)
from core.errors import ApplicationError, Conflict, NotAllowed
from review.decisions.services import item_review, spot_checks_sample
from review.models import ReviewDecision

from .factories import ItemFactory, MembershipFactory, UserFactory
from .workflow_helpers import annotate, claim, review

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(project):
    return ItemFactory(project=project)


# --- claiming -----------------------------------------------------------------------------------------


def test_annotator_claims_a_new_item(people, project, item):
    claimed = item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE)
    assert claimed.pk == item.pk
    assert claimed.status == ItemStatus.ANNOTATING
    assert claimed.leased_by == people["annotator"] and claimed.lease_stage == Stage.ANNOTATE
    assert claimed.lease_expires_at > timezone.now() + timedelta(minutes=29)
    assert AuditEvent.objects.filter(action="item.claim", target_id=str(item.pk)).exists()


@pytest.mark.parametrize(
    "role, stage",
    [
        ("expert", "annotate"),
        ("domain_reviewer", "annotate"),
        ("annotator", "expert"),
        ("domain_reviewer", "expert"),
        ("annotator", "domain"),
        ("expert", "domain"),
        ("annotator", "spot_check"),
        ("expert", "spot_check"),
        ("outsider", "annotate"),
    ],
)
def test_a_stage_needs_its_role(people, project, item, role, stage):
    with pytest.raises(NotAllowed):
        item_claim_next(project=project, user=people[role], stage=stage)


def test_unknown_stage_is_an_error(people, project):
    with pytest.raises(ApplicationError, match="stage"):
        item_claim_next(project=project, user=people["annotator"], stage="bake")


def test_empty_queue_gives_none(people, project):
    assert item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE) is None


def test_claiming_twice_returns_the_held_item(people, project):
    first, _ = ItemFactory.create_batch(2, project=project)
    again = item_claim_next(project=project, user=people["annotator"], stage=Stage.ANNOTATE)
    assert claim(project, people["annotator"], Stage.ANNOTATE).pk == again.pk == first.pk


def test_two_annotators_never_get_the_same_item(people, project):
    ItemFactory.create_batch(2, project=project)
    other = UserFactory()
    MembershipFactory(project=project, user=other, role="annotator")
    a = claim(project, people["annotator"], Stage.ANNOTATE)
    b = claim(project, other, Stage.ANNOTATE)
    assert a.pk != b.pk


def test_higher_priority_first(people, project):
    ItemFactory(project=project)
    urgent = ItemFactory(project=project, priority=100, source=ItemSource.PRODUCTION)
    assert claim(project, people["annotator"], Stage.ANNOTATE).pk == urgent.pk


def test_own_rework_comes_before_new_work(people, project, item):
    annotate(project, people["annotator"])
    review(project, people["expert"], Stage.EXPERT, "reject", comment="Too short.")
    ItemFactory(project=project, priority=100)
    assert claim(project, people["annotator"], Stage.ANNOTATE).pk == item.pk


def test_rework_goes_back_to_its_author_only(people, project, item):
    annotate(project, people["annotator"])
    review(project, people["expert"], Stage.EXPERT, "reject", comment="Too short.")
    other = UserFactory()
    MembershipFactory(project=project, user=other, role="annotator")
    assert item_claim_next(project=project, user=other, stage=Stage.ANNOTATE) is None


# --- submitting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tiers, expected", [(3, ItemStatus.SUBMITTED), (2, ItemStatus.DOMAIN_REVIEW), (1, ItemStatus.APPROVED)]
)
def test_submit_goes_to_the_next_tier(people, project, item, tiers, expected):
    project.review_tiers = tiers
    project.save()
    submitted = annotate(project, people["annotator"], "Your parcel left our warehouse today.")
    assert submitted.status == expected
    assert submitted.current_revision.text == "Your parcel left our warehouse today."
    assert submitted.current_revision.author == people["annotator"]
    assert submitted.leased_by is None
    assert (submitted.approved_at is not None) == (expected == ItemStatus.APPROVED)


def test_submit_records_the_draft_it_started_from(people, project, item):
    item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate("Draft text", 0.9)])
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    draft = held.drafts.get()
    done = item_submit(
        item_id=held.pk, user=people["annotator"], text="Edited", version=held.version, draft_id=draft.pk
    )
    assert done.current_revision.draft == draft


def test_submit_with_a_stale_version_says_who_changed_it(people, project, item):
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    with pytest.raises(Conflict, match=r"changed by annotator .* you sent 1"):
        item_submit(item_id=held.pk, user=people["annotator"], text="x", version=1)
    assert not Revision.objects.exists()


def test_submit_without_holding_the_item_is_refused(people, project, item):
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    other = UserFactory()
    MembershipFactory(project=project, user=other, role="annotator")
    with pytest.raises(Conflict, match="do not hold"):
        item_submit(item_id=held.pk, user=other, text="mine", version=held.version)


def test_empty_answer_is_refused(people, project, item):
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    with pytest.raises(ApplicationError, match="text"):
        item_submit(item_id=held.pk, user=people["annotator"], text="   ", version=held.version)


def test_skip_returns_the_item_as_it_was(people, project, item):
    item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate("Draft", 0.8)])
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    autosave_store(item_id=held.pk, user=people["annotator"], text="half-done")
    released = item_release(item_id=held.pk, user=people["annotator"])
    assert released.status == ItemStatus.DRAFTED and released.leased_by is None
    assert not Autosave.objects.exists()


def test_skipped_items_are_not_offered_again_to_the_same_person(people, project):
    first, second = ItemFactory.create_batch(2, project=project)
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    item_release(item_id=held.pk, user=people["annotator"])
    assert claim(project, people["annotator"], Stage.ANNOTATE).pk == second.pk
    other = UserFactory()
    MembershipFactory(project=project, user=other, role="annotator")
    assert claim(project, other, Stage.ANNOTATE).pk == first.pk


def test_flag_sends_the_item_to_experts_who_must_write_the_answer(people, project, item):
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    flagged = item_flag_needs_expert(
        item_id=held.pk, user=people["annotator"], version=held.version, comment="Legal"
    )
    assert (flagged.status, flagged.needs_expert) == (ItemStatus.SUBMITTED, True)
    expert_held = claim(project, people["expert"], Stage.EXPERT)
    with pytest.raises(Conflict, match="no answer to approve"):
        item_review(item_id=item.pk, user=people["expert"], decision="approve", version=expert_held.version)
    done = item_review(
        item_id=item.pk,
        user=people["expert"],
        decision="edit",
        text="Expert answer",
        version=expert_held.version,
    )
    assert (done.status, done.current_revision.author) == (ItemStatus.DOMAIN_REVIEW, people["expert"])


# --- reviewing ----------------------------------------------------------------------------------------


def test_three_tiers_to_approved(people, project, item):
    annotate(project, people["annotator"])
    after_expert = review(project, people["expert"], Stage.EXPERT)
    assert after_expert.status == ItemStatus.DOMAIN_REVIEW
    approved = review(project, people["domain_reviewer"], Stage.DOMAIN)
    assert approved.status == ItemStatus.APPROVED and approved.approved_at is not None
    assert list(ReviewDecision.objects.values_list("stage", "decision")) == [
        ("expert", "approve"),
        ("domain", "approve"),
    ]


def test_reject_needs_a_comment(people, project, item):
    annotate(project, people["annotator"])
    held = claim(project, people["expert"], Stage.EXPERT)
    with pytest.raises(ApplicationError, match="comment"):
        item_review(item_id=held.pk, user=people["expert"], decision="reject", version=held.version)
    assert ReviewDecision.objects.count() == 0


def test_reject_sends_the_comment_back_to_the_author(people, project, item):
    from annotation.selectors import item_task

    annotate(project, people["annotator"])
    rejected = review(project, people["expert"], Stage.EXPERT, "reject", comment="Cite the policy.")
    assert rejected.status == ItemStatus.REWORK and rejected.annotator == people["annotator"]
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    assert item_task(item=held, user=people["annotator"])["rejection"].comment == "Cite the policy."
    resubmitted = item_submit(
        item_id=held.pk, user=people["annotator"], text="Per policy 4.2 ...", version=held.version
    )
    assert resubmitted.status == ItemStatus.SUBMITTED
    assert resubmitted.current_revision.parent.text == "An answer."


def test_edit_creates_a_revision_by_the_reviewer(people, project, item):
    annotate(project, people["annotator"], "Original")
    edited = review(project, people["expert"], Stage.EXPERT, "edit", text="Improved")
    assert edited.current_revision.text == "Improved" and edited.current_revision.author == people["expert"]
    assert edited.current_revision.parent.text == "Original"
    assert Revision.objects.filter(item=item).count() == 2


def test_nobody_reviews_their_own_work(people, project, item):
    # given someone who is annotator and expert and domain reviewer
    both = UserFactory()
    for role in ("annotator", "expert", "domain_reviewer"):
        MembershipFactory(project=project, user=both, role=role)
    annotate(project, both)
    # then their own item is not in their review queues
    assert item_claim_next(project=project, user=both, stage=Stage.EXPERT) is None
    # and an expert who edited it cannot sign it off as domain reviewer
    review(project, people["expert"], Stage.EXPERT, "edit", text="Better")
    MembershipFactory(project=project, user=people["expert"], role="domain_reviewer")
    assert item_claim_next(project=project, user=people["expert"], stage=Stage.DOMAIN) is None
    assert item_claim_next(project=project, user=both, stage=Stage.DOMAIN) is None
    assert claim(project, people["domain_reviewer"], Stage.DOMAIN).pk == item.pk


def test_own_work_is_refused_even_when_held(people, project, item):
    # given an item whose lease somehow reaches its author (e.g. a role added later)
    annotate(project, people["annotator"])
    held = claim(project, people["expert"], Stage.EXPERT)
    Revision.objects.create(item=held, author=people["expert"], stage="annotate", text="sneaky")
    with pytest.raises(NotAllowed, match="someone else must review"):
        item_review(item_id=held.pk, user=people["expert"], decision="approve", version=held.version)


def test_unknown_decision(people, project, item):
    annotate(project, people["annotator"])
    held = claim(project, people["expert"], Stage.EXPERT)
    with pytest.raises(ApplicationError, match="decision"):
        item_review(item_id=held.pk, user=people["expert"], decision="maybe", version=held.version)


# --- leases and spot checks ---------------------------------------------------------------------------


def test_expired_leases_return_items_to_their_queue(people, project, item):
    annotate(project, people["annotator"])
    held = claim(project, people["expert"], Stage.EXPERT)
    assert held.status == ItemStatus.EXPERT_REVIEW
    assert leases_expire(now=timezone.now() + timedelta(minutes=31)) == 1
    held.refresh_from_db()
    assert (held.status, held.leased_by) == (ItemStatus.SUBMITTED, None)
    assert AuditEvent.objects.filter(action="item.lease_expired").count() == 1


def test_live_leases_are_kept(people, project, item):
    claim(project, people["annotator"], Stage.ANNOTATE)
    assert leases_expire(now=timezone.now() + timedelta(minutes=29)) == 0


def approved_items(project, people, n):
    ItemFactory.create_batch(n, project=project)
    for _ in range(n):
        annotate(project, people["annotator"])
        review(project, people["expert"], Stage.EXPERT)
        review(project, people["domain_reviewer"], Stage.DOMAIN)


def test_spot_checks_sample_the_rate_of_the_last_day(people, project):
    approved_items(project, people, 20)
    project.spot_check_rate = 0.25
    project.save()
    moved = spot_checks_sample(
        project=project, now=timezone.now() + timedelta(seconds=1), rng=random.Random(1)
    )
    assert moved == 5
    assert project.items.filter(status=ItemStatus.SPOT_CHECK).count() == 5
    # and a day later those approvals are out of the window
    assert (
        spot_checks_sample(project=project, now=timezone.now() + timedelta(days=2), rng=random.Random(1)) == 0
    )


def test_failed_spot_check_sends_the_item_to_rework_and_is_recorded(people, project):
    approved_items(project, people, 1)
    project.spot_check_rate = 1.0
    project.save()
    spot_checks_sample(project=project, now=timezone.now() + timedelta(seconds=1))
    checker = UserFactory()
    MembershipFactory(project=project, user=checker, role="domain_reviewer")
    failed = review(project, checker, Stage.SPOT_CHECK, "reject", comment="Wrong refund period.")
    assert failed.status == ItemStatus.REWORK and failed.approved_at is None
    assert ReviewDecision.objects.filter(stage="spot_check", decision="reject").count() == 1
    # and it is not sampled again once it comes back approved
    assert spot_checks_sample(project=project, now=timezone.now() + timedelta(seconds=1)) == 0


# --- drafts ---------------------------------------------------------------------------------------


def test_drafts_are_stored_ranked_and_low_confidence_marked(project, item):
    project.confidence_threshold = 0.6
    project.save()
    drafted = item_drafts_store(
        item_id=item.pk,
        model_version_id=None,
        candidates=[DraftCandidate("b", 0.4), DraftCandidate("a", 0.5)],
    )
    assert drafted.status == ItemStatus.DRAFTED and drafted.low_confidence
    assert list(drafted.drafts.values_list("text", "rank")) == [("a", 0), ("b", 1)]
    # and storing again is a no-op
    assert (
        item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate("c", 0.9)])
        is None
    )


# --- dashboard ------------------------------------------------------------------------------------


def test_dashboard_figures(client, people, project):
    from review.dashboard import (
        annotator_quality,
        draft_edit_distances,
        median_task_seconds,
        throughput_per_day,
    )

    # given two drafted items: one approved unchanged, one rejected once then approved with an edit
    first, second = ItemFactory.create_batch(2, project=project)
    for item in (first, second):
        item_drafts_store(
            item_id=item.pk, model_version_id=None, candidates=[DraftCandidate("Ships in 2 days.", 0.9)]
        )
    for text in ("Ships in 2 days.", "Ships soon."):
        held = claim(project, people["annotator"], Stage.ANNOTATE)
        item_submit(
            item_id=held.pk,
            user=people["annotator"],
            text=text,
            version=held.version,
            draft_id=held.drafts.get().pk,
        )
    review(project, people["expert"], Stage.EXPERT)
    review(project, people["expert"], Stage.EXPERT, "reject", comment="Too vague.")
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    item_submit(item_id=held.pk, user=people["annotator"], text="Ships in 3 days.", version=held.version)
    review(project, people["expert"], Stage.EXPERT)
    review(project, people["domain_reviewer"], Stage.DOMAIN)
    review(project, people["domain_reviewer"], Stage.DOMAIN)

    quality = annotator_quality(project=project)
    assert quality == [
        {
            "annotator": "annotator",
            "reviewed": 3,
            "accepted": 2,
            "rework": 1,
            "spot_check_failed": 0,
            "acceptance_rate": 2 / 3,
            "rework_rate": 1 / 3,
        }
    ]
    today = throughput_per_day(project=project)[-1]
    assert today["submitted"] == 3 and today["approved"] == 2
    edits = draft_edit_distances(project=project)
    assert edits["n"] == 2 and edits["unchanged_share"] == 0.5
    assert set(median_task_seconds(project=project)) == {"annotate", "expert", "domain"}
    # and the page renders them, for reviewers and admins only
    client.force_login(people["admin"])
    page = client.get(f"/projects/{project.pk}/dashboard/").content.decode()
    assert "2 approved answers: median edit distance" in page and "chart-throughput" in page
    client.force_login(people["annotator"])
    assert client.get(f"/projects/{project.pk}/dashboard/").status_code == 403


def test_answers_with_compliance_phrases_are_flagged_for_reviewers(api, people, project, item):
    project.compliance_phrases = ["guaranteed returns", "无风险"]
    project.save()
    annotate(project, people["annotator"], "This fund is 无风险 and has Guaranteed Returns.")
    task = api(people["expert"]).post(
        f"/api/projects/{project.pk}/tasks/next/", {"stage": "expert"}, format="json"
    )
    assert sorted(task.json()["compliance_flags"]) == ["guaranteed returns", "无风险"]
