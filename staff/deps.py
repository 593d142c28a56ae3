"""Who is calling: the logged-in staff member, and role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from core.deps import MakerDep
from core.errors import Forbidden
from core.security import bearer
from staff import service
from staff.models import Agent


async def current_agent(request: HTTPConnection, maker: MakerDep,
                        authorization: Annotated[str | None, Header()] = None) -> Agent:
    """The logged-in staff member (agent or admin), looked up in a short session of its own:
    routes that run multi-step flows open sessions of their own after it (see ``core.deps``)."""
    token = bearer(authorization) or (request.query_params.get("token")
                                      if request.scope["type"] == "websocket" else None)
    async with maker() as session:
        return await service.agent_for_token(session, token=token)


def admin_agent(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
    if agent.role != "admin":
        raise Forbidden("This needs the admin role.", code="admin_only")
    return agent


CurrentAgent = Annotated[Agent, Depends(current_agent)]
AdminAgent = Annotated[Agent, Depends(admin_agent)]
