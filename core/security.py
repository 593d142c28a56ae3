"""Conversation tokens: an HMAC-signed, expiring capability for exactly one conversation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from core.errors import Forbidden, Unauthorized

_VERSION = "v1"


def sign(key: bytes, payload: str) -> str:
    """HMAC-SHA256 of ``payload``, base64url without padding (conversation and customer
    tokens)."""
    digest = hmac.new(key, payload.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison for any text: ``hmac.compare_digest`` raises TypeError
    on non-ASCII ``str``, so both sides are compared as UTF-8 bytes."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                               b.encode("utf-8", "surrogatepass"))


def mint_conversation_token(conversation_id: str, *, key: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    payload = f"{_VERSION}.{conversation_id}.{issued}"
    return f"{payload}.{sign(key.encode(), payload)}"


def verify_conversation_token(
    token: str | None, conversation_id: str, *, key: str, ttl_s: int, now: float | None = None
) -> None:
    """Raise unless ``token`` was minted by us for ``conversation_id`` and has not expired."""
    if not token:
        raise Unauthorized("A conversation token is required (Authorization: Bearer ...).",
                           code="missing_token")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        raise Unauthorized("The conversation token is malformed.", code="invalid_token")
    version, token_conversation, issued, signature = parts
    expected = sign(key.encode(), f"{version}.{token_conversation}.{issued}")
    if not same(signature, expected):
        raise Unauthorized("The conversation token is not valid.", code="invalid_token")
    if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > ttl_s:
        raise Unauthorized("The conversation token has expired.", code="token_expired")
    if not same(token_conversation, conversation_id):
        raise Forbidden("This token belongs to another conversation.", code="token_scope")


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
