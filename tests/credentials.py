"""Every kind of credential the API sees, made the way the app makes them, for the tests that
sweep the whole OpenAPI document (tests/unit/test_authorization_matrix.py,
tests/integration/test_api_fuzz.py).

Staff sessions are written straight to the database (as ``staff.service.login`` writes them),
so a test can hold as many as it needs, expired ones included, without the login route's
per-address lockout getting in the way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from core import db
from core.config import Settings
from core.security import mint_conversation_token
from staff.bootstrap import create_agent
from staff.models import AgentSession
from staff.schemas import AgentCreate

PASSWORD = "correct horse battery staple"
STAFF_ROLES = ("admin", "agent", "analyst")


def make_staff(settings: Settings, role: str, *, email: str | None = None) -> int:
    """A new staff account with ``PASSWORD`` (English and Chinese, every demo skill); its id."""
    email = email or f"{role}.{secrets.token_hex(4)}@example.com"
    agent = create_agent(settings, AgentCreate(
        email=email, name=role.title(), password=PASSWORD, role=role,  # type: ignore[arg-type]
        languages=["en", "zh"], skills=["billing", "technical"]))
    return agent.id


async def _insert_session(settings: Settings, agent_id: int, token: str, ttl_s: float) -> None:
    engine = db.create_engine(settings.database_url)
    try:
        async with db.sessionmaker(engine)() as session:
            session.add(AgentSession(token_hash=hashlib.sha256(token.encode()).hexdigest(),
                                     agent_id=agent_id,
                                     expires_at=db.utcnow() + timedelta(seconds=ttl_s)))
            await session.commit()
    finally:
        await engine.dispose()


def staff_token(settings: Settings, agent_id: int, *, ttl_s: float = 3600.0) -> str:
    """A session token for ``agent_id``; a negative ``ttl_s`` gives one that has expired."""
    token = secrets.token_urlsafe(32)
    asyncio.run(_insert_session(settings, agent_id, token, ttl_s))
    return token


def expired_widget_token(settings: Settings, conversation_id: str) -> str:
    """A correctly signed conversation token, issued longer ago than the token lifetime."""
    issued = time.time() - settings.token_ttl_s - 3600
    return mint_conversation_token(conversation_id, key=settings.secret_key.get_secret_value(),
                                   now=issued)


def forged_widget_token(conversation_id: str) -> str:
    """A well-formed conversation token signed with a key that is not the server's."""
    return mint_conversation_token(conversation_id, key="not-the-server-key-0123456789")


def forged_staff_token() -> str:
    """A token of the right shape that no login issued."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class StaffTokens:
    """One live session per staff role, plus the account ids."""

    tokens: dict[str, str]
    ids: dict[str, int]

    @classmethod
    def create(cls, settings: Settings) -> StaffTokens:
        ids = {role: make_staff(settings, role) for role in STAFF_ROLES}
        return cls(tokens={role: staff_token(settings, ids[role]) for role in STAFF_ROLES},
                   ids=ids)
