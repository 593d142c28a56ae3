"""Parley's exception tree, mapped to HTTP in one place.

    ParleyError                    500 internal_error
    ├── BadRequest                 400
    ├── Unauthorized               401
    ├── Forbidden                  403
    ├── NotFound                   404
    ├── Conflict                   409
    ├── PayloadTooLarge            413
    ├── Unprocessable              422
    ├── TooManyRequests            429 (with Retry-After)
    └── DependencyUnavailable      503 (Rasa, the NLU service, a store)

Every error response is ``{"error": {"code": ..., "message": ...}}`` with a stable code.
``error_responses`` documents them in the OpenAPI document: ``web.app`` declares the errors
every route can answer once, where it mounts the routers; a route declares its own codes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ParleyError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(ParleyError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ParleyError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ParleyError):
    status_code = 403
    code = "forbidden"


class NotFound(ParleyError):
    status_code = 404
    code = "not_found"


class Conflict(ParleyError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ParleyError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(ParleyError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unprocessable(ParleyError):
    status_code = 422
    code = "validation_error"


class DependencyUnavailable(ParleyError):
    status_code = 503
    code = "dependency_unavailable"


# --- How errors appear in the OpenAPI document ------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorPublic(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


# What any route may answer, whatever it does (core.handlers makes these).
GENERIC_ERRORS: dict[int, str] = {
    400: "The body is not valid JSON (`invalid_json`), not valid UTF-8 (`invalid_body`) or "
         "holds a lone surrogate (`invalid_text`)",
    401: "No credential, or one that is forged or expired (`missing_token`, `invalid_token`, "
         "`token_expired`, `invalid_session`, `session_expired`)",
    403: "A credential without the right to this route (`admin_only`, `console_only`, "
         "`analytics_only`, `token_scope`)",
    404: "Nothing has the id in the path (`*_not_found`)",
    413: "The body is larger than PARLEY_MAX_BODY_BYTES (`payload_too_large`)",
    422: "A parameter or the body is not valid (`validation_error`), or a number is beyond "
         "64 bits (`number_out_of_range`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses`` (keys of ``GENERIC_ERRORS``), with the error
    body's schema."""
    return {status: {"model": ErrorPublic, "description": GENERIC_ERRORS[status]}
            for status in statuses}


# Every API route: a body too large, not JSON, or not valid; a parameter not valid.
API_ERRORS = error_responses(400, 413, 422)
# Every route behind a staff session: no session, or a role without the right.
STAFF_ERRORS = {**API_ERRORS, **error_responses(401, 403)}
