"""The data migration to conversations, run on a database holding the old shape: nothing lost or changed.

The database is taken back to the migrations before conversations existed, rows are written with the
models of that time (an item with `context`, a revision, a rated response, a snapshot sample), and the
migrations are run forward again, as an upgrade of a running installation would run them.
"""

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from annotation.dataio.conversation import content_hash

BEFORE = [
    ("annotation", "0008_project_training_settings"),
    ("review", "0003_response_closed_at"),
    ("training", "0003_training_runs"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    executor = MigrationExecutor(connection)
    return [
        key for key in executor.loader.graph.leaf_nodes() if key[0] in {"annotation", "review", "training"}
    ]


@pytest.mark.django_db(transaction=True)
def test_old_items_responses_and_samples_become_one_turn_conversations_with_nothing_lost():
    # given a database of the old shape, with an item whose system text was called context
    old = migrate(BEFORE)
    User = old.get_model("auth", "User")
    Project = old.get_model("annotation", "Project")
    Item = old.get_model("annotation", "Item")
    Revision = old.get_model("annotation", "Revision")
    Response = old.get_model("review", "Response")
    Snapshot = old.get_model("training", "DatasetSnapshot")
    Sample = old.get_model("training", "SnapshotSample")
    user = User.objects.create(username="old-timer")
    project = Project.objects.create(name="Old", slug="old", created_by=user)
    old_hash = "e3b0c44298fc1c149afbf4c8996fb924"  # whatever the old code stored is kept as it is
    item = Item.objects.create(
        project=project,
        input="我的订单怎么还没到？",
        context="订单 1234，昨天付款。",
        reference_output="明天送达。",
        external_id="ext-1",
        content_hash=old_hash,
        status="approved",
    )
    revision = Revision.objects.create(item=item, author=user, stage="annotate", text="您的包裹明天送达。")
    Item.objects.filter(pk=item.pk).update(current_revision=revision)
    response = Response.objects.create(
        project=project, input="Where is it?", text="Tomorrow.", origin="human"
    )
    snapshot = Snapshot.objects.create(project=project, content_hash="h", eval_fraction=0.1)
    sample = Sample.objects.create(
        snapshot=snapshot, item=item, split="train", input="Q", context="S", output="A", sample_hash="x"
    )

    # when the migrations run forward
    new = migrate(latest())

    # then each is a conversation of one user turn, every old field kept, the system text where it was
    item = new.get_model("annotation", "Item").objects.get(pk=item.pk)
    assert item.messages == [{"role": "user", "content": "我的订单怎么还没到？"}]
    assert (item.input, item.system, item.reference_output, item.external_id) == (
        "我的订单怎么还没到？",
        "订单 1234，昨天付款。",
        "明天送达。",
        "ext-1",
    )
    assert (item.tools, item.metadata, item.reference_extra) == ([], {}, {})
    assert item.content_hash == old_hash and item.current_revision_id == revision.pk
    assert new.get_model("annotation", "Revision").objects.get(pk=revision.pk).turn_edits == {}
    response = new.get_model("review", "Response").objects.get(pk=response.pk)
    assert response.messages == [{"role": "user", "content": "Where is it?"}] and response.system == ""
    sample = new.get_model("training", "SnapshotSample").objects.get(pk=sample.pk)
    assert (sample.messages, sample.system, sample.output) == ([{"role": "user", "content": "Q"}], "S", "A")


def test_a_migrated_single_turn_item_hashes_as_the_old_code_hashed_it():
    # the old item_content_hash: sha256 of input, unit separator, context; a re-import must still match it
    old = hashlib.sha256("我的订单怎么还没到？\x1f订单 1234".encode()).hexdigest()
    assert (
        content_hash(system="订单 1234", messages=[{"role": "user", "content": "我的订单怎么还没到？"}])
        == old
    )
