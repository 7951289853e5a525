"""Drive items through the workflow with the real services, for tests that need them in a state."""

from annotation.models import Stage
from annotation.workflow.transitions import item_claim_next, item_submit
from review.decisions.services import item_review


def claim(project, user, stage):
    item = item_claim_next(project=project, user=user, stage=stage)
    assert item is not None, f"nothing to claim for {user} at {stage}"
    return item


def annotate(project, annotator, text="An answer."):
    item = claim(project, annotator, Stage.ANNOTATE)
    return item_submit(item_id=item.pk, user=annotator, text=text, version=item.version)


def review(project, reviewer, stage, decision="approve", **kwargs):
    item = claim(project, reviewer, stage)
    return item_review(item_id=item.pk, user=reviewer, decision=decision, version=item.version, **kwargs)
