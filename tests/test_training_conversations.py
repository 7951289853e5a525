"""Conversations through the fine-tuning loop: snapshots freeze them whole, training asks what drafting
asks, the trainer learns from the history, and the human round shows raters the conversation."""

import json

import pytest

from annotation.models import Item, Stage
from annotation.services import items_create
from annotation.workflow.transitions import item_submit
from core.errors import ApplicationError
from review.models import Response
from tests.factories import ProjectFactory
from tests.test_training_support import FAST_TRAINING, TOPICS, annotators, small_model_path
from tests.workflow_helpers import claim
from training import model_cache, snapshots
from training.drafting import item_prompt
from training.engine.data import encode_sample, render_prompt
from training.models import RunStatus, SnapshotSplit
from training.registry import model_spec, model_version_deploy, model_version_register
from training.runs import execute, launch

SYSTEM = "You are the shop's assistant."
# The answer depends on the first question only; the question before the reply is the same every time,
# so a model that does not read the history cannot tell which answer is wanted.
FOLLOW_UP = "Any news?"


def conversation_row(i: int) -> dict:
    topic, answer = TOPICS[i % 2]
    return {
        "system": SYSTEM,
        "messages": [
            {"role": "user", "content": f"Question {i} about my {topic}, 订单 {i}."},
            {"role": "assistant", "content": "Let me look into it."},
            {"role": "user", "content": FOLLOW_UP},
        ],
        "reference_output": answer,
    }


def answer_for(item) -> str:
    return next(answer for topic, answer in TOPICS if topic in item.messages[0]["content"])


def approve_conversations(project, n: int, *, turns=None) -> None:
    """n conversations, each approved through the real workflow with its topic's answer."""
    items_create(project=project, actor=None, rows=[conversation_row(i) for i in range(n)])
    (annotator,) = annotators(project, 1)
    for _ in range(n):
        item = claim(project, annotator, Stage.ANNOTATE)
        item = item_submit(
            item_id=item.pk, user=annotator, text=answer_for(item), version=item.version, turns=turns
        )
        assert item.status == "approved"


def deploy_small_model(project, **generation):
    version = model_version_register(
        project=project,
        actor=None,
        name="base",
        base_model=str(small_model_path()),
        generation={"max_new_tokens": 12, **generation},
    )
    return model_version_deploy(version_id=version.pk, actor=None)


@pytest.mark.django_db
def test_a_snapshot_freezes_the_conversation_as_approved_with_its_earlier_turn_edits(tmp_path):
    # given a project where people may edit every assistant turn, and an approval that rewrote one
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000, edit_all_assistant_turns=True)
    approve_conversations(project, 1, turns={"1": "我来帮您查一下。"})

    # when the approved samples are frozen
    snapshot = snapshots.snapshot_create(project=project, eval_fraction=0.0)

    # then the sample holds the whole conversation: the system prompt, every earlier turn with the edit
    # applied, the reply, and `input` the question the reply answers
    sample = snapshot.samples.get()
    assert sample.system == SYSTEM
    assert [turn["content"] for turn in sample.messages] == [
        "Question 0 about my refund, 订单 0.",
        "我来帮您查一下。",
        FOLLOW_UP,
    ]
    assert sample.input == FOLLOW_UP and sample.output == TOPICS[0][1]
    assert sample.tools == [] and sample.reply_extra == {}

    # and the run's data folder holds every turn: sharegpt turn by turn, alpaca with its history
    snapshots.snapshot_files_write(snapshot=snapshot, directory=tmp_path)
    sharegpt = json.loads((tmp_path / f"snapshot_{snapshot.pk}_train_sharegpt.jsonl").read_text())
    assert [t["value"] for t in sharegpt["conversations"]] == [
        "Question 0 about my refund, 订单 0.",
        "我来帮您查一下。",
        FOLLOW_UP,
        TOPICS[0][1],
    ]
    assert sharegpt["system"] == SYSTEM
    alpaca = json.loads((tmp_path / f"snapshot_{snapshot.pk}_train_alpaca.jsonl").read_text())
    assert alpaca["history"] == [["Question 0 about my refund, 订单 0.", "我来帮您查一下。"]]


def test_the_sample_hash_covers_the_whole_conversation():
    turns = conversation_row(0)["messages"]
    edited = [turns[0], {**turns[1], "content": "Checking."}, turns[2]]
    same = {"system": SYSTEM, "tools": [], "output": "Done.", "reply_extra": {}}

    # an earlier turn, the tools and the reply's tool calls each make another sample
    hashes = {
        snapshots.sample_hash(messages=turns, **same),
        snapshots.sample_hash(messages=edited, **same),
        snapshots.sample_hash(messages=turns, **{**same, "tools": [{"type": "function"}]}),
        snapshots.sample_hash(messages=turns, **{**same, "reply_extra": {"tool_calls": []}}),
    }
    assert len(hashes) == 4
    # a single plain turn hashes as samples always did (text, system, output), so it stays stable
    single = snapshots.sample_hash(messages=[{"role": "user", "content": "Q"}], **same)
    assert single == snapshots._hash("Q", SYSTEM, "Done.")


@pytest.mark.django_db
def test_a_format_that_cannot_hold_a_conversation_is_left_out_saying_why(tmp_path):
    # given an approved conversation in which the assistant called a tool
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000)
    call = {"id": "c1", "type": "function", "function": {"name": "track", "arguments": '{"order": "7"}'}}
    row = {
        "messages": [
            {"role": "user", "content": "Where is order 7?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": '{"status": "shipped"}', "tool_call_id": "c1"},
        ],
        "tools": [{"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}],
        "reference_output": "It has shipped.",
    }
    items_create(project=project, actor=None, rows=[row])
    (annotator,) = annotators(project, 1)
    item = claim(project, annotator, Stage.ANNOTATE)
    item_submit(item_id=item.pk, user=annotator, text="It shipped today.", version=item.version)
    snapshot = snapshots.snapshot_create(project=project, eval_fraction=0.0)

    # when its files are written
    info = snapshots.snapshot_files_write(snapshot=snapshot, directory=tmp_path)

    # then sharegpt holds the call and its result, alpaca (which cannot) is not written, and the
    # folder says which sample and why
    name = f"snapshot_{snapshot.pk}"
    assert f"{name}_train_sharegpt" in info and f"{name}_train_alpaca" not in info
    record = json.loads((tmp_path / f"{name}_train_sharegpt.jsonl").read_text())
    assert [t["from"] for t in record["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(record["tools"])[0]["function"]["name"] == "track"
    assert not (tmp_path / f"{name}_train_alpaca.jsonl").exists()
    reasons = json.loads((tmp_path / "snapshot.json").read_text())["not_written"]
    assert (
        f"sample {item.pk}" in reasons[f"{name}_train_alpaca"] and "alpaca" in reasons[f"{name}_train_alpaca"]
    )


@pytest.mark.django_db
def test_training_asks_the_model_exactly_what_drafting_asks(settings):
    # given a project template around the question, a conversation with its own system prompt, and a
    # deployed version with a system prompt of its own and a plain template
    settings.HANDOVER_TRAINING_QUEUE = "nobody"
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000, prompt_template="Customer: {input}")
    approve_conversations(project, 2)
    version = deploy_small_model(project, system_prompt="Answer briefly.")
    run = launch.training_run_create(project=project, actor=None, send=False)
    row = run.snapshot.samples.filter(split=SnapshotSplit.TRAIN).first()
    item = row.item

    # when drafting renders the item (through the worker's model cache) and training encodes the sample
    drafter = model_cache.drafter_for(model_spec(version))
    prompt = item_prompt(project, messages=item.messages, system=item.system, tools=item.tools)
    drafted = drafter.render(prompt)
    (sample,) = [s for s in execute._train_samples(run) if s["messages"][0] == row.messages[0]]
    template, generation = execute._model_settings(run)  # what the run's TrainConfig is given
    system_prompt = generation["system_prompt"]
    trained = render_prompt(drafter.tokenizer, sample, system=system_prompt, prompt_template=template)
    example = encode_sample(
        drafter.tokenizer, sample, max_seq_len=512, system_prompt=system_prompt, prompt_template=template
    )

    # then both are the same text, down to the tokens: the item's system prompt, every earlier turn, and
    # the project's template around the last question only
    assert trained == drafted
    assert f"<|im_start|>system\n{SYSTEM}<|im_end|>" in drafted and "Answer briefly." not in drafted
    assert "<|im_start|>assistant\nLet me look into it.<|im_end|>" in drafted
    assert f"<|im_start|>user\nCustomer: {FOLLOW_UP}<|im_end|>" in drafted
    assert "Customer: Question" not in drafted
    fed = drafter._encode(prompt)
    assert example.input_ids[: len(fed)] == fed


@pytest.mark.django_db
@pytest.mark.parametrize(("edit_all", "launched", "expected"), [
    (False, {}, True),
    (True, {}, False),
    (True, {"mask_history": True}, True),
])  # fmt: skip
def test_mask_history_follows_the_project_unless_the_launch_sets_it(settings, edit_all, launched, expected):
    # given a project that lets people edit every assistant turn, or only the reply
    settings.HANDOVER_TRAINING_QUEUE = "nobody"
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000, edit_all_assistant_turns=edit_all)
    approve_conversations(project, 2)

    # when a run is launched
    run = launch.training_run_create(project=project, actor=None, hyperparameters=launched, send=False)

    # then every reviewed assistant turn is trained (mask_history off) only where all could be edited
    assert run.hyperparameters["mask_history"] is expected


def test_mask_history_is_a_validated_hyperparameter():
    with pytest.raises(ApplicationError) as error:
        launch.hyperparameters_validate(method="lora", values={"mask_history": "no"})
    assert "hyperparameters.mask_history" in error.value.message
    assert (
        launch.hyperparameters_validate(method="lora", values={"mask_history": False})["mask_history"]
        is False
    )


@pytest.mark.django_db
def test_a_run_on_conversations_learns_from_the_history_and_raters_see_the_conversation(settings):
    # given approved conversations whose answer depends on the first question, and the untrained small
    # model deployed; every assistant turn trained
    settings.HANDOVER_TRAINING_QUEUE = "nobody"
    settings.HANDOVER_EVAL_FRACTION = 0.25
    project = ProjectFactory(
        review_tiers=1,
        retrain_threshold=1000,
        human_eval_size=2,
        training_hyperparameters={**FAST_TRAINING, "mask_history": False, "max_seq_len": 96},
    )
    approve_conversations(project, 24)
    # one conversation of each topic always held out (the golden set), whatever ids the database gave
    first_two = Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)[:2]
    project.golden_item_ids = list(first_two)
    project.save(update_fields=["golden_item_ids"])
    deploy_small_model(project)
    run = launch.training_run_create(project=project, actor=None, send=False)

    # when the run is executed (train, evaluate through the real generate path, open the human round)
    status = execute.training_run_execute(run_id=run.pk)

    # then it trained and evaluated; on held-out conversations of both topics, whose last question is
    # the same, it answers each exactly: it read the history (ignoring it, one topic would be wrong)
    run.refresh_from_db()
    assert status == RunStatus.HUMAN_EVAL, run.status_reason
    assert run.step == FAST_TRAINING["max_steps"] and run.loss_curve[-1] < run.loss_curve[0]
    metrics = run.metrics
    assert {o["reference"] for o in run.sample_outputs} == {answer for _, answer in TOPICS}
    assert metrics["candidate"]["exact_match"] == 1.0 and metrics["baseline"]["exact_match"] == 0.0, metrics
    # and the blind responses carry the conversation they answer
    responses = Response.objects.filter(project=project)
    assert responses.count() == 2 * run.human_eval.size
    for response in responses:
        sample = run.snapshot.samples.get(item_id=response.item_id)
        assert response.system == SYSTEM and response.messages == sample.messages
        assert response.input == FOLLOW_UP and len(response.messages) == 3
