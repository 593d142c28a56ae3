"""Who is calling: the logged-in staff member, and role checks.

    StaffMember      any role: login, logout, /auth/me
    CurrentAgent     agent or admin: the console (an analyst gets 403 ``console_only``)
    AdminAgent       admin
    AnalyticsReader  admin or analyst: analytics
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from core.deps import MakerDep
from core.errors import Forbidden
from core.security import bearer
from staff import service
from staff.models import Agent

CONSOLE_ROLES = frozenset({"agent", "admin"})
ANALYTICS_ROLES = frozenset({"admin", "analyst"})


async def staff_member(request: HTTPConnection, maker: MakerDep,
                       authorization: Annotated[str | None, Header()] = None) -> Agent:
    """The logged-in staff member (any role), looked up in a short session of its own:
    routes that run multi-step flows open sessions of their own after it (see ``core.deps``)."""
    token = bearer(authorization) or (request.query_params.get("token")
                                      if request.scope["type"] == "websocket" else None)
    async with maker() as session:
        return await service.agent_for_token(session, token=token)


def require_console(agent: Agent) -> Agent:
    if agent.role not in CONSOLE_ROLES:
        raise Forbidden("This needs the agent or admin role.", code="console_only")
    return agent


def current_agent(agent: Annotated[Agent, Depends(staff_member)]) -> Agent:
    """A staff member who works the console (agent or admin)."""
    return require_console(agent)


def admin_agent(agent: Annotated[Agent, Depends(staff_member)]) -> Agent:
    if agent.role != "admin":
        raise Forbidden("This needs the admin role.", code="admin_only")
    return agent


def analytics_reader(agent: Annotated[Agent, Depends(staff_member)]) -> Agent:
    if agent.role not in ANALYTICS_ROLES:
        raise Forbidden("This needs the analyst or admin role.", code="analytics_only")
    return agent


StaffMember = Annotated[Agent, Depends(staff_member)]
CurrentAgent = Annotated[Agent, Depends(current_agent)]
AdminAgent = Annotated[Agent, Depends(admin_agent)]
AnalyticsReader = Annotated[Agent, Depends(analytics_reader)]
