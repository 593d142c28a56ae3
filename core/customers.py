"""Verified customers: the host site vouches for who is chatting.

A site that knows its customer (they are logged in) signs ``{"email": ...}`` or
``{"customer_id": ...}`` with an expiry into a compact JWT (HS256: HMAC-SHA256 with the
project's ``PARLEY_CUSTOMER_SIGNING_KEY``) and hands it to the widget
(``data-parley-customer``); the widget sends it when it creates the conversation, and the API
stores the verified identity with the conversation. Any JWT library that writes HS256 tokens
mints one; README "Verified customers" shows it in a few lines of Python and of Node.

Only ``alg: HS256`` is accepted (never ``none``), ``exp`` is required and may lie at most
``MAX_LIFETIME_S`` ahead, so a token copied out of a page is worth little for long.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from core.errors import Unauthorized, Unprocessable
from core.security import same, sign

VERIFIED_CUSTOMER_SLOT = "verified_customer"  # the dialogue slot that holds ``as_dict()``
MAX_LIFETIME_S = 24 * 3600
MAX_TOKEN_CHARS = 4096
_HEADER = {"alg": "HS256", "typ": "JWT"}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63}$")
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True)
class CustomerIdentity:
    """Who the host site says the customer is: an email, a customer id, or both."""

    email: str | None = None
    customer_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        """JSON-safe, as the conversation stores it and the dialogue receives it."""
        return {name: value for name, value in (("email", self.email),
                                                ("customer_id", self.customer_id)) if value}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_customer_token(identity: CustomerIdentity, *, key: str, ttl_s: int = 3600,
                        now: float | None = None) -> str:
    """What a host site does (here for tests and ``parley`` tooling)."""
    claims: dict[str, Any] = {**identity.as_dict(),
                              "exp": int((now if now is not None else time.time()) + ttl_s)}
    signing_input = (f"{_b64(json.dumps(_HEADER).encode())}."
                     f"{_b64(json.dumps(claims).encode())}")
    return f"{signing_input}.{sign(key.encode(), signing_input)}"


def _invalid(reason: str) -> Unauthorized:
    return Unauthorized(f"The customer token is not valid: {reason}.",
                        code="customer_token_invalid")


def verify_customer_token(token: str, *, key: str, now: float | None = None) -> CustomerIdentity:
    """The identity a token vouches for, or ``Unauthorized`` (``customer_token_invalid``,
    ``customer_token_expired``); ``Unprocessable`` (``customer_tokens_disabled``) when this
    project has no signing key."""
    if not key:
        raise Unprocessable("This service does not accept customer tokens "
                            "(PARLEY_CUSTOMER_SIGNING_KEY is not set).",
                            code="customer_tokens_disabled")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise _invalid("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid("malformed")
    header_b64, claims_b64, signature = parts
    # The signature first: nothing the token says is read before it is known to be ours.
    if not same(signature, sign(key.encode(), f"{header_b64}.{claims_b64}")):
        raise _invalid("bad signature")
    try:
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(claims_b64))
    except (ValueError, binascii.Error) as exc:  # JSON and base64 errors
        raise _invalid("malformed") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise _invalid("only HS256 is accepted")
    if not isinstance(claims, dict):
        raise _invalid("the claims are not an object")
    return _identity(claims, now=time.time() if now is None else now)


def _identity(claims: dict[str, Any], *, now: float) -> CustomerIdentity:
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise _invalid("exp (seconds since the epoch) is required")
    if exp <= now:
        raise Unauthorized("The customer token has expired.", code="customer_token_expired")
    if exp > now + MAX_LIFETIME_S:
        raise _invalid(f"exp lies more than {MAX_LIFETIME_S // 3600} hours ahead")
    email, customer_id = claims.get("email"), claims.get("customer_id")
    if email is not None and not (isinstance(email, str) and _EMAIL.match(email)):
        raise _invalid("email is not an email address")
    if customer_id is not None and not (isinstance(customer_id, str)
                                        and _CUSTOMER_ID.match(customer_id)):
        raise _invalid("customer_id is not a customer id")
    if not email and not customer_id:
        raise _invalid("it names neither an email nor a customer_id")
    return CustomerIdentity(email=email.strip().lower() if email else None,
                            customer_id=customer_id or None)
