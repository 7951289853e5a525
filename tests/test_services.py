"""Project and item services: rules that hold whichever caller (API, page, command, task) uses them."""

import pytest

from annotation.models import AuditEvent, Item, Membership, Role
from annotation.services import items_create, project_create
from core.errors import NotAllowed

from .factories import UserFactory

pytestmark = pytest.mark.django_db


def test_creator_becomes_admin_and_creation_is_audited():
    staff = UserFactory(is_staff=True)
    project = project_create(created_by=staff, name="Returns desk")
    assert project.slug == "returns-desk"
    assert Membership.objects.filter(project=project, user=staff, role=Role.ADMIN).exists()
    event = AuditEvent.objects.get(action="project.create")
    assert (event.actor, event.target_id) == (staff, str(project.pk))


def test_slugs_stay_unique():
    staff = UserFactory(is_staff=True)
    first = project_create(created_by=staff, name="Returns desk")
    second = project_create(created_by=staff, name="Returns desk")
    assert (first.slug, second.slug) == ("returns-desk", "returns-desk-2")


def test_non_staff_cannot_create_projects():
    with pytest.raises(NotAllowed):
        project_create(created_by=UserFactory(), name="Mine")
    assert not AuditEvent.objects.exists()


def test_reimporting_the_same_rows_creates_nothing(project):
    rows = [{"input": "Where is my parcel?", "external_id": "a-1"}, {"input": "Refund please"}]
    assert items_create(project=project, actor=None, rows=rows) == 2
    assert items_create(project=project, actor=None, rows=rows) == 0
    assert Item.objects.filter(project=project).count() == 2


def test_duplicates_within_one_batch_are_created_once(project):
    rows = [
        {"input": "Same text"},
        {"input": "Same text"},
        {"input": "Other", "external_id": "x"},
        {"input": "Other again", "external_id": "x"},
    ]
    assert items_create(project=project, actor=None, rows=rows) == 2


def test_item_creation_is_audited_with_counts(project):
    items_create(project=project, actor=None, rows=[{"input": "a"}, {"input": "a"}])
    assert AuditEvent.objects.get(action="items.create").data == {
        "created": 1,
        "skipped": 1,
        "source": "import",
    }
