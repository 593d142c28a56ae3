"""Login, logout, the current account, and account management for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status
from sqlalchemy import select

from core.deps import SessionDep, SettingsDep
from core.ratelimit import LoginGuard, client_address, storage_url
from core.security import bearer
from staff import service
from staff.deps import AdminAgent, CurrentAgent, StaffMember
from staff.models import Agent
from staff.schemas import AgentCreate, AgentPublic, LoginRequest, SessionPublic

router = APIRouter(prefix="/api/v1", tags=["staff"])


def get_login_guard(request: Request) -> LoginGuard:
    """The app's failed-login counts (in process, or shared through Redis; tests swap in a fake
    clock)."""
    guard: LoginGuard | None = getattr(request.app.state, "login_guard", None)
    if guard is None:
        settings = request.app.state.settings
        guard = request.app.state.login_guard = LoginGuard(url=storage_url(settings),
                                                           prefix=settings.redis_prefix)
    return guard


LoginGuardDep = Annotated[LoginGuard, Depends(get_login_guard)]


@router.post("/auth/login", response_model=SessionPublic,
             responses={401: {"description": "`invalid_credentials`"},
                        429: {"description": "`too_many_attempts` (with Retry-After): 5 failed "
                                             "logins for the account or 20 from the address in "
                                             "15 minutes"}})
async def login(body: LoginRequest, request: Request, session: SessionDep,
                settings: SettingsDep, guard: LoginGuardDep) -> SessionPublic:
    token, record, agent = await service.login(session, email=body.email,
                                               password=body.password,
                                               ttl_s=settings.agent_session_ttl_s, guard=guard,
                                               address=client_address(request,
                                                                      settings.trusted_proxies))
    return SessionPublic(token=token, expires_at=record.expires_at,
                         agent=AgentPublic.model_validate(agent))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(agent: StaffMember, session: SessionDep,
                 authorization: Annotated[str | None, Header()] = None) -> None:
    await service.logout(session, token=bearer(authorization) or "")


@router.get("/auth/me", response_model=AgentPublic)
async def me(agent: StaffMember) -> Agent:
    return agent


@router.get("/admin/agents", response_model=list[AgentPublic])
async def list_agents(_: AdminAgent, session: SessionDep) -> list[Agent]:
    return list((await session.execute(select(Agent).order_by(Agent.id))).scalars())


@router.get("/agents", response_model=list[AgentPublic])
async def colleagues(_: CurrentAgent, session: SessionDep) -> list[Agent]:
    """Everyone an agent may transfer a conversation to."""
    return list((await session.execute(select(Agent).order_by(Agent.name))).scalars())


@router.post("/admin/agents", response_model=AgentPublic, status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "`agent_exists`"}})
async def create_agent(body: AgentCreate, _: AdminAgent, session: SessionDep) -> Agent:
    return await service.create_agent(session, data=body)
