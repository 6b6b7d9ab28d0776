"""One error family with stable codes, rendered as `{"error": code, "detail": message, "data": {...}}`."""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    code: str = "error"
    status_code: int = 400
    default_message: str = "The request could not be processed."
    # When True the unit of work commits what was written before the error (e.g. a counted failed
    # attempt) instead of rolling it back.
    keeps_writes: ClassVar[bool] = False

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.message = message or self.default_message
        self.data = data
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.message, "data": self.data}


class HttpError(AppError):
    """A routing-level failure (unknown path, wrong method) in the common error shape."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = {404: "not_found", 405: "method_not_allowed"}.get(status_code, "http_error")


class BadRequest(AppError):
    code = "bad_request"
    status_code = 400


class ValidationFailed(AppError):
    code = "validation_error"
    status_code = 422
    default_message = "Some fields are not valid."


class Unauthenticated(AppError):
    code = "unauthenticated"
    status_code = 401
    default_message = "Sign in first, or send a valid API token as 'Authorization: Bearer <token>'."


class PermissionDenied(AppError):
    code = "permission_denied"
    status_code = 403
    default_message = "You do not have permission to do this."


class CsrfFailed(AppError):
    code = "csrf_failed"
    status_code = 403
    default_message = "The form has expired or did not come from this site. Reload the page and try again."


class NotFound(AppError):
    code = "not_found"
    status_code = 404
    default_message = "Not found."


class Conflict(AppError):
    code = "conflict"
    status_code = 409
    default_message = "This conflicts with the current state."


class RateLimited(AppError):
    code = "rate_limited"
    status_code = 429
    default_message = "Too many requests. Wait a moment and try again."

    def __init__(self, message: str | None = None, *, retry_after: float, **data: Any) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message, retry_after_seconds=self.retry_after, **data)


class CrossTenantAccess(AppError):
    """A programming error caught by the tenancy guard; never shown with details."""

    code = "tenant_isolation"
    status_code = 500
    default_message = "Internal error."
