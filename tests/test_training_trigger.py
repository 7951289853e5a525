"""The training trigger and snapshots: concurrent approvals start exactly one run; a snapshot is frozen,
hashed, split stably and written in LLaMA-Factory's formats."""

import json
import threading
import uuid

import pytest
from django.db import connection

from annotation.models import Item
from annotation.services import items_create
from tests.factories import ProjectFactory
from tests.test_training_support import (
    TRIGGER_CHECK,
    annotators,
    approve_all,
    approve_one,
    route_named_task,
    task_rows,
)
from training import snapshots, trigger
from training.engine.data import split_for
from training.models import RunStatus, SnapshotSplit, TrainingRun
from training.runs import evaluate, human_eval, launch


@pytest.fixture
def unconsumed_queues(settings, monkeypatch):
    # Runs are sent to a queue no worker reads: these tests are about the rows, not about training. The
    # check an approval sends on commit runs at once, in the approving thread, instead of in a worker.
    settings.HANDOVER_TRAINING_QUEUE = f"nobody-{uuid.uuid4().hex}"
    route_named_task(monkeypatch, TRIGGER_CHECK, trigger.training_trigger_check)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_approvals_across_the_threshold_start_exactly_one_run(
    unconsumed_queues, monkeypatch
):
    # given a project with threshold 10 and 20 items held by 20 annotators
    project = ProjectFactory(review_tiers=1, retrain_threshold=10)
    items_create(project=project, actor=None, rows=task_rows(20))
    people = annotators(project, 20)
    # the check each approval sends on commit runs at once in the approving thread, so 20 checks race
    checks = []
    route_named_task(
        monkeypatch,
        TRIGGER_CHECK,
        lambda project_id: checks.append(trigger.training_trigger_check(project_id)),
    )
    barrier = threading.Barrier(20)
    errors = []

    def approve(user):
        try:
            barrier.wait()
            approve_one(project, user)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    # when all 20 approve at once
    threads = [threading.Thread(target=approve, args=(user,)) for user in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then every approval checked the trigger, and exactly one run was created, queued, by the threshold
    assert not errors
    assert len(checks) == 20
    assert TrainingRun.objects.filter(project=project).count() == 1
    run = TrainingRun.objects.get(project=project)
    assert run.status == RunStatus.QUEUED and run.trigger == "threshold"
    assert [c for c in checks if c is not None] == [run.pk]
    assert run.snapshot.samples.count() >= 10


@pytest.mark.django_db(transaction=True)
def test_no_second_run_while_one_is_active_and_the_next_counts_only_new_samples(unconsumed_queues):
    # given a project whose threshold was reached once
    project = ProjectFactory(review_tiers=1, retrain_threshold=4)
    approve_all(project, 4)
    first = TrainingRun.objects.get(project=project)

    # when more than a threshold of new approvals arrive while the run is active
    approve_all(project, 5, start=4)

    # then no second run starts
    assert TrainingRun.objects.filter(project=project).count() == 1
    assert snapshots.approved_unsnapshotted(project_id=project.pk).count() == 5

    # when the first run ends, the next approval starts a run over all approved samples
    TrainingRun.objects.filter(pk=first.pk).update(status=RunStatus.FAILED)
    approve_all(project, 1, start=9)
    second = TrainingRun.objects.exclude(pk=first.pk).get(project=project)
    assert second.snapshot.samples.count() == 10


@pytest.mark.django_db
def test_snapshot_is_frozen_hashed_split_by_item_id_and_written_for_llama_factory(
    tmp_path, unconsumed_queues
):
    # given 30 approved samples, one of them in the golden set, with an e-mail address in an answer
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000)
    approve_all(project, 30)
    golden = Item.objects.filter(project=project).order_by("pk").first()
    project.golden_item_ids = [golden.pk]
    project.save()
    item = Item.objects.filter(project=project).order_by("pk").last()
    item.current_revision.text = "Write to jane.doe@example.com please."
    item.current_revision.save()

    # when a snapshot is taken twice
    first = snapshots.snapshot_create(project=project, eval_fraction=0.2)
    second = snapshots.snapshot_create(project=project, eval_fraction=0.2)

    # then the same data gives the same hash and the split follows split_for(item id); golden is held out
    assert first.content_hash == second.content_hash and len(first.content_hash) == 64
    for sample in first.samples.all():
        expected = "eval" if split_for(sample.item_id, 0.2) == "eval" else "train"
        assert sample.split == (SnapshotSplit.GOLDEN if sample.item_id == golden.pk else expected)
    assert first.n_train + first.n_eval + first.n_golden == 30 and first.n_golden == 1
    # redacted as exports are
    assert "jane.doe@example.com" not in first.samples.get(item=item).output

    # and a later edit does not change the frozen snapshot
    item.current_revision.text = "Something else."
    item.current_revision.save()
    assert snapshots.snapshot_create(project=project, eval_fraction=0.2).content_hash != first.content_hash
    assert first.samples.get(item=item).output != "Something else."

    # and its files are LLaMA-Factory datasets: train and eval, each as alpaca and as sharegpt
    info = snapshots.snapshot_files_write(snapshot=first, directory=tmp_path)
    on_disk = json.loads((tmp_path / "dataset_info.json").read_text())
    assert on_disk == info and len(info) == 4
    for entry in info.values():
        assert (tmp_path / entry["file_name"]).exists()
    train_file = next(e["file_name"] for name, e in info.items() if name.endswith("train_alpaca"))
    lines = (tmp_path / train_file).read_text().splitlines()
    assert len(lines) == first.n_train and {"instruction", "output"} <= set(json.loads(lines[0]))


@pytest.mark.django_db
def test_hyperparameters_are_validated_with_the_key_named():
    from core.errors import ApplicationError

    values = launch.hyperparameters_validate(method="lora", values={"learning_rate": "0.001", "max_steps": 5})
    assert values["learning_rate"] == 0.001 and values["max_steps"] == 5 and values["lora_r"] == 16
    for method, bad, key in [
        ("lora", {"learning_rate": -1}, "learning_rate"),
        ("lora", {"nonsense": 1}, "nonsense"),
        ("lora", {"bf16": "yes"}, "bf16"),
        ("dpo", {}, "method"),
    ]:
        with pytest.raises(ApplicationError) as error:
            launch.hyperparameters_validate(method=method, values=bad)
        assert key in error.value.message


def test_gate_names_its_reasons():
    assert (
        evaluate.gate_check(
            candidate={"rouge_l": 0.5}, baseline={"rouge_l": 0.505}, floor=0.1, tolerance=0.01
        )
        == []
    )
    reasons = evaluate.gate_check(
        candidate={"rouge_l": 0.05}, baseline={"rouge_l": 0.3}, floor=0.1, tolerance=0.01
    )
    assert len(reasons) == 2 and "floor" in reasons[0] and "deployed" in reasons[1]


def test_human_eval_result_means_win_rate_and_alpha():
    # two raters agreeing exactly; the candidate better on two prompts, tied on one
    pairs = [([5, 5], [3, 3]), ([4, 4], [2, 2]), ([3, 3], [3, 3])]
    ratings = []
    for unit, (cand, base) in enumerate(pairs):
        for rater in (1, 2):
            ratings += [
                (2 * unit, rater, float(cand[rater - 1])),
                (2 * unit + 1, rater, float(base[rater - 1])),
            ]
    result = human_eval.human_eval_result(pairs=pairs, ratings=ratings, bootstrap=50)
    assert result["candidate"]["mean"] == pytest.approx(4.0) and result["baseline"]["mean"] == pytest.approx(
        8 / 3
    )
    assert result["win_rate"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert result["alpha"] == pytest.approx(1.0)
    assert result["candidate"]["ci_low"] < 4.0 < result["candidate"]["ci_high"]


@pytest.mark.django_db
def test_an_approval_stands_when_the_trigger_check_cannot_be_sent(
    monkeypatch, django_capture_on_commit_callbacks
):
    # given a broker that refuses the trigger's message
    def refuse(project_id):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(trigger.training_trigger_check, "delay", refuse)
    project = ProjectFactory(review_tiers=1)
    items_create(project=project, actor=None, rows=task_rows(1))
    (annotator,) = annotators(project, 1)

    # when an item is approved and its transaction commits, then the approval is kept
    with django_capture_on_commit_callbacks(execute=True):
        item = approve_one(project, annotator)
    assert Item.objects.get(pk=item.pk).status == "approved"
