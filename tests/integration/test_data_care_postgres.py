"""Retention and one person's data on a real PostgreSQL server: the JSON identity lookup, the
row locks, the reflected tables, and Rasa's tracker in the same database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import conversations.service  # noqa: F401 - its listeners write the outbox events
from conversations.models import Conversation, Message
from conversations.privacy import Person, delete_customer, export_customer
from conversations.retention import apply_retention
from core import db
from core.config import Settings
from tests.servers import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with scratch_database("parley_privacy") as url:
        yield url


async def _scenario(settings: Settings) -> None:
    engine = db.create_engine(settings.database_url)
    sessions = db.sessionmaker(engine)
    old_at = db.utcnow() - timedelta(days=100)
    try:
        async with sessions() as session, session.begin():
            await session.execute(text(  # Rasa's SQL tracker store, in the same database
                "CREATE TABLE events (id SERIAL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
                "type_name VARCHAR(255) NOT NULL, data TEXT)"))
            for cid, identity, at, said in (
                    ("old", None, old_at, "hello from the past"),
                    ("li", {"email": "li.wei@example.com"}, db.utcnow(), "warranty?"),
                    ("anna", None, db.utcnow(), "I am anna.lee@example.com")):
                session.add(Conversation(id=cid, customer_identity=identity, created_at=at,
                                         updated_at=at))
                await session.flush()
                session.add(Message(conversation_id=cid, role="customer", text=said,
                                    created_at=at))
                await session.execute(text("INSERT INTO events (sender_id, type_name, data) "
                                           "VALUES (:c, 'user', '{}')"), {"c": cid})

        report = await apply_retention(sessions, settings, days=30)
        assert report.conversations == 1 and report.deleted["messages"] == 1
        assert report.deleted["outbox_events"] == 2  # opened + message
        assert report.tracker_events == 1

        async with sessions() as session:
            exported = await export_customer(session, Person(email="li.wei@example.com"))
        assert [c["id"] for c in exported["conversations"]] == ["li"]
        assert exported["conversations"][0]["messages"][0]["text"] == "warranty?"

        async with sessions() as session, session.begin():
            deleted = await delete_customer(session, settings, Person(email="li.wei@example.com"))
        assert deleted["conversations"] == 1 and deleted["tracker_events"] == 1
        async with sessions() as session:
            left = (await session.execute(text("SELECT id FROM conversations"))).scalars()
            assert list(left) == ["anna"]
            senders = (await session.execute(text("SELECT sender_id FROM events"))).scalars()
            assert list(senders) == ["anna"]
    finally:
        await engine.dispose()


def test_retention_export_and_delete_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    db.upgrade_database(postgres_url)
    settings = Settings(environment="test", var_dir=tmp_path / "var", database_url=postgres_url,
                        secret_key="integration-secret-key-0123456789", rasa_token="t")
    asyncio.run(_scenario(settings))
