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
"""

from __future__ import annotations

from typing import Any


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
