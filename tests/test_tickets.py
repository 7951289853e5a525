"""Hand-over tickets: open until people approve the item, then the approved answer."""

import pytest
from django.utils import timezone

from annotation.models import Item, ItemStatus, Revision, Stage
from training.handover import ticket_open

pytestmark = pytest.mark.django_db


def approve(item, author, text):
    """Test setup only: the review services belong to another module."""
    revision = Revision.objects.create(item=item, author=author, stage=Stage.ANNOTATE, text=text)
    Item.objects.filter(pk=item.pk).update(
        status=ItemStatus.APPROVED, current_revision=revision, approved_at=timezone.now()
    )


def test_ticket_shows_the_human_answer_once_the_item_is_approved(project, people, api):
    ticket = ticket_open(
        project=project,
        actor=people["annotator"],
        question="Can I pay by invoice?",
        version=None,
        candidates=[],
    )
    client = api(people["annotator"])
    assert client.get(f"/api/tickets/{ticket.pk}/").json()["status"] == "open"

    approve(ticket.item, people["expert"], "Yes, invoices are accepted for business accounts.")

    body = client.get(f"/api/tickets/{ticket.pk}/").json()
    assert body["status"] == "answered"
    assert body["answer"] == "Yes, invoices are accepted for business accounts."
    assert body["question"] == "Can I pay by invoice?" and body["answered_at"]


def test_ticket_of_another_project_is_404(project, people, api):
    ticket = ticket_open(project=project, actor=None, question="Hello?", version=None, candidates=[])

    assert api(people["outsider"]).get(f"/api/tickets/{ticket.pk}/").status_code == 404
    assert api(people["staff"]).get(f"/api/tickets/{ticket.pk}/").status_code == 200
    assert api(None).get(f"/api/tickets/{ticket.pk}/").status_code == 401


def test_the_same_question_twice_shares_one_item(project, people):
    first = ticket_open(project=project, actor=None, question="Refund?", version=None, candidates=[])
    second = ticket_open(project=project, actor=None, question="Refund?", version=None, candidates=[])

    assert first.item_id == second.item_id and first.pk != second.pk
