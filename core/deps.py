"""Typed FastAPI dependencies every domain's routes use; tests swap them with
``app.dependency_overrides``.

``SessionDep`` is one database session per request, committed when the route returns without
an error and rolled back otherwise, so a route never opens or commits a session itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from core.config import Settings


def get_settings_dep(request: HTTPConnection) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_maker(request: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.maker
    return maker


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_maker)]


async def get_session(maker: MakerDep) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session)]
