"""One domain error class, and the one place that turns any API error into {"error": {...}}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A rule of the domain was broken; `status` and `code` say how the API reports it."""

    status: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid"

    def __init__(
        self, message: str, *, code: str | None = None, details: Any = None, status: int | None = None
    ):
        super().__init__(message)
        self.message = message
        self.details = details if details is not None else {}
        if code:
            self.code = code
        if status:
            self.status = status


class NotAllowed(ApplicationError):
    status = 403
    code = "permission_denied"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    """A stale version or a transition the current state does not allow."""

    status = 409
    code = "conflict"


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def _first_message(detail: Any, path: str = "") -> str:
    """The first human-readable message in a nested DRF error structure, prefixed by its field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = key if key != "non_field_errors" else ""
            return _first_message(value, f"{path}.{field}".strip(".") if field else path)
    if isinstance(detail, list) and detail:
        if all(not isinstance(d, dict | list) for d in detail):
            return _first_message(detail[0], path)
        for index, value in enumerate(detail):
            if value:
                return _first_message(value, f"{path}[{index}]")
    text = str(detail)
    return f"{path}: {text}" if path else text


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (and logging) takes it
    if isinstance(exc, exceptions.ValidationError):
        code, details = "invalid", exc.detail
        message = _first_message(exc.detail)
    else:
        code = getattr(exc, "default_code", "error")
        details = {}
        message = str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details = {"retry_after": int(exc.wait)}
    response.data = error_body(code, message, details)
    return response


def json_error_view(status_code: int, code: str, message: str):
    def view(request, exception=None):
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(code, message), status=status_code)
        from django.views import defaults

        return {404: defaults.page_not_found, 500: defaults.server_error}[status_code](
            request, **({"exception": exception} if status_code == 404 else {})
        )

    return view


handler404 = json_error_view(404, "not_found", "Not found.")
handler500 = json_error_view(500, "server_error", "Internal server error.")
