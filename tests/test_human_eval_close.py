"""When a run leaves its blind human round, the round's responses leave the rate queue."""

import pytest

from core.errors import Conflict
from review.models import Rating, Response, ResponseOrigin
from review.rating.services import rating_claim_next, rating_submit
from training.models import DatasetSnapshot, HumanEvalPair, HumanEvalRound, RunStatus, TrainingRun
from training.runs.status import training_run_cancel, training_run_reject

from .factories import ItemFactory

SCORES = {"accuracy": 4, "politeness": 5, "usefulness": 4}


@pytest.fixture
def run_in_human_eval(project):
    """A run waiting for its blind round of two pairs (four responses), and an unrelated response."""
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64, eval_fraction=0.1)
    run = TrainingRun.objects.create(
        project=project, snapshot=snapshot, base_model="/models/tiny", status=RunStatus.HUMAN_EVAL
    )
    round_ = HumanEvalRound.objects.create(run=run, size=2)
    for n in range(2):
        item = ItemFactory(project=project)
        pair = [
            Response.objects.create(
                project=project, input=item.input, text=f"{side} {n}", origin=ResponseOrigin.CANDIDATE
            )
            for side in ("candidate", "baseline")
        ]
        HumanEvalPair.objects.create(
            round=round_, item=item, candidate_response=pair[0], baseline_response=pair[1]
        )
    other = Response.objects.create(project=project, input="Q", text="A", origin=ResponseOrigin.HUMAN)
    return run, other


@pytest.mark.parametrize("end", ["reject", "cancel"])
def test_ending_the_run_takes_its_responses_out_of_the_rate_queue(people, project, run_in_human_eval, end):
    # given a round under way: one response rated, one held by a rater
    run, other = run_in_human_eval
    expert, domain = people["expert"], people["domain_reviewer"]
    rated = rating_claim_next(project=project, user=expert)
    rating_submit(response_id=rated.pk, rater=expert, scores=SCORES)
    held = rating_claim_next(project=project, user=domain)
    assert (
        held.pk in HumanEvalPair.objects.values_list("candidate_response", flat=True) or held.pk != other.pk
    )

    # when the admin ends the run
    if end == "reject":
        training_run_reject(run_id=run.pk, actor=people["admin"])
    else:
        training_run_cancel(run_id=run.pk, actor=people["admin"])

    # then the round's responses are closed, the rating given is kept, and raters get only the rest
    round_responses = Response.objects.exclude(pk=other.pk)
    assert not round_responses.filter(closed_at__isnull=True).exists()
    assert Rating.objects.filter(response=rated).count() == 1
    assert rating_claim_next(project=project, user=domain) == other
    with pytest.raises(Conflict) as error:
        rating_submit(response_id=held.pk, rater=domain, scores=SCORES)
    assert error.value.code == "response_closed"
