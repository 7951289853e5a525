"""Writes of projects, memberships and items; each in one transaction with its audit event."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from annotation.dataio import conversation
from annotation.models import AuditEvent, Item, ItemSource, Membership, Project, Role
from annotation.permissions import check_can_create_project, check_project_admin
from annotation.workflow.live_counts import project_counts_changed
from core.errors import ApplicationError, Conflict
from core.hooks import PROJECT_SETTINGS_CHECK, hook, task_send_on_commit

User = get_user_model()


def stored_user(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    """The user to store as who did something: None for nobody (a task) and for anonymous users."""
    return user if user is not None and user.is_authenticated else None


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    target: object,
    project: Project | None = None,
    from_state: str = "",
    to_state: str = "",
    data: dict | None = None,
) -> AuditEvent:
    """Append one audit event; call it inside the transaction of the change it records."""
    return AuditEvent.objects.create(
        project=project,
        actor=stored_user(actor),
        action=action,
        target_type=target.__class__.__name__.lower(),
        target_id=str(target.pk),
        from_state=from_state,
        to_state=to_state,
        data=data or {},
    )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:70] or "project"
    slug, n = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def project_create(*, created_by: AbstractBaseUser, name: str, slug: str = "", **settings_) -> Project:
    """Create a project; its creator becomes its first admin."""
    check_can_create_project(user=created_by)
    if slug and Project.objects.filter(slug=slug).exists():
        raise Conflict(f"A project with slug '{slug}' already exists.", code="slug_taken")
    project = Project(name=name, slug=slug or _unique_slug(name), created_by=created_by, **settings_)
    project.full_clean()
    project.save()
    Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    audit_record(actor=created_by, action="project.create", target=project, project=project)
    return project


@transaction.atomic
def project_update(*, project: Project, actor: AbstractBaseUser, **changes) -> Project:
    """Change a project's settings (its admins and staff); the audit event lists what changed."""
    check_project_admin(user=actor, project=project)
    project = Project.objects.select_for_update().get(pk=project.pk)
    if "slug" in changes and Project.objects.filter(slug=changes["slug"]).exclude(pk=project.pk).exists():
        raise Conflict(f"A project with slug '{changes['slug']}' already exists.", code="slug_taken")
    check_settings = hook(PROJECT_SETTINGS_CHECK)  # the layers above check the settings they read
    if check_settings is not None:
        check_settings(changes)
    if "compliance_phrases" in changes:
        phrases = changes["compliance_phrases"]
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ApplicationError("compliance_phrases: a list of non-empty phrases.", code="invalid")
    if "golden_item_ids" in changes:
        ids = changes["golden_item_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ApplicationError("golden_item_ids: a list of item ids.", code="invalid")
        foreign = sorted(set(ids) - set(project.items.filter(pk__in=ids).values_list("pk", flat=True)))
        if foreign:
            raise ApplicationError(f"golden_item_ids: not items of this project: {foreign}.", code="invalid")
    before = {name: getattr(project, name) for name in changes}
    for name, value in changes.items():
        setattr(project, name, value)
    project.full_clean()
    project.save()
    changed = {name: value for name, value in changes.items() if before[name] != value}
    if changed:
        audit_record(
            actor=actor,
            action="project.update",
            target=project,
            project=project,
            data={"changed": sorted(changed)},
        )
    return project


@dataclass(frozen=True)
class MembershipResult:
    membership: Membership
    created: bool


@transaction.atomic
def membership_add(
    *, project: Project, actor: AbstractBaseUser, username: str, role: str
) -> MembershipResult:
    """Give a user a role in the project (project admins and staff). Adding an existing role is a no-op."""
    check_project_admin(user=actor, project=project)
    if role not in Role.values:
        raise ApplicationError(
            f"Unknown role '{role}'; one of: {', '.join(Role.values)}.", details={"role": role}
        )
    try:
        user = User.objects.get(username=username)
    except User.DoesNotExist:
        raise ApplicationError(
            f"No user named '{username}'.", code="unknown_user", details={"username": username}
        ) from None
    membership, created = Membership.objects.get_or_create(project=project, user=user, role=role)
    if created:
        audit_record(
            actor=actor,
            action="membership.add",
            target=membership,
            project=project,
            to_state=role,
            data={"username": username},
        )
    return MembershipResult(membership=membership, created=created)


def item_content_hash(*, input: str = "", system: str = "", messages=None, tools=()) -> str:
    """Identity of an item's conversation, used to skip re-imports of items without an external id.

    `input` alone stands for a conversation of one user turn (hashed as items always were)."""
    return conversation.content_hash(
        system=system, messages=messages if messages is not None else conversation.single_turn(input),
        tools=tools,
    )  # fmt: skip


def item_fields(row: dict) -> dict:
    """An item's conversation fields from a row with `messages` (and optionally system, tools,
    reference_output, reference_extra, metadata) or, for a single turn, just `input`."""
    messages = row.get("messages") or conversation.single_turn(row["input"])
    system = row.get("system", "")
    tools = row.get("tools") or []
    return {
        "input": conversation.last_user_text(messages),
        "system": system,
        "messages": messages,
        "tools": tools,
        "reference_output": row.get("reference_output", ""),
        "reference_extra": row.get("reference_extra") or {},
        "metadata": row.get("metadata") or {},
        "content_hash": item_content_hash(system=system, messages=messages, tools=tools),
        "question_key": conversation.question_key(system=system, messages=messages, tools=tools),
    }


@transaction.atomic
def items_create(
    *, project: Project, actor: AbstractBaseUser | None, rows: Iterable[dict], source: str = ItemSource.IMPORT
) -> int:
    """Bulk-create items from dicts as `item_fields` reads them, plus external_id and priority.

    Rows whose external id (else content hash) already exists in the project are skipped.
    Returns the number created; watchers of the project get fresh state counts on commit.
    """
    rows = list(rows)
    existing_ids = set(
        Item.objects.filter(project=project).exclude(external_id="").values_list("external_id", flat=True)
    )
    existing_hashes = set(Item.objects.filter(project=project).values_list("content_hash", flat=True))
    new_items = []
    for row in rows:
        fields = item_fields(row)
        content_hash = fields["content_hash"]
        external_id = row.get("external_id", "")
        if (external_id and external_id in existing_ids) or (
            not external_id and content_hash in existing_hashes
        ):
            continue
        existing_ids.add(external_id)
        existing_hashes.add(content_hash)
        new_items.append(
            Item(
                project=project,
                external_id=external_id,
                source=source,
                priority=row.get("priority", 0),
                **fields,
            )
        )
    Item.objects.bulk_create(new_items, batch_size=2000)
    if new_items:
        audit_record(
            actor=actor,
            action="items.create",
            target=project,
            project=project,
            data={"created": len(new_items), "skipped": len(rows) - len(new_items), "source": source},
        )
        items_arrived(project_id=project.pk)
    return len(new_items)


# Work of the training layer that new items start (core.hooks: sent by name, never imported).
DRAFTS_GENERATE = "training.tasks.project_drafts_generate"


def items_arrived(*, project_id: int) -> None:
    """What new items start, once the transaction commits: fresh live counts, and model drafts."""
    project_counts_changed(project_id)
    task_send_on_commit(DRAFTS_GENERATE, project_id)
