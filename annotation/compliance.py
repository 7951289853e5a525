"""Compliance flags: phrases found in an item's imported text (by imports) or in a revision (by the
workflow), and read for the review UI."""

from __future__ import annotations

from annotation.dataio.redaction import compliance_flags
from annotation.models import ComplianceFlag


def compliance_flags_for_items(*, item_ids) -> dict[int, list[str]]:
    """The phrases flagged on each item or any of its revisions, in one query (for review lists)."""
    flags: dict[int, list[str]] = {}
    for item_id, phrases in ComplianceFlag.objects.filter(item_id__in=list(item_ids)).values_list(
        "item_id", "phrases"
    ):
        known = flags.setdefault(item_id, [])
        known.extend(phrase for phrase in phrases if phrase not in known)
    return flags


def compliance_flag_revision(*, revision) -> ComplianceFlag | None:
    """Flag a revision whose text holds one of its project's compliance phrases; call it where the
    revision is written, in the same transaction. Returns the flag, or None when nothing matched."""
    phrases = compliance_flags(revision.text, revision.item.project.compliance_phrases or [])
    if not phrases:
        return None
    flag, _ = ComplianceFlag.objects.update_or_create(
        item_id=revision.item_id, revision=revision, defaults={"phrases": phrases}
    )
    return flag
