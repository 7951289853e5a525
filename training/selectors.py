"""Reads of the model side: deployed versions, version lists, tickets; each scoped to what a user may see."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.models import ItemStatus
from annotation.selectors import project_visible_to
from core.errors import NotFound

from .models import HandoverTicket, ModelVersion, ModelVersionStatus, TicketStatus


def model_version_deployed(*, project_id: int) -> ModelVersion | None:
    return (
        ModelVersion.objects.select_related("project")
        .filter(project_id=project_id, status=ModelVersionStatus.DEPLOYED)
        .first()
    )


def model_versions_of(*, project_id: int) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project_id=project_id).order_by("-created_at", "-pk")


def model_version_get_for_user(*, user: AbstractBaseUser, version_id: int) -> ModelVersion:
    version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None or not project_visible_to(user=user, project_id=version.project_id):
        raise NotFound("Model version not found.")
    return version


def ticket_get_for_user(*, user: AbstractBaseUser, ticket_id: int) -> HandoverTicket:
    """Members of the ticket's project (any role) and staff; everyone else gets NotFound."""
    ticket = HandoverTicket.objects.select_related("item__current_revision").filter(pk=ticket_id).first()
    if ticket is None or not project_visible_to(user=user, project_id=ticket.project_id):
        raise NotFound("Ticket not found.")
    return ticket


ANSWERED_STATES = {ItemStatus.APPROVED, ItemStatus.SPOT_CHECK}


def ticket_status(ticket: HandoverTicket) -> str:
    """Answered once people approved the item; derived, so it can never disagree with the item."""
    item = ticket.item
    # A spot check re-reviews an approved answer; until it sends the item back, the answer stands.
    if item.status in ANSWERED_STATES and item.current_revision_id is not None:
        return TicketStatus.ANSWERED
    return TicketStatus.OPEN


def ticket_answer(ticket: HandoverTicket) -> str | None:
    if ticket_status(ticket) != TicketStatus.ANSWERED:
        return None
    return ticket.item.current_revision.text


def training_runs_of(*, project_id: int) -> QuerySet:
    from .models import TrainingRun

    return TrainingRun.objects.filter(project_id=project_id).select_related("snapshot").order_by("-pk")


def training_run_get_for_user(*, user: AbstractBaseUser, run_id: int):
    from .models import TrainingRun

    run = (
        TrainingRun.objects.select_related("project", "snapshot", "candidate", "baseline", "human_eval")
        .filter(pk=run_id)
        .first()
    )
    if run is None or not project_visible_to(user=user, project_id=run.project_id):
        raise NotFound("Training run not found.")
    return run
