"""Concurrency on PostgreSQL: many people at once never share an item nor overwrite each other."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from annotation.models import AuditEvent, Item, Stage
from annotation.workflow import sql as workflow_sql
from annotation.workflow.transitions import item_claim_next, item_submit
from core.errors import Conflict
from review.decisions.services import item_review

from .factories import ItemFactory, MembershipFactory, UserFactory
from .workflow_helpers import annotate, claim

pytestmark = pytest.mark.django_db(transaction=True)


def claim_and_submit_through_the_services(project, user) -> int | None:
    item = item_claim_next(project=project, user=user, stage=Stage.ANNOTATE)
    if item is None:
        return None
    item_submit(item_id=item.pk, user=user, text="done", version=item.version)
    return item.pk


def claim_and_submit_in_single_statements(project, user) -> int | None:
    """The API's path (annotation.workflow_sql)."""
    task = workflow_sql.task_claim_from_queue(project_id=project.pk, user_id=user.pk, stage=Stage.ANNOTATE)
    if task is None:
        return None
    item = task["item"]
    done = workflow_sql.item_submit(item_id=item["id"], user_id=user.pk, text="done", version=item["version"])
    assert done is not None and done["status"] == "submitted"
    return item["id"]


@pytest.mark.parametrize(
    "claim_and_submit",
    [claim_and_submit_through_the_services, claim_and_submit_in_single_statements],
    ids=["services", "single_statements"],
)
def test_fifty_threads_claim_every_item_exactly_once(project, claim_and_submit):
    # given 500 items and 50 annotators
    assert connection.vendor == "postgresql"
    ItemFactory.create_batch(500, project=project)
    annotators = [UserFactory() for _ in range(50)]
    for user in annotators:
        MembershipFactory(project=project, user=user, role="annotator")
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def work(user):
        start.wait()
        try:
            while (item_id := claim_and_submit(project, user)) is not None:
                with lock:
                    claimed.append(item_id)
        finally:
            connections.close_all()

    # when they all claim and submit at once until the queue is empty
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(work, annotators))

    # then every item was claimed exactly once, and each claim and submission audited once
    assert len(claimed) == 500
    assert len(set(claimed)) == 500
    assert AuditEvent.objects.filter(action="item.claim").count() == 500
    assert AuditEvent.objects.filter(action="item.submit").count() == 500
    assert not Item.objects.filter(project=project, leased_by__isnull=False).exists()
    assert Item.objects.filter(project=project, status="submitted").count() == 500


def test_two_concurrent_edits_of_one_revision_one_wins_and_nothing_is_lost(people, project):
    # given an expert holding an item, with two tabs open on the same version
    ItemFactory(project=project)
    annotate(project, people["annotator"], "Original answer")
    held = claim(project, people["expert"], Stage.EXPERT)
    results: dict[str, object] = {}
    start = threading.Barrier(2)

    def edit(text):
        start.wait()
        try:
            results[text] = item_review(
                item_id=held.pk, user=people["expert"], decision="edit", text=text, version=held.version
            )
        except Conflict as exc:
            results[text] = exc
        finally:
            connections.close_all()

    # when both save at once
    threads = [threading.Thread(target=edit, args=(t,)) for t in ("Edit from tab A", "Edit from tab B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then exactly one edit won, the other got a 409 naming who changed it, and the winner's text is current
    winners = [text for text, r in results.items() if not isinstance(r, Conflict)]
    losers = [r for r in results.values() if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].code == "stale_version" and "expert" in losers[0].message
    item = Item.objects.get(pk=held.pk)
    assert item.current_revision.text == winners[0]
    assert item.current_revision.parent.text == "Original answer"
    assert item.revisions.count() == 2
