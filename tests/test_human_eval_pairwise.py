"""The pairwise human round of a training run: candidate against deployed, blind, in the compare queue."""

import pytest
from django.db import transaction

from core.errors import ApplicationError, Conflict
from review.models import Pair, PairSource
from review.preference.judging import judgement_submit
from review.preference.queue import compare_claim_next
from review.preference.selectors import leaderboard, pair_task
from review.rating.services import rating_claim_next, rating_submit
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory
from tests.test_training_support import FAST_TRAINING, approve_all, small_model_path
from training.models import (
    DatasetSnapshot,
    HumanEvalPair,
    ModelVersionStatus,
    RunStatus,
    SnapshotSample,
    SnapshotSplit,
    TrainingRun,
)
from training.registry import model_version_deploy, model_version_register
from training.runs import execute, launch
from training.runs.human_eval import _human_eval_open, human_eval_conclude, pairwise_result
from training.trigger import human_eval_check

SCORES_GOOD = {"accuracy": 5, "politeness": 5, "usefulness": 5}
SCORES_POOR = {"accuracy": 2, "politeness": 2, "usefulness": 2}


def raters_of(project, n: int) -> list:
    people = []
    for i in range(n):
        user = UserFactory(username=f"judge-{i}-{project.pk}")
        MembershipFactory(project=project, user=user, role="expert")
        people.append(user)
    return people


def judge_all(project, raters, prefers) -> int:
    """Each rater takes pairs from the compare queue until it is empty for them; `prefers(rater, pair,
    candidate_shown_first)` answers as shown ("A", "B" or "tie"). Returns how many judgements."""
    n = 0
    for rater in raters:
        while (task := compare_claim_next(project=project, user=rater)) is not None:
            pair, lease = task
            candidate = HumanEvalPair.objects.get(pair=pair).candidate_response_id
            shown_first = pair.response_b_id if lease.swapped else pair.response_a_id
            judgement_submit(
                pair_id=pair.pk, rater=rater, choice=prefers(rater, pair, shown_first == candidate)
            )
            n += 1
    return n


def candidate_wins(_rater, _pair, candidate_first):
    return "A" if candidate_first else "B"


def deployed_wins(_rater, _pair, candidate_first):
    return "B" if candidate_first else "A"


def opened_round(project, *, k: int, texts=None) -> TrainingRun:
    """A run whose evaluation passed, its round opened the way evaluation opens it, over k frozen samples
    answered by the candidate and the deployed small model."""
    deployed = model_version_register(
        project=project, actor=None, name="deployed v1", base_model=str(small_model_path())
    )
    model_version_deploy(version_id=deployed.pk, actor=None)
    candidate = model_version_register(
        project=project, actor=None, name="run 1 (lora)", base_model=str(small_model_path())
    )
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64, eval_fraction=0.5)
    rows = {}
    for i in range(k):
        item = ItemFactory(project=project, metadata={"topic": "refund" if i % 2 else "delivery"})
        rows[item.pk] = SnapshotSample.objects.create(
            snapshot=snapshot,
            item=item,
            split=SnapshotSplit.EVAL,
            input=item.input,
            messages=item.messages,
            output="The approved answer.",
            sample_hash=f"{i:064d}",
        )
    run = TrainingRun.objects.create(
        project=project,
        snapshot=snapshot,
        base_model=str(small_model_path()),
        status=RunStatus.EVALUATING,
        candidate=candidate,
        baseline=deployed,
    )
    samples = [
        {"item": pk, "input": row.input, "candidate": f"New answer {i}.", "baseline": f"Old answer {i}."}
        for i, (pk, row) in enumerate(rows.items())
    ]
    with transaction.atomic():
        _human_eval_open(run, samples, rows)
        TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.HUMAN_EVAL)
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_a_pairwise_run_puts_its_pairs_in_the_compare_queue_and_is_promoted_when_the_candidate_wins(
    settings, client, api
):
    # given a pairwise project with the untrained small model deployed and approved items to train on
    settings.HANDOVER_TRAINING_QUEUE = "nobody"
    settings.HANDOVER_EVAL_FRACTION = 0.25
    project = ProjectFactory(
        review_tiers=1,
        retrain_threshold=1000,
        human_eval_size=3,
        human_eval_mode="pairwise",
        ratings_per_response=2,
        training_hyperparameters=FAST_TRAINING,
    )
    approve_all(project, 16)
    deployed = model_version_register(
        project=project,
        actor=None,
        name="deployed v1",
        base_model=str(small_model_path()),
        generation={"max_new_tokens": 12},
    )
    model_version_deploy(version_id=deployed.pk, actor=None)
    raters = raters_of(project, 2)

    # when a run trains and is evaluated through the real generate path
    run = launch.training_run_create(project=project, actor=None, send=False)
    status = execute.training_run_execute(run_id=run.pk)

    # then its round is pairwise: one model_versions pair per prompt, candidate against deployed
    run.refresh_from_db()
    assert status == RunStatus.HUMAN_EVAL, run.status_reason
    round_ = run.human_eval
    assert round_.mode == "pairwise" and round_.size >= 2
    pairs = Pair.objects.filter(project=project)
    assert pairs.count() == round_.size
    assert set(pairs.values_list("source", flat=True)) == {PairSource.MODEL_VERSIONS}
    for pair in pairs:
        assert {pair.model_a, pair.model_b} == {run.candidate.name, deployed.name}
    # and a rater gets them from the compare queue, blind (neither model nor origin shown)
    pair, lease = compare_claim_next(project=project, user=raters[0])
    shown = pair_task(pair=pair, assignment=lease, user=raters[0])
    assert shown["blind"] and set(shown["A"]) == {"text"} and set(shown["B"]) == {"text"}
    assert human_eval_check() == []  # nothing judged yet

    # when both raters prefer the candidate on every pair
    assert judge_all(project, raters, candidate_wins) == 2 * round_.size
    assert human_eval_check() == [run.pk]

    # then it is promoted; the result holds the record, the interval and alpha
    run.refresh_from_db()
    assert run.status == RunStatus.PROMOTED, run.status_reason
    run.candidate.refresh_from_db()
    assert run.candidate.status == ModelVersionStatus.DEPLOYED
    result = run.human_eval.result
    pairwise = result["pairwise"]
    assert (pairwise["wins"], pairwise["losses"], pairwise["ties"]) == (2 * round_.size, 0, 0)
    assert pairwise["win_rate"] == 1.0 and 0.5 < pairwise["ci_low"] < 1.0 == pairwise["ci_high"]
    assert pairwise["alpha"] == pytest.approx(1.0) and pairwise["passed"] and result["auto_promote"]
    assert "candidate" not in result  # no rubric part in a pairwise round
    # and its pairs left the compare queue
    assert not pairs.filter(closed_at__isnull=True).exists()
    assert compare_claim_next(project=project, user=UserFactory(is_staff=True)) is None
    # and the leaderboard counts both versions under their names
    board = {m["model"]: m for m in leaderboard(project=project)["models"]}
    assert (
        board[run.candidate.name]["wins"] == 2 * round_.size
        and board[deployed.name]["losses"] == 2 * round_.size
    )

    # and the API and the run page show the win rate and its lower bound
    admin = UserFactory(is_staff=True)
    body = api(admin).get(f"/api/training-runs/{run.pk}/").json()
    assert body["human_eval"]["mode"] == "pairwise"
    assert body["human_eval"]["result"]["pairwise"]["ci_low"] == pytest.approx(pairwise["ci_low"])
    client.force_login(admin)
    page = client.get(f"/projects/{project.pk}/training/{run.pk}/").content.decode()
    assert 'id="pairwise-result"' in page and f"{pairwise['ci_low']:.3f}" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "outcome", ["deployed wins", "raters disagree", "a win too narrow to be sure"], ids=str
)
def test_a_candidate_that_does_not_clearly_win_waits_for_the_admin(project, outcome):
    # given a pairwise round of four prompts and two raters
    project.human_eval_mode, project.ratings_per_response = "pairwise", 2
    project.save()
    run = opened_round(project, k=4)
    raters = raters_of(project, 2)
    lost = set(HumanEvalPair.objects.filter(round__run=run).order_by("pk").values_list("pair", flat=True)[:1])

    # when they judge: the deployed model better; one rater each way; or both raters the candidate
    # better on three pairs and worse on one (6 of 8, lower bound 0.41)
    def prefers(rater, pair, candidate_first):
        if outcome == "deployed wins":
            side = deployed_wins
        elif outcome == "raters disagree":
            side = candidate_wins if rater == raters[0] else deployed_wins
        else:
            side = deployed_wins if pair.pk in lost else candidate_wins
        return side(rater, pair, candidate_first)

    judge_all(project, raters, prefers)
    status = human_eval_conclude(run_id=run.pk)

    # then the run waits for the admin's decision, saying why, and the candidate is not deployed
    run.refresh_from_db()
    assert status == run.status == RunStatus.AWAITING_DECISION
    pairwise = run.human_eval.result["pairwise"]
    assert not pairwise["passed"] and not run.human_eval.result["auto_promote"]
    if outcome == "deployed wins":
        assert (pairwise["wins"], pairwise["losses"]) == (0, 8)
        assert "win rate, 0.00, is under the minimum 0.50" in run.status_reason
    elif outcome == "raters disagree":
        assert pairwise["win_rate"] == 0.5 and pairwise["alpha"] < 0.4
        assert "raters agreed too little on the pairs" in run.status_reason
    else:
        assert pairwise["win_rate"] == 0.75 and pairwise["alpha"] == pytest.approx(1.0)
        assert pairwise["ci_low"] == pytest.approx(0.409, abs=1e-3)
        assert run.status_reason == (
            "the lower bound of its 95 % interval, 0.41, does not exceed 0.50 (not preferred beyond chance)"
        )
    run.candidate.refresh_from_db()
    assert run.candidate.status == ModelVersionStatus.CANDIDATE
    assert not Pair.objects.filter(project=project, closed_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_both_round_concludes_once_rated_and_judged_and_needs_both_gates(project):
    # given a round judged both ways, three raters (overlap 3, the project default)
    project.human_eval_mode = "both"
    project.save()
    run = opened_round(project, k=2)
    raters = raters_of(project, 3)
    assert Pair.objects.filter(project=project).count() == 2

    # when they rate every response (the candidate better) but have not judged the pairs yet
    candidates = set(HumanEvalPair.objects.values_list("candidate_response", flat=True))
    for rater in raters:
        while (response := rating_claim_next(project=project, user=rater)) is not None:
            good = response.pk in candidates
            rating_submit(response_id=response.pk, rater=rater, scores=SCORES_GOOD if good else SCORES_POOR)

    # then the round is not over
    assert human_eval_conclude(run_id=run.pk) is None

    # when they judge the pairs, preferring the deployed model
    judge_all(project, raters, deployed_wins)
    status = human_eval_conclude(run_id=run.pk)

    # then the rubric gate passed but the pairwise one did not, so the admin decides
    assert status == RunStatus.AWAITING_DECISION
    result = TrainingRun.objects.get(pk=run.pk).human_eval.result
    assert result["mode"] == "both" and result["at_least_as_good"] and result["agreed"]
    assert result["candidate"]["mean"] > result["baseline"]["mean"]
    assert not result["pairwise"]["passed"] and not result["auto_promote"]
    assert result["reasons"] == result["pairwise"]["reasons"]


@pytest.mark.django_db
def test_a_both_round_promotes_when_both_gates_pass(project):
    project.human_eval_mode = "both"
    project.save()
    run = opened_round(project, k=2)
    raters = raters_of(project, 3)
    candidates = set(HumanEvalPair.objects.values_list("candidate_response", flat=True))
    for rater in raters:
        while (response := rating_claim_next(project=project, user=rater)) is not None:
            good = response.pk in candidates
            rating_submit(response_id=response.pk, rater=rater, scores=SCORES_GOOD if good else SCORES_POOR)
    judge_all(project, raters, candidate_wins)

    assert human_eval_conclude(run_id=run.pk) == RunStatus.PROMOTED

    result = TrainingRun.objects.get(pk=run.pk).human_eval.result
    assert result["passed"] and result["pairwise"]["passed"] and result["win_rate"] == 1.0


@pytest.mark.django_db
def test_a_rubric_round_makes_no_pairs(project):
    run = opened_round(project, k=2)

    assert run.human_eval.mode == "rubric"
    assert not Pair.objects.filter(project=project).exists()
    assert not HumanEvalPair.objects.filter(pair__isnull=False).exists()


@pytest.mark.django_db
def test_nobody_judges_a_round_pair_with_a_response_they_wrote(project):
    # given a pairwise round in which one response was written by a rater (as an imported answer is)
    project.human_eval_mode, project.ratings_per_response = "pairwise", 1
    project.save()
    run = opened_round(project, k=2)
    author, other = raters_of(project, 2)
    theirs = HumanEvalPair.objects.filter(round__run=run).order_by("pk").first()
    theirs.baseline_response.author = author
    theirs.baseline_response.save(update_fields=["author"])

    # when the author takes pairs from the queue, then they are never served that pair
    served = []
    while (task := compare_claim_next(project=project, user=author)) is not None:
        served.append(task[0].pk)
        judgement_submit(pair_id=task[0].pk, rater=author, choice="A")
    assert served and theirs.pair_id not in served
    # and judging it directly is refused
    with pytest.raises(ApplicationError) as error:
        judgement_submit(pair_id=theirs.pair_id, rater=author, choice="A")
    assert error.value.code == "own_response"
    # while another rater gets it, and the round concludes on their judgement
    pair, _lease = compare_claim_next(project=project, user=other)
    assert pair.pk == theirs.pair_id
    judgement_submit(pair_id=pair.pk, rater=other, choice="tie")
    assert human_eval_conclude(run_id=run.pk) is not None
    with pytest.raises(Conflict):
        judgement_submit(pair_id=pair.pk, rater=UserFactory(is_staff=True), choice="A")


@pytest.mark.parametrize(
    ("record", "min_win_rate", "won", "floor"),
    [
        ({"wins": 6, "losses": 2, "ties": 0}, 0.5, False, 0.5),  # 0.75, but the lower bound is 0.41
        ({"wins": 18, "losses": 2, "ties": 0}, 0.5, True, 0.5),  # 0.90, lower bound 0.70
        ({"wins": 9, "losses": 11, "ties": 0}, 0.4, False, 0.4),  # 0.45 >= 0.4, but its bound is 0.26
        ({"wins": 60, "losses": 40, "ties": 0}, 0.4, True, 0.4),  # 0.60, bound 0.50 > 0.4
        ({"wins": 40, "losses": 0, "ties": 0}, 0.9, True, 0.5),  # a high minimum: the rate decides
        ({"wins": 2, "losses": 0, "ties": 38}, 0.5, False, 0.5),  # all ties: 0.525, not beyond chance
    ],
)
def test_the_pairwise_gate_needs_the_win_rate_and_a_lower_bound_beyond_chance(
    record, min_win_rate, won, floor
):
    from review.math.preference import win_rate

    agreement = {"alpha": 0.8, "alpha_ci_low": 0.6, "alpha_ci_high": 0.9, "reason": None}
    result = pairwise_result(
        record=win_rate(**record), agreement=agreement, min_win_rate=min_win_rate, min_alpha=0.4
    )

    assert result["lower_bound_floor"] == floor
    assert result["won"] is won and result["passed"] is won
    assert bool(result["reasons"]) is not won
