"""Accounts and sessions (keyword-only functions; callers commit), and the limit on failed
logins."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import Conflict, TooManyRequests, Unauthorized
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


class LoginGuard:
    """Failed logins counted per account and per client address over a sliding window;
    past either limit every attempt (right or wrong) answers 429 ``too_many_attempts`` with
    Retry-After, until the oldest counted failure leaves the window. A successful login clears
    its account's count (not its address's).

    An attempt counts as failed from the moment it is let through until it succeeds, so
    concurrent attempts cannot all pass the check. Unknown accounts are counted exactly like
    real ones, so neither the lockout nor its timing tells whether an account exists.
    In-process: each API process keeps its own counts, so with N processes an attacker gets up
    to N times the limits. Memory is bounded: the least recently failed keys go first.
    """

    def __init__(self, *, per_account: int = 5, per_address: int = 20, window_s: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_account, self.per_address = per_account, per_address
        self.window_s, self.max_keys, self.clock = window_s, max_keys, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _wait(self, key: str, limit: int, now: float) -> float:
        failures = self._failures.get(key)
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
            return 0.0
        return failures[0] + self.window_s - now if len(failures) >= limit else 0.0

    def attempt(self, *, account: str, address: str) -> float:
        """Let an attempt through (429 when over a limit) and count it; returns its time."""
        now = self.clock()
        keys = ((f"account:{account}", self.per_account),
                (f"address:{address}", self.per_address))
        wait = max(self._wait(key, limit, now) for key, limit in keys)
        if wait > 0:
            raise TooManyRequests(f"Too many failed logins; try again in {wait:.0f} s.",
                                  retry_after=wait, code="too_many_attempts")
        for key, limit in keys:
            failures = self._failures.pop(key, None) or deque(maxlen=limit)
            failures.append(now)
            self._failures[key] = failures
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        return now

    def succeeded(self, *, account: str, address: str, at: float) -> None:
        """The attempt made ``at`` succeeded: the account starts afresh, and the address's
        count no longer holds it."""
        self._failures.pop(f"account:{account}", None)
        failures = self._failures.get(f"address:{address}")
        if failures is not None and at in failures:
            failures.remove(at)


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
