"""A small project worked through the real services for the per-person quality figures."""

import random

from annotation.models import Stage
from annotation.workflow.transitions import DraftCandidate, item_drafts_store, item_submit
from review.decisions.services import item_review, spot_checks_sample
from review.rating.services import rating_submit, response_create

from .factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory
from .workflow_helpers import claim

DRAFT = "Ships in 2 days."


def member(project, username, role):
    user = UserFactory(username=username)
    MembershipFactory(project=project, user=user, role=role)
    return user


def submit_answer(project, user, text, with_draft=True):
    held = claim(project, user, Stage.ANNOTATE)
    draft = held.drafts.first() if with_draft else None
    return item_submit(
        item_id=held.pk, user=user, text=text, version=held.version, draft_id=draft.pk if draft else None
    )


def decide(project, user, stage, decisions: dict, default="approve"):
    """Claim the next item of `stage` and decide it: decisions maps an item's input to its decision."""
    held = claim(project, user, stage)
    decision = decisions.get(held.input, default)
    comment = "Not right." if decision == "reject" else ""
    item_review(item_id=held.pk, user=user, decision=decision, version=held.version, comment=comment)
    return held


def worked_project():
    """Three tiers: ann writes three answers from drafts (one sent back and redone), bea one from scratch;
    exa reviews all five as expert; dom overturns one of exa's approvals at the domain tier, then
    spot-checks the three approved items and fails one; three raters score two responses, adm harshly."""
    project = ProjectFactory(review_tiers=3, spot_check_rate=1.0)
    people = {
        name: member(project, name, role)
        for name, role in [
            ("adm", "admin"),
            ("ann", "annotator"),
            ("bea", "annotator"),
            ("exa", "expert"),
            ("dom", "domain_reviewer"),
        ]
    }
    items = [ItemFactory(project=project, input=f"q{n}") for n in range(1, 5)]
    for item in items:
        item_drafts_store(item_id=item.pk, model_version_id=None, candidates=[DraftCandidate(DRAFT, 0.9)])
    ann, bea, exa, dom = people["ann"], people["bea"], people["exa"], people["dom"]
    submit_answer(project, ann, DRAFT)  # q1, kept as drafted
    submit_answer(project, ann, "Ships in 3 days.")  # q2, distance 1
    submit_answer(project, ann, "Ships within 2 days.")  # q3, distance 4
    submit_answer(project, bea, "We ship tomorrow.", with_draft=False)  # q4
    for _ in range(4):
        decide(project, exa, Stage.EXPERT, {"q2": "reject"})
    submit_answer(project, ann, "Ships in 5 days.")  # q2 again (keeps its draft), distance 1
    decide(project, exa, Stage.EXPERT, {})
    for _ in range(4):
        decide(project, dom, Stage.DOMAIN, {"q3": "reject"})
    assert spot_checks_sample(project=project, rng=random.Random(1)) == 3  # q1, q2, q4
    for _ in range(3):
        decide(project, dom, Stage.SPOT_CHECK, {"q1": "reject"})
    raters = [people["exa"], people["dom"], people["adm"]]
    for scores in ([4, 4, 1], [5, 5, 5]):
        response = response_create(
            project=project, actor=people["adm"], input="Where?", text="Here.", origin="external"
        )
        for rater, score in zip(raters, scores, strict=True):
            rating_submit(
                response_id=response.pk,
                rater=rater,
                scores={"accuracy": score, "politeness": score, "usefulness": score},
            )
    return project, people
