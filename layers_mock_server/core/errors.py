"""The one error type of the mock. It never renders itself: http/render.py does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "UNAUTHENTICATED": 401,
    "BILLING_EXHAUSTED": 402,
    "FORBIDDEN_SCOPE": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "VALIDATION": 422,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
    "NOT_SIMULATED": 501,
    "KILL_SWITCH": 503,
    "STORAGE_UNAVAILABLE": 503,
}


class ApiError(Exception):
    """A contract error. Plain class (not a frozen dataclass) so Hypothesis can add_note()."""

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
        self.status = STATUS_BY_CODE[code]


def not_found(what: str) -> ApiError:
    return ApiError("NOT_FOUND", f"{what} not found.")


def invalid_body(form_errors: list[str] | None = None, field_errors: Any = None) -> ApiError:
    return validation("Invalid body.", form_errors, field_errors)


def validation(
    message: str,
    form_errors: list[str] | None = None,
    field_errors: Mapping[str, list[str]] | None = None,
) -> ApiError:
    details: dict[str, Any] = {
        "fieldErrors": dict(field_errors or {}),
        "formErrors": form_errors or [],
    }
    return ApiError("VALIDATION", message, details)
