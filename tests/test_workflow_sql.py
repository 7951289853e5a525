"""The single-statement claim and submit (annotation.workflow_sql) write and answer exactly what the
ORM services do, and step aside (None) whenever the outcome is anything but a plain success."""

import json

import pytest
from rest_framework.renderers import JSONRenderer

from annotation import selectors
from annotation.models import AuditEvent, Autosave, ComplianceFlag, Draft, Item, Revision, Skip, Stage
from annotation.workflow import sql as workflow_sql
from annotation.workflow import transitions as workflow
from annotation.workflow.serializers import ItemSerializer, TaskSerializer
from training.models import ModelVersion

from .factories import ItemFactory
from .workflow_helpers import annotate, claim


def fast_claim(project, user, stage=Stage.ANNOTATE):
    return workflow_sql.task_claim_from_queue(project_id=project.pk, user_id=user.pk, stage=stage)


def fast_submit(item, user, text="An answer.", **kwargs):
    kwargs.setdefault("version", item.version)
    return workflow_sql.item_submit(item_id=item.pk, user_id=user.pk, text=text, **kwargs)


def as_json(data):
    return json.loads(JSONRenderer().render(data))


def rendered_task(item_id, user):
    """What the ORM path answers for the same item, as JSON (GET /api/items/{id}/ renders it so)."""
    item = Item.objects.select_related("project", "current_revision").get(pk=item_id)
    return as_json(TaskSerializer(selectors.item_task(item=item, user=user)).data)


def test_annotator_claim_answers_what_the_serializers_render(people, project):
    # given an item with two drafts from a model version, a compliance flag and a leftover autosave
    annotator = people["annotator"]
    item = ItemFactory(project=project, status="drafted", system="Order #1")
    version = ModelVersion.objects.create(project=project, name="v1", base_model="/models/tiny")
    draft = Draft.objects.create(item=item, model_version=version, text="Best draft", confidence=0.8, rank=0)
    Draft.objects.create(item=item, model_version=None, text="Second", confidence=0.4, rank=1)
    ComplianceFlag.objects.create(item=item, phrases=["refund", "lawsuit"])
    Autosave.objects.create(item=item, user=annotator, text="half done", draft=draft)

    # when the annotator claims through the single statement
    task = fast_claim(project, annotator)

    # then the item is leased and audited as the service would, and the answer matches the ORM render
    item.refresh_from_db()
    assert (item.status, item.leased_by, item.lease_stage, item.status_before_lease, item.version) == (
        "annotating",
        annotator,
        Stage.ANNOTATE,
        "drafted",
        2,
    )
    event = AuditEvent.objects.get(action="item.claim", target_id=str(item.pk))
    assert (event.actor, event.from_state, event.to_state, event.data) == (
        annotator,
        "drafted",
        "annotating",
        {"stage": "annotate"},
    )
    assert as_json(task) == rendered_task(item.pk, annotator)
    assert [d["text"] for d in task["drafts"]] == ["Best draft", "Second"]
    assert task["autosave"]["text"] == "half done"
    assert task["compliance_flags"] == ["refund", "lawsuit"]


def test_expert_claim_carries_the_answer_and_keeps_authors_out(people, project):
    # given two submitted items, one of them answered by the expert themself earlier
    expert = people["expert"]
    ItemFactory(project=project)
    annotate(project, people["annotator"], text="The annotator's answer.")
    own = ItemFactory(project=project, status="submitted")
    Revision.objects.create(item=own, author=expert, stage=Stage.ANNOTATE, text="Mine")

    # when the expert claims
    task = fast_claim(project, expert, Stage.EXPERT)

    # then they get the other item, with its answer, exactly as rendered; and nothing more after it
    assert task["item"]["id"] != own.pk
    assert task["item"]["answer"] == task["revision"]["text"] == "The annotator's answer."
    assert as_json(task) == rendered_task(task["item"]["id"], expert)
    assert fast_claim(project, expert, Stage.EXPERT) is None  # holds one now: the service answers


def test_submit_writes_what_the_service_writes(people, project):
    # given two items in the same state, each held by the annotator with a draft and an autosave
    annotator = people["annotator"]
    ItemFactory.create_batch(2, project=project)
    fast_item = claim(project, annotator, Stage.ANNOTATE)
    draft = Draft.objects.create(item=fast_item, text="Draft", confidence=0.9, rank=0)
    Autosave.objects.create(item=fast_item, user=annotator, text="wip")

    # when one is submitted through the single statement
    answer = fast_submit(fast_item, annotator, text="  Fast answer.  ", draft_id=draft.pk)

    # and its twin through the ORM service
    orm_item = claim(project, annotator, Stage.ANNOTATE)
    orm_draft = Draft.objects.create(item=orm_item, text="Draft", confidence=0.9, rank=0)
    Autosave.objects.create(item=orm_item, user=annotator, text="wip")
    workflow.item_submit(
        item_id=orm_item.pk,
        user=annotator,
        text="  Fast answer.  ",
        version=orm_item.version,
        draft_id=orm_draft.pk,
    )

    # then both items, revisions, autosaves and audit events end up alike
    def state(item_id, draft_id):
        item = Item.objects.select_related("current_revision").get(pk=item_id)
        revision = item.current_revision
        event = AuditEvent.objects.filter(target_id=str(item_id)).order_by("-pk").first()
        return {
            "item": {
                name: getattr(item, name)
                for name in ("status", "version", "annotator_id", "needs_expert", "leased_by_id")
            }
            | {
                "lease": (item.lease_stage, item.lease_expires_at, item.status_before_lease, item.approved_at)
            },
            "revision": (
                revision.text,
                revision.author_id,
                revision.stage,
                revision.parent_id,
                revision.draft_id == draft_id,
            ),
            "autosaves": Autosave.objects.filter(item_id=item_id).count(),
            "audit": (
                event.action,
                event.actor_id,
                event.from_state,
                event.to_state,
                event.data == {"revision": revision.pk},
            ),
        }

    assert state(fast_item.pk, draft.pk) == state(orm_item.pk, orm_draft.pk)
    assert state(fast_item.pk, draft.pk)["item"]["status"] == "submitted"
    # and the answer is the item as ItemSerializer renders it
    assert answer == ItemSerializer(Item.objects.select_related("current_revision").get(pk=fast_item.pk)).data


def test_resubmission_keeps_the_lineage_draft(people, project):
    # given an answer that started from a draft, rejected back to its annotator
    annotator, expert = people["annotator"], people["expert"]
    ItemFactory(project=project)
    item = claim(project, annotator, Stage.ANNOTATE)
    draft = Draft.objects.create(item=item, text="Draft", confidence=0.9, rank=0)
    workflow.item_submit(
        item_id=item.pk, user=annotator, text="First", version=item.version, draft_id=draft.pk
    )
    from review.decisions.services import item_review

    held = claim(project, expert, Stage.EXPERT)
    item_review(item_id=held.pk, user=expert, decision="reject", version=held.version, comment="Too short.")
    rework = claim(project, annotator, Stage.ANNOTATE)  # rework comes back through the service

    # when the rework is submitted through the single statement without naming a draft
    fast_submit(rework, annotator, text="Second, longer")

    # then the new revision sits on the first and keeps its draft
    revision = Item.objects.get(pk=item.pk).current_revision
    assert revision.parent.text == "First"
    assert revision.draft_id == draft.pk


@pytest.mark.parametrize(
    "situation",
    ["holds_one", "rework_waiting", "outsider", "wrong_role", "empty_queue", "only_skipped"],
)
def test_claim_steps_aside_unless_it_is_a_plain_claim_from_the_queue(people, project, situation):
    annotator = people["annotator"]
    user = {"outsider": people["outsider"], "wrong_role": people["expert"]}.get(situation, annotator)
    if situation != "empty_queue":
        item = ItemFactory(project=project)
    if situation == "holds_one":
        claim(project, annotator, Stage.ANNOTATE)
        ItemFactory(project=project)
    if situation == "rework_waiting":
        ItemFactory(project=project)
        Item.objects.filter(pk=item.pk).update(status="rework", annotator=annotator)
    if situation == "only_skipped":
        Skip.objects.create(item=item, user=annotator)
    before = AuditEvent.objects.count()

    assert fast_claim(project, user) is None
    assert AuditEvent.objects.count() == before  # nothing written


@pytest.mark.parametrize(
    "situation", ["stale", "not_holder", "blank", "compliance", "one_tier", "foreign_draft", "outsider"]
)
def test_submit_steps_aside_unless_it_is_a_plain_submission(people, project, situation):
    annotator = people["annotator"]
    ItemFactory(project=project)
    item = claim(project, annotator, Stage.ANNOTATE)
    kwargs = {}
    user, text = annotator, "An answer."
    if situation == "stale":
        kwargs["version"] = item.version - 1
    if situation == "not_holder":
        user = people["expert"]
    if situation == "blank":
        text = "   "
    if situation == "compliance":
        project.compliance_phrases = ["refund"]
        project.save()
    if situation == "one_tier":
        project.review_tiers = 1
        project.save()
    if situation == "foreign_draft":
        other = ItemFactory(project=project)
        kwargs["draft_id"] = Draft.objects.create(item=other, text="x", confidence=0.5).pk
    if situation == "outsider":
        project.memberships.filter(user=annotator).delete()
    before = (Revision.objects.count(), AuditEvent.objects.count())

    assert fast_submit(item, user, text=text, **kwargs) is None
    assert (Revision.objects.count(), AuditEvent.objects.count()) == before
    assert Item.objects.get(pk=item.pk).version == item.version


# --- conversations ---------------------------------------------------------------------------------

CONVERSATION = {
    "system": "You are the help desk of Nordlicht Telecom.",
    "messages": [
        {"role": "user", "content": "我的路由器一直闪红灯。"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "line_status", "arguments": "{\"customer\": \"7731\"}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"line\": \"down\", \"since\": \"09:12\"}"},
        {"role": "assistant", "content": "Your line is down since 09:12.", "weight": 0},
        {"role": "user", "content": "When will it be back?"},
    ],
    "tools": [{"type": "function", "function": {"name": "line_status", "parameters": {"type": "object"}}}],
    "reference_output": "Within two hours.",
    "reference_extra": {"weight": 1},
    "metadata": {"category": "it", "lang": "zh", "ticket": 7731, "tags": ["router", "红灯"]},
    "external_id": "conv-7",
}  # fmt: skip


def conversation_item(project, **overrides):
    from annotation.services import item_fields

    row = {**CONVERSATION, **overrides}
    return Item.objects.create(project=project, external_id=row.pop("external_id"), **item_fields(row))


def test_a_claimed_conversation_with_metadata_renders_as_the_serializers_do(people, project):
    # given a multi-turn conversation with tool calls, extra keys, a system prompt and metadata
    item = conversation_item(project)

    # when the annotator claims it through the single statement
    task = fast_claim(project, people["annotator"])

    # then every field of the item comes back as the ORM renders it, turn by turn
    assert as_json(task) == rendered_task(item.pk, people["annotator"])
    assert task["item"]["messages"] == CONVERSATION["messages"]
    assert task["item"]["metadata"] == CONVERSATION["metadata"]
    assert (task["item"]["tools"], task["item"]["reference_extra"]) == (
        CONVERSATION["tools"],
        {"weight": 1},
    )


def test_an_expert_claim_carries_the_revisions_turn_edits_as_rendered(people, project):
    # given a conversation whose answer also rewrote turn 4, in a project that allows it
    project.edit_all_assistant_turns = True
    project.save()
    conversation_item(project)
    held = claim(project, people["annotator"], Stage.ANNOTATE)
    workflow.item_submit(item_id=held.pk, user=people["annotator"], text="Within two hours.",
                         version=held.version, turns={"3": "The line is down since 09:12."})  # fmt: skip

    # when the expert claims through the single statement
    task = fast_claim(project, people["expert"], Stage.EXPERT)

    # then the revision's edits come with it, as the ORM renders them
    assert task["revision"]["turn_edits"] == {"3": "The line is down since 09:12."}
    assert as_json(task) == rendered_task(held.pk, people["expert"])


def test_a_resubmission_carries_the_turn_edits_forward_on_both_paths(people, project):
    # given two conversations, each answered with an edited turn and sent back to the annotator
    from review.decisions.services import item_review

    project.edit_all_assistant_turns = True
    project.save()
    annotator, expert = people["annotator"], people["expert"]
    for n in (1, 2):
        conversation_item(project, external_id=f"conv-{n}")
    for _ in range(2):  # (rework would come back first, so both are answered before either is sent back)
        held = claim(project, annotator, Stage.ANNOTATE)
        workflow.item_submit(item_id=held.pk, user=annotator, text="First.", version=held.version,
                             turns={"3": "Edited."})  # fmt: skip
    for _ in range(2):
        held = claim(project, expert, Stage.EXPERT)
        item_review(item_id=held.pk, user=expert, decision="reject", version=held.version, comment="More.")

    # when one rework is resubmitted through the single statement and the other through the service
    fast = claim(project, annotator, Stage.ANNOTATE)
    assert fast_submit(fast, annotator, text="Second.") is not None
    slow = claim(project, annotator, Stage.ANNOTATE)
    workflow.item_submit(item_id=slow.pk, user=annotator, text="Second.", version=slow.version)

    # then both new revisions stand for the same edited conversation
    def lineage(item_id):
        revision = Item.objects.get(pk=item_id).current_revision
        return revision.text, revision.turn_edits, revision.parent.turn_edits

    assert lineage(fast.pk) == lineage(slow.pk) == ("Second.", {"3": "Edited."}, {"3": "Edited."})
