"""The audit event of a login lock-out (core/login_security.py decides the lock; axes sends the signal)."""

from axes.models import AccessAttempt
from django.contrib.auth import get_user_model

from annotation.services import audit_record


def lockout_record(sender, request=None, username=None, ip_address=None, **kwargs):
    """Receiver of axes' `user_locked_out`: one `login.lock_out` event when a lock starts. Axes sends
    the signal for every attempt refused while the lock lasts too; those are not recorded again."""
    if request is not None and not getattr(request, "handover_lockout_new", True):
        return
    lockout = getattr(request, "handover_lockout", None) or {}
    user = get_user_model().objects.filter(username=username).first() if username else None
    target = (
        user or AccessAttempt.objects.filter(username=username, ip_address=ip_address).order_by("-pk").first()
    )
    if target is None:
        return
    until = lockout.get("until")
    audit_record(
        actor=None,
        action="login.lock_out",
        target=target,
        data={
            "username": username or "",
            "ip_address": ip_address or "",
            "scope": lockout.get("scope", ""),
            "until": until.isoformat() if until else None,
            "path": getattr(request, "path", ""),
        },
    )
