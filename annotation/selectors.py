"""Reads of projects and memberships; every read is scoped to what the user may see."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Q, QuerySet

from annotation.models import Item, ItemStatus, Membership, Project, Role
from core.errors import NotFound


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Staff see every project; everyone else the projects they hold a role in."""
    projects = Project.objects.all()
    if not user.is_staff:
        projects = projects.filter(memberships__user=user).distinct()
    return projects.order_by("name", "pk")


def project_visible_to(*, user: AbstractBaseUser, project_id: int) -> bool:
    return project_list_for_user(user=user).filter(pk=project_id).exists()


def project_get_for_user(*, user: AbstractBaseUser, project_id: int) -> Project:
    """The project, or NotFound when it does not exist or the user may not see it (no existence leak).

    The user's roles come with it in the same query and are remembered on the instance, so the
    permission checks that follow in the request ask the database nothing more.
    """
    memberships = list(Membership.objects.filter(project_id=project_id, user=user).select_related("project"))
    if memberships:
        project = memberships[0].project
    elif user.is_staff:
        project = Project.objects.filter(pk=project_id).first()
    else:
        project = None
    if project is None:
        raise NotFound("Project not found.")
    roles = {m.role for m in memberships} | ({Role.ADMIN} if user.is_staff else set())
    project._roles_of = (user.pk, frozenset(roles))
    return project


def user_roles(*, user: AbstractBaseUser, project: Project) -> set[str]:
    """The user's roles in the project; staff act as the project's admin as well."""
    remembered = getattr(project, "_roles_of", None)
    if remembered is not None and remembered[0] == user.pk:
        return set(remembered[1])
    roles = set(Membership.objects.filter(project=project, user=user).values_list("role", flat=True))
    if user.is_staff:
        roles.add(Role.ADMIN)
    return roles


def roles_by_project(*, user: AbstractBaseUser) -> dict[int, set[str]]:
    """All of a user's roles, keyed by project id, in one query (navigation on every page)."""
    result: dict[int, set[str]] = {}
    for project_id, role in Membership.objects.filter(user=user).values_list("project_id", "role"):
        result.setdefault(project_id, set()).add(role)
    return result


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username", "role")


def project_state_counts(*, project_id: int) -> dict[str, int]:
    """Items per state, every state present (zero where none), in the order of the workflow."""
    counts = dict(
        Item.objects.filter(project_id=project_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in ItemStatus.values}


def item_get_for_user(*, user: AbstractBaseUser, item_id: int) -> Item:
    """The item, or NotFound when it does not exist or is in a project the user cannot see."""
    item = (
        Item.objects.select_related("project", "current_revision__author", "leased_by")
        .filter(pk=item_id)
        .first()
    )
    if item is None or not project_visible_to(user=user, project_id=item.project_id):
        raise NotFound("Item not found.")
    return item


METADATA_PARAM = "metadata."


def metadata_filters(params: Mapping[str, str]) -> dict[str, str]:
    """`?metadata.category=it&metadata.lang=zh` as {"category": "it", "lang": "zh"} (other keys ignored)."""
    return {
        key[len(METADATA_PARAM) :]: value
        for key, value in params.items()
        if key.startswith(METADATA_PARAM) and len(key) > len(METADATA_PARAM)
    }


def _metadata_values(raw: str) -> list:
    """A query value matches the text itself, and the number, boolean or null it spells (`7` finds both
    "7" and 7), since a query string cannot say which a file held."""
    values: list = [raw]
    try:
        parsed = json.loads(raw)
    except ValueError:
        return values
    if parsed is None or isinstance(parsed, bool | int | float):
        values.append(parsed)
    return values


def items_with_metadata(items: QuerySet[Item], filters: Mapping[str, str]) -> QuerySet[Item]:
    """Items whose metadata holds every key = value of `filters`. On PostgreSQL a containment test
    (`metadata @> {...}`), which the GIN index on metadata serves; elsewhere a key lookup."""
    for key, raw in filters.items():
        match = Q()
        for value in _metadata_values(raw):
            if connection.vendor == "postgresql":
                match |= Q(metadata__contains={key: value})
            else:
                match |= Q(**{f"metadata__{key}": value})
        items = items.filter(match)
    return items


# How many of a project's latest items the key pickers look at: the keys come from the files imported,
# which give every row the same keys, and reading all of a million items' metadata on every page view
# would cost a second. A key only older items carry can still be filtered on by URL.
METADATA_KEYS_SAMPLE = 50_000


def metadata_keys(*, project: Project, limit: int = 100) -> list[str]:
    """The keys the project's latest items (METADATA_KEYS_SAMPLE) carry in their metadata, sorted, at
    most `limit`, for pickers; one query."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT key FROM (SELECT metadata FROM annotation_item"
                "  WHERE project_id = %s AND jsonb_typeof(metadata) = 'object' AND metadata <> '{}'"
                "  ORDER BY id DESC LIMIT %s) latest, jsonb_object_keys(latest.metadata) AS key"
                " ORDER BY key LIMIT %s",
                [project.pk, METADATA_KEYS_SAMPLE, limit],
            )
            return [row[0] for row in cursor.fetchall()]
    keys: set[str] = set()
    latest = Item.objects.filter(project=project).order_by("-pk").values_list("metadata", flat=True)
    for metadata in latest[:METADATA_KEYS_SAMPLE]:
        if isinstance(metadata, dict):
            keys.update(metadata)
    return sorted(keys)[:limit]


def item_list(
    *, project: Project, status: str = "", source: str = "", search: str = "", metadata=None
) -> QuerySet[Item]:
    items = Item.objects.filter(project=project).select_related("current_revision")
    if metadata:
        items = items_with_metadata(items, metadata)
    if status:
        items = items.filter(status__in=status.split(","))
    if source:
        items = items.filter(source__in=source.split(","))
    if search:
        items = items.filter(Q(input__icontains=search) | Q(external_id=search))
    return items.order_by("-priority", "pk")


@dataclass(frozen=True)
class Rejection:
    """Why an item came back to its annotator, as its audit event recorded the reviewer's decision."""

    comment: str
    reviewer: AbstractBaseUser | None
    stage: str
    created_at: datetime


def item_last_rejection(*, item: Item) -> Rejection | None:
    """The reject that sent the item back, while it is back with its annotator.

    Read from the audit log, which records every decision with its comment, so the work queue does
    not reach up into the review layer's tables."""
    from annotation.models import AuditEvent

    came_back = item.status == ItemStatus.REWORK or (
        item.status == ItemStatus.ANNOTATING and item.status_before_lease == ItemStatus.REWORK
    )
    if not came_back:
        return None
    event = (
        AuditEvent.objects.filter(target_type="item", target_id=str(item.pk), action="item.reject")
        .select_related("actor")
        .order_by("-created_at", "-pk")
        .first()
    )
    if event is None:
        return None
    return Rejection(
        comment=event.data.get("comment", ""),
        reviewer=event.actor,
        stage=event.data.get("stage", ""),
        created_at=event.created_at,
    )


def item_task(*, item: Item, user: AbstractBaseUser) -> dict:
    """Everything a person needs to work on the item they hold, in one read."""
    from annotation.models import Autosave

    autosave = Autosave.objects.filter(item=item, user=user).first()
    rejection = item_last_rejection(item=item)
    from annotation.compliance import compliance_flags_for_items

    return {
        "item": item,
        "compliance_flags": compliance_flags_for_items(item_ids=[item.pk]).get(item.pk, []),
        "drafts": list(item.drafts.select_related("model_version").order_by("rank", "pk")),
        "revision": item.current_revision,
        "autosave": autosave,
        "rejection": rejection,
        "guidelines": item.project.guidelines,
    }


def revision_turn_changes(*, item: Item, revision) -> list[dict]:
    """Each turn a revision changed against what it was written on (its parent revision, else the
    item's own turns and the draft it started from): index, 1-based number, role and diff. The reply
    is the turn after `item.messages`; earlier turns change only through turn_edits."""
    from annotation.dataio.conversation import ASSISTANT, turns_edited

    parent = revision.parent
    base_edits = parent.turn_edits if parent else {}
    base_reply = parent.text if parent else (revision.draft.text if revision.draft else "")
    changes = []
    before, after = turns_edited(item.messages, base_edits), turns_edited(item.messages, revision.turn_edits)
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if old.get("content") != new.get("content"):
            changes.append(_turn_change(index, new.get("role", ""), old["content"], new["content"]))
    if revision.text != base_reply:
        changes.append(_turn_change(len(item.messages), ASSISTANT, base_reply, revision.text, reply=True))
    return changes


def _turn_change(index: int, role: str, before: str, after: str, *, reply: bool = False) -> dict:
    from annotation.workflow.diffing import text_diff

    return {
        "index": index,
        "number": index + 1,
        "role": role,
        "reply": reply,
        "diff": text_diff(before, after),
    }


REVISION_WRITERS = {"item.submit", "item.edit"}  # the audit actions that write the revision they name


def item_history(*, item: Item, show_gold: bool = True) -> list[dict]:
    """The item's timeline: every audit event, oldest first; revisions carry the diff against the
    text they were based on (the parent revision, else the draft they started from), and `turns`,
    every turn they changed (earlier assistant turns the project let them edit, and the reply).
    `show_gold` False (anyone but the project's admins): gold work's events (`gold.*`) are left out, so
    the timeline does not name a silent check."""
    from annotation.models import AuditEvent, Revision
    from annotation.workflow.diffing import text_diff

    revisions = {
        r.pk: r for r in Revision.objects.filter(item=item).select_related("author", "parent", "draft")
    }
    timeline = []
    events = AuditEvent.objects.filter(target_type="item", target_id=str(item.pk)).select_related("actor")
    if not show_gold:
        events = events.exclude(action__startswith="gold.")
    for event in events:
        entry = {
            "at": event.created_at,
            "actor": event.actor.username if event.actor else None,
            "action": event.action,
            "from": event.from_state,
            "to": event.to_state,
            "data": event.data,
        }
        revision = revisions.get(event.data.get("revision")) if event.action != "item.reject" else None
        if revision is not None:
            base = (
                revision.parent.text if revision.parent else (revision.draft.text if revision.draft else "")
            )
            entry["revision"] = {
                "id": revision.pk,
                "author": revision.author.username,
                "text": revision.text,
                "turn_edits": revision.turn_edits,
            }
            entry["diff"] = text_diff(base, revision.text)
            if event.action in REVISION_WRITERS:  # an approval names the revision; it changed nothing
                entry["turns"] = revision_turn_changes(item=item, revision=revision)
        if event.action == "item.reject":
            entry["comment"] = event.data.get("comment", "")
        timeline.append(entry)
    return timeline


def is_project_admin(user, project: Project) -> bool:
    """The user is an admin of the project (staff count as admin), as check_project_admin asks."""
    return Role.ADMIN in user_roles(user=user, project=project)
