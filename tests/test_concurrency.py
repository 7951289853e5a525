"""Concurrency on PostgreSQL: many people at once never share an item nor overwrite each other."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from annotation import workflow_sql
from annotation.models import AuditEvent, Item, Stage
from annotation.workflow import item_claim_next, item_submit
from core.errors import Conflict
from review.services import item_review

from .factories import ItemFactory, MembershipFactory, UserFactory
from .workflow_helpers import annotate, claim

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_threads_claim_every_item_exactly_once(project):
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
            while True:
                item = item_claim_next(project=project, user=user, stage=Stage.ANNOTATE)
                if item is None:
                    return
                with lock:
                    claimed.append(item.pk)
                item_submit(item_id=item.pk, user=user, text="done", version=item.version)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(work, annotators))

    assert len(claimed) == 500
    assert len(set(claimed)) == 500
    assert AuditEvent.objects.filter(action="item.claim").count() == 500
    assert not Item.objects.filter(project=project, leased_by__isnull=False).exists()


def test_fifty_threads_through_the_single_statement_path_claim_every_item_once(project):
    # given 500 items and 50 annotators using the API's single-statement claim and submit
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
            while True:
                task = workflow_sql.task_claim_from_queue(
                    project_id=project.pk, user_id=user.pk, stage=Stage.ANNOTATE
                )
                if task is None:
                    return
                with lock:
                    claimed.append(task["item"]["id"])
                done = workflow_sql.item_submit(
                    item_id=task["item"]["id"], user_id=user.pk, text="done", version=task["item"]["version"]
                )
                assert done is not None and done["status"] == "submitted"
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
    assert Item.objects.filter(project=project, status="submitted", leased_by__isnull=True).count() == 500


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
