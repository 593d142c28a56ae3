"""Map every error to a JSON body with a stable code; never answer bad input with a 500."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ParleyError, TooManyRequests
from core.metrics import REQUESTS

logger = logging.getLogger(__name__)

# 400: FastAPI's "There was an error parsing the body" (a JSON body that is not UTF-8).
_HTTP_CODES = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed",
               401: "unauthorized", 403: "forbidden", 413: "payload_too_large",
               415: "unsupported_media_type"}


def error_response(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParleyError)
    async def _parley(_: Request, exc: ParleyError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        headers = ({"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
                   if isinstance(exc, TooManyRequests) else None)
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "invalid_json", "The request body is not valid JSON.")
        details = [{"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type"),
                    "msg": e.get("msg")} for e in errors]
        return error_response(422, "validation_error", "The request is not valid.", details)

    @app.exception_handler(UnicodeError)
    async def _unicode(_: Request, exc: UnicodeError) -> JSONResponse:
        # Text that cannot be stored, e.g. a lone surrogate ("\\ud800") in a JSON string.
        return error_response(400, "invalid_text", "The request holds text that is not valid "
                                                   "Unicode (a lone surrogate).")

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # A number the database cannot hold (beyond 64 bits) that no schema bounded.
        return error_response(422, "number_out_of_range", "A number in the request is too "
                                                          "large.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error: %s", type(exc).__name__)
        return error_response(500, "internal_error", "Something went wrong on our side.")


class CountRequests:
    """Count HTTP requests by method, route template and status
    (``parley_http_requests_total``). Plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs a
    task group and two memory streams a request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes every handler

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = scope.get("route")  # the router sets it on this same scope
            REQUESTS.labels(scope["method"], getattr(route, "path", "unmatched"),
                            str(status)).inc()


class BodySizeLimit:
    """Reject request bodies over ``max_bytes`` with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        received = 0
        chunks: list[Message] = []
        while True:  # buffer the (bounded) body so a chunked upload cannot exceed the limit
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
                chunks.append(message)
                if not message.get("more_body"):
                    break
            else:
                chunks.append(message)
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "payload_too_large",
                                  f"The request body is larger than {self.max_bytes} bytes.")
        await response(scope, receive, send)
