"""A model version's state, written in one place: every registry and run transition goes through here."""

from django.contrib.auth.models import AbstractBaseUser

from annotation.services import audit_record

from .models import ModelVersion


def model_version_write(
    version: ModelVersion,
    *,
    to_status: str,
    actor: AbstractBaseUser | None,
    action: str,
    data: dict | None = None,
    **fields,
) -> ModelVersion:
    """Move a version to `to_status` (plus `fields`) and audit it; the caller holds the project's lock."""
    from_state = version.status
    version.status = to_status
    for name, value in fields.items():
        setattr(version, name, value)
    version.save(update_fields=["status", *fields])
    audit_record(
        actor=actor,
        action=action,
        target=version,
        project=version.project,
        from_state=from_state,
        to_state=to_status,
        data=data,
    )
    return version
