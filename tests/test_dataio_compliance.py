"""Compliance phrases flag items and revisions; the review UI reads them in one query."""

import pytest

from annotation.compliance import compliance_flag_revision, compliance_flags_for_items
from annotation.models import ComplianceFlag, Revision

from .factories import ItemFactory

pytestmark = pytest.mark.django_db


def test_a_revision_with_a_phrase_is_flagged(project, people):
    project.compliance_phrases = ["无风险", "guaranteed returns"]
    project.save()
    item = ItemFactory(project=project)
    revision = Revision.objects.create(item=item, author=people["annotator"], stage="annotate",
                                       text="This plan has GUARANTEED returns")  # fmt: skip
    flag = compliance_flag_revision(revision=revision)
    assert flag.phrases == ["guaranteed returns"]
    assert compliance_flags_for_items(item_ids=[item.pk]) == {item.pk: ["guaranteed returns"]}


def test_a_clean_revision_is_not_flagged(project, people):
    project.compliance_phrases = ["无风险"]
    project.save()
    item = ItemFactory(project=project)
    revision = Revision.objects.create(
        item=item, author=people["annotator"], stage="annotate", text="It depends."
    )
    assert compliance_flag_revision(revision=revision) is None
    assert not ComplianceFlag.objects.exists()
