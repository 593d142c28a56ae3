"""Create staff accounts from the command line, and the demo accounts for `parley run`."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from core import db
from core.config import Settings, _dev_secret
from staff import service
from staff.models import Agent
from staff.schemas import AgentCreate, Role

DEMO_STAFF: tuple[tuple[str, str, Role, list[str], list[str]], ...] = (
    ("admin@parley.example", "Demo Admin", "admin", ["billing", "technical"], ["en", "zh"]),
    ("agent@parley.example", "Alex Chen", "agent", ["billing"], ["en", "zh"]),
)


async def _create(settings: Settings, data: AgentCreate) -> Agent:
    engine = db.create_engine(settings.database_url)
    try:
        async with db.sessionmaker(engine)() as session:
            agent = await service.create_agent(session, data=data)
            await session.commit()
            return agent
    finally:
        await engine.dispose()


def create_agent(settings: Settings, data: AgentCreate) -> Agent:
    db.upgrade_database(settings.database_url)
    return asyncio.run(_create(settings, data))


async def _ensure_demo(settings: Settings) -> list[tuple[str, str]]:
    engine = db.create_engine(settings.database_url)
    created: list[tuple[str, str]] = []
    try:
        async with db.sessionmaker(engine)() as session:
            for email, name, role, skills, languages in DEMO_STAFF:
                # Passwords are generated per installation and kept in var/secrets/.
                password = _dev_secret(settings.var_dir, f"demo-{role}-password")
                exists = (await session.execute(select(Agent).where(Agent.email == email))
                          ).scalar_one_or_none()
                if exists is None:
                    await service.create_agent(session, data=AgentCreate(
                        email=email, name=name, password=password, role=role, skills=skills,
                        languages=languages))
                created.append((email, password))
            await session.commit()
    finally:
        await engine.dispose()
    return created


def ensure_demo_staff(settings: Settings) -> list[tuple[str, str]]:
    """Development only: a demo admin and agent, with passwords unique to this machine."""
    if settings.environment != "development" or not settings.demo_staff:
        return []
    db.upgrade_database(settings.database_url)
    return asyncio.run(_ensure_demo(settings))
