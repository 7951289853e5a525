"""Models of the annotation app, one module per area; import them from here."""

from annotation.models.core import (
    AuditEvent,
    Item,
    ItemSource,
    ItemStatus,
    Membership,
    Project,
    Role,
    validate_prompt_template,
)
from annotation.models.dataio import ComplianceFlag, ImportJob, ImportStatus
from annotation.models.workflow import Autosave, Draft, Revision, Skip, Stage

__all__ = [
    "AuditEvent",
    "Autosave",
    "Draft",
    "Item",
    "ItemSource",
    "ItemStatus",
    "Membership",
    "Project",
    "Revision",
    "Role",
    "Skip",
    "Stage",
    "validate_prompt_template",
]
__all__ += ["ComplianceFlag", "ImportJob", "ImportStatus"]
