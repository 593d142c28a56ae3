"""Typed FastAPI dependencies every domain's routes use; tests swap them with
``app.dependency_overrides``.

``SessionDep`` is one database session per request, committed when the route returns without
an error and rolled back otherwise, so a route never opens or commits a session itself. The
commit happens before the response is sent: a client that got a 2xx can read what it wrote, and
a failed commit answers with an error. A route that tells others (the live stream hub) about
what it wrote commits explicitly first, so nobody hears of a change that is not stored.

A route on ``SessionDep`` must not open a second session from the maker while its own holds a
transaction: on SQLite every transaction begins IMMEDIATE, and the second would wait for the
first. Multi-step flows that commit between steps take ``MakerDep`` instead.
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


# scope="function": the exit code (commit or rollback) runs when the route returns, before the
# response is sent, not after it.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
