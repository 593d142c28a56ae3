"""Accounts and sessions (keyword-only functions; callers commit); failed logins are limited
by ``core.ratelimit.LoginGuard``."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import Conflict, Unauthorized
from core.ratelimit import LoginGuard
from staff.models import Agent, AgentSession
from staff.passwords import hash_password, verify_password
from staff.schemas import AgentCreate

# Verifying against a real hash when the account does not exist keeps timing uniform.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_agent(session: AsyncSession, *, data: AgentCreate) -> Agent:
    agent = Agent(email=data.email.lower(), name=data.name, role=data.role,
                  password_hash=hash_password(data.password), skills=data.skills,
                  languages=data.languages, max_concurrent=data.max_concurrent)
    session.add(agent)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("An account with this email exists.", code="agent_exists") from exc
    return agent


async def login(session: AsyncSession, *, email: str, password: str, ttl_s: int,
                guard: LoginGuard | None = None,
                address: str = "") -> tuple[str, AgentSession, Agent]:
    account = email.lower()
    at = guard.attempt(account=account, address=address) if guard is not None else 0.0
    agent = (await session.execute(select(Agent).where(Agent.email == account))
             ).scalar_one_or_none()
    # The same scrypt work whether or not the account exists, off the event loop.
    valid = await asyncio.to_thread(verify_password, password,
                                    agent.password_hash if agent else _DUMMY_HASH)
    if agent is None or not valid:
        if guard is not None:
            guard.failed(account=account, address=address)
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if guard is not None:
        guard.succeeded(account=account, address=address, at=at)
    await session.execute(delete(AgentSession).where(AgentSession.expires_at < utcnow()))
    token = secrets.token_urlsafe(32)
    record = AgentSession(token_hash=_digest(token), agent_id=agent.id,
                          expires_at=utcnow() + timedelta(seconds=ttl_s))
    session.add(record)
    return token, record, agent


async def agent_for_token(session: AsyncSession, *, token: str | None) -> Agent:
    if not token:
        raise Unauthorized("Log in first (Authorization: Bearer <session token>).",
                           code="missing_token")
    record = await session.get(AgentSession, _digest(token))
    if record is None:
        raise Unauthorized("The session is not valid.", code="invalid_session")
    if record.expires_at < utcnow():
        raise Unauthorized("The session has expired; log in again.", code="session_expired")
    agent = await session.get(Agent, record.agent_id)
    if agent is None:
        raise Unauthorized("The session is not valid.", code="invalid_session")
    return agent


async def logout(session: AsyncSession, *, token: str) -> None:
    await session.execute(delete(AgentSession).where(AgentSession.token_hash == _digest(token)))
