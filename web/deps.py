"""Typed dependencies; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from bot.dialogue import DialogueEngine
from web.auth import service as auth_service
from web.auth.models import Agent
from web.conversations.stream import StreamHub
from web.core.config import Settings
from web.core.errors import Forbidden
from web.core.security import bearer, verify_conversation_token


def get_settings_dep(request: HTTPConnection) -> Settings:
    return request.app.state.settings


def get_maker(request: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    return request.app.state.maker


def get_dialogue(request: HTTPConnection) -> DialogueEngine:
    return request.app.state.dialogue


def get_hub(request: HTTPConnection) -> StreamHub:
    return request.app.state.hub


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_maker)]
DialogueDep = Annotated[DialogueEngine, Depends(get_dialogue)]
HubDep = Annotated[StreamHub, Depends(get_hub)]


def conversation_access(
    conversation_id: str, settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The widget's token must be for exactly this conversation."""
    verify_conversation_token(bearer(authorization), conversation_id,
                              key=settings.secret_key.get_secret_value(),
                              ttl_s=settings.token_ttl_s)
    return conversation_id


ConversationAccess = Annotated[str, Depends(conversation_access)]


async def current_agent(request: HTTPConnection, maker: MakerDep,
                        authorization: Annotated[str | None, Header()] = None) -> Agent:
    """The logged-in staff member (agent or admin)."""
    token = bearer(authorization) or (request.query_params.get("token")
                                      if request.scope["type"] == "websocket" else None)
    async with maker() as session:
        return await auth_service.agent_for_token(session, token=token)


def admin_agent(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
    if agent.role != "admin":
        raise Forbidden("This needs the admin role.", code="admin_only")
    return agent


CurrentAgent = Annotated[Agent, Depends(current_agent)]
AdminAgent = Annotated[Agent, Depends(admin_agent)]
