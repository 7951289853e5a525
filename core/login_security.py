"""Login lock-out: django-axes, with a limit of its own for each thing it counts failures of.

Axes counts failed logins (the login page, the admin's login and `POST /api/auth/token/` all go
through `django.contrib.auth.authenticate`) by the parameter sets of AXES_LOCKOUT_PARAMETERS and
locks when one set reaches AXES_FAILURE_LIMIT, the same number for every set. A class of annotators
behind one office address needs different numbers (settings.HANDOVER_LOGIN_LIMITS):

- account and address (`account_address`, 5): someone mistyping their own password, or a guesser
  at one account from one place; locks only that account from that address;
- account (`account`, 20): the same account from any address, a guesser spreading over addresses;
- address (`address`, 100): many accounts from one address, a guesser spraying one password over
  accounts. High, since 30 people behind one NAT each mistyping once is 30 failures.

Each counts the failures within AXES_COOLOFF_TIME (of the attempt rows whose last failure is that
recent); a lock ends a cool-off after the last failure that counts. Failures made while locked are not
counted (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT off), so the time the page names holds.

`LockoutHandler.get_failures` answers in AXES_FAILURE_LIMIT's units: the limit less the headroom of
the set closest to its own limit, so axes locks exactly when any set reaches its limit.
"""

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .errors import error_body

# What each parameter set of AXES_LOCKOUT_PARAMETERS counts, by the name of its limit.
SCOPES = {("username", "ip_address"): "account_address", ("username",): "account", ("ip_address",): "address"}


class LockoutBackend(AxesStandaloneBackend):
    """Axes' backend (refuses a locked-out login before any password is checked), except for a call
    with no request: that comes from code on the server (a shell, the test client's `login`), not
    from the network, and axes would raise instead of answering."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutHandler(AxesDatabaseHandler):
    def get_failures(self, request, credentials=None) -> int:
        cool_off = get_cool_off(request)
        headroom, lockout = None, None
        parameters = get_lockout_parameters(request, credentials)
        for parameter, attempts in zip(parameters, self.get_user_attempts(request, credentials), strict=True):
            scope = SCOPES[(parameter,) if isinstance(parameter, str) else tuple(parameter)]
            found = attempts.aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
            left = settings.HANDOVER_LOGIN_LIMITS[scope] - (found["failures"] or 0)
            if left <= 0 and found["last"] is not None:
                until = found["last"] + cool_off if cool_off is not None else None
                if lockout is None or (until and lockout["until"] and until > lockout["until"]):
                    lockout = {"scope": scope, "until": until}
            headroom = left if headroom is None else min(headroom, left)
        request.handover_lockout = lockout
        return get_failure_limit(request, credentials) - (headroom if headroom is not None else 0)

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        if request is not None:
            # The backend marks a request it refused because the lock was already on; the audit
            # log records a lock-out once, not each refused attempt (annotation/login_audit.py).
            request.handover_lockout_new = not getattr(request, "axes_locked_out", False)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def reset_user_attempts(self, request, credentials=None) -> int:
        """After a successful login forget that account's failures from that address only: the
        account's failures elsewhere and the address's failures on other accounts still count."""
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count


def lockout_of(request) -> dict | None:
    """{"scope", "until"} of the lock this request ran into, as the handler found it."""
    return getattr(request, "handover_lockout", None)


def retry_after_seconds(lockout: dict | None) -> int | None:
    if not lockout or not lockout.get("until"):
        return None
    return max(1, int((lockout["until"] - timezone.now()).total_seconds()) + 1)


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: a 429 page (the login page's place) saying when to try again; an API
    path gets the API's error format. Both carry Retry-After."""
    lockout = lockout_of(request)
    retry_after = retry_after_seconds(lockout)
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith("/api/"):
        response = JsonResponse(
            error_body("locked_out", lockout_message(lockout), {"retry_after": retry_after}), status=status
        )
    else:
        context = {"until": lockout["until"] if lockout else None, "message": lockout_message(lockout)}
        response = render(request, "registration/locked_out.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def lockout_message(lockout: dict | None) -> str:
    retry_after = retry_after_seconds(lockout)
    if retry_after is None:
        return _("Too many failed logins. Ask an administrator to unlock the account.")
    minutes = -(-retry_after // 60)
    return ngettext(
        "Too many failed logins. Try again in %(minutes)d minute.",
        "Too many failed logins. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}
